"""
The PostgreSQL store: many processes, on many nodes, share one database.

Queries run on adbapi's threads with :mod:`psycopg` (version 3), autocommit off: each
interaction is one transaction. Due deliveries are claimed with ``FOR UPDATE SKIP
LOCKED``, so concurrent claimers never take the same delivery and never wait on each
other's rows.
"""

from __future__ import annotations

from typing import Any

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.interfaces import IReactorTime

from twisted_hooks.store.base import StoreError
from twisted_hooks.store.schema import POSTGRESQL
from twisted_hooks.store.sql import (
    CLAIMABLE,
    DELIVERY_COLUMNS,
    Cursor,
    SQLStore,
    check_refresh_interval,
)

__all__ = ["PostgresStore", "describe_dsn"]


def describe_dsn(dsn: str) -> str:
    """``dsn`` for people: host, port, database and user, never the password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except Exception:
        return "an unreadable PostgreSQL URL"
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    user = params.get("user")
    database = params.get("dbname") or user or "(default database)"
    who = f" as {user}" if user else ""
    return f"PostgreSQL database {database!s} on {host!s}:{port!s}{who}"


def _scrub(text: str, dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    try:
        password = conninfo_to_dict(dsn).get("password")
    except Exception:
        return text.replace(dsn, "<PostgreSQL URL>")
    if password:
        text = text.replace(str(password), "***")
    return text


class PostgresStore(SQLStore):
    """
    A store in a PostgreSQL database, shared by every process given the same ``dsn``.

    :param dsn: a libpq connection string or URL (``postgresql://user@host:5432/db``).
        A ``connect_timeout`` of 10 seconds is added when it has none.
    :param reactor: the reactor (providing ``IReactorTime``, ``IReactorCore`` and
        ``IReactorThreads``); the global one if ``None``.
    :param min_connections: connections (and threads) kept open.
    :param max_connections: the most connections (and threads) used at once.
    :param refresh_interval: seconds between reloads of the subscriber cache, so that
        subscribers changed by other processes are matched; see
        :class:`~twisted_hooks.store.sql.SQLStore`. Set it whenever several processes share
        the database.
    """

    dialect = POSTGRESQL
    placeholder = "%s"
    greatest = "GREATEST"
    lock_rows = " FOR UPDATE"

    def __init__(
        self,
        dsn: str,
        reactor: IReactorTime | None = None,
        min_connections: int = 1,
        max_connections: int = 5,
        refresh_interval: float | None = None,
    ) -> None:
        try:
            from psycopg.conninfo import conninfo_to_dict, make_conninfo
        except ImportError:
            raise StoreError(
                "a PostgreSQL database needs psycopg 3, which is not installed: "
                "pip install 'twisted_hooks[postgres]'"
            ) from None

        check_refresh_interval(refresh_interval)
        if reactor is None:
            from twisted.internet import reactor as default

            reactor = default
        assert reactor is not None
        if not 1 <= min_connections <= max_connections:
            raise ValueError(
                "connections must satisfy 1 <= min_connections <= max_connections, got "
                f"{min_connections!r} and {max_connections!r}"
            )
        self.description = describe_dsn(dsn)
        self._dsn = dsn
        try:
            if "connect_timeout" not in conninfo_to_dict(dsn):
                dsn = make_conninfo(dsn, connect_timeout=10)
        except Exception as error:
            raise ValueError(f"invalid PostgreSQL URL: {_scrub(str(error), self._dsn)}") from None
        pool = ConnectionPool(  # type: ignore[no-untyped-call]
            "psycopg",
            dsn,
            autocommit=False,
            cp_min=min_connections,
            cp_max=max_connections,
            cp_reconnect=True,
            cp_reactor=reactor,
            cp_noisy=False,
        )
        super().__init__(pool, reactor, refresh_interval)

    def __repr__(self) -> str:
        return f"<PostgresStore {self.description}>"

    def claim_rows(
        self, cursor: Cursor, now: float, limit: int, lease_until: float
    ) -> list[tuple[Any, ...]]:
        """One statement: lock up to ``limit`` due rows, skipping those other claimers hold,
        lease them (adding one to their claim tokens), and return them ordered by the due
        time they had."""
        columns = ", ".join(f"d.{name.strip()}" for name in DELIVERY_COLUMNS.split(","))
        cursor.execute(
            "WITH picked AS ("
            f" SELECT id, due_at, seq FROM deliveries WHERE {CLAIMABLE} AND due_at <= %s"
            " ORDER BY due_at, seq LIMIT %s FOR UPDATE SKIP LOCKED)"
            " UPDATE deliveries AS d SET status = 'in_flight', due_at = %s,"
            " claim_token = COALESCE(d.claim_token, 0) + 1"
            f" FROM picked WHERE d.id = picked.id"
            f" RETURNING picked.due_at, picked.seq, {columns}",
            (now, limit, lease_until),
        )
        rows = sorted(cursor.fetchall(), key=lambda row: (row[0], row[1]))
        return [tuple(row[2:]) for row in rows]

    def describe_error(self, error: BaseException) -> str | None:
        """Name the database (never the password) when it cannot be reached."""
        import psycopg

        if not isinstance(error, psycopg.OperationalError):
            return None
        reason = _scrub(str(error).strip(), self._dsn)
        return f"cannot connect to the {self.description}: {reason}"
