"""
The database schema of the durable stores, and its migrations.

The schema is a list of numbered steps (:data:`MIGRATIONS`). Each is written once, with
type names that differ between SQLite and PostgreSQL left as ``{placeholders}``
(:data:`TYPES`), plus statements for one dialect only where more than types differ.
:func:`migrate` applies the steps a database lacks, each in a transaction of its own, and
records them in the ``schema_migrations`` table. It is idempotent and safe when two
processes start at once: SQLite serialises them with ``BEGIN IMMEDIATE``, PostgreSQL with a
transaction-scoped advisory lock, and each step is applied only after the lock is held and
the table re-read.

The tables:

``subscribers``
    every :class:`~twisted_hooks.webhooks.subscribers.Subscriber` field; headers and
    previous secrets as JSON text; times as seconds since the epoch.
``deliveries``
    one row per :class:`~twisted_hooks.webhooks.delivery.Delivery`, with a JSON snapshot of
    its subscriber and retry policy. ``due_at`` is the next attempt's time, or the lease's
    expiry while the delivery is ``in_flight``: a delivery is claimable when its status is
    ``pending``, ``retrying`` or ``in_flight`` and ``due_at <= now``, which one partial
    index answers. ``seq`` keeps the order of enqueueing. ``claim_token`` (version 3) is
    the fencing token of the latest claim: each claim adds one, and outcomes and releases
    made under an older claim are dropped.
``attempts``
    one row per attempt, keyed by delivery and attempt number (an attempt repeated after a
    crash replaces the row); the first 4 KiB of the response body.
``idempotency_keys``
    the ids of published events, so a repeated publication is not delivered twice.
``endpoint_health``
    one :class:`~twisted_hooks.webhooks.health.EndpointHealth` per subscriber id.
``tokens``
    the API's :class:`~twisted_hooks.store.tokens.Token` records (hashes only).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs

__all__ = [
    "CLAIMABLE",
    "DIALECTS",
    "LATEST_VERSION",
    "MIGRATIONS",
    "POSTGRESQL",
    "SQLITE",
    "TYPES",
    "Migration",
    "SchemaError",
    "applied_versions",
    "migrate",
]

#: The SQLite dialect's name.
SQLITE = "sqlite"
#: The PostgreSQL dialect's name.
POSTGRESQL = "postgresql"
#: Every dialect the schema is written for.
DIALECTS: tuple[str, ...] = (SQLITE, POSTGRESQL)

#: What each ``{placeholder}`` of a migration's statements stands for, by dialect.
TYPES: Mapping[str, Mapping[str, str]] = {
    SQLITE: {
        "real": "REAL",
        "blob": "BLOB",
        "bool": "INTEGER",
        # An INTEGER PRIMARY KEY is SQLite's rowid: assigned in order, kept by VACUUM.
        "delivery_key": "seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE",
    },
    POSTGRESQL: {
        "real": "DOUBLE PRECISION",
        "blob": "BYTEA",
        "bool": "BOOLEAN",
        "delivery_key": "id TEXT PRIMARY KEY, seq BIGINT GENERATED ALWAYS AS IDENTITY",
    },
}

#: The key of PostgreSQL's advisory lock taken while migrating ("twhooks" in ASCII).
ADVISORY_LOCK_KEY = 0x7477686F6F6B73


class SchemaError(Exception):
    """The database's schema cannot be used by this version of twisted_hooks."""


@attrs.frozen
class Migration:
    """
    One numbered step of the schema.

    :ivar version: its number: 1 for the first step, then 2, 3, ...
    :ivar name: what it does, for people.
    :ivar statements: SQL run in every dialect, with ``{placeholders}`` from :data:`TYPES`.
    :ivar dialect_statements: SQL run after ``statements`` in one dialect only, by dialect.
    """

    version: int
    name: str
    statements: tuple[str, ...] = ()
    dialect_statements: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)

    def sql(self, dialect: str) -> list[str]:
        """The statements of this step for ``dialect``, placeholders filled in."""
        types = TYPES[dialect]
        return [s.format(**types) for s in self.statements] + list(
            self.dialect_statements.get(dialect, ())
        )


#: The condition on a delivery's status for a claim to take it (when due): the condition of
#: the partial index ``deliveries_due``, so queries write it out (never as a parameter) for
#: the index to serve them.
CLAIMABLE = "status IN ('pending', 'retrying', 'in_flight')"

#: The schema, step by step. Never edit a step that has been released: add one.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "subscribers, deliveries, attempts and idempotency keys",
        (
            """CREATE TABLE subscribers (
                id TEXT PRIMARY KEY,
                event TEXT NOT NULL,
                url TEXT NOT NULL,
                secret TEXT NOT NULL,
                digest TEXT NOT NULL,
                content_type TEXT NOT NULL,
                owner TEXT,
                active {bool} NOT NULL,
                headers TEXT NOT NULL,
                previous_secrets TEXT NOT NULL,
                max_concurrency INTEGER,
                rate_limit {real},
                created_at {real} NOT NULL,
                updated_at {real} NOT NULL
            )""",
            "CREATE INDEX subscribers_owner ON subscribers (owner)",
            """CREATE TABLE deliveries (
                {delivery_key},
                event TEXT NOT NULL,
                event_id TEXT NOT NULL,
                subscriber_id TEXT NOT NULL,
                subscriber TEXT NOT NULL,
                refresh_subscriber {bool} NOT NULL,
                body {blob} NOT NULL,
                created_at {real} NOT NULL,
                next_attempt_at {real} NOT NULL,
                due_at {real} NOT NULL,
                status TEXT NOT NULL CHECK (status IN
                    ('pending', 'in_flight', 'retrying', 'delivered', 'dead')),
                attempts INTEGER NOT NULL,
                retry TEXT NOT NULL,
                timeout {real} NOT NULL,
                allow_keepalive {bool} NOT NULL,
                last_error TEXT,
                finished_at {real}
            )""",
            f"CREATE INDEX deliveries_due ON deliveries (due_at, seq) WHERE {CLAIMABLE}",
            "CREATE INDEX deliveries_created ON deliveries (created_at)",
            "CREATE INDEX deliveries_status_created ON deliveries (status, created_at)",
            "CREATE INDEX deliveries_subscriber_created ON deliveries (subscriber_id, created_at)",
            "CREATE INDEX deliveries_delivered ON deliveries (finished_at)"
            " WHERE status = 'delivered'",
            """CREATE TABLE attempts (
                delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
                number INTEGER NOT NULL,
                started_at {real} NOT NULL,
                duration {real} NOT NULL,
                status_code INTEGER,
                error_kind TEXT,
                error_message TEXT,
                response_body {blob} NOT NULL,
                retry_after {real},
                PRIMARY KEY (delivery_id, number)
            )""",
            """CREATE TABLE idempotency_keys (
                key TEXT PRIMARY KEY,
                created_at {real} NOT NULL
            )""",
            "CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at)",
        ),
    ),
    Migration(
        2,
        "endpoint health and API tokens",
        (
            """CREATE TABLE endpoint_health (
                subscriber_id TEXT PRIMARY KEY,
                consecutive_failures INTEGER NOT NULL,
                first_failure_at {real},
                last_failure_at {real},
                circuit TEXT NOT NULL,
                opened_at {real},
                disabled_since {real},
                updated_at {real} NOT NULL
            )""",
            """CREATE TABLE tokens (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                hash TEXT NOT NULL UNIQUE,
                scopes TEXT NOT NULL,
                owner TEXT NOT NULL,
                created_at {real} NOT NULL,
                revoked_at {real}
            )""",
        ),
    ),
    Migration(
        3,
        "fencing tokens of delivery claims",
        ("ALTER TABLE deliveries ADD COLUMN claim_token INTEGER",),
    ),
)

#: The version a fully migrated database is at.
LATEST_VERSION: int = MIGRATIONS[-1].version


class _Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> object: ...

    def fetchall(self) -> list[tuple[Any, ...]]: ...


class _Connection(Protocol):
    def cursor(self) -> Any: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


def _begin(cursor: _Cursor, dialect: str) -> None:
    """Start a migration transaction that excludes every other migrating process."""
    if dialect == SQLITE:
        cursor.execute("BEGIN IMMEDIATE")
    else:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL,"
        f" applied_at {TYPES[dialect]['real']} NOT NULL)"
    )


def _versions(cursor: _Cursor) -> list[int]:
    cursor.execute("SELECT version FROM schema_migrations ORDER BY version")
    return [int(row[0]) for row in cursor.fetchall()]


def _check(migrations: Sequence[Migration]) -> None:
    numbers = [m.version for m in migrations]
    if numbers != list(range(1, len(numbers) + 1)):
        raise SchemaError(f"migrations must be numbered 1, 2, 3, ... in order, got {numbers!r}")


def applied_versions(connection: _Connection, dialect: str) -> list[int]:
    """
    The versions applied to a database (an empty list for a new one).

    Blocking: call it from a thread (the stores use their connection pool's threads).

    :param connection: a DB-API connection (``sqlite3`` opened with
        ``isolation_level=None``, or ``psycopg`` with autocommit off).
    :param dialect: :data:`SQLITE` or :data:`POSTGRESQL`.
    """
    cursor = connection.cursor()
    try:
        _begin(cursor, dialect)
        versions = _versions(cursor)
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    return versions


def migrate(
    connection: _Connection,
    dialect: str,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> list[int]:
    """
    Apply the steps of ``migrations`` the database lacks, each in one transaction.

    Running it again is a no-op; two processes running it at once apply each step once.
    Blocking: call it from a thread (:meth:`twisted_hooks.store.sql.SQLStore.migrate` does).

    :param connection: a DB-API connection (``sqlite3`` opened with
        ``isolation_level=None``, or ``psycopg`` with autocommit off).
    :param dialect: :data:`SQLITE` or :data:`POSTGRESQL`.
    :param migrations: the steps, numbered from 1 (:data:`MIGRATIONS` by default).
    :return: the versions applied now, in order (empty when the schema was up to date).
    :raise SchemaError: when the database is at a version newer than the last step known,
        written by a newer twisted_hooks.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}; use one of {DIALECTS!r}")
    _check(migrations)
    latest = migrations[-1].version if migrations else 0
    applied: list[int] = []
    for step in migrations:
        cursor = connection.cursor()
        try:
            _begin(cursor, dialect)
            versions = _versions(cursor)
            if versions and versions[-1] > latest:
                raise SchemaError(
                    f"the database's schema is at version {versions[-1]}, newer than this "
                    f"twisted_hooks knows (version {latest}); upgrade twisted_hooks"
                )
            if step.version in versions:
                connection.commit()
                continue
            for statement in step.sql(dialect):
                cursor.execute(statement)
            marker = "?" if dialect == SQLITE else "%s"
            cursor.execute(
                "INSERT INTO schema_migrations (version, name, applied_at)"
                f" VALUES ({marker}, {marker}, {marker})",
                (step.version, step.name, time.time()),
            )
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        applied.append(step.version)
    return applied
