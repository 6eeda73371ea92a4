"""
The SQL stores' subscriber cache, their rows by column name, and the life of their
connection pool.

- :class:`~twisted_hooks.store.SubscriberCache` on a fake table and a
  :class:`~twisted.internet.task.Clock` (synchronous);
- the column lists (:class:`~twisted_hooks.store.sql.Columns`) against the migrated schema
  and the values they map;
- the pool's life (started by ``start()``, closed by ``close()``) on a real SQLite file;
- two stores, two "nodes", on one real PostgreSQL database (when
  ``TWISTED_HOOKS_TEST_POSTGRES`` holds a DSN; each test in a schema of its own): a change
  made through one is seen by the other's ``find()`` within a second though its refresh
  interval is an hour (``LISTEN``/``NOTIFY``), also after the listening connection was
  killed;
- the real service (``twist hooks`` in a child process) on an SQLite file and on
  PostgreSQL.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python import threadable
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests._service import CONFIG, Receiver, Service, wait_for
from twisted_hooks.store import (
    PostgresStore,
    SQLiteStore,
    StoreError,
    SubscriberCache,
    make_store,
    open_store,
    schema,
)
from twisted_hooks.store import _rows as rows
from twisted_hooks.store._rows import (
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    HEALTH_COLUMNS,
    SUBSCRIBER_COLUMNS,
    TOKEN_COLUMNS,
    Columns,
)
from twisted_hooks.store.postgres import SUBSCRIBER_CHANNEL
from twisted_hooks.store.tokens import Token
from twisted_hooks.webhooks.delivery import Attempt, Delivery, ErrorKind
from twisted_hooks.webhooks.health import EndpointHealth
from twisted_hooks.webhooks.subscribers import Subscriber

#: The DSN of the PostgreSQL server to test against, if any.
POSTGRES_DSN = os.environ.get("TWISTED_HOOKS_TEST_POSTGRES")
NO_POSTGRES = (
    "TWISTED_HOOKS_TEST_POSTGRES is not set; set it to a PostgreSQL DSN (as .ci/run does) "
    "to run the PostgreSQL notification tests"
)

#: How soon another node must see a change (its refresh interval is an hour).
AT_ONCE = 1.0
#: A refresh interval no test waits for.
HOUR = 3600.0


def subscriber(number: int, **fields: Any) -> Subscriber:
    """Subscriber ``number`` to ``order.*``."""
    values: dict[str, Any] = {
        "event": "order.*",
        "url": f"https://shop{number}.example/hooks",
        "secret": "s3cret",
        "id": f"00000000-0000-4000-8000-{number:012d}",
    }
    values.update(fields)
    return Subscriber(**values)


ONE, TWO, THREE = subscriber(1), subscriber(2), subscriber(3)


# -- the cache, on a fake table ------------------------------------------------------------


class FakeTable:
    """The subscribers table, answered by hand: each read waits until :meth:`answer`."""

    def __init__(self, *rows: Subscriber) -> None:
        self.rows = {s.id: s for s in rows}
        self.reads: list[tuple[list[str] | None, Deferred[list[Subscriber]]]] = []

    def load_all(self) -> Deferred[list[Subscriber]]:
        d: Deferred[list[Subscriber]] = Deferred()
        self.reads.append((None, d))
        return d

    def load_some(self, ids: Any) -> Deferred[list[Subscriber]]:
        d: Deferred[list[Subscriber]] = Deferred()
        self.reads.append((list(ids), d))
        return d

    def answer(self, index: int = 0) -> list[str] | None:
        """Answer a read (the oldest by default) from :attr:`rows` as they are now; give
        the ids it asked for (``None`` for all)."""
        ids, d = self.reads.pop(index)
        if ids is None:
            d.callback(list(self.rows.values()))
        else:
            d.callback([self.rows[i] for i in ids if i in self.rows])
        return ids

    def fail(self, error: Exception) -> None:
        """Fail the oldest read."""
        _, d = self.reads.pop(0)
        d.errback(error)


class SubscriberCacheTests(SynchronousTestCase):
    """:class:`SubscriberCache`: this process's writes, refreshes, announced changes."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.table = FakeTable()
        self.cache = SubscriberCache(
            self.table.load_all, self.table.load_some, self.clock, refresh_interval=10.0
        )

    def test_put_and_discard(self) -> None:
        """put() holds a subscriber (replacing the one of the same id) for find() and
        matching(); discard() forgets it, and an unknown id is harmless."""
        self.cache.put(ONE)
        self.assertEqual(self.cache.find(ONE.id), ONE)
        self.assertEqual(self.cache.matching("order.paid", None), [ONE])
        moved = attrs.evolve(ONE, event="user.*")
        self.cache.put(moved)
        self.assertEqual((self.cache.find(ONE.id), len(self.cache)), (moved, 1))
        self.assertEqual(self.cache.matching("order.paid", None), [])
        self.assertEqual(self.cache.matching("user.created", None), [moved])
        self.cache.discard(ONE.id)
        self.cache.discard("never-there")
        self.assertIsNone(self.cache.find(ONE.id))
        self.assertEqual(self.cache.matching("user.created", None), [])

    def test_inactive_found_not_matched(self) -> None:
        """An inactive subscriber is found (for its attempts to end) but matches no event."""
        self.cache.put(attrs.evolve(ONE, active=False))
        self.assertFalse(self.cache.find(ONE.id).active)  # type: ignore[union-attr]
        self.assertEqual(self.cache.matching("order.paid", None), [])

    def test_refresh_replaces(self) -> None:
        """refresh() holds exactly what the table holds: new rows appear, removed ones go."""
        self.cache.put(ONE)
        self.table.rows = {TWO.id: TWO}
        d = self.cache.refresh()
        self.assertNoResult(d)
        self.table.answer()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual((self.cache.find(ONE.id), self.cache.find(TWO.id)), (None, TWO))

    def test_refresh_keeps_writes_made_while_reading(self) -> None:
        """A put() or discard() made while a refresh reads is laid over what it read."""
        self.table.rows = {ONE.id: ONE, TWO.id: TWO}
        d = self.cache.refresh()
        self.cache.put(THREE)
        self.cache.discard(TWO.id)
        self.table.answer()
        self.successResultOf(d)
        self.assertEqual([self.cache.find(s.id) for s in (ONE, TWO, THREE)], [ONE, None, THREE])

    def test_refresh_failure(self) -> None:
        """A refresh whose read fails fails with its error and leaves the cache as it
        was."""
        self.cache.put(ONE)
        d = self.cache.refresh()
        self.table.fail(RuntimeError("database gone"))
        self.failureResultOf(d, RuntimeError)
        self.assertEqual(self.cache.find(ONE.id), ONE)

    def test_changed_reads_the_ids_named(self) -> None:
        """changed() reads only the ids named; a row found replaces the cached one, an id
        the table no longer holds is forgotten."""
        self.cache.put(ONE)
        self.cache.put(TWO)
        updated = attrs.evolve(ONE, url="https://new.example/hooks")
        self.table.rows = {ONE.id: updated, THREE.id: THREE}
        self.cache.changed([ONE.id, TWO.id, THREE.id])
        self.assertEqual(self.cache.pending, {ONE.id, TWO.id, THREE.id})
        self.assertEqual(self.table.answer(), sorted([ONE.id, TWO.id, THREE.id]))
        self.assertEqual(
            [self.cache.find(s.id) for s in (ONE, TWO, THREE)], [updated, None, THREE]
        )
        self.assertEqual((self.cache.pending, self.table.reads), (frozenset(), []))

    def test_changed_one_read_at_a_time(self) -> None:
        """Ids named while a read is under way wait for it, then are read together in one
        read, so a later read always answers after an earlier one."""
        self.table.rows = {ONE.id: ONE, TWO.id: TWO, THREE.id: THREE}
        self.cache.changed([ONE.id])
        self.cache.changed([TWO.id])
        self.cache.changed([THREE.id, TWO.id])
        self.assertEqual(len(self.table.reads), 1)
        self.assertEqual(self.table.answer(), [ONE.id])
        self.assertEqual(self.table.answer(), sorted([TWO.id, THREE.id]))
        self.assertEqual(self.table.reads, [])
        self.assertEqual(len(self.cache), 3)

    def test_changed_never_undoes_a_local_write(self) -> None:
        """A write of this process made while an announced subscriber is read wins over
        the older row the read returns."""
        self.table.rows = {ONE.id: ONE}
        self.cache.changed([ONE.id])
        mine = attrs.evolve(ONE, url="https://mine.example/hooks")
        self.cache.put(mine)
        self.table.answer()
        self.assertEqual(self.cache.find(ONE.id), mine)

    def test_changed_read_during_refresh_kept(self) -> None:
        """An announced change read while a refresh is under way is kept over the
        refresh's older answer."""
        refreshing = self.cache.refresh()
        newer = attrs.evolve(ONE, url="https://newer.example/hooks")
        self.table.rows = {ONE.id: newer}
        self.cache.changed([ONE.id])
        self.assertEqual(self.table.answer(1), [ONE.id])
        _, older = self.table.reads.pop(0)
        older.callback([ONE])  # what the refresh read, before the change
        self.successResultOf(refreshing)
        self.assertEqual(self.cache.find(ONE.id), newer)

    def test_changed_failure_tried_again(self) -> None:
        """A failed read of announced subscribers is logged as a warning naming them and
        tried again after 1 s, then 2 s, ...; a success resets the delay."""
        self.table.rows = {ONE.id: ONE}
        with capturedLogs() as events:
            self.cache.changed([ONE.id])
            self.table.fail(RuntimeError("database gone"))
            self.clock.advance(0.99)
            self.assertEqual(self.table.reads, [])
            self.assertEqual(self.cache.pending, {ONE.id})
            self.clock.advance(0.01)
            self.table.fail(RuntimeError("database still gone"))
            self.clock.advance(1.99)
            self.assertEqual(self.table.reads, [])
            self.clock.advance(0.01)
            self.assertEqual(self.table.answer(), [ONE.id])
        self.assertEqual(self.cache.find(ONE.id), ONE)
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 2)
        self.assertIn(ONE.id, formatEvent(warnings[0]))
        self.assertIn("trying again in 1 s", formatEvent(warnings[0]))
        self.assertIn("trying again in 2 s", formatEvent(warnings[1]))
        self.flushLoggedErrors(RuntimeError)
        self.cache.changed([TWO.id])
        self.table.fail(RuntimeError("once more"))
        self.clock.advance(1.0)
        self.assertEqual(len(self.table.reads), 1)
        self.flushLoggedErrors(RuntimeError)

    def test_periodic_refresh(self) -> None:
        """start() refreshes every refresh_interval, first after one interval; a failed
        refresh is logged as a warning and the next one still comes."""
        self.cache.start()
        self.clock.advance(9.9)
        self.assertEqual(self.table.reads, [])
        self.table.rows = {ONE.id: ONE}
        self.clock.advance(0.1)
        self.assertIsNone(self.table.answer())
        self.assertEqual(self.cache.find(ONE.id), ONE)
        with capturedLogs() as events:
            self.clock.advance(10)
            self.table.fail(RuntimeError("database gone"))
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn])
        self.assertIn("trying again in 10 s", formatEvent(events[0]))
        self.flushLoggedErrors(RuntimeError)
        self.clock.advance(10)
        self.assertEqual(len(self.table.reads), 1)

    def test_no_interval_no_timer(self) -> None:
        """Without a refresh_interval, start() starts no timer."""
        cache = SubscriberCache(self.table.load_all, self.table.load_some, self.clock)
        cache.start()
        self.clock.advance(HOUR * 24)
        self.assertEqual((self.table.reads, self.clock.getDelayedCalls()), ([], []))

    def test_stop(self) -> None:
        """stop() ends the periodic refresh and the retries; changes announced after it
        are not read; a read under way still lands."""
        self.cache.start()
        self.cache.changed([ONE.id])
        self.table.rows = {ONE.id: ONE}
        self.cache.changed([TWO.id])  # waits for the first read
        self.cache.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.table.answer()
        self.assertEqual(self.table.reads, [])
        self.assertEqual(self.cache.find(ONE.id), ONE)
        self.cache.changed([THREE.id])
        self.clock.advance(HOUR)
        self.assertEqual(self.table.reads, [])

    def test_stop_while_retrying(self) -> None:
        """A read failing after stop() is not tried again, nor logged as a warning."""
        self.cache.changed([ONE.id])
        self.cache.stop()
        with capturedLogs() as events:
            self.table.fail(StoreError("the store is closed; open a new one"))
        self.assertEqual((list(events), self.clock.getDelayedCalls()), ([], []))

    def test_refresh_interval_checked(self) -> None:
        """A refresh_interval that is not positive seconds is refused, naming it."""
        for bad in (0, -1.0, float("nan")):
            with self.assertRaises(ValueError) as caught:
                SubscriberCache(self.table.load_all, self.table.load_some, self.clock, bad)
            self.assertIn("refresh_interval", str(caught.exception))
            self.assertIn(repr(bad), str(caught.exception))

    def test_refresh_interval_same_rule_everywhere(self) -> None:
        """The cache, the SQLite store and the PostgreSQL store refuse a refresh_interval
        by one rule, with one message, before opening anything: not positive, not a
        number, not finite."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        cases: list[tuple[Any, str]] = [
            (0, "refresh_interval must be positive, got 0"),
            (-1.0, "refresh_interval must be positive, got -1.0"),
            (float("inf"), "refresh_interval must be positive, got inf"),
            ("5", "refresh_interval must be a number of seconds, got '5'"),
        ]
        for bad, words in cases:
            made: list[Callable[[], object]] = [
                functools.partial(
                    SubscriberCache, self.table.load_all, self.table.load_some, self.clock, bad
                ),
                functools.partial(SQLiteStore, directory / "hooks.sqlite3", self.clock, bad),
                functools.partial(
                    PostgresStore,
                    "postgresql://nobody@127.0.0.1:9/none",
                    self.clock,
                    refresh_interval=bad,
                ),
            ]
            for make in made:
                with self.assertRaises(ValueError) as caught:
                    make()
                self.assertEqual(str(caught.exception), words)
        self.assertEqual(list(directory.iterdir()), [])


# -- rows by column name ---------------------------------------------------------------------

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)

VALUES: dict[str, Callable[[], dict[str, Any]]] = {
    "subscribers": lambda: rows.subscriber_values(
        subscriber(
            7,
            headers=[("X-A", "1"), ("X-A", "2")],
            max_concurrency=3,
            rate_limit=2.5,
            owner="alice",
            created_at=NOW,
            updated_at=NOW,
        )
    ),
    "deliveries": lambda: rows.delivery_values(
        Delivery(
            id="d1",
            event="order.paid",
            event_id="e1",
            subscriber=ONE,
            body=b"{}",
            created_at=1.0,
            next_attempt_at=2.0,
        )
    ),
    "attempts": lambda: rows.attempt_values(
        Attempt(
            delivery_id="d1",
            number=1,
            started_at=1.0,
            duration=0.5,
            status_code=500,
            error_kind=ErrorKind.STATUS,
            error_message="boom",
        )
    ),
    "endpoint_health": lambda: rows.health_values(
        EndpointHealth(subscriber_id=ONE.id, updated_at=1.0)
    ),
    "tokens": lambda: rows.token_values(
        Token(
            id="t1",
            name="shop",
            hash="h",
            scopes=frozenset({"publish"}),
            owner="shop",
            created_at=1.0,
        )
    ),
}

TABLES = {
    "subscribers": SUBSCRIBER_COLUMNS,
    "deliveries": DELIVERY_COLUMNS,
    "attempts": ATTEMPT_COLUMNS,
    "endpoint_health": HEALTH_COLUMNS,
    "tokens": TOKEN_COLUMNS,
}


class ColumnsTests(SynchronousTestCase):
    """Each table's one column list, and the values mapped to and from it by name."""

    def test_lists_match_the_schema(self) -> None:
        """Each column list names exactly the columns of its table in the migrated
        schema (the deliveries' ``seq`` aside, which the database assigns)."""
        connection = sqlite3.connect(":memory:", isolation_level=None)
        self.addCleanup(connection.close)
        schema.migrate(connection, schema.SQLITE)
        for table, columns in TABLES.items():
            self.assertEqual(columns.table, table)
            stored = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
            stored.discard("seq")
            self.assertEqual(set(columns.names), stored, table)

    def test_values_name_every_column(self) -> None:
        """The values written for a row name every column of its table, and only those."""
        for table, columns in TABLES.items():
            self.assertEqual(set(VALUES[table]()), set(columns.names), table)

    def test_round_trip_by_name(self) -> None:
        """A value written as parameters and read back as a row in the columns' order is
        the same value, for every table (rows are read by name, not position)."""
        values = VALUES["subscribers"]()
        row = SUBSCRIBER_COLUMNS.params(values)
        self.assertEqual(SUBSCRIBER_COLUMNS.named(row), values)
        stored = rows.subscriber_from_row(row)
        self.assertEqual(stored.headers, (("X-A", "1"), ("X-A", "2")))
        self.assertEqual((stored.max_concurrency, stored.rate_limit), (3, 2.5))
        self.assertEqual((stored.owner, stored.created_at), ("alice", NOW))
        delivery = rows.delivery_from_row(DELIVERY_COLUMNS.params(VALUES["deliveries"]()))
        self.assertEqual((delivery.id, delivery.subscriber, delivery.body), ("d1", ONE, b"{}"))
        attempt = rows.attempt_from_row(ATTEMPT_COLUMNS.params(VALUES["attempts"]()))
        self.assertEqual((attempt.status_code, attempt.error_message), (500, "boom"))
        health = rows.health_from_row(HEALTH_COLUMNS.params(VALUES["endpoint_health"]()))
        self.assertEqual(health.subscriber_id, ONE.id)
        token = rows.token_from_row(TOKEN_COLUMNS.params(VALUES["tokens"]()))
        self.assertEqual(token.scopes, frozenset({"publish"}))

    def test_statement_text(self) -> None:
        """The lists, markers and upserts come from the names."""
        columns = Columns("t", ("a", "b", "c"), key=("a",))
        self.assertEqual(columns.listed(), "a, b, c")
        self.assertEqual(columns.listed("x."), "x.a, x.b, x.c")
        self.assertEqual(columns.markers(), "?, ?, ?")
        self.assertEqual(
            columns.upsert(),
            "INSERT INTO t (a, b, c) VALUES (?, ?, ?)"
            " ON CONFLICT (a) DO UPDATE SET b = excluded.b, c = excluded.c",
        )

    def test_mistakes_refused(self) -> None:
        """A row of another width, values lacking a column, a column named twice and a
        key naming an unknown column are refused, each naming what is wrong."""
        columns = Columns("t", ("a", "b"), key=("a",))
        with self.assertRaises(ValueError):
            columns.named((1, 2, 3))
        with self.assertRaises(KeyError) as caught:
            columns.params({"a": 1})
        self.assertEqual(caught.exception.args, ("b",))
        with self.assertRaises(ValueError) as twice:
            Columns("t", ("a", "a"))
        self.assertIn("named twice", str(twice.exception))
        with self.assertRaises(ValueError) as unknown:
            Columns("t", ("a",), key=("z",))
        self.assertIn("'z'", str(unknown.exception))


# -- the pool's life ----------------------------------------------------------------------------


def reactor() -> IReactorTime:
    """The global reactor (the SQL stores need its threads)."""
    from twisted.internet import reactor as global_reactor

    return global_reactor  # type: ignore[return-value]


def scratch(case: TestCase, name: str) -> str:
    """A path in a temporary directory removed after the test."""
    directory = tempfile.mkdtemp(prefix="twisted-hooks-cache-")
    case.addCleanup(shutil.rmtree, directory, True)
    return os.path.join(directory, name)


class PoolLifeTests(TestCase):
    """The store starts its pool in start() and closes it in close(), by adbapi's public
    methods; the last work on the database runs on a pool thread."""

    async def test_close_closes_the_pool(self) -> None:
        """close() waits for the work under way, checkpoints on a pool thread (never the
        reactor thread), closes the pool's connections (the last one removes SQLite's
        -wal file) and stops its threads; the data is in the file."""
        path = scratch(self, "life.db")
        store = await open_store(f"sqlite:{path}", reactor())
        assert isinstance(store, SQLiteStore)
        self.assertTrue(store._pool.running)
        finished_on: list[bool] = []
        original = store.finish

        def finish(connection: Any) -> None:
            finished_on.append(threadable.isInIOThread())
            original(connection)

        self.patch(store, "finish", finish)
        adding = store.subscribers.add(ONE)
        await store.close()
        self.assertEqual(await adding, ONE)
        self.assertEqual(finished_on, [False])
        self.assertFalse(store._pool.running)
        self.assertEqual([t for t in store._pool.threadpool.threads if t.is_alive()], [])
        self.assertFalse(os.path.exists(path + "-wal"))
        connection = sqlite3.connect(path)
        self.addCleanup(connection.close)
        self.assertEqual(connection.execute("SELECT id FROM subscribers").fetchall(), [(ONE.id,)])

    async def test_close_when_the_last_work_fails(self) -> None:
        """A failing checkpoint does not stop close() from closing the pool."""
        store = await open_store(f"sqlite:{scratch(self, 'fails.db')}", reactor())
        assert isinstance(store, SQLiteStore)

        def finish(connection: Any) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        self.patch(store, "finish", finish)
        with capturedLogs() as events:
            await store.close()
        self.assertFalse(store._pool.running)
        (said,) = [formatEvent(e) for e in events if "last work" in e["log_format"]]
        self.assertIn("disk I/O error", said)

    async def test_close_before_start(self) -> None:
        """A store closed without being started closes at once (it never ran database
        work), and refuses to start afterwards with a StoreError."""
        path = scratch(self, "never.db")
        store = make_store(f"sqlite:{path}", reactor())
        assert isinstance(store, SQLiteStore)
        await store.close()
        self.assertFalse(store._pool.running)
        with self.assertRaises(StoreError) as caught:
            await store.start()
        self.assertIn("closed", str(caught.exception))
        self.assertFalse(os.path.exists(path))


# -- two nodes on PostgreSQL ---------------------------------------------------------------


async def eventually(condition: Callable[[], bool], what: str, deadline: float) -> float:
    """Wait (on the reactor) until ``condition()`` is true; the seconds it took. Fail
    naming ``what`` after ``deadline`` seconds."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > deadline:
            raise AssertionError(f"{what}: not within {deadline:g} s")
        await deferLater(reactor(), 0.005, lambda: None)  # type: ignore[arg-type]
    return time.monotonic() - began


class PostgresSchema:
    """A schema of its own for each test, dropped afterwards (mixed into a TestCase)."""

    addCleanup: Callable[..., None]

    async def make_schema(self) -> str:
        """A new schema; the DSN whose search path is that schema."""
        import psycopg
        from psycopg.conninfo import make_conninfo

        assert POSTGRES_DSN is not None
        name = f"th_test_{uuid.uuid4().hex[:12]}"

        def create() -> None:
            with psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=5) as c:
                c.execute(f'CREATE SCHEMA "{name}"')

        def drop() -> None:
            with psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=5) as c:
                c.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')

        await deferToThread(create)
        self.addCleanup(deferToThread, drop)
        return make_conninfo(POSTGRES_DSN, options=f"-c search_path={name}")


class TwoNodesTests(PostgresSchema, TestCase):
    """Two PostgresStores on one database, each refreshing only once an hour: each sees
    the other's subscriber changes within a second, by LISTEN/NOTIFY."""

    if POSTGRES_DSN is None:
        skip = NO_POSTGRES

    async def setUp(self) -> None:
        self.dsn = await self.make_schema()
        self.one = await self.open()
        self.two = await self.open()

    async def open(self, **options: Any) -> PostgresStore:
        """A started store on this test's schema, closed after the test."""
        options.setdefault("refresh_interval", HOUR)
        store = await open_store(self.dsn, reactor(), **options)
        assert isinstance(store, PostgresStore)
        self.addCleanup(store.close)
        return store

    async def seen(self, check: Callable[[], bool], what: str) -> None:
        """Wait until ``check()``; within :data:`AT_ONCE`."""
        await eventually(check, what, AT_ONCE)

    async def test_added_updated_deactivated_removed(self) -> None:
        """A subscriber added, updated, deactivated and removed through one node is found
        (and matched) that way by the other node within a second each time."""
        two = self.two.subscribers
        await self.one.subscribers.add(ONE)
        await self.seen(lambda: two.find(ONE.id) == ONE, "the new subscriber")
        self.assertEqual(list(await two.match("order.paid", None)), [ONE])

        moved = await self.one.subscribers.update(
            attrs.evolve(ONE, url="https://moved.example/hooks", event="user.*")
        )
        await self.seen(lambda: two.find(ONE.id) == moved, "the updated subscriber")
        self.assertEqual(list(await two.match("order.paid", None)), [])
        self.assertEqual(list(await two.match("user.created", None)), [moved])

        await self.one.subscribers.deactivate(ONE.id)
        await self.seen(
            lambda: not two.find(ONE.id).active,  # type: ignore[union-attr]
            "the deactivation",
        )
        self.assertEqual(list(await two.match("user.created", None)), [])

        await self.one.subscribers.remove(ONE.id)
        await self.seen(lambda: two.find(ONE.id) is None, "the removal")

    async def test_both_ways_and_many(self) -> None:
        """Changes go both ways, and a burst of changes is seen whole."""
        await self.two.subscribers.add(TWO)
        await self.seen(lambda: self.one.subscribers.find(TWO.id) == TWO, "the other way")
        many = [subscriber(100 + n) for n in range(50)]
        for each in many:
            await self.one.subscribers.add(each)
        await self.seen(
            lambda: all(self.two.subscribers.find(s.id) == s for s in many),
            "fifty new subscribers",
        )

    async def test_own_changes_not_read_again(self) -> None:
        """A node does not read again the subscribers it changed itself: its cache has
        them already."""
        announced: list[list[str]] = []
        cache = self.one.subscribers.cache
        original = cache.changed

        def changed(ids: Any) -> None:
            announced.append(list(ids))
            original(ids)

        self.patch(cache, "changed", changed)
        await self.one.subscribers.add(ONE)
        await self.two.subscribers.add(TWO)
        await self.seen(lambda: announced == [[TWO.id]], "the other node's change")
        await self.seen(lambda: self.two.subscribers.find(ONE.id) == ONE, "this node's change")
        self.assertEqual(announced, [[TWO.id]])

    async def test_not_listening(self) -> None:
        """A store opened with listen=False still announces its changes, but sees the
        others' only when it refreshes."""
        deaf = await self.open(listen=False)
        await self.one.subscribers.add(ONE)
        await self.seen(lambda: self.two.subscribers.find(ONE.id) == ONE, "ONE")
        self.assertIsNone(deaf.subscribers.find(ONE.id))
        await deaf.refresh()
        self.assertEqual(deaf.subscribers.find(ONE.id), ONE)
        await deaf.subscribers.add(TWO)
        await self.seen(lambda: self.two.subscribers.find(TWO.id) == TWO, "TWO")

    async def backend_pids(self, store: PostgresStore) -> list[int]:
        """The server processes of ``store``'s listening connection."""
        rows = await self.one.run(
            False,
            lambda cursor: (
                cursor.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                    (f"twisted_hooks-listen-{store.node[:12]}",),
                ),
                cursor.fetchall(),
            )[1],
        )
        return [pid for (pid,) in rows]

    async def test_connection_lost_and_back(self) -> None:
        """When the listening connection is killed, the store says so (a warning), connects
        again after a second, reloads every subscriber (changes made meanwhile are seen)
        and hears the next changes again."""
        await self.one.subscribers.add(ONE)
        await self.seen(lambda: self.two.subscribers.find(ONE.id) == ONE, "ONE")
        (pid,) = await self.backend_pids(self.two)
        with capturedLogs() as events:
            await self.one.run(
                False, lambda cursor: cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
            )
            await self.one.subscribers.add(TWO)
            await eventually(
                lambda: self.two.subscribers.find(TWO.id) == TWO, "the change made meanwhile", 10
            )
        texts = [formatEvent(e) for e in events]
        lost = [t for t in texts if "lost the connection that hears subscriber changes" in t]
        self.assertEqual(len(lost), 1, texts)
        self.assertIn("connecting again in 1 s", lost[0])
        self.assertTrue(any("again" in t and t.startswith("hearing") for t in texts), texts)
        (again,) = await self.backend_pids(self.two)
        self.assertNotEqual(again, pid)
        await self.one.subscribers.add(THREE)
        await self.seen(lambda: self.two.subscribers.find(THREE.id) == THREE, "THREE")

    async def test_close_ends_the_listening_connection(self) -> None:
        """Closing a store closes its listening connection (no connection left behind),
        promptly: the thread is woken instead of waiting for its next look."""
        self.assertEqual(len(await self.backend_pids(self.two)), 1)
        began = time.monotonic()
        await self.two.close()
        self.assertLess(time.monotonic() - began, 0.9)

        async def gone() -> bool:
            return not await self.backend_pids(self.two)

        for _ in range(200):
            if await gone():
                break
            await deferLater(reactor(), 0.01, lambda: None)  # type: ignore[arg-type]
        self.assertEqual(await self.backend_pids(self.two), [])

    async def test_foreign_and_empty_payloads_ignored(self) -> None:
        """A notification from another database schema reads that id again (the answer
        comes from this store's own table), and an empty or malformed payload is
        ignored."""
        await self.one.subscribers.add(ONE)
        await self.seen(lambda: self.two.subscribers.find(ONE.id) == ONE, "ONE")

        def notify(cursor: Any) -> None:
            for payload in ("", "lonely-node", f"elsewhere {ONE.id}"):
                cursor.execute("SELECT pg_notify(%s, %s)", (SUBSCRIBER_CHANNEL, payload))
            cursor.execute("SELECT pg_notify(%s, %s)", (SUBSCRIBER_CHANNEL, f"x {TWO.id}"))

        await self.one.subscribers.add(TWO)
        await self.one.run(True, notify)
        await self.seen(lambda: self.two.subscribers.find(TWO.id) == TWO, "TWO")
        self.assertEqual(self.two.subscribers.find(ONE.id), ONE)


class ListenFailureTests(TestCase):
    """The listening connection that cannot be made fails start with a clear error."""

    if POSTGRES_DSN is None:
        skip = NO_POSTGRES

    async def test_unreachable(self) -> None:
        """listen() on a server that cannot be reached fails with a StoreError naming the
        database (never the password), and leaves no thread running."""
        store = PostgresStore(
            "postgresql://postgres:hunter2secret@127.0.0.1:1/nodb?connect_timeout=2", reactor()
        )
        self.addCleanup(store.close)
        with self.assertRaises(StoreError) as caught:
            await store.listen()
        message = str(caught.exception)
        self.assertIn("127.0.0.1:1", message)
        self.assertIn("nodb", message)
        self.assertNotIn("hunter2secret", message)
        await store.stop_listening()


# -- the real service ------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def test_service_rows_and_close_on_sqlite(tmp_path: Path, receiver: Receiver) -> None:
    """Through twist hooks on an SQLite file: a subscription with every optional field is
    delivered with them; SIGTERM closes the store (the last connection removes the -wal
    file); restarted, the service reads the subscription back field by field and
    delivers with it again."""
    service = Service(tmp_path)
    try:
        service.start()
        token = service.token("alice", owner="alice")
        status, _, hook = service.request(
            "POST",
            "/hooks/",
            token,
            {
                "event": "order.*",
                "url": receiver.url,
                "content_type": "application/x-www-form-urlencoded",
                "hmac_digest": "sha512",
                "headers": {"X-Shop": "north"},
                "max_concurrency": 3,
                "rate_limit": 50,
            },
        )
        assert status == 201, hook
        status, _, published = service.request(
            "POST", "/events/", token, {"event": "order.paid", "data": {"order": 42}}
        )
        assert (status, published["deliveries"]) == (202, 1), published
        wait_for(lambda: len(receiver.received) == 1, "the first delivery")
        assert service.terminate() in (0, -15)
        assert "the store is closed" in service.log()
        assert not (tmp_path / "hooks.sqlite3-wal").exists()

        service.start()
        status, _, again = service.request("GET", f"/hooks/{hook['id']}", token)
        assert status == 200, again
        for field in ("event", "url", "content_type", "hmac_digest", "headers", "user"):
            assert again[field] == hook[field], field
        assert (again["max_concurrency"], again["rate_limit"]) == (3, 50)
        status, _, published = service.request(
            "POST", "/events/", token, {"event": "order.shipped", "data": {"order": 42}}
        )
        assert published["deliveries"] == 1, published
        wait_for(lambda: len(receiver.received) == 2, "the delivery after the restart")
        with receiver.lock:
            for headers, body in receiver.received:
                assert headers["x-shop"] == "north"
                assert headers["content-type"] == "application/x-www-form-urlencoded"
                assert body == b"order=42"
        assert service.terminate() in (0, -15)
        assert "Unhandled error" not in service.log()
    finally:
        service.kill()


@pytest.mark.skipif(POSTGRES_DSN is None, reason=NO_POSTGRES)
def test_service_hears_the_command_on_postgresql(tmp_path: Path, receiver: Receiver) -> None:
    """twist hooks on PostgreSQL with poll_interval = 3600: a subscriber added by the
    twisted-hooks command (another process) receives the service's next events within
    seconds, and one removed by the command stops receiving them, without a poll."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    assert POSTGRES_DSN is not None
    name = f"th_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=5) as c:
        c.execute(f'CREATE SCHEMA "{name}"')
    service = Service(tmp_path)
    try:
        service.database = make_conninfo(POSTGRES_DSN, options=f"-c search_path={name}")
        service.config.write_text(
            CONFIG.format(shutdown_timeout=15).replace(
                "poll_interval = 0.2", "poll_interval = 3600"
            )
        )
        service.start()
        token = service.token("publisher")

        def published() -> int:
            status, _, answer = service.request(
                "POST", "/events/", token, {"event": "order.paid", "data": {"order": 1}}
            )
            assert status == 202, answer
            return int(answer["deliveries"])

        assert published() == 0
        added = json.loads(
            service.cli(
                "subscribe", "order.*", receiver.url, "--allow-network", "127.0.0.0/8"
            ).stdout
        )
        wait_for(lambda: published() == 1, "the service to match the new subscriber", 10)
        wait_for(lambda: receiver.received, "the delivery")
        service.cli("unsubscribe", added["id"])
        wait_for(lambda: published() == 0, "the service to forget the subscriber", 10)
        assert service.terminate() in (0, -15)
        log = service.log()
        assert "the store is closed" in log
        assert "Unhandled error" not in log
    finally:
        service.kill()
        with psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=5) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


class PostgresURLTests(SynchronousTestCase):
    def test_is_postgres_url(self) -> None:
        """PostgreSQL URLs and libpq connection strings are told apart from the other store
        URLs (the service then relies on notifications, the command does not listen)."""
        from twisted_hooks.store import is_postgres_url

        for url in ("postgresql://u@h/db", "postgres://h/db", "host=h dbname=db"):
            self.assertTrue(is_postgres_url(url), url)
        for url in ("sqlite:hooks.sqlite3", "memory:", "sqlite:///a=b"):
            self.assertFalse(is_postgres_url(url), url)
