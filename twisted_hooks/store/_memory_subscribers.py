"""
The in-memory subscriber store: :class:`MemorySubscriberStore`, indexed by pattern and
owner. Re-exported by :mod:`twisted_hooks.webhooks.subscribers` and
:mod:`twisted_hooks.webhooks`, where it is documented.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from twisted_hooks.interfaces import ISubscriberStore
from twisted_hooks.webhooks._subscriber import (
    DuplicateSubscriber,
    Subscriber,
    SubscriberNotFound,
    _now,
)
from twisted_hooks.webhooks.patterns import PatternIndex

__all__ = ["MemorySubscriberStore"]


@implementer(ISubscriberStore)
class MemorySubscriberStore:
    """
    Subscribers kept in memory, indexed by pattern and owner.

    Every method returns an already-fired Deferred. Nothing survives the process; use a
    durable store from :mod:`twisted_hooks.store` for that.
    """

    def __init__(self, subscribers: Iterable[Subscriber] = ()) -> None:
        self._by_id: dict[str, Subscriber] = {}
        self._shared: PatternIndex[Subscriber] = PatternIndex()
        self._owned: dict[str, PatternIndex[Subscriber]] = {}
        for subscriber in subscribers:
            self._insert(subscriber)

    def _insert(self, subscriber: Subscriber) -> None:
        if subscriber.id in self._by_id:
            raise DuplicateSubscriber(f"a subscriber with id {subscriber.id!r} already exists")
        self._by_id[subscriber.id] = subscriber
        self._index(subscriber)

    def _index(self, subscriber: Subscriber) -> None:
        if not subscriber.active:
            return
        if subscriber.owner is None:
            self._shared.add(subscriber.event, subscriber.id, subscriber)
        else:
            index = self._owned.get(subscriber.owner)
            if index is None:
                index = self._owned[subscriber.owner] = PatternIndex()
            index.add(subscriber.event, subscriber.id, subscriber)

    def _unindex(self, subscriber: Subscriber) -> None:
        if subscriber.owner is None:
            self._shared.remove(subscriber.id)
            return
        index = self._owned.get(subscriber.owner)
        if index is not None:
            index.remove(subscriber.id)
            if not len(index):
                del self._owned[subscriber.owner]

    def add(self, subscriber: Subscriber) -> Deferred[Subscriber]:
        """Store a new subscriber; fails with :class:`DuplicateSubscriber` for a known id."""
        try:
            self._insert(subscriber)
        except DuplicateSubscriber as error:
            return fail(error)
        return succeed(subscriber)

    def get(self, subscriber_id: str) -> Deferred[Subscriber]:
        """The subscriber with ``subscriber_id``; fails with :class:`SubscriberNotFound`."""
        subscriber = self._by_id.get(subscriber_id)
        if subscriber is None:
            return fail(SubscriberNotFound(subscriber_id))
        return succeed(subscriber)

    def update(self, subscriber: Subscriber) -> Deferred[Subscriber]:
        """Replace the stored subscriber with the same id, setting ``updated_at``."""
        old = self._by_id.get(subscriber.id)
        if old is None:
            return fail(SubscriberNotFound(subscriber.id))
        new = attrs.evolve(subscriber, created_at=old.created_at, updated_at=_now())
        self._unindex(old)
        self._by_id[new.id] = new
        self._index(new)
        return succeed(new)

    def remove(self, subscriber_id: str) -> Deferred[None]:
        """Delete a subscriber; fails with :class:`SubscriberNotFound`."""
        old = self._by_id.pop(subscriber_id, None)
        if old is None:
            return fail(SubscriberNotFound(subscriber_id))
        self._unindex(old)
        return succeed(None)

    def deactivate(self, subscriber_id: str) -> Deferred[Subscriber]:
        """Mark a subscriber inactive: it receives nothing until reactivated."""
        old = self._by_id.get(subscriber_id)
        if old is None:
            return fail(SubscriberNotFound(subscriber_id))
        if not old.active:
            return succeed(old)
        return self.update(attrs.evolve(old, active=False))

    def list(self, owner: str | None = None) -> Deferred[Sequence[Subscriber]]:
        """Every subscriber, or only those of ``owner`` when it is given."""
        if owner is None:
            return succeed(list(self._by_id.values()))
        return succeed([s for s in self._by_id.values() if s.owner == owner])

    def match(self, event: str, owner: str | None) -> Deferred[Sequence[Subscriber]]:
        """The active subscribers that receive ``event`` sent by ``owner``."""
        return succeed(self.matching(event, owner))

    def matching(self, event: str, owner: str | None) -> builtins.list[Subscriber]:
        """:meth:`match`, answered at once rather than through a Deferred."""
        found = self._shared.match(event)
        if owner is not None:
            index = self._owned.get(owner)
            if index is not None:
                found = found + index.match(event)
        return found

    def find(self, subscriber_id: str) -> Subscriber | None:
        """:meth:`get`, answered at once: the subscriber, or ``None``."""
        return self._by_id.get(subscriber_id)

    def __len__(self) -> int:
        """How many subscribers are stored."""
        return len(self._by_id)
