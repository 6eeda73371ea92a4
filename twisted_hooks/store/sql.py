"""
The SQL stores' shared implementation: :class:`SQLStore`.

Every query runs in :class:`twisted.enterprise.adbapi.ConnectionPool`'s threads, never on
the reactor thread; each public method is one interaction, so one transaction. The dialects
(:class:`~twisted_hooks.store.sqlite.SQLiteStore`,
:class:`~twisted_hooks.store.postgres.PostgresStore`) override a few hooks: the parameter
marker, how a transaction begins, how due deliveries are claimed, the name of the
two-argument maximum, and how other processes hear of subscriber changes.

Rows are read and written by column name: each table has one :class:`Columns`
(:data:`SUBSCRIBER_COLUMNS`, :data:`DELIVERY_COLUMNS`, :data:`ATTEMPT_COLUMNS`,
:data:`HEALTH_COLUMNS`, :data:`TOKEN_COLUMNS`), which writes the column lists of the
statements and turns a value's fields into parameters and a row back into fields.

Subscribers are matched against events in memory: the store keeps a
:class:`~twisted_hooks.store.cache.SubscriberCache` loaded at :meth:`SQLStore.start` and
fixed by every write made through the store. Processes sharing a database see each other's
subscriber changes after :meth:`SQLStore.refresh`, which a ``refresh_interval`` calls
periodically; on PostgreSQL, at once (:class:`~twisted_hooks.store.PostgresStore`).
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Concatenate, ParamSpec, Protocol, TypeVar

import attrs
from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python import threadable
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_hooks.interfaces import IDeliveryStore, IHealthStore, ISubscriberStore, ITokenStore
from twisted_hooks.store import schema
from twisted_hooks.store.base import Store, StoreError
from twisted_hooks.store.cache import SubscriberCache, check_refresh_interval
from twisted_hooks.store.schema import CLAIMABLE
from twisted_hooks.store.tokens import DuplicateToken, Token, TokenNotFound
from twisted_hooks.webhooks.delivery import (
    DEAD,
    DELIVERED,
    IN_FLIGHT,
    RETRYING,
    STATUSES,
    Attempt,
    Delivery,
    DeliveryNotFound,
    DeliveryStats,
    DeliveryUpdate,
    log_order,
    log_stale_write,
)
from twisted_hooks.webhooks.health import EndpointHealth
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.subscribers import (
    DuplicateSubscriber,
    Subscriber,
    SubscriberNotFound,
)

__all__ = [
    "ATTEMPT_COLUMNS",
    "DELIVERY_COLUMNS",
    "HEALTH_COLUMNS",
    "RESPONSE_BODY_LIMIT",
    "SUBSCRIBER_COLUMNS",
    "TOKEN_COLUMNS",
    "Columns",
    "Cursor",
    "SQLDeliveryStore",
    "SQLStore",
    "SQLSubscriberStore",
]

log = Logger()

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: How many bytes of an attempt's response body are stored.
RESPONSE_BODY_LIMIT = 4096

#: At most this many parameters in one ``IN (...)`` list.
_CHUNK = 500


class Cursor(Protocol):
    """The DB-API cursor an interaction works with (an adbapi ``Transaction``)."""

    rowcount: int

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> object:
        """Run one statement."""

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> object:
        """Run one statement for each set of parameters."""

    def fetchone(self) -> tuple[Any, ...] | None:
        """The next row of the result."""

    def fetchall(self) -> list[tuple[Any, ...]]:
        """The remaining rows of the result."""


# --- rows -----------------------------------------------------------------------------


@attrs.frozen
class Columns:
    """
    The columns of one table that a store reads and writes, by name: the one list from
    which statements take their column lists and rows their meaning.

    :ivar table: the table's name.
    :ivar names: the columns, in the order of the statements' lists.
    :ivar key: the columns that identify a row (an upsert's conflict target).
    """

    table: str
    names: tuple[str, ...]
    key: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"the columns of {self.table} are named twice: {self.names!r}")
        missing = [name for name in self.key if name not in self.names]
        if missing:
            raise ValueError(f"the key of {self.table} names unknown columns: {missing!r}")

    def listed(self, prefix: str = "") -> str:
        """The column list of a ``SELECT``, ``INSERT`` or ``RETURNING``: ``"id, event, ..."``,
        each name after ``prefix`` (a table alias and its dot, ``"d."``)."""
        return ", ".join(prefix + name for name in self.names)

    def markers(self) -> str:
        """One ``?`` marker per column, for ``VALUES (...)``."""
        return ", ".join("?" * len(self.names))

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The parameters of a row, in column order, from ``values`` by column name.

        :raise KeyError: naming a column ``values`` lacks."""
        return tuple(values[name] for name in self.names)

    def named(self, row: Sequence[Any]) -> dict[str, Any]:
        """A row read with :meth:`listed`'s list, by column name.

        :raise ValueError: when the row has another number of values."""
        return dict(zip(self.names, row, strict=True))

    def upsert(self) -> str:
        """An ``INSERT`` of every column (with ``?`` markers) that replaces the row of the
        same :attr:`key`."""
        key = ", ".join(self.key)
        updates = ", ".join(
            f"{name} = excluded.{name}" for name in self.names if name not in self.key
        )
        return (
            f"INSERT INTO {self.table} ({self.listed()}) VALUES ({self.markers()})"
            f" ON CONFLICT ({key}) DO UPDATE SET {updates}"
        )


#: The columns of ``subscribers``: every :class:`~twisted_hooks.webhooks.Subscriber` field.
SUBSCRIBER_COLUMNS = Columns(
    "subscribers",
    (
        "id",
        "event",
        "url",
        "secret",
        "digest",
        "content_type",
        "owner",
        "active",
        "headers",
        "previous_secrets",
        "max_concurrency",
        "rate_limit",
        "created_at",
        "updated_at",
    ),
    key=("id",),
)


def _epoch(moment: datetime.datetime) -> float:
    return moment.timestamp()


#: The seconds since the epoch datetime can hold: 0001-01-01T00:00:00Z to
#: 9999-12-31T23:59:59Z.
_EARLIEST, _LATEST = -62_135_596_800, 253_402_300_799


def _moment(seconds: float) -> datetime.datetime:
    # A stored time datetime cannot hold (a row written by hand, or by a bug: 1e300,
    # infinity) is read as the nearest it can, one that is not a number as the epoch, so
    # that the row can still be listed rather than fail every read.
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds != seconds:
        seconds = 0
    if not _EARLIEST <= seconds <= _LATEST:
        seconds = min(max(seconds, _EARLIEST), _LATEST)
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def _subscriber_values(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "id": subscriber.id,
        "event": subscriber.event,
        "url": subscriber.url,
        "secret": subscriber.secret,
        "digest": subscriber.digest,
        "content_type": subscriber.content_type,
        "owner": subscriber.owner,
        "active": subscriber.active,
        "headers": json.dumps([list(pair) for pair in subscriber.headers]),
        "previous_secrets": json.dumps(list(subscriber.previous_secrets)),
        "max_concurrency": subscriber.max_concurrency,
        "rate_limit": subscriber.rate_limit,
        "created_at": _epoch(subscriber.created_at),
        "updated_at": _epoch(subscriber.updated_at),
    }


def _subscriber_from_row(row: Sequence[Any]) -> Subscriber:
    values = SUBSCRIBER_COLUMNS.named(row)
    return Subscriber(
        id=values["id"],
        event=values["event"],
        url=values["url"],
        secret=values["secret"],
        digest=values["digest"],
        content_type=values["content_type"],
        owner=values["owner"],
        active=bool(values["active"]),
        headers=[tuple(pair) for pair in json.loads(values["headers"])],
        previous_secrets=json.loads(values["previous_secrets"]),
        max_concurrency=values["max_concurrency"],
        rate_limit=values["rate_limit"],
        created_at=_moment(values["created_at"]),
        updated_at=_moment(values["updated_at"]),
    )


def _snapshot(subscriber: Subscriber) -> str:
    """A delivery's subscriber snapshot: :meth:`Subscriber.as_dict`, headers as pairs (so
    repeated names and their order survive)."""
    data = subscriber.as_dict()
    data["headers"] = [list(pair) for pair in subscriber.headers]
    return json.dumps(data, sort_keys=True)


@functools.lru_cache(maxsize=4096)
def _from_snapshot(text: str) -> Subscriber:
    # Deliveries of one subscriber share one snapshot text; Subscriber is immutable.
    return Subscriber.from_dict(json.loads(text))


@functools.lru_cache(maxsize=256)
def _retry_from_json(text: str) -> RetryPolicy:
    return RetryPolicy.from_dict(json.loads(text))


def _retry_json(policy: RetryPolicy) -> str:
    return json.dumps(policy.as_dict(), sort_keys=True)


#: The columns of ``deliveries`` (all but ``seq``): every
#: :class:`~twisted_hooks.webhooks.Delivery` field, the subscriber as its id and a JSON
#: snapshot, and ``due_at``. The dialects' claims read and return these.
DELIVERY_COLUMNS = Columns(
    "deliveries",
    (
        "id",
        "event",
        "event_id",
        "subscriber_id",
        "subscriber",
        "refresh_subscriber",
        "body",
        "created_at",
        "next_attempt_at",
        "due_at",
        "status",
        "attempts",
        "retry",
        "timeout",
        "allow_keepalive",
        "last_error",
        "finished_at",
        "claim_token",
    ),
    key=("id",),
)


def _delivery_values(delivery: Delivery) -> dict[str, Any]:
    due = delivery.next_attempt_at
    if delivery.status == IN_FLIGHT and delivery.lease_expires_at is not None:
        due = delivery.lease_expires_at
    return {
        "id": delivery.id,
        "event": delivery.event,
        "event_id": delivery.event_id,
        "subscriber_id": delivery.subscriber.id,
        "subscriber": _snapshot(delivery.subscriber),
        "refresh_subscriber": delivery.refresh_subscriber,
        "body": delivery.body,
        "created_at": delivery.created_at,
        "next_attempt_at": delivery.next_attempt_at,
        "due_at": due,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "retry": _retry_json(delivery.retry),
        "timeout": delivery.timeout,
        "allow_keepalive": delivery.allow_keepalive,
        "last_error": delivery.last_error,
        "finished_at": delivery.finished_at,
        "claim_token": delivery.claim_token,
    }


def _delivery_from_values(values: Mapping[str, Any]) -> Delivery:
    """A delivery from its row's values by column name (see :data:`DELIVERY_COLUMNS`)."""
    status = values["status"]
    return Delivery(
        id=values["id"],
        event=values["event"],
        event_id=values["event_id"],
        subscriber=_from_snapshot(values["subscriber"]),
        refresh_subscriber=bool(values["refresh_subscriber"]),
        body=bytes(values["body"]),
        created_at=values["created_at"],
        next_attempt_at=values["next_attempt_at"],
        lease_expires_at=values["due_at"] if status == IN_FLIGHT else None,
        status=status,
        attempts=values["attempts"],
        retry=_retry_from_json(values["retry"]),
        timeout=values["timeout"],
        allow_keepalive=bool(values["allow_keepalive"]),
        last_error=values["last_error"],
        finished_at=values["finished_at"],
        claim_token=values["claim_token"],
    )


def _delivery_from_row(row: Sequence[Any]) -> Delivery:
    return _delivery_from_values(DELIVERY_COLUMNS.named(row))


# How many subscriber ids one query of SQLDeliveryStore.list names (IN): under every
# SQLite build's limit of bound parameters.
_LIST_IDS = 500


#: The columns of ``attempts``: every :class:`~twisted_hooks.webhooks.Attempt` field.
ATTEMPT_COLUMNS = Columns(
    "attempts",
    (
        "delivery_id",
        "number",
        "started_at",
        "duration",
        "status_code",
        "error_kind",
        "error_message",
        "response_body",
        "retry_after",
    ),
    key=("delivery_id", "number"),
)


def _attempt_values(attempt: Attempt) -> dict[str, Any]:
    return {
        "delivery_id": attempt.delivery_id,
        "number": attempt.number,
        "started_at": attempt.started_at,
        "duration": attempt.duration,
        "status_code": attempt.status_code,
        "error_kind": attempt.error_kind,
        "error_message": attempt.error_message,
        "response_body": bytes(attempt.response_body[:RESPONSE_BODY_LIMIT]),
        "retry_after": attempt.retry_after,
    }


def _attempt_from_row(row: Sequence[Any]) -> Attempt:
    values = ATTEMPT_COLUMNS.named(row)
    return Attempt(
        delivery_id=values["delivery_id"],
        number=values["number"],
        started_at=values["started_at"],
        duration=values["duration"],
        status_code=values["status_code"],
        error_kind=values["error_kind"],
        error_message=values["error_message"],
        response_body=bytes(values["response_body"]),
        retry_after=values["retry_after"],
    )


#: The columns of ``endpoint_health``: every
#: :class:`~twisted_hooks.webhooks.health.EndpointHealth` field.
HEALTH_COLUMNS = Columns(
    "endpoint_health",
    (
        "subscriber_id",
        "consecutive_failures",
        "first_failure_at",
        "last_failure_at",
        "circuit",
        "opened_at",
        "disabled_since",
        "updated_at",
    ),
    key=("subscriber_id",),
)


def _health_values(record: EndpointHealth) -> dict[str, Any]:
    return {
        "subscriber_id": record.subscriber_id,
        "consecutive_failures": record.consecutive_failures,
        "first_failure_at": record.first_failure_at,
        "last_failure_at": record.last_failure_at,
        "circuit": record.circuit,
        "opened_at": record.opened_at,
        "disabled_since": record.disabled_since,
        "updated_at": record.updated_at,
    }


def _health_from_row(row: Sequence[Any]) -> EndpointHealth:
    values = HEALTH_COLUMNS.named(row)
    return EndpointHealth(
        subscriber_id=values["subscriber_id"],
        consecutive_failures=values["consecutive_failures"],
        first_failure_at=values["first_failure_at"],
        last_failure_at=values["last_failure_at"],
        circuit=values["circuit"],
        opened_at=values["opened_at"],
        disabled_since=values["disabled_since"],
        updated_at=values["updated_at"],
    )


#: The columns of ``tokens``: every :class:`~twisted_hooks.store.tokens.Token` field.
TOKEN_COLUMNS = Columns(
    "tokens",
    ("id", "name", "hash", "scopes", "owner", "created_at", "revoked_at"),
    key=("id",),
)


def _token_values(token: Token) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "hash": token.hash,
        "scopes": json.dumps(sorted(token.scopes)),
        "owner": token.owner,
        "created_at": token.created_at,
        "revoked_at": token.revoked_at,
    }


def _token_from_row(row: Sequence[Any]) -> Token:
    values = TOKEN_COLUMNS.named(row)
    return Token(
        id=values["id"],
        name=values["name"],
        hash=values["hash"],
        scopes=frozenset(json.loads(values["scopes"])),
        owner=values["owner"],
        created_at=values["created_at"],
        revoked_at=values["revoked_at"],
    )


def _on_reactor_thread() -> bool:
    return bool(threadable.isInIOThread())  # type: ignore[no-untyped-call]


def _chunks(items: Sequence[_T], size: int = _CHUNK) -> Iterable[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
        if _on_reactor_thread():
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
            if _on_reactor_thread():
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
            return [_health_from_row(row) for row in cursor.fetchall()]

        return self.run(False, load)

    def save_health(self, records: Sequence[EndpointHealth]) -> Deferred[None]:
        """Insert or replace ``records`` (by subscriber id), in one transaction."""
        rows = [HEALTH_COLUMNS.params(_health_values(record)) for record in records]

        def save(cursor: Cursor) -> None:
            if rows:
                cursor.executemany(self.sql(HEALTH_COLUMNS.upsert()), rows)

        return self.run(True, save)

    # -- tokens --------------------------------------------------------------------------

    def add_token(self, token: Token) -> Deferred[Token]:
        """Store a new token; fails with :class:`~twisted_hooks.store.tokens.DuplicateToken`
        (a :class:`ValueError`) when its name, id or hash is taken."""
        params = TOKEN_COLUMNS.params(_token_values(token))

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
            return None if row is None else _token_from_row(row)

        return self.run(False, find)

    def tokens(self) -> Deferred[Sequence[Token]]:
        """Every token, oldest first."""

        def every(cursor: Cursor) -> Sequence[Token]:
            cursor.execute(
                f"SELECT {TOKEN_COLUMNS.listed()} FROM tokens ORDER BY created_at, name"
            )
            return [_token_from_row(row) for row in cursor.fetchall()]

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
            return _token_from_row(row)

        return self.run(True, revoke)


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

    def __init__(self, store: SQLStore, refresh_interval: float | None = None) -> None:
        self._store = store
        self.cache = SubscriberCache(
            self._load_all, self._load_some, store._reactor, refresh_interval
        )

    def _load_all(self) -> Deferred[Sequence[Subscriber]]:
        return self._store.run(False, self._select_all)

    def _load_some(self, subscriber_ids: Sequence[str]) -> Deferred[Sequence[Subscriber]]:
        store = self._store

        def select(cursor: Cursor) -> Sequence[Subscriber]:
            found: list[Subscriber] = []
            for chunk in _chunks(subscriber_ids):
                cursor.execute(
                    store.sql(
                        f"SELECT {SUBSCRIBER_COLUMNS.listed()} FROM subscribers"
                        f" WHERE id IN ({', '.join('?' * len(chunk))})"
                    ),
                    chunk,
                )
                found.extend(_subscriber_from_row(row) for row in cursor.fetchall())
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
        return [_subscriber_from_row(row) for row in cursor.fetchall()]

    def add(self, subscriber: Subscriber) -> Deferred[Subscriber]:
        """Store a new subscriber; fails with
        :class:`~twisted_hooks.webhooks.subscribers.DuplicateSubscriber` for a known id."""
        store = self._store
        params = SUBSCRIBER_COLUMNS.params(_subscriber_values(subscriber))
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
        return _subscriber_from_row(row)

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
        values = _subscriber_values(subscriber)
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
            return [_subscriber_from_row(row) for row in cursor.fetchall()]

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


# --- deliveries ---------------------------------------------------------------------------


@attrs.define
class _Enqueue:
    """One :meth:`SQLDeliveryStore.enqueue` call waiting for its transaction."""

    ids: list[str]
    rows: list[tuple[Any, ...]]
    idempotency_key: str | None
    now: float
    done: Deferred[bool]


@implementer(IDeliveryStore)
class SQLDeliveryStore:
    """
    The delivery role of an :class:`SQLStore`: deliveries and their attempts.

    Nothing is held in memory: :meth:`claim` reads at most ``limit`` rows, so a backlog of
    any size stays in the database.
    """

    durable = True

    def __init__(self, store: SQLStore) -> None:
        self._store = store
        # Group commit: enqueues made while one transaction of them runs wait here, and
        # the next transaction stores them all (each in a savepoint of its own).
        self._queued: list[_Enqueue] = []
        self._enqueuing = False

    def enqueue(
        self, deliveries: Sequence[Delivery], idempotency_key: str | None = None
    ) -> Deferred[bool]:
        """Store new deliveries in one transaction, committed when the Deferred fires
        ``True``; with a known ``idempotency_key``, store nothing and fire ``False``.
        A delivery id already stored (or given twice) fails with :class:`ValueError` and
        stores nothing.

        Enqueues made while an earlier one is being written share the next transaction
        (a group commit), each in a savepoint of its own: one failing stores nothing of
        its own and leaves the others alone, and each Deferred fires once that
        transaction is committed."""
        store = self._store
        job = _Enqueue(
            [delivery.id for delivery in deliveries],
            [DELIVERY_COLUMNS.params(_delivery_values(delivery)) for delivery in deliveries],
            idempotency_key,
            store._reactor.seconds(),
            Deferred(),
        )
        self._queued.append(job)
        if not self._enqueuing:
            self._write_queued()
        return job.done

    def _write_queued(self) -> None:
        jobs, self._queued = self._queued, []
        if not jobs:
            self._enqueuing = False
            return
        self._enqueuing = True
        written = self._store.run(True, self._enqueue_jobs, jobs)
        written.addBoth(self._written, jobs)

    def _written(self, outcome: list[bool | Failure] | Failure, jobs: list[_Enqueue]) -> None:
        # The next group starts before these Deferreds fire: their callbacks may enqueue.
        self._write_queued()
        for index, job in enumerate(jobs):
            result = outcome if isinstance(outcome, Failure) else outcome[index]
            if isinstance(result, Failure):
                job.done.errback(result)
            else:
                job.done.callback(result)

    def _enqueue_jobs(self, cursor: Cursor, jobs: list[_Enqueue]) -> list[bool | Failure]:
        if len(jobs) == 1:
            return [self._enqueue_one(cursor, jobs[0])]
        results: list[bool | Failure] = []
        for job in jobs:
            cursor.execute("SAVEPOINT enqueue")
            try:
                results.append(self._enqueue_one(cursor, job))
            except Exception:
                results.append(Failure())
                cursor.execute("ROLLBACK TO SAVEPOINT enqueue")
            cursor.execute("RELEASE SAVEPOINT enqueue")
        return results

    def _enqueue_one(self, cursor: Cursor, job: _Enqueue) -> bool:
        store = self._store
        rows = job.rows
        ids = job.ids
        if job.idempotency_key is not None:
            cursor.execute(
                store.sql(
                    "INSERT INTO idempotency_keys (key, created_at) VALUES (?, ?)"
                    " ON CONFLICT (key) DO NOTHING"
                ),
                (job.idempotency_key, job.now),
            )
            if cursor.rowcount != 1:
                return False
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"delivery {twice[0]!r} is given twice")
        for chunk in _chunks(ids):
            cursor.execute(
                store.sql(
                    f"SELECT id FROM deliveries WHERE id IN ({', '.join('?' * len(chunk))})"
                ),
                chunk,
            )
            row = cursor.fetchone()
            if row is not None:
                (stored,) = row
                raise ValueError(f"delivery {stored!r} is already stored")
        if rows:
            cursor.executemany(
                store.sql(
                    f"INSERT INTO deliveries ({DELIVERY_COLUMNS.listed()})"
                    f" VALUES ({DELIVERY_COLUMNS.markers()})"
                ),
                rows,
            )
        return True

    def claim(self, now: float, limit: int, lease: float) -> Deferred[Sequence[Delivery]]:
        """Lease up to ``limit`` due deliveries (expired leases included) until
        ``now + lease``, earliest due first, in one statement (SQLite: one write
        transaction)."""
        if limit < 1:
            return succeed([])

        def claim(cursor: Cursor) -> Sequence[Delivery]:
            rows = self._store.claim_rows(cursor, now, limit, now + lease)
            return [_delivery_from_values(row) for row in rows]

        return self._store.run(True, claim)

    def record(self, updates: Sequence[DeliveryUpdate]) -> Deferred[Sequence[DeliveryUpdate]]:
        """Write attempt outcomes in one transaction: each attempt is upserted (by delivery
        and number); each delivery not already delivered or dead takes its new status.
        An update carrying a ``claim_token`` other than the delivery's current one is
        dropped whole (attempt included) and logged; the Deferred fires those updates."""
        store = self._store
        for update in updates:
            if update.status not in (DELIVERED, RETRYING, DEAD):
                return fail(
                    ValueError(
                        f"update of {update.delivery_id!r}: the status must be delivered,"
                        f" retrying or dead, got {update.status!r}"
                    )
                )
            if update.status == RETRYING and update.next_attempt_at is None:
                return fail(ValueError(f"update of {update.delivery_id!r} retries without a time"))
        ids = sorted({u.delivery_id for u in updates})
        attempt_sql = store.sql(ATTEMPT_COLUMNS.upsert())
        update_sql = store.sql(
            "UPDATE deliveries SET status = ?,"
            f" attempts = {store.greatest}(attempts, ?),"
            " last_error = ?, finished_at = ?,"
            " next_attempt_at = COALESCE(?, next_attempt_at),"
            " due_at = COALESCE(?, next_attempt_at)"
            " WHERE id = ? AND status NOT IN ('delivered', 'dead')"
        )

        def record(cursor: Cursor) -> list[tuple[DeliveryUpdate, int | None]]:
            tokens: dict[str, int | None] = {}
            for chunk in _chunks(ids):
                cursor.execute(
                    store.sql(
                        "SELECT id, claim_token FROM deliveries"
                        f" WHERE id IN ({', '.join('?' * len(chunk))})"
                        " ORDER BY id" + store.lock_rows
                    ),
                    chunk,
                )
                for delivery_id, claim_token in cursor.fetchall():
                    tokens[delivery_id] = claim_token
            mine: list[DeliveryUpdate] = []
            stale: list[tuple[DeliveryUpdate, int | None]] = []
            for u in updates:
                if u.delivery_id not in tokens:
                    continue
                current = tokens[u.delivery_id]
                if u.claim_token is not None and u.claim_token != current:
                    stale.append((u, current))
                else:
                    mine.append(u)
            if not mine:
                return stale
            cursor.executemany(
                attempt_sql, [ATTEMPT_COLUMNS.params(_attempt_values(u.attempt)) for u in mine]
            )
            changes = []
            for u in mine:
                attempt = u.attempt
                ended = u.status in (DELIVERED, DEAD)
                changes.append(
                    (
                        u.status,
                        attempt.number,
                        attempt.error_message,
                        attempt.started_at + attempt.duration if ended else None,
                        u.next_attempt_at,
                        u.next_attempt_at,
                        u.delivery_id,
                    )
                )
            cursor.executemany(update_sql, changes)
            return stale

        return store.run(True, record).addCallback(self._dropped)

    @staticmethod
    def _dropped(stale: list[tuple[DeliveryUpdate, int | None]]) -> list[DeliveryUpdate]:
        for update, current in stale:
            log_stale_write(
                update.delivery_id,
                f"outcome of attempt {update.attempt.number}",
                update.claim_token,
                current,
            )
        return [update for update, _ in stale]

    def release(
        self, delivery_id: str, due_at: float, claim_token: int | None = None
    ) -> Deferred[None]:
        """Give back a claimed delivery, unattempted, due again at ``due_at`` (a delivery not
        in flight is left alone, and so is one claimed again since the claim
        ``claim_token`` names: that stale release is logged); fails with
        :class:`~twisted_hooks.webhooks.delivery.DeliveryNotFound` for an unknown id."""
        store = self._store
        sql = (
            "UPDATE deliveries SET"
            " status = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'pending' END,"
            " next_attempt_at = ?, due_at = ? WHERE id = ? AND status = 'in_flight'"
        )
        params: tuple[Any, ...] = (due_at, due_at, delivery_id)
        if claim_token is not None:
            sql += " AND claim_token = ?"
            params += (claim_token,)

        def release(cursor: Cursor) -> int | None:
            """Fire the delivery's current token when the release was stale, else the
            one given."""
            cursor.execute(store.sql(sql), params)
            if cursor.rowcount:
                return claim_token
            cursor.execute(
                store.sql("SELECT claim_token FROM deliveries WHERE id = ?"), (delivery_id,)
            )
            row = cursor.fetchone()
            if row is None:
                raise DeliveryNotFound(delivery_id)
            (current,) = row
            return claim_token if claim_token is None else current

        def released(current: int | None) -> None:
            if current != claim_token:
                log_stale_write(delivery_id, "release", claim_token, current)

        return store.run(True, release).addCallback(released)

    def _exists(self, cursor: Cursor, delivery_id: str) -> str:
        cursor.execute(
            self._store.sql("SELECT status FROM deliveries WHERE id = ?"), (delivery_id,)
        )
        row = cursor.fetchone()
        if row is None:
            raise DeliveryNotFound(delivery_id)
        (status,) = row
        return str(status)

    @staticmethod
    def _earliest(cursor: Cursor) -> float | None:
        row = cursor.fetchone()
        if row is None:
            return None
        (earliest,) = row
        return None if earliest is None else float(earliest)

    def next_due(self) -> Deferred[float | None]:
        """The earliest due time of a claimable delivery, or ``None``."""

        def earliest(cursor: Cursor) -> float | None:
            cursor.execute(
                f"SELECT MIN(due_at) FROM deliveries{self._store.due_index} WHERE {CLAIMABLE}"
            )
            return self._earliest(cursor)

        return self._store.run(False, earliest)

    def get(self, delivery_id: str) -> Deferred[Delivery]:
        """A delivery by id; fails with
        :class:`~twisted_hooks.webhooks.delivery.DeliveryNotFound`."""

        def get(cursor: Cursor) -> Delivery:
            cursor.execute(
                self._store.sql(
                    f"SELECT {DELIVERY_COLUMNS.listed()} FROM deliveries WHERE id = ?"
                ),
                (delivery_id,),
            )
            row = cursor.fetchone()
            if row is None:
                raise DeliveryNotFound(delivery_id)
            return _delivery_from_row(row)

        return self._store.run(False, get)

    def attempts(self, delivery_id: str) -> Deferred[Sequence[Attempt]]:
        """The attempts of a delivery, by number; fails with
        :class:`~twisted_hooks.webhooks.delivery.DeliveryNotFound`."""

        def attempts(cursor: Cursor) -> Sequence[Attempt]:
            self._exists(cursor, delivery_id)
            cursor.execute(
                self._store.sql(
                    f"SELECT {ATTEMPT_COLUMNS.listed()} FROM attempts WHERE delivery_id = ?"
                    " ORDER BY number"
                ),
                (delivery_id,),
            )
            return [_attempt_from_row(row) for row in cursor.fetchall()]

        return self._store.run(False, attempts)

    def list(
        self,
        status: str | None = None,
        subscriber_id: str | None = None,
        limit: int = 100,
        since: float | None = None,
        *,
        subscriber_ids: Iterable[str] | None = None,
        after: tuple[float, str] | None = None,
    ) -> Deferred[Sequence[Delivery]]:
        """Deliveries in the delivery log's order (newest first, by creation time then id:
        :func:`~twisted_hooks.webhooks.delivery.log_order`), filtered
        by status, subscriber id, any of ``subscriber_ids`` and ``created_at >= since``;
        only those after the ``(created_at, id)`` position ``after`` in that order; at most
        ``limit``. One transaction; the ids are asked 500 at a time."""
        if status is not None and status not in STATUSES:
            return fail(ValueError(f"unknown status {status!r}; use one of {STATUSES!r}"))
        clauses: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("status = ?", status),
            ("subscriber_id = ?", subscriber_id),
            ("created_at >= ?", since),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        if after is not None:
            clauses.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params.extend((after[0], after[0], after[1]))
        chunks: list[list[str]] = [[]]
        if subscriber_ids is not None:
            ids = sorted(set(subscriber_ids))
            if not ids:
                return succeed([])
            chunks = [ids[i : i + _LIST_IDS] for i in range(0, len(ids), _LIST_IDS)]
        count = max(0, limit)

        def select(cursor: Cursor) -> Sequence[Delivery]:
            found: list[Delivery] = []
            for chunk in chunks:
                where = [*clauses]
                if chunk:
                    where.append(f"subscriber_id IN ({', '.join('?' * len(chunk))})")
                text = f" WHERE {' AND '.join(where)}" if where else ""
                sql = self._store.sql(
                    f"SELECT {DELIVERY_COLUMNS.listed()} FROM deliveries{text}"
                    " ORDER BY created_at DESC, id DESC LIMIT ?"
                )
                cursor.execute(sql, [*params, *chunk, count])
                found.extend(_delivery_from_row(row) for row in cursor.fetchall())
            if len(chunks) > 1:
                found.sort(key=log_order, reverse=True)
            return found[:count]

        return self._store.run(False, select)

    _REVIVE = (
        "UPDATE deliveries SET"
        " status = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'pending' END,"
        " next_attempt_at = ?, due_at = ?, finished_at = NULL"
    )

    def retry(self, delivery_id: str, now: float) -> Deferred[Delivery]:
        """Make a dead delivery pending (or retrying) again, due at ``now``; fails with
        :class:`~twisted_hooks.webhooks.delivery.DeliveryNotFound` or, when it is not dead,
        :class:`ValueError`."""
        store = self._store

        def retry(cursor: Cursor) -> Delivery:
            cursor.execute(
                store.sql(
                    f"{self._REVIVE} WHERE id = ? AND status = 'dead'"
                    f" RETURNING {DELIVERY_COLUMNS.listed()}"
                ),
                (now, now, delivery_id),
            )
            row = cursor.fetchone()
            if row is None:
                status = self._exists(cursor, delivery_id)
                raise ValueError(f"delivery {delivery_id!r} is {status}; only dead ones retry")
            return _delivery_from_row(row)

        return store.run(True, retry)

    def recover(self, subscriber_id: str, since: float, now: float) -> Deferred[int]:
        """Make every dead delivery of a subscriber created at or after ``since`` due again
        at ``now``; fires how many."""
        store = self._store

        def recover(cursor: Cursor) -> int:
            cursor.execute(
                store.sql(
                    f"{self._REVIVE} WHERE status = 'dead' AND subscriber_id = ?"
                    " AND created_at >= ?"
                ),
                (now, now, subscriber_id, since),
            )
            return max(0, cursor.rowcount)

        return store.run(True, recover)

    def prune(self, before: float) -> Deferred[int]:
        """Delete the deliveries delivered before ``before``, and their attempts; fires how
        many deliveries. Dead ones are kept."""
        store = self._store

        def prune(cursor: Cursor) -> int:
            cursor.execute(
                store.sql(
                    "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries"
                    " WHERE status = 'delivered' AND finished_at < ?)"
                ),
                (before,),
            )
            cursor.execute(
                store.sql("DELETE FROM deliveries WHERE status = 'delivered' AND finished_at < ?"),
                (before,),
            )
            return max(0, cursor.rowcount)

        return store.run(True, prune)

    def prune_keys(self, before: float) -> Deferred[int]:
        """Forget the idempotency keys stored before ``before`` (a publication repeated with
        such a key is accepted again); fires how many."""
        store = self._store

        def prune(cursor: Cursor) -> int:
            cursor.execute(
                store.sql("DELETE FROM idempotency_keys WHERE created_at < ?"), (before,)
            )
            return max(0, cursor.rowcount)

        return store.run(True, prune)

    def stats(self, now: float) -> Deferred[DeliveryStats]:
        """Counts for every status and the age of the oldest due delivery."""

        def stats(cursor: Cursor) -> DeliveryStats:
            counts = dict.fromkeys(STATUSES, 0)
            cursor.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
            for status, count in cursor.fetchall():
                counts[status] = int(count)
            cursor.execute(
                f"SELECT MIN(due_at) FROM deliveries{self._store.due_index} WHERE {CLAIMABLE}"
            )
            earliest = self._earliest(cursor)
            age = now - earliest if earliest is not None and earliest <= now else None
            return DeliveryStats(counts, age)

        return self._store.run(False, stats)
