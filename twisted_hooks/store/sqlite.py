"""
The SQLite store: one file, in WAL mode; the service's default.

The file holds the subscribers' signing secrets: a new one is created readable and writable
by its owner only (mode ``0600``, whatever the umask), and SQLite gives its ``-wal`` and
``-shm`` files the database file's mode. Opening an existing file that other users may read
or write logs a warning naming the ``chmod`` that fixes it.

One connection on one adbapi thread does all the work, so the reactor never waits on the
file. Every write transaction starts with ``BEGIN IMMEDIATE``: a second process using the
same file waits for the write lock (up to ``busy_timeout`` seconds) instead of failing
half-way through a transaction.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import stat
from typing import Any

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from twisted_hooks.store._rows import DELIVERY_COLUMNS, Cursor
from twisted_hooks.store.cache import check_refresh_interval
from twisted_hooks.store.schema import CLAIMABLE, SQLITE
from twisted_hooks.store.sql import SQLStore
from twisted_hooks.webhooks._deliveries import IN_FLIGHT

__all__ = ["SQLiteStore"]

log = Logger()

#: The mode of a new database file: read and write for its owner only.
_FILE_MODE = 0o600
#: The files SQLite keeps beside the database in WAL mode.
_COMPANIONS = ("-wal", "-shm")


class SQLiteStore(SQLStore):
    """
    A store in an SQLite file (created when missing), in WAL mode with
    ``synchronous=NORMAL``: a committed transaction survives a crash of the process; a
    power loss may lose the last transactions, never corrupt the file.

    :param path: the database file; ``":memory:"`` for a private in-memory database.
    :param reactor: the reactor (providing ``IReactorTime``, ``IReactorCore`` and
        ``IReactorThreads``); the global one if ``None``.
    :param refresh_interval: see :class:`~twisted_hooks.store.sql.SQLStore`; useful only
        when other processes write subscribers into the same file.
    :param busy_timeout: seconds to wait for another process's write lock.
    """

    dialect = SQLITE
    placeholder = "?"
    greatest = "max"
    due_index = " INDEXED BY deliveries_due"

    def __init__(
        self,
        path: str | os.PathLike[str],
        reactor: IReactorTime | None = None,
        refresh_interval: float | None = None,
        busy_timeout: float = 5.0,
    ) -> None:
        check_refresh_interval(refresh_interval)
        if reactor is None:
            from twisted.internet import reactor as default

            reactor = default
        assert reactor is not None
        self.path = os.fspath(path)
        self._busy_ms = int(busy_timeout * 1000)
        pool = ConnectionPool(  # type: ignore[no-untyped-call]
            "sqlite3",
            self.path,
            check_same_thread=False,
            isolation_level=None,  # transactions are begun explicitly (BEGIN IMMEDIATE)
            timeout=busy_timeout,
            cp_min=1,
            cp_max=1,
            cp_openfun=self._open,
            cp_reactor=reactor,
            cp_noisy=False,
        )
        super().__init__(pool, reactor, refresh_interval)

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path!r}>"

    def prepare(self) -> Deferred[None]:
        """
        Before SQLite opens the file: create it, when missing, with mode ``0600`` (SQLite
        gives its ``-wal`` and ``-shm`` files the same mode); when it exists, warn if other
        users may read or write it or its ``-wal``/``-shm`` files. Done on a thread of the
        reactor's pool.
        """
        reactor: Any = self._reactor
        loose = deferToThreadPool(reactor, reactor.getThreadPool(), self._secure_file)
        return loose.addCallback(self._warn_loose)

    def _secure_file(self) -> list[tuple[str, int]]:
        """Create the database file owner-only, or list the files (path, mode) that group
        or others may read or write. Blocking."""
        if self.path in ("", ":memory:"):
            return []
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            descriptor = os.open(self.path, flags, _FILE_MODE)
        except FileExistsError:
            pass
        except OSError:
            return []  # a missing directory...: opening the database says so
        else:
            try:
                os.fchmod(descriptor, _FILE_MODE)  # the umask may have taken bits away
            finally:
                os.close(descriptor)
            return []
        loose = []
        for path in (self.path, *(self.path + suffix for suffix in _COMPANIONS)):
            try:
                mode = stat.S_IMODE(os.stat(path).st_mode)
            except OSError:
                continue
            if mode & 0o077:
                loose.append((path, mode))
        return loose

    def _warn_loose(self, loose: list[tuple[str, int]]) -> None:
        if not loose:
            return
        log.warn(
            "the SQLite database {path} holds signing secrets, and other users may read or"
            " write {files}; restrict it: chmod 600 {paths}",
            path=self.path,
            files=", ".join(f"{path} (mode {mode:o})" for path, mode in loose),
            paths=" ".join(shlex.quote(path) for path, _ in loose),
        )

    def _open(self, connection: sqlite3.Connection) -> None:
        """Set up a new connection (on the pool's thread)."""
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute(f"PRAGMA busy_timeout={self._busy_ms:d}")

    def begin(self, cursor: Cursor, write: bool) -> None:
        """``BEGIN IMMEDIATE`` for writes (take the write lock now), ``BEGIN`` for reads (one
        consistent snapshot)."""
        cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def claim_rows(
        self, cursor: Cursor, now: float, limit: int, lease_until: float
    ) -> list[dict[str, Any]]:
        """Select the due rows in due order and lease them (adding one to their claim
        tokens), inside the write transaction ``BEGIN IMMEDIATE`` opened: no other
        connection can claim between the two statements. (SQLite's ``RETURNING`` cannot
        give the due time a row had before the update, which orders the result, hence two
        statements.)"""
        cursor.execute(
            f"SELECT {DELIVERY_COLUMNS.listed()} FROM deliveries{self.due_index}"
            f" WHERE {CLAIMABLE} AND due_at <= ?"
            " ORDER BY due_at, seq LIMIT ?",
            (now, limit),
        )
        rows = [DELIVERY_COLUMNS.named(row) for row in cursor.fetchall()]
        ids = [row["id"] for row in rows]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            cursor.execute(
                "UPDATE deliveries SET status = 'in_flight', due_at = ?,"
                " claim_token = COALESCE(claim_token, 0) + 1"
                f" WHERE id IN ({', '.join('?' * len(chunk))})",
                (lease_until, *chunk),
            )
        return [
            {
                **row,
                "due_at": lease_until,
                "status": IN_FLIGHT,
                "claim_token": (row["claim_token"] or 0) + 1,
            }
            for row in rows
        ]

    def finish(self, connection: Any) -> None:
        """Checkpoint the WAL into the file without waiting for other connections
        (``PASSIVE``), on the pool's thread: the connection's close, on the reactor thread,
        then has next to nothing left to write."""
        connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def describe_error(self, error: BaseException) -> str | None:
        """Say which file could not be opened, and why, in words a user can act on."""
        if not isinstance(error, sqlite3.Error):
            return None
        directory = os.path.dirname(os.path.abspath(self.path))
        if self.path != ":memory:" and not os.path.isdir(directory):
            return (
                f"cannot open the SQLite database {self.path!r}: the directory {directory!r} "
                "does not exist; create it first"
            )
        if isinstance(error, sqlite3.DatabaseError) and "not a database" in str(error):
            return (
                f"cannot open the SQLite database {self.path!r}: the file is not an SQLite "
                "database; give another path"
            )
        return f"cannot open the SQLite database {self.path!r}: {error}"
