"""
The SQL stores' shared implementation: :class:`SQLStore`.

Every query runs in :class:`twisted.enterprise.adbapi.ConnectionPool`'s threads, never on
the reactor thread; each public method is one interaction, so one transaction. The dialects
(:class:`~twisted_hooks.store.sqlite.SQLiteStore`,
:class:`~twisted_hooks.store.postgres.PostgresStore`) override a few hooks: the parameter
marker, how a transaction begins, how due deliveries are claimed, the name of the
two-argument maximum, and how other processes hear of subscriber changes.

Rows are read and written by column name: each table has one :class:`Columns`
(``SUBSCRIBER_COLUMNS``, ``DELIVERY_COLUMNS``, ``ATTEMPT_COLUMNS``, ``HEALTH_COLUMNS``,
``TOKEN_COLUMNS``, in the private module ``_rows``), which writes the column lists of the
statements and turns a value's fields into parameters and a row back into fields.

Subscribers are matched against events in memory: the store keeps a
:class:`~twisted_hooks.store.cache.SubscriberCache` loaded at :meth:`SQLStore.start` and
fixed by every write made through the store. Processes sharing a database see each other's
subscriber changes after :meth:`SQLStore.refresh`, which a ``refresh_interval`` calls
periodically; on PostgreSQL, at once (:class:`~twisted_hooks.store.PostgresStore`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_hooks.interfaces import IHealthStore, ITokenStore
from twisted_hooks.store import schema
from twisted_hooks.store._rows import (
    HEALTH_COLUMNS,
    TOKEN_COLUMNS,
    Columns,
    Cursor,
    health_from_row,
    health_values,
    on_reactor_thread,
    token_from_row,
    token_values,
)
from twisted_hooks.store._sql_deliveries import SQLDeliveryStore
from twisted_hooks.store._sql_subscribers import SQLSubscriberStore
from twisted_hooks.store.base import Store, StoreError
from twisted_hooks.store.cache import check_refresh_interval
from twisted_hooks.store.tokens import DuplicateToken, Token, TokenNotFound
from twisted_hooks.webhooks._health import EndpointHealth

__all__ = [
    "Columns",
    "Cursor",
    "SQLDeliveryStore",
    "SQLStore",
    "SQLSubscriberStore",
]

log = Logger()

_P = ParamSpec("_P")
_T = TypeVar("_T")

# --- the store --------------------------------------------------------------------------


@implementer(IHealthStore, ITokenStore)
class SQLStore(Store):
    """
    Subscribers, deliveries, attempts, endpoint health, idempotency keys and API tokens in
    an SQL database, through an :class:`~twisted.enterprise.adbapi.ConnectionPool`.

    Use a dialect's subclass (:class:`~twisted_hooks.store.sqlite.SQLiteStore`,
    :class:`~twisted_hooks.store.postgres.PostgresStore`) or
    :func:`twisted_hooks.store.open_store`, then :meth:`start` it.

    The store owns its pool's life: :meth:`start` starts it
    (:meth:`ConnectionPool.start() <twisted.enterprise.adbapi.ConnectionPool.start>`) and
    :meth:`close` closes it (:meth:`ConnectionPool.close()
    <twisted.enterprise.adbapi.ConnectionPool.close>`), once the work under way has ended.
    A store never closed is closed by the pool itself when the reactor shuts down.

    :param pool: the connection pool, made with ``cp_reactor=reactor``; the store starts it
        in :meth:`start` and closes it in :meth:`close`.
    :param reactor: the reactor of the pool, for time and the refresh timer.
    :param refresh_interval: when given, :meth:`refresh` runs every that many seconds, so
        subscriber changes made by other processes sharing the database reach this one's
        matching within that delay (on PostgreSQL it is the fallback of the notifications,
        which bring them at once). ``None`` (the default) suits a database used by one
        process: every change goes through this store and is seen at once.

    :ivar subscribers: the :class:`SQLSubscriberStore`.
    :ivar deliveries: the :class:`SQLDeliveryStore`.
    """

    #: The dialect's name, one of :data:`twisted_hooks.store.schema.DIALECTS`.
    dialect: ClassVar[str]
    #: The DB-API parameter marker of the dialect.
    placeholder: ClassVar[str] = "?"
    #: The dialect's two-argument maximum.
    greatest: ClassVar[str] = "max"
    #: What follows ``FROM deliveries`` in queries over due deliveries (SQLite names the
    #: partial index, which its planner would otherwise pass over).
    due_index: ClassVar[str] = ""
    #: What ends a query reading the claim tokens of rows about to be written, so that no
    #: claim changes them before the transaction ends (PostgreSQL: ``FOR UPDATE``; SQLite's
    #: write transaction already excludes every other writer).
    lock_rows: ClassVar[str] = ""

    durable = True

    def __init__(
        self,
        pool: ConnectionPool,
        reactor: IReactorTime,
        refresh_interval: float | None = None,
    ) -> None:
        check_refresh_interval(refresh_interval)
        self._pool = pool
        self._reactor = reactor
        self._running: set[Deferred[Any]] = set()
        self._closing = False
        self._closed = False
        self._close_waiters: list[Deferred[None]] = []
        self._started = False
        self._sql: dict[str, str] = {}
        self.subscribers: SQLSubscriberStore = SQLSubscriberStore(self, refresh_interval)
        self.deliveries: SQLDeliveryStore = SQLDeliveryStore(self)

    # -- plumbing ------------------------------------------------------------------------

    @property
    def reactor(self) -> IReactorTime:
        """The reactor of the store's pool, for time and timers."""
        return self._reactor

    def sql(self, text: str) -> str:
        """``text`` (written with ``?`` markers) in the dialect's parameter style."""
        converted = self._sql.get(text)
        if converted is None:
            converted = self._sql[text] = (
                text if self.placeholder == "?" else text.replace("?", self.placeholder)
            )
        return converted

    def begin(self, cursor: Cursor, write: bool) -> None:
        """Start the transaction of an interaction (a dialect hook; nothing by default)."""

    def claim_rows(
        self, cursor: Cursor, now: float, limit: int, lease_until: float
    ) -> list[dict[str, Any]]:
        """
        The claim itself, a dialect hook: lease up to ``limit`` due deliveries until
        ``lease_until``, adding one to the ``claim_token`` of each, and give their rows as
        updated, by column name (the columns of :data:`DELIVERY_COLUMNS`), earliest due
        first.
        """
        raise NotImplementedError

    def announce(self, cursor: Cursor, subscriber_id: str) -> None:
        """Tell the other processes sharing the database, when the transaction of
        ``cursor`` commits, that the subscriber ``subscriber_id`` changed (a dialect hook;
        nothing by default: they see it at their next refresh)."""

    def listen(self) -> Deferred[None]:
        """Start hearing of the subscriber changes other processes announce, and fire once
        every change committed from now on will be heard of (a dialect hook; nothing by
        default)."""
        return succeed(None)

    def stop_listening(self) -> Deferred[None]:
        """Stop what :meth:`listen` started; fires once stopped (a dialect hook)."""
        return succeed(None)

    def finish(self, connection: Any) -> None:
        """The last work on a connection before the pool is closed, on a thread of the
        pool (a dialect hook; nothing by default)."""

    def describe_error(self, error: BaseException) -> str | None:
        """A message for people when the database cannot be opened, or ``None`` when
        ``error`` is not about opening it (a dialect hook)."""
        return None

    def prepare(self) -> Deferred[None]:
        """Whatever must happen before the first connection is opened (a dialect hook;
        nothing by default): the SQLite store creates its file with owner-only modes."""
        return succeed(None)

    def _interaction(
        self,
        cursor: Cursor,
        write: bool,
        work: Callable[Concatenate[Cursor, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        if on_reactor_thread():
            raise RuntimeError("database work must not run on the reactor thread")
        self.begin(cursor, write)
        return work(cursor, *args, **kwargs)

    def run(
        self,
        write: bool,
        work: Callable[Concatenate[Cursor, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_T]:
        """
        Run ``work(cursor, *args, **kwargs)`` in one transaction on the pool's threads.

        :param write: ``True`` when ``work`` writes (SQLite takes the write lock at once).
        :return: a Deferred firing what ``work`` returns; the transaction is rolled back
            when it raises.
        """
        if self._closing:
            return fail(StoreError("the store is closed; open a new one"))
        d: Deferred[_T] = self._pool.runInteraction(  # type: ignore[no-untyped-call]
            self._interaction, write, work, *args, **kwargs
        )
        self._running.add(d)

        def done(result: object) -> object:
            self._running.discard(d)
            return result

        d.addBoth(done)
        return d

    def _with_connection(self, work: Callable[[Any], _T]) -> Deferred[_T]:
        def guarded(connection: Any) -> _T:
            if on_reactor_thread():
                raise RuntimeError("database work must not run on the reactor thread")
            return work(connection)

        d: Deferred[_T] = self._pool.runWithConnection(guarded)  # type: ignore[no-untyped-call]
        return d

    def _opening_error(self, failure: Failure) -> Failure:
        error = failure.value
        message = None if error is None else self.describe_error(error)
        if message is None:
            return failure
        return Failure(StoreError(message))

    # -- life ----------------------------------------------------------------------------

    def migrate(self) -> Deferred[list[int]]:
        """
        Bring the schema up to date (:func:`twisted_hooks.store.schema.migrate`).

        :return: a Deferred firing the versions applied now (empty when up to date).
        """
        dialect = self.dialect
        d = self._with_connection(lambda connection: schema.migrate(connection, dialect))
        return d.addErrback(self._opening_error)

    def schema_version(self) -> Deferred[int]:
        """The version of the database's schema, 0 for an empty database."""
        dialect = self.dialect

        def version(connection: Any) -> int:
            versions = schema.applied_versions(connection, dialect)
            return versions[-1] if versions else 0

        return self._with_connection(version).addErrback(self._opening_error)

    def start(self, migrate: bool = True) -> Deferred[None]:
        """
        Start the connection pool, open the database, apply missing migrations (unless
        ``migrate`` is ``False``, when a database that is not up to date fails with
        :class:`StoreError`), start hearing of other processes' subscriber changes (where
        the dialect can), load the subscriber cache, and start its refresh timer when
        ``refresh_interval`` was given.
        """
        return Deferred.fromCoroutine(self._start(migrate))

    async def _start(self, migrate: bool) -> None:
        if self._closing:
            raise StoreError("the store is closed; open a new one")
        self._pool.start()  # type: ignore[no-untyped-call]
        await self.prepare()
        if migrate:
            await self.migrate()
        else:
            version = await self.schema_version()
            if version != schema.LATEST_VERSION:
                raise StoreError(
                    f"the database's schema is at version {version}, not "
                    f"{schema.LATEST_VERSION}; run the migrations first"
                )
        # Listening first: a change committed after the load below is heard of, and one
        # committed before it is in what it reads.
        await self.listen()
        await self.refresh()
        self.subscribers.cache.start()
        self._started = True

    def refresh(self) -> Deferred[None]:
        """Reload the subscriber cache from the database (:meth:`SQLSubscriberStore.refresh`)."""
        return self.subscribers.refresh()

    def close(self) -> Deferred[None]:
        """Stop the subscriber cache's timers and the hearing of other processes' changes,
        wait for the interactions under way, then close the connection pool. New work
        fails with :class:`~twisted_hooks.store.base.StoreError` from now on."""
        waiter: Deferred[None] = Deferred()
        if self._closed:
            waiter.callback(None)
            return waiter
        self._close_waiters.append(waiter)
        if not self._closing:
            self._closing = True
            self.subscribers.cache.stop()
            Deferred.fromCoroutine(self._close(list(self._running)))
        return waiter

    async def _close(self, running: list[Deferred[Any]]) -> None:
        try:
            await self.stop_listening()
        except Exception:
            log.failure("stopping the notifications of subscriber changes failed")
        await DeferredList(running, consumeErrors=True)
        if self._started:
            # The dialect's last work (SQLite checkpoints its WAL) on a pool thread, so
            # that closing the connections below has next to nothing left to do.
            try:
                await self._with_connection(self.finish)
            except Exception as error:
                log.debug(
                    "the last work before closing the database failed ({error}); closing"
                    " it anyway",
                    error=error,
                )
        # Public and idempotent: removes the pool's startup and shutdown triggers, stops
        # its (now idle) threads and closes their connections.
        self._pool.close()  # type: ignore[no-untyped-call]
        self._closed = True
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    # -- health --------------------------------------------------------------------------

    def load_health(self) -> Deferred[Sequence[EndpointHealth]]:
        """Every stored endpoint health record, by subscriber id."""

        def load(cursor: Cursor) -> Sequence[EndpointHealth]:
            cursor.execute(
                f"SELECT {HEALTH_COLUMNS.listed()} FROM endpoint_health ORDER BY subscriber_id"
            )
            return [health_from_row(row) for row in cursor.fetchall()]

        return self.run(False, load)

    def save_health(self, records: Sequence[EndpointHealth]) -> Deferred[None]:
        """Insert or replace ``records`` (by subscriber id), in one transaction."""
        rows = [HEALTH_COLUMNS.params(health_values(record)) for record in records]

        def save(cursor: Cursor) -> None:
            if rows:
                cursor.executemany(self.sql(HEALTH_COLUMNS.upsert()), rows)

        return self.run(True, save)

    # -- tokens --------------------------------------------------------------------------

    def add_token(self, token: Token) -> Deferred[Token]:
        """Store a new token; fails with :class:`~twisted_hooks.store.tokens.DuplicateToken`
        (a :class:`ValueError`) when its name, id or hash is taken."""
        params = TOKEN_COLUMNS.params(token_values(token))

        def add(cursor: Cursor) -> Token:
            cursor.execute(self.sql("SELECT 1 FROM tokens WHERE name = ?"), (token.name,))
            if cursor.fetchone() is not None:
                raise DuplicateToken(f"a token named {token.name!r} already exists")
            cursor.execute(
                self.sql(
                    f"INSERT INTO tokens ({TOKEN_COLUMNS.listed()})"
                    f" VALUES ({TOKEN_COLUMNS.markers()}) ON CONFLICT DO NOTHING"
                ),
                params,
            )
            if cursor.rowcount != 1:
                raise DuplicateToken(
                    f"token {token.name!r} has the id or hash of a stored token; make a new one"
                )
            return token

        return self.run(True, add)

    def token_by_hash(self, token_hash: str) -> Deferred[Token | None]:
        """The token with this hash, revoked or not, or ``None``."""

        def find(cursor: Cursor) -> Token | None:
            cursor.execute(
                self.sql(f"SELECT {TOKEN_COLUMNS.listed()} FROM tokens WHERE hash = ?"),
                (token_hash,),
            )
            row = cursor.fetchone()
            return None if row is None else token_from_row(row)

        return self.run(False, find)

    def tokens(self) -> Deferred[Sequence[Token]]:
        """Every token, oldest first."""

        def every(cursor: Cursor) -> Sequence[Token]:
            cursor.execute(
                f"SELECT {TOKEN_COLUMNS.listed()} FROM tokens ORDER BY created_at, name"
            )
            return [token_from_row(row) for row in cursor.fetchall()]

        return self.run(False, every)

    def revoke_token(self, name: str, now: float) -> Deferred[Token]:
        """Mark a token revoked at ``now`` (a revoked one keeps its first revocation time);
        fails with :class:`~twisted_hooks.store.tokens.TokenNotFound` (a :class:`KeyError`)."""

        def revoke(cursor: Cursor) -> Token:
            cursor.execute(
                self.sql(
                    "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE name = ?"
                    f" RETURNING {TOKEN_COLUMNS.listed()}"
                ),
                (now, name),
            )
            row = cursor.fetchone()
            if row is None:
                raise TokenNotFound(name)
            return token_from_row(row)

        return self.run(True, revoke)
