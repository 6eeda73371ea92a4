"""
The subscriber cache of the SQL stores: :class:`SubscriberCache`.

:meth:`ISubscriberStore.find() <twisted_hooks.interfaces.ISubscriberStore.find>` answers
without waiting (it is asked before every attempt and may do no I/O), and matching every
event against the database would cost a query per event; so an SQL store keeps the
subscribers it matches and finds in memory, in a :class:`SubscriberCache`, and reads the
database for everything else.

The cache learns of changes three ways:

- **this process's writes**, at once: the store calls :meth:`SubscriberCache.put` or
  :meth:`SubscriberCache.discard` once a write has committed;
- **another process's writes, announced**: :meth:`SubscriberCache.changed` names the
  subscribers to read again (the PostgreSQL store calls it for each ``NOTIFY`` it
  receives); they are read in batches, one batch at a time, so a later read always wins;
- **a periodic refresh**, the fallback: every ``refresh_interval`` seconds the whole table
  is read again (:meth:`SubscriberCache.refresh`), which catches what no announcement
  reached.

A read (a refresh, or a batch of announced subscribers) that overlaps a write of this
process never undoes it: the writes made while a read is under way are noted, and laid
over what the read returns.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Sequence

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from twisted_hooks._fields import check_field, field
from twisted_hooks.store._memory_subscribers import MemorySubscriberStore
from twisted_hooks.webhooks._subscriber import Subscriber

__all__ = ["SubscriberCache", "check_refresh_interval"]

log = Logger()

#: The first delay before a failed read of announced subscribers is tried again, in seconds;
#: it doubles after each failure, up to :data:`_RETRY_MAX`.
_RETRY_FIRST = 1.0
_RETRY_MAX = 30.0


@attrs.frozen
class _CacheRules:
    """The rule of ``refresh_interval``, which no settings class holds."""

    refresh_interval: float | None = field(
        None,
        above=0.0,
        optional=True,
        unit="seconds",
        help="seconds between two refreshes of the subscriber cache",
    )


def check_refresh_interval(refresh_interval: float | None) -> None:
    """Refuse a ``refresh_interval`` that is neither ``None`` nor positive seconds.

    :raise ValueError: naming the value given.
    """
    check_field(_CacheRules, "refresh_interval", refresh_interval)


class SubscriberCache:
    """
    The subscribers of a store, in memory, indexed for matching.

    :param load_all: reads every stored subscriber (for :meth:`refresh`).
    :param load_some: reads the stored subscribers among the ids given (for
        :meth:`changed`); an id it does not return is no longer stored.
    :param reactor: the clock of the timers.
    :param refresh_interval: seconds between two refreshes once :meth:`start` is called;
        ``None`` for no periodic refresh.
    :raise ValueError: for a ``refresh_interval`` that is not positive.
    """

    def __init__(
        self,
        load_all: Callable[[], Deferred[Sequence[Subscriber]]],
        load_some: Callable[[Sequence[str]], Deferred[Sequence[Subscriber]]],
        reactor: IReactorTime,
        refresh_interval: float | None = None,
    ) -> None:
        check_refresh_interval(refresh_interval)
        self._load_all = load_all
        self._load_some = load_some
        self._reactor = reactor
        self.refresh_interval = refresh_interval
        self._index = MemorySubscriberStore()
        # While a read is under way, the writes made meanwhile (id -> new value, or None
        # when removed) are noted in its recorder, and applied over what it read.
        self._recorders: list[dict[str, Subscriber | None]] = []
        self._stale: set[str] = set()
        self._reloading = False
        self._reading: frozenset[str] = frozenset()
        self._retry: IDelayedCall | None = None
        self._retry_delay = _RETRY_FIRST
        self._timer: LoopingCall | None = None
        self._stopped = False

    def __repr__(self) -> str:
        return f"<SubscriberCache of {len(self._index)} subscribers>"

    def __len__(self) -> int:
        """How many subscribers the cache holds."""
        return len(self._index)

    # -- reading ---------------------------------------------------------------------------

    def find(self, subscriber_id: str) -> Subscriber | None:
        """The subscriber with this id as the cache knows it, or ``None``."""
        return self._index.find(subscriber_id)

    def matching(self, event: str, owner: str | None) -> builtins.list[Subscriber]:
        """The active subscribers receiving ``event`` sent by ``owner`` (see
        :meth:`MemorySubscriberStore.matching
        <twisted_hooks.webhooks.MemorySubscriberStore.matching>`)."""
        return self._index.matching(event, owner)

    # -- this process's writes ----------------------------------------------------------------

    def put(self, subscriber: Subscriber) -> None:
        """Hold ``subscriber`` (as stored now), replacing the one of the same id."""
        self._replace(subscriber)
        for recorder in self._recorders:
            recorder[subscriber.id] = subscriber

    def discard(self, subscriber_id: str) -> None:
        """Forget the subscriber with this id (removed from the store); no error when the
        cache does not hold it."""
        self._forget(subscriber_id)
        for recorder in self._recorders:
            recorder[subscriber_id] = None

    def _unrecord(self, recorder: dict[str, Subscriber | None]) -> None:
        # By identity: two recorders may hold the same writes, and be equal.
        self._recorders = [r for r in self._recorders if r is not recorder]

    def _replace(self, subscriber: Subscriber) -> None:
        self._forget(subscriber.id)
        self._index.add(subscriber)

    def _forget(self, subscriber_id: str) -> None:
        if self._index.find(subscriber_id) is not None:
            self._index.remove(subscriber_id)

    # -- reading the store again ------------------------------------------------------------

    def refresh(self) -> Deferred[None]:
        """Read every subscriber from the store and hold those; fires once done (or fails
        with the read's error, the cache left as it was)."""
        recorder: dict[str, Subscriber | None] = {}
        self._recorders.append(recorder)

        def read(outcome: Sequence[Subscriber] | Failure) -> Sequence[Subscriber] | Failure:
            self._unrecord(recorder)
            return outcome

        def loaded(subscribers: Sequence[Subscriber]) -> None:
            by_id = {s.id: s for s in subscribers}
            for subscriber_id, value in recorder.items():
                if value is None:
                    by_id.pop(subscriber_id, None)
                else:
                    by_id[subscriber_id] = value
            self._index = MemorySubscriberStore(by_id.values())

        return self._load_all().addBoth(read).addCallback(loaded)

    def changed(self, subscriber_ids: Iterable[str]) -> None:
        """
        Another process changed (added, updated or removed) these subscribers: read them
        again soon. Ids named while a read is under way wait for the next one, which reads
        all of them at once. A read that fails is tried again, after 1 second, then twice
        as long each time, up to 30 seconds. Nothing happens once the cache is stopped.
        """
        if self._stopped:
            return
        self._stale.update(subscriber_ids)
        self._reload_next()

    @property
    def pending(self) -> frozenset[str]:
        """The ids named by :meth:`changed` and not read again yet (a read under way
        included)."""
        return frozenset(self._stale | self._reading)

    def _reload_next(self) -> None:
        if self._reloading or self._retry is not None or not self._stale or self._stopped:
            return
        ids = sorted(self._stale)
        self._stale.clear()
        self._reloading = True
        self._reading = frozenset(ids)
        recorder: dict[str, Subscriber | None] = {}
        self._recorders.append(recorder)
        self._load_some(ids).addBoth(self._reloaded, ids, recorder)

    def _reloaded(
        self,
        outcome: Sequence[Subscriber] | Failure,
        ids: list[str],
        recorder: dict[str, Subscriber | None],
    ) -> None:
        self._unrecord(recorder)
        self._reloading = False
        self._reading = frozenset()
        if isinstance(outcome, Failure):
            if self._stopped:
                return
            self._stale.update(ids)
            delay = self._retry_delay
            self._retry_delay = min(delay * 2, _RETRY_MAX)
            log.failure(
                "reading the changed subscribers {subscriber_ids} failed; trying again in"
                " {delay:g} s",
                outcome,
                level=LogLevel.warn,
                subscriber_ids=ids,
                delay=delay,
            )
            self._retry = self._reactor.callLater(delay, self._retry_now)
            return
        self._retry_delay = _RETRY_FIRST
        found = {s.id: s for s in outcome}
        for subscriber_id in ids:
            if subscriber_id in recorder:
                continue  # written here while it was read: that write is newer
            value = found.get(subscriber_id)
            if value is None:
                self.discard(subscriber_id)
            else:
                self.put(value)
        self._reload_next()

    def _retry_now(self) -> None:
        self._retry = None
        self._reload_next()

    # -- life -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the periodic refresh (when there is a ``refresh_interval``); the first one
        comes after one interval."""
        if self.refresh_interval is None or self._timer is not None or self._stopped:
            return
        self._timer = LoopingCall(self._periodic)
        self._timer.clock = self._reactor
        self._timer.start(self.refresh_interval, now=False)

    def _periodic(self) -> Deferred[None]:
        def failed(failure: Failure) -> None:
            log.failure(
                "refreshing the subscriber cache failed; trying again in {interval:g} s",
                failure,
                level=LogLevel.warn,
                interval=self.refresh_interval,
            )

        return self.refresh().addErrback(failed)

    def stop(self) -> None:
        """Stop the periodic refresh and the reading of changed subscribers (a read under
        way ends, and is applied)."""
        self._stopped = True
        if self._timer is not None and self._timer.running:
            self._timer.stop()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        self._stale.clear()
