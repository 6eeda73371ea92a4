"""
The subscriber role of the SQL stores (:class:`~twisted_hooks.store.sql.SQLSubscriberStore`).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_hooks.interfaces import ISubscriberStore
from twisted_hooks.store._rows import (
    SUBSCRIBER_COLUMNS,
    Cursor,
    SQLEngine,
    chunks,
    subscriber_from_row,
    subscriber_values,
)
from twisted_hooks.store.cache import SubscriberCache
from twisted_hooks.webhooks._subscriber import (
    DuplicateSubscriber,
    Subscriber,
    SubscriberNotFound,
)

__all__ = ["SQLSubscriberStore"]


# --- subscribers --------------------------------------------------------------------------


@implementer(ISubscriberStore)
class SQLSubscriberStore:
    """
    The subscriber role of an :class:`SQLStore`.

    The database is the source of truth for :meth:`get`, :meth:`list` and every write;
    :meth:`match` and :meth:`find` answer from :attr:`cache`, kept up to date by those
    writes, by :meth:`refresh`, and by the changes other processes announce.

    :param store: the store whose database holds the subscribers.
    :param refresh_interval: seconds between the cache's periodic refreshes, or ``None``.

    :ivar cache: the :class:`~twisted_hooks.store.cache.SubscriberCache`.
    """

    def __init__(self, store: SQLEngine, refresh_interval: float | None = None) -> None:
        self._store = store
        self.cache = SubscriberCache(
            self._load_all, self._load_some, store.reactor, refresh_interval
        )

    def _load_all(self) -> Deferred[Sequence[Subscriber]]:
        return self._store.run(False, self._select_all)

    def _load_some(self, subscriber_ids: Sequence[str]) -> Deferred[Sequence[Subscriber]]:
        store = self._store

        def select(cursor: Cursor) -> Sequence[Subscriber]:
            found: list[Subscriber] = []
            for chunk in chunks(subscriber_ids):
                cursor.execute(
                    store.sql(
                        f"SELECT {SUBSCRIBER_COLUMNS.listed()} FROM subscribers"
                        f" WHERE id IN ({', '.join('?' * len(chunk))})"
                    ),
                    chunk,
                )
                found.extend(subscriber_from_row(row) for row in cursor.fetchall())
            return found

        return store.run(False, select)

    def refresh(self) -> Deferred[None]:
        """Reload the cache from the database (:meth:`SubscriberCache.refresh
        <twisted_hooks.store.cache.SubscriberCache.refresh>`)."""
        return self.cache.refresh()

    def _select_all(self, cursor: Cursor) -> list[Subscriber]:
        cursor.execute(
            f"SELECT {SUBSCRIBER_COLUMNS.listed()} FROM subscribers ORDER BY created_at, id"
        )
        return [subscriber_from_row(row) for row in cursor.fetchall()]

    def add(self, subscriber: Subscriber) -> Deferred[Subscriber]:
        """Store a new subscriber; fails with
        :class:`~twisted_hooks.webhooks.subscribers.DuplicateSubscriber` for a known id."""
        store = self._store
        params = SUBSCRIBER_COLUMNS.params(subscriber_values(subscriber))
        sql = store.sql(
            f"INSERT INTO subscribers ({SUBSCRIBER_COLUMNS.listed()})"
            f" VALUES ({SUBSCRIBER_COLUMNS.markers()}) ON CONFLICT (id) DO NOTHING"
        )

        def insert(cursor: Cursor) -> Subscriber:
            cursor.execute(sql, params)
            if cursor.rowcount != 1:
                raise DuplicateSubscriber(f"a subscriber with id {subscriber.id!r} already exists")
            store.announce(cursor, subscriber.id)
            return subscriber

        return store.run(True, insert).addCallback(self._stored)

    def _stored(self, subscriber: Subscriber) -> Subscriber:
        self.cache.put(subscriber)
        return subscriber

    def _missing(self, failure: Failure) -> Failure:
        if failure.check(SubscriberNotFound):
            self.cache.discard(failure.value.args[0])  # type: ignore[union-attr]
        return failure

    def _fetch(self, cursor: Cursor, subscriber_id: str) -> Subscriber:
        cursor.execute(
            self._store.sql(f"SELECT {SUBSCRIBER_COLUMNS.listed()} FROM subscribers WHERE id = ?"),
            (subscriber_id,),
        )
        row = cursor.fetchone()
        if row is None:
            raise SubscriberNotFound(subscriber_id)
        return subscriber_from_row(row)

    def get(self, subscriber_id: str) -> Deferred[Subscriber]:
        """The stored subscriber; fails with
        :class:`~twisted_hooks.webhooks.subscribers.SubscriberNotFound`."""
        return (
            self._store.run(False, self._fetch, subscriber_id)
            .addCallback(self._stored)
            .addErrback(self._missing)
        )

    def _replace(self, cursor: Cursor, subscriber: Subscriber) -> Subscriber:
        store = self._store
        values = subscriber_values(subscriber)
        changed = [name for name in SUBSCRIBER_COLUMNS.names if name != "id"]
        cursor.execute(
            store.sql(
                f"UPDATE subscribers SET {', '.join(f'{name} = ?' for name in changed)}"
                " WHERE id = ?"
            ),
            (*(values[name] for name in changed), values["id"]),
        )
        store.announce(cursor, subscriber.id)
        return subscriber

    def update(self, subscriber: Subscriber) -> Deferred[Subscriber]:
        """Replace the stored subscriber of the same id, keeping its ``created_at`` and
        setting ``updated_at``; fires the stored value."""

        def update(cursor: Cursor) -> Subscriber:
            old = self._fetch(cursor, subscriber.id)
            new = attrs.evolve(subscriber, created_at=old.created_at, updated_at=_utcnow())
            return self._replace(cursor, new)

        return self._store.run(True, update).addCallback(self._stored).addErrback(self._missing)

    def remove(self, subscriber_id: str) -> Deferred[None]:
        """Delete a subscriber (its deliveries are kept)."""
        store = self._store

        def remove(cursor: Cursor) -> None:
            cursor.execute(store.sql("DELETE FROM subscribers WHERE id = ?"), (subscriber_id,))
            if cursor.rowcount != 1:
                raise SubscriberNotFound(subscriber_id)
            store.announce(cursor, subscriber_id)

        def removed(_: None) -> None:
            self.cache.discard(subscriber_id)

        return store.run(True, remove).addCallback(removed).addErrback(self._missing)

    def deactivate(self, subscriber_id: str) -> Deferred[Subscriber]:
        """Mark a subscriber inactive; fires the stored value."""

        def deactivate(cursor: Cursor) -> Subscriber:
            old = self._fetch(cursor, subscriber_id)
            if not old.active:
                return old
            return self._replace(cursor, attrs.evolve(old, active=False, updated_at=_utcnow()))

        return (
            self._store.run(True, deactivate).addCallback(self._stored).addErrback(self._missing)
        )

    def list(self, owner: str | None = None) -> Deferred[Sequence[Subscriber]]:
        """Every stored subscriber, or those of ``owner``, oldest first."""

        def select(cursor: Cursor) -> Sequence[Subscriber]:
            if owner is None:
                return self._select_all(cursor)
            cursor.execute(
                self._store.sql(
                    f"SELECT {SUBSCRIBER_COLUMNS.listed()} FROM subscribers WHERE owner = ?"
                    " ORDER BY created_at, id"
                ),
                (owner,),
            )
            return [subscriber_from_row(row) for row in cursor.fetchall()]

        return self._store.run(False, select)

    def match(self, event: str, owner: str | None) -> Deferred[Sequence[Subscriber]]:
        """The active subscribers receiving ``event`` sent by ``owner``, from the cache."""
        return succeed(self.cache.matching(event, owner))

    def find(self, subscriber_id: str) -> Subscriber | None:
        """The subscriber as the cache knows it (this process's writes at once, other
        processes' after the next :meth:`refresh` or, on PostgreSQL, once their
        notification arrives), or ``None``."""
        return self.cache.find(subscriber_id)


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
