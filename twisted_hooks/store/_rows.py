"""
How the SQL stores' rows are written and read: one :class:`Columns` per table, the
converters between rows and values, and :class:`SQLEngine`, what the role stores need of
the store whose connections they use.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python import threadable

from twisted_hooks.store.tokens import Token
from twisted_hooks.webhooks._deliveries import (
    IN_FLIGHT,
    Attempt,
    Delivery,
)
from twisted_hooks.webhooks._health import EndpointHealth
from twisted_hooks.webhooks._subscriber import (
    Subscriber,
)
from twisted_hooks.webhooks.retry import RetryPolicy

__all__ = [
    "ATTEMPT_COLUMNS",
    "CHUNK",
    "DELIVERY_COLUMNS",
    "HEALTH_COLUMNS",
    "LIST_IDS",
    "RESPONSE_BODY_LIMIT",
    "SUBSCRIBER_COLUMNS",
    "TOKEN_COLUMNS",
    "Columns",
    "Cursor",
    "SQLEngine",
    "attempt_from_row",
    "attempt_values",
    "chunks",
    "delivery_from_row",
    "delivery_from_values",
    "delivery_values",
    "health_from_row",
    "health_values",
    "on_reactor_thread",
    "subscriber_from_row",
    "subscriber_values",
    "token_from_row",
    "token_values",
]


_P = ParamSpec("_P")
_T = TypeVar("_T")


#: At most this many parameters in one ``IN (...)`` list.
CHUNK = 500


#: How many bytes of an attempt's response body are stored.
RESPONSE_BODY_LIMIT = 4096


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


def subscriber_values(subscriber: Subscriber) -> dict[str, Any]:
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


def subscriber_from_row(row: Sequence[Any]) -> Subscriber:
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


def delivery_values(delivery: Delivery) -> dict[str, Any]:
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


def delivery_from_values(values: Mapping[str, Any]) -> Delivery:
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


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    return delivery_from_values(DELIVERY_COLUMNS.named(row))


# How many subscriber ids one query of SQLDeliveryStore.list names (IN): under every
# SQLite build's limit of bound parameters.
LIST_IDS = 500


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


def attempt_values(attempt: Attempt) -> dict[str, Any]:
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


def attempt_from_row(row: Sequence[Any]) -> Attempt:
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


def health_values(record: EndpointHealth) -> dict[str, Any]:
    # Every column is the field of the same name, stored as it is.
    return {name: getattr(record, name) for name in HEALTH_COLUMNS.names}


def health_from_row(row: Sequence[Any]) -> EndpointHealth:
    return EndpointHealth(**HEALTH_COLUMNS.named(row))


#: The columns of ``tokens``: every :class:`~twisted_hooks.store.tokens.Token` field.
TOKEN_COLUMNS = Columns(
    "tokens",
    ("id", "name", "hash", "scopes", "owner", "created_at", "revoked_at"),
    key=("id",),
)


def token_values(token: Token) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "hash": token.hash,
        "scopes": json.dumps(sorted(token.scopes)),
        "owner": token.owner,
        "created_at": token.created_at,
        "revoked_at": token.revoked_at,
    }


def token_from_row(row: Sequence[Any]) -> Token:
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


def on_reactor_thread() -> bool:
    return bool(threadable.isInIOThread())  # type: ignore[no-untyped-call]


def chunks(items: Sequence[_T], size: int = CHUNK) -> Iterable[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SQLEngine(Protocol):
    """What the role stores (:class:`~twisted_hooks.store.sql.SQLSubscriberStore`,
    :class:`~twisted_hooks.store.sql.SQLDeliveryStore`) need of the
    :class:`~twisted_hooks.store.sql.SQLStore` whose connections they use."""

    @property
    def reactor(self) -> IReactorTime:
        """The reactor of the store's pool."""

    @property
    def greatest(self) -> str:
        """The dialect's two-argument maximum."""

    @property
    def due_index(self) -> str:
        """What follows ``FROM deliveries`` in queries over due deliveries."""

    @property
    def lock_rows(self) -> str:
        """What ends a query reading rows about to be written (``FOR UPDATE``, or nothing)."""

    def sql(self, text: str) -> str:
        """``text`` (written with ``?`` markers) in the dialect's parameter style."""

    def run(
        self,
        write: bool,
        work: Callable[Concatenate[Cursor, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_T]:
        """Run ``work`` in one transaction on a pool thread (``write``: it writes)."""

    def claim_rows(
        self, cursor: Cursor, now: float, limit: int, lease_until: float
    ) -> list[dict[str, Any]]:
        """Lease up to ``limit`` due deliveries; their rows as updated, by column name."""

    def announce(self, cursor: Cursor, subscriber_id: str) -> None:
        """Tell the other processes that the subscriber ``subscriber_id`` changed."""
