"""
One store suite, run against every backend of :mod:`twisted_hooks.store`: memory, SQLite
(a temporary file) and PostgreSQL.

The PostgreSQL classes run when ``TWISTED_HOOKS_TEST_POSTGRES`` holds a DSN (``.ci/run``
sets it to the local server); each test gets a fresh schema of its own, dropped afterwards.
When the variable is set and the server cannot be reached, the tests fail: they never skip
silently. These are integration tests on the real reactor: the SQL stores work on adbapi's
threads.
"""

from __future__ import annotations

import datetime
import os
import shutil
import sqlite3
import stat
import tempfile
import uuid
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python import threadable
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from twisted_hooks.interfaces import IDeliveryStore, IHealthStore, ISubscriberStore, ITokenStore
from twisted_hooks.store import (
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    PostgresStore,
    SchemaError,
    SQLiteStore,
    SQLStore,
    Store,
    StoreError,
    make_store,
    open_store,
    schema,
)
from twisted_hooks.store.tokens import Token
from twisted_hooks.webhooks.delivery import (
    DEAD,
    DELIVERED,
    IN_FLIGHT,
    PENDING,
    RETRYING,
    STATUSES,
    Attempt,
    Delivery,
    DeliveryNotFound,
    DeliveryUpdate,
    ErrorKind,
)
from twisted_hooks.webhooks.encoding import FORM
from twisted_hooks.webhooks.health import OPEN, EndpointHealth
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.subscribers import (
    DuplicateSubscriber,
    Subscriber,
    SubscriberNotFound,
)

#: The DSN of the PostgreSQL server to test against, if any.
POSTGRES_DSN = os.environ.get("TWISTED_HOOKS_TEST_POSTGRES")
NO_POSTGRES = (
    "TWISTED_HOOKS_TEST_POSTGRES is not set; set it to a PostgreSQL DSN (as .ci/run does) "
    "to run the PostgreSQL store tests"
)

SUBSCRIBER = Subscriber(
    event="order.*",
    url="https://example.com/hook",
    secret="s3cret",
    id="00000000-0000-4000-8000-000000000001",
)
OTHER = Subscriber(
    event="*",
    url="https://other.example.com/hook",
    secret="s3cret",
    id="00000000-0000-4000-8000-000000000002",
)


def delivery(delivery_id: str, due: float = 0.0, **fields: Any) -> Delivery:
    """A pending delivery ``delivery_id`` due at ``due``, created at ``due``."""
    values: dict[str, Any] = {
        "id": delivery_id,
        "event": "order.created",
        "event_id": "event-1",
        "subscriber": SUBSCRIBER,
        "body": b"{}",
        "created_at": due,
        "next_attempt_at": due,
    }
    values.update(fields)
    return Delivery(**values)


def attempt(delivery_id: str, number: int = 1, **fields: Any) -> Attempt:
    """An attempt of ``delivery_id``; a success unless ``error_kind`` is given."""
    values: dict[str, Any] = {"started_at": 100.0 + number, "duration": 0.5, "status_code": 200}
    values.update(fields)
    return Attempt(delivery_id=delivery_id, number=number, **values)


def failed(delivery_id: str, number: int = 1, message: str = "boom") -> Attempt:
    """A failed attempt (a 500) of ``delivery_id``."""
    return attempt(
        delivery_id,
        number,
        status_code=500,
        error_kind=ErrorKind.STATUS,
        error_message=message,
        response_body=b"oops",
    )


def ok(delivery_id: str, number: int = 1) -> DeliveryUpdate:
    """A delivered update."""
    return DeliveryUpdate(delivery_id, DELIVERED, attempt(delivery_id, number))


def retrying(delivery_id: str, at: float, number: int = 1) -> DeliveryUpdate:
    """A retrying update due at ``at``."""
    return DeliveryUpdate(delivery_id, RETRYING, failed(delivery_id, number), at)


def dead(delivery_id: str, number: int = 1) -> DeliveryUpdate:
    """A dead update."""
    return DeliveryUpdate(delivery_id, DEAD, failed(delivery_id, number, "gave up"))


def token(name: str, created_at: float = 1.0, **fields: Any) -> Token:
    """A token named ``name`` with a hash derived from it."""
    values: dict[str, Any] = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
        "name": name,
        "hash": f"hash-of-{name}",
        "scopes": frozenset({"publish"}),
        "owner": "alice",
        "created_at": created_at,
    }
    values.update(fields)
    return Token(**values)


def reactor() -> IReactorTime:
    """The global reactor (the SQL stores need its threads)."""
    from twisted.internet import reactor as global_reactor

    return global_reactor  # type: ignore[return-value]


class StoreTests:
    """
    The behaviour every store shares. Mixed into one TestCase per backend, which provides
    :meth:`open`.
    """

    durable: bool

    # Provided by TestCase.
    assertEqual: Callable[..., None]
    assertTrue: Callable[..., None]
    assertFalse: Callable[..., None]
    assertIn: Callable[..., None]
    assertIsNone: Callable[..., None]
    assertLessEqual: Callable[..., None]
    addCleanup: Callable[..., None]

    async def open(self, **options: Any) -> Store:
        """A new, started store (closed after the test); the same database each time."""
        raise NotImplementedError

    async def setUp(self) -> None:
        self.store = await self.open()
        self.deliveries: IDeliveryStore = self.store.deliveries
        self.subscribers: ISubscriberStore = self.store.subscribers

    async def assertFails(self, d: Deferred[Any], *kinds: type[BaseException]) -> BaseException:
        """Await ``d`` and return the exception it fails with, one of ``kinds``."""
        try:
            result = await d
        except kinds as error:
            return error
        raise AssertionError(f"expected {kinds!r}, got the result {result!r}")

    async def put(self, *deliveries: Delivery) -> None:
        """Enqueue ``deliveries``."""
        self.assertTrue(await self.deliveries.enqueue(list(deliveries)))

    async def claim(self, now: float, limit: int = 100, lease: float = 60.0) -> list[str]:
        """The ids ``claim`` gives at ``now``."""
        return [d.id for d in await self.deliveries.claim(now, limit, lease)]

    async def status(self, delivery_id: str) -> str:
        """The status of ``delivery_id``."""
        return (await self.deliveries.get(delivery_id)).status

    # -- interfaces ---------------------------------------------------------------------

    async def test_provides_interfaces(self) -> None:
        """The store's roles provide their interfaces, and ``durable`` says whether the
        deliveries survive the process."""
        self.assertTrue(verifyObject(ISubscriberStore, self.store.subscribers))
        self.assertTrue(verifyObject(IDeliveryStore, self.store.deliveries))
        self.assertTrue(verifyObject(IHealthStore, self.store))
        self.assertTrue(verifyObject(ITokenStore, self.store))
        self.assertEqual(self.store.durable, self.durable)
        self.assertEqual(self.store.deliveries.durable, self.durable)

    # -- enqueue and claim ----------------------------------------------------------------

    async def test_delivery_round_trip(self) -> None:
        """A delivery read back equals the one enqueued, every field included: the
        subscriber snapshot (headers in order, repeated names, previous secrets, limits,
        owner, times), the retry policy and a binary body."""
        subscriber = Subscriber(
            event="invoice.*.paid",
            url="https://example.com/in?x=1",
            secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            digest="sha512",
            content_type=FORM,
            owner="bob",
            headers=[("X-One", "1"), ("X-Two", "2"), ("X-One", "again")],
            previous_secrets=("old-1", "old-2"),
            max_concurrency=3,
            rate_limit=2.5,
            created_at=datetime.datetime(2024, 1, 2, 3, 4, 5, 678901, datetime.timezone.utc),
            updated_at=datetime.datetime(2024, 2, 2, 3, 4, 5, 1, datetime.timezone.utc),
        )
        original = Delivery(
            id="round-trip",
            event="invoice.eu.paid",
            event_id="event-rt",
            subscriber=subscriber,
            body=b"\x00\xffbinary\x00",
            created_at=1700000000.123456,
            next_attempt_at=1700000005.5,
            retry=RetryPolicy(delays=(1.5, 30.0), jitter=0.1, retry_after_cap=99.0),
            timeout=2.25,
            allow_keepalive=False,
            refresh_subscriber=False,
        )
        await self.put(original)
        self.assertEqual(await self.deliveries.get("round-trip"), original)
        (claimed,) = await self.deliveries.claim(1700000006.0, 10, 30.0)
        self.assertEqual(
            claimed,
            attrs.evolve(original, status=IN_FLIGHT, lease_expires_at=1700000036.0, claim_token=1),
        )
        self.assertEqual(await self.deliveries.get("round-trip"), claimed)

    async def test_claim_due_only(self) -> None:
        """claim takes the deliveries due at ``now`` and leaves the future ones."""
        await self.put(delivery("now", 10.0), delivery("later", 20.0))
        self.assertEqual(await self.claim(5.0), [])
        self.assertEqual(await self.claim(10.0), ["now"])
        self.assertEqual(await self.claim(15.0), [])
        self.assertEqual(await self.claim(20.0), ["later"])

    async def test_claim_order_and_limit(self) -> None:
        """claim takes at most ``limit``, earliest due first whatever the enqueueing
        order; deliveries due at the same time come in enqueueing order."""
        await self.put(
            delivery("c", 3.0), delivery("a", 1.0), delivery("t1", 2.0), delivery("t2", 2.0)
        )
        self.assertEqual(await self.claim(10.0, limit=3), ["a", "t1", "t2"])
        self.assertEqual(await self.claim(10.0, limit=3), ["c"])
        self.assertEqual(await self.claim(10.0, limit=0), [])

    async def test_lease_and_reclaim(self) -> None:
        """A claimed delivery is in flight under a lease: not claimed again while it holds,
        claimed again (same id, new lease) once it expires, as after a crash."""
        await self.put(delivery("a", 1.0))
        (claimed,) = await self.deliveries.claim(3.0, 10, 30.0)
        self.assertEqual((claimed.status, claimed.lease_expires_at), (IN_FLIGHT, 33.0))
        self.assertEqual(await self.deliveries.next_due(), 33.0)
        self.assertEqual(await self.claim(32.9), [])
        (again,) = await self.deliveries.claim(33.0, 10, 30.0)
        self.assertEqual((again.id, again.lease_expires_at), ("a", 63.0))
        self.assertEqual(again.next_attempt_at, 1.0)

    async def test_enqueue_idempotency_key(self) -> None:
        """A second enqueue with a known idempotency key stores nothing and fires False;
        another key is accepted."""
        self.assertTrue(await self.deliveries.enqueue([delivery("a")], "event-1"))
        self.assertFalse(await self.deliveries.enqueue([delivery("b")], "event-1"))
        await self.assertFails(self.deliveries.get("b"), DeliveryNotFound)
        self.assertTrue(await self.deliveries.enqueue([delivery("c")], "event-2"))
        self.assertEqual(sorted(await self.claim(10.0)), ["a", "c"])

    async def test_enqueue_duplicate_id(self) -> None:
        """Enqueueing a stored id fails with a ValueError naming it; nothing of that batch
        is stored, and its idempotency key is not used up."""
        await self.put(delivery("a"))
        error = await self.assertFails(
            self.deliveries.enqueue([delivery("b"), delivery("a")], "key"), ValueError
        )
        self.assertIn("'a'", str(error))
        await self.assertFails(self.deliveries.get("b"), DeliveryNotFound)
        self.assertTrue(await self.deliveries.enqueue([delivery("b")], "key"))

    async def test_enqueue_twice_in_batch(self) -> None:
        """A batch holding one id twice fails and stores nothing."""
        await self.assertFails(
            self.deliveries.enqueue([delivery("x"), delivery("y"), delivery("x")]), ValueError
        )
        await self.assertFails(self.deliveries.get("y"), DeliveryNotFound)

    async def test_enqueue_empty(self) -> None:
        """Enqueueing nothing succeeds and changes nothing."""
        self.assertTrue(await self.deliveries.enqueue([]))
        self.assertIsNone(await self.deliveries.next_due())

    async def test_streaming_backlog(self) -> None:
        """50,000 deliveries are claimed in batches of 100: no claim returns more than asked,
        none twice, all in due order; the backlog never has to come out at once."""
        count = 50_000
        ids = [f"d{i:05d}" for i in range(count)]
        for start in range(0, count, 5000):
            batch = [delivery(i, float(n)) for n, i in enumerate(ids[start : start + 5000], start)]
            await self.put(*batch)
        claimed: list[str] = []
        while True:
            batch = await self.claim(float(count), limit=100, lease=3600.0)
            self.assertLessEqual(len(batch), 100)
            if not batch:
                break
            claimed.extend(batch)
        self.assertEqual(claimed, ids)

    # -- record ---------------------------------------------------------------------------

    async def test_record_delivered(self) -> None:
        """A delivered update ends the delivery: status, attempts, no lease, no error,
        finished at the attempt's end; it is never claimed again."""
        await self.put(delivery("a", 1.0))
        await self.claim(1.0)
        await self.deliveries.record([ok("a")])
        stored = await self.deliveries.get("a")
        self.assertEqual(
            (stored.status, stored.attempts, stored.lease_expires_at, stored.last_error),
            (DELIVERED, 1, None, None),
        )
        self.assertEqual(stored.finished_at, 101.5)
        self.assertEqual(await self.claim(1000.0), [])
        self.assertIsNone(await self.deliveries.next_due())

    async def test_record_retrying(self) -> None:
        """A retrying update makes the delivery claimable at its next attempt time, not
        before, with the error kept."""
        await self.put(delivery("a", 1.0))
        await self.claim(1.0)
        await self.deliveries.record([retrying("a", 50.0)])
        stored = await self.deliveries.get("a")
        self.assertEqual(
            (stored.status, stored.next_attempt_at, stored.attempts, stored.last_error),
            (RETRYING, 50.0, 1, "boom"),
        )
        self.assertIsNone(stored.finished_at)
        self.assertEqual(await self.deliveries.next_due(), 50.0)
        self.assertEqual(await self.claim(49.0), [])
        self.assertEqual(await self.claim(50.0), ["a"])

    async def test_record_dead_and_attempts(self) -> None:
        """A dead update ends the delivery with its last error; every attempt is kept, oldest
        first, with what was stored of it."""
        await self.put(delivery("a", 1.0))
        await self.claim(1.0)
        await self.deliveries.record([retrying("a", 5.0, 1)])
        await self.claim(5.0)
        await self.deliveries.record([dead("a", 2)])
        stored = await self.deliveries.get("a")
        self.assertEqual((stored.status, stored.attempts, stored.last_error), (DEAD, 2, "gave up"))
        self.assertEqual(stored.finished_at, 102.5)
        self.assertEqual(
            list(await self.deliveries.attempts("a")),
            [failed("a", 1), failed("a", 2, "gave up")],
        )

    async def test_record_batch(self) -> None:
        """One record call applies every update of its batch."""
        await self.put(delivery("a", 1.0), delivery("b", 1.0), delivery("c", 1.0))
        await self.claim(1.0)
        await self.deliveries.record([ok("a"), retrying("b", 9.0), dead("c")])
        self.assertEqual([await self.status(i) for i in "abc"], [DELIVERED, RETRYING, DEAD])

    async def test_late_update_ignored(self) -> None:
        """An update for a delivery that has ended (from a claimer whose lease expired) does
        not change it, but its attempt is kept."""
        await self.put(delivery("a", 1.0))
        await self.claim(1.0)
        await self.deliveries.record([ok("a", 1)])
        await self.deliveries.record([dead("a", 2)])
        stored = await self.deliveries.get("a")
        self.assertEqual(
            (stored.status, stored.attempts, stored.finished_at), (DELIVERED, 1, 101.5)
        )
        numbers = [a.number for a in await self.deliveries.attempts("a")]
        self.assertEqual(numbers, [1, 2])

    async def test_record_unknown_ignored(self) -> None:
        """An update for a delivery the store does not hold is ignored."""
        await self.deliveries.record([ok("ghost")])
        await self.assertFails(self.deliveries.get("ghost"), DeliveryNotFound)

    async def test_repeated_attempt_number(self) -> None:
        """An attempt repeated with the same number (after a crash) does not fail; the
        delivery's attempt count is the highest number seen."""
        await self.put(delivery("a", 1.0))
        await self.claim(1.0)
        await self.deliveries.record([retrying("a", 2.0, 1)])
        await self.claim(2.0)
        await self.deliveries.record([ok("a", 1)])
        stored = await self.deliveries.get("a")
        self.assertEqual((stored.status, stored.attempts), (DELIVERED, 1))
        self.assertEqual((await self.deliveries.attempts("a"))[-1], attempt("a", 1))

    # -- fenced leases ---------------------------------------------------------------------

    def stale_warnings(self, events: list[Any]) -> list[str]:
        """The texts of the stale-write warnings among ``events``."""
        return [
            formatEvent(e)
            for e in events
            if e.get("log_level") == LogLevel.warn and "claimed again" in formatEvent(e)
        ]

    async def test_claim_tokens(self) -> None:
        """Each claim gives the delivery a new claim token, one more than its last: 1 at
        the first claim, 2 when claimed again after a release, 3 after an expired lease;
        the stored delivery keeps its latest token, also once it has ended."""
        await self.put(delivery("a", 1.0))
        self.assertIsNone((await self.deliveries.get("a")).claim_token)
        (first,) = await self.deliveries.claim(1.0, 10, 10.0)
        self.assertEqual(first.claim_token, 1)
        await self.deliveries.release("a", 2.0, first.claim_token)
        (second,) = await self.deliveries.claim(2.0, 10, 10.0)
        self.assertEqual(second.claim_token, 2)
        (third,) = await self.deliveries.claim(12.0, 10, 10.0)
        self.assertEqual(third.claim_token, 3)
        self.assertEqual((await self.deliveries.get("a")).claim_token, 3)
        dropped = await self.deliveries.record([attrs.evolve(ok("a"), claim_token=3)])
        self.assertEqual(list(dropped), [])
        stored = await self.deliveries.get("a")
        self.assertEqual((stored.status, stored.claim_token), (DELIVERED, 3))

    async def test_stale_outcome_dropped(self) -> None:
        """Claimer A's lease expires and B claims the delivery again; B records its
        outcome (a retry); A's late outcome (a success) is then dropped whole: the status,
        due time, attempt count and attempts stay B's, record fires A's update, and one
        warning names the delivery and both claims."""
        await self.put(delivery("a", 1.0))
        (by_a,) = await self.deliveries.claim(1.0, 10, 10.0)
        (by_b,) = await self.deliveries.claim(11.0, 10, 10.0)
        self.assertEqual((by_a.claim_token, by_b.claim_token), (1, 2))
        b_update = attrs.evolve(retrying("a", 50.0), claim_token=by_b.claim_token)
        self.assertEqual(list(await self.deliveries.record([b_update])), [])
        a_update = attrs.evolve(ok("a"), claim_token=by_a.claim_token)
        with capturedLogs() as events:
            dropped = await self.deliveries.record([a_update])
        self.assertEqual(list(dropped), [a_update])
        stored = await self.deliveries.get("a")
        self.assertEqual(
            (stored.status, stored.next_attempt_at, stored.attempts, stored.last_error),
            (RETRYING, 50.0, 1, "boom"),
        )
        self.assertEqual(list(await self.deliveries.attempts("a")), [failed("a", 1)])
        (warning,) = self.stale_warnings(events)
        self.assertIn("delivery a", warning)
        self.assertIn("claim 1", warning)
        self.assertIn("claim 2", warning)
        self.assertEqual(await self.claim(50.0), ["a"])

    async def test_stale_outcome_does_not_touch_a_finished_delivery(self) -> None:
        """B delivered the delivery A's expired lease had covered; A's late failure does
        not replace B's attempt (same number) with its own."""
        await self.put(delivery("a", 1.0))
        (by_a,) = await self.deliveries.claim(1.0, 10, 10.0)
        (by_b,) = await self.deliveries.claim(11.0, 10, 10.0)
        await self.deliveries.record([attrs.evolve(ok("a"), claim_token=by_b.claim_token)])
        late = attrs.evolve(dead("a"), claim_token=by_a.claim_token)
        with capturedLogs() as events:
            self.assertEqual(list(await self.deliveries.record([late])), [late])
        self.assertEqual(list(await self.deliveries.attempts("a")), [attempt("a", 1)])
        stored = await self.deliveries.get("a")
        self.assertEqual((stored.status, stored.last_error), (DELIVERED, None))
        self.assertEqual(len(self.stale_warnings(events)), 1)

    async def test_stale_outcome_in_a_batch(self) -> None:
        """In one record call, a stale update is dropped and the others are written."""
        await self.put(delivery("a", 1.0), delivery("b", 1.0))
        claimed = {d.id: d for d in await self.deliveries.claim(1.0, 10, 10.0)}
        (again,) = await self.deliveries.claim(11.0, 1, 10.0)
        self.assertEqual(again.id, "a")
        stale = attrs.evolve(ok("a"), claim_token=claimed["a"].claim_token)
        fresh = attrs.evolve(ok("b"), claim_token=claimed["b"].claim_token)
        with capturedLogs():
            self.assertEqual(list(await self.deliveries.record([stale, fresh])), [stale])
        self.assertEqual([await self.status(i) for i in "ab"], [IN_FLIGHT, DELIVERED])
        self.assertEqual(list(await self.deliveries.attempts("a")), [])

    async def test_late_outcome_of_the_latest_claim_written(self) -> None:
        """An outcome written after its lease expired, when no one claimed the delivery
        since, carries the current token and is written."""
        await self.put(delivery("a", 1.0))
        (claimed,) = await self.deliveries.claim(1.0, 10, 10.0)
        update = attrs.evolve(retrying("a", 99.0), claim_token=claimed.claim_token)
        self.assertEqual(list(await self.deliveries.record([update])), [])
        self.assertEqual(await self.status("a"), RETRYING)

    async def test_unfenced_outcome_written(self) -> None:
        """An update without a claim token (``None``) is written without the check."""
        await self.put(delivery("a", 1.0))
        await self.claim(1.0, lease=10.0)
        await self.claim(11.0, lease=10.0)
        self.assertEqual(list(await self.deliveries.record([ok("a")])), [])
        self.assertEqual(await self.status("a"), DELIVERED)

    async def test_stale_release_dropped(self) -> None:
        """A release under an expired claim, after the delivery was claimed again, changes
        nothing (it stays in flight under the newer lease) and is logged; the newer
        claimer's release works."""
        await self.put(delivery("a", 1.0))
        (by_a,) = await self.deliveries.claim(1.0, 10, 10.0)
        (by_b,) = await self.deliveries.claim(11.0, 10, 10.0)
        with capturedLogs() as events:
            self.assertIsNone(await self.deliveries.release("a", 5.0, by_a.claim_token))
        stored = await self.deliveries.get("a")
        self.assertEqual((stored.status, stored.lease_expires_at), (IN_FLIGHT, 21.0))
        (warning,) = self.stale_warnings(events)
        self.assertIn("late release of delivery a", warning)
        self.assertEqual(await self.claim(20.0), [])
        await self.deliveries.release("a", 30.0, by_b.claim_token)
        stored = await self.deliveries.get("a")
        self.assertEqual((stored.status, stored.next_attempt_at), (PENDING, 30.0))
        with capturedLogs() as events:
            await self.deliveries.release("a", 40.0, by_b.claim_token)  # not in flight
        self.assertEqual(self.stale_warnings(events), [])
        self.assertEqual((await self.deliveries.get("a")).next_attempt_at, 30.0)
        await self.assertFails(self.deliveries.release("ghost", 1.0, 1), DeliveryNotFound)

    # -- release, next_due, get, list ---------------------------------------------------

    async def test_release(self) -> None:
        """release gives back a claimed delivery, unattempted: pending (or retrying once it
        has attempts) and due at the given time; a delivery not in flight is left alone;
        an unknown id fails with DeliveryNotFound."""
        await self.put(delivery("a", 1.0), delivery("b", 1.0))
        await self.claim(1.0)
        await self.deliveries.release("a", 40.0)
        stored = await self.deliveries.get("a")
        self.assertEqual(
            (stored.status, stored.next_attempt_at, stored.lease_expires_at), (PENDING, 40.0, None)
        )
        await self.deliveries.record([retrying("b", 5.0)])
        await self.claim(5.0)
        await self.deliveries.release("b", 7.0)
        self.assertEqual(await self.status("b"), RETRYING)
        await self.deliveries.release("b", 99.0)  # not in flight: unchanged
        self.assertEqual((await self.deliveries.get("b")).next_attempt_at, 7.0)
        self.assertEqual(await self.claim(39.0), ["b"])
        await self.assertFails(self.deliveries.release("ghost", 1.0), DeliveryNotFound)

    async def test_next_due(self) -> None:
        """next_due is the earliest due time of a claimable delivery, ``None`` without one."""
        self.assertIsNone(await self.deliveries.next_due())
        await self.put(delivery("a", 30.0), delivery("b", 20.0))
        self.assertEqual(await self.deliveries.next_due(), 20.0)

    async def test_get_and_attempts_unknown(self) -> None:
        """get and attempts of an unknown id fail with DeliveryNotFound (a KeyError) naming
        it."""
        error = await self.assertFails(self.deliveries.get("nope"), KeyError)
        self.assertIsInstance(error, DeliveryNotFound)  # type: ignore[attr-defined]
        self.assertIn("nope", str(error))
        await self.assertFails(self.deliveries.attempts("nope"), DeliveryNotFound)

    async def test_list(self) -> None:
        """list gives deliveries newest first, filtered by status, subscriber and creation
        time, at most ``limit``; an unknown status fails with a ValueError."""
        await self.put(
            delivery("a", 1.0),
            delivery("b", 2.0, subscriber=OTHER),
            delivery("c", 3.0),
            delivery("d", 4.0, subscriber=OTHER),
        )
        await self.claim(2.0)
        await self.deliveries.record([ok("a")])

        async def ids(**filters: Any) -> list[str]:
            return [d.id for d in await self.deliveries.list(**filters)]

        self.assertEqual(await ids(), ["d", "c", "b", "a"])
        self.assertEqual(await ids(limit=2), ["d", "c"])
        self.assertEqual(await ids(status=PENDING), ["d", "c"])
        self.assertEqual(await ids(status=IN_FLIGHT), ["b"])
        self.assertEqual(await ids(status=DELIVERED), ["a"])
        self.assertEqual(await ids(subscriber_id=OTHER.id), ["d", "b"])
        self.assertEqual(await ids(subscriber_id=OTHER.id, status=PENDING), ["d"])
        self.assertEqual(await ids(since=3.0), ["d", "c"])
        error = await self.assertFails(self.deliveries.list(status="lost"), ValueError)
        self.assertIn("lost", str(error))

    async def test_list_by_subscribers_and_pages(self) -> None:
        """list filters by a set of subscriber ids (none matches nothing), and pages by
        (created_at, id): deliveries made at the same time come in id order, newest
        first, and every page after the last delivery of the previous one holds the next
        ones, each delivery exactly once."""
        third = Subscriber(event="order.*", url="https://third.example.com/h")
        await self.put(
            delivery("a", 1.0),
            delivery("b", 2.0, subscriber=OTHER),
            delivery("c", 2.0),
            delivery("d", 2.0, subscriber=third),
            delivery("e", 3.0, subscriber=OTHER),
        )

        async def ids(**filters: Any) -> list[str]:
            return [d.id for d in await self.deliveries.list(**filters)]

        self.assertEqual(await ids(), ["e", "d", "c", "b", "a"])
        self.assertEqual(await ids(subscriber_ids=[SUBSCRIBER.id, OTHER.id]), ["e", "c", "b", "a"])
        self.assertEqual(await ids(subscriber_ids={third.id}), ["d"])
        # Many ids (the SQL stores ask for them a few hundred at a time): the two real
        # ones are far apart in sorted order, the others match nothing.
        first = min(SUBSCRIBER.id, OTHER.id)
        many = [SUBSCRIBER.id, OTHER.id, *(f"{first}~{i:04d}" for i in range(1200))]
        self.assertEqual(await ids(subscriber_ids=many, limit=3), ["e", "c", "b"])
        self.assertEqual(await ids(subscriber_ids=[]), [])
        self.assertEqual(await ids(subscriber_ids=["nobody"]), [])
        self.assertEqual(await ids(after=(2.0, "c")), ["b", "a"])
        self.assertEqual(await ids(after=(2.0, "d"), limit=1), ["c"])
        self.assertEqual(await ids(after=(1.0, "a")), [])
        self.assertEqual(
            await ids(after=(3.0, "e"), subscriber_ids=[OTHER.id], status=PENDING), ["b"]
        )
        pages: list[list[str]] = []
        after = None
        for _ in range(10):  # bounded: five deliveries, two a page
            page = await self.deliveries.list(limit=2, after=after)
            if not page:
                break
            pages.append([d.id for d in page])
            after = (page[-1].created_at, page[-1].id)
        self.assertEqual(pages, [["e", "d"], ["c", "b"], ["a"]])

    # -- retry, recover, prune, stats ---------------------------------------------------

    async def test_retry(self) -> None:
        """retry makes a dead delivery due at ``now`` again with its id and attempts; a
        delivery that is not dead fails with ValueError, an unknown one with KeyError."""
        await self.put(delivery("a", 1.0), delivery("b", 1.0))
        await self.claim(1.0, lease=1000.0)
        await self.deliveries.record([dead("a")])
        revived = await self.deliveries.retry("a", 70.0)
        self.assertEqual(
            (revived.status, revived.next_attempt_at, revived.attempts, revived.finished_at),
            (RETRYING, 70.0, 1, None),
        )
        self.assertEqual(await self.deliveries.get("a"), revived)
        self.assertEqual(await self.claim(70.0), ["a"])
        error = await self.assertFails(self.deliveries.retry("b", 70.0), ValueError)
        self.assertIn("in_flight", str(error))
        await self.assertFails(self.deliveries.retry("ghost", 70.0), KeyError)

    async def test_recover(self) -> None:
        """recover makes the dead deliveries of one subscriber created since a time due
        again, and counts them."""
        await self.put(
            delivery("old", 1.0),
            delivery("new", 5.0),
            delivery("other", 5.0, subscriber=OTHER),
            delivery("fine", 5.0),
        )
        await self.claim(5.0)
        await self.deliveries.record([dead("old"), dead("new"), dead("other"), ok("fine")])
        self.assertEqual(await self.deliveries.recover(SUBSCRIBER.id, 2.0, 80.0), 1)
        self.assertEqual(
            [await self.status(i) for i in ("old", "new", "other", "fine")],
            [DEAD, RETRYING, DEAD, DELIVERED],
        )
        self.assertEqual(await self.claim(80.0), ["new"])
        self.assertEqual(await self.deliveries.recover(SUBSCRIBER.id, 2.0, 80.0), 0)

    async def test_prune(self) -> None:
        """prune deletes delivered deliveries finished before a time, with their attempts;
        dead and unfinished ones stay."""
        await self.put(delivery("a", 1.0), delivery("b", 1.0), delivery("c", 1.0))
        await self.put(delivery("d", 1.0))
        await self.claim(1.0)
        late = DeliveryUpdate("b", DELIVERED, attempt("b", started_at=500.0))
        await self.deliveries.record([ok("a"), late, dead("c")])
        self.assertEqual(await self.deliveries.prune(200.0), 1)
        await self.assertFails(self.deliveries.get("a"), DeliveryNotFound)
        await self.assertFails(self.deliveries.attempts("a"), DeliveryNotFound)
        self.assertEqual([await self.status(i) for i in "bcd"], [DELIVERED, DEAD, IN_FLIGHT])
        self.assertEqual(await self.deliveries.prune(200.0), 0)

    async def test_concurrent_enqueues(self) -> None:
        """
        Enqueues made at once (which a SQL store commits together) each get their own
        answer: one whose id is already stored, or given twice, fails and stores nothing
        of its own; a repeated idempotency key answers False; the others are stored.
        """
        await self.put(delivery("old"))
        calls = [
            self.deliveries.enqueue([delivery("a"), delivery("b")]),
            self.deliveries.enqueue([delivery("c"), delivery("old")]),
            self.deliveries.enqueue([delivery("d"), delivery("d")]),
            self.deliveries.enqueue([delivery("e")], "key-1"),
            self.deliveries.enqueue([delivery("f")], "key-1"),
            self.deliveries.enqueue([], "key-2"),
            self.deliveries.enqueue([delivery("g")]),
        ]
        self.assertTrue(await calls[0])
        await self.assertFails(calls[1], ValueError)
        await self.assertFails(calls[2], ValueError)
        self.assertEqual([await call for call in calls[3:]], [True, False, True, True])
        stored = {d.id for d in await self.deliveries.list(limit=100)}
        self.assertEqual(stored, {"old", "a", "b", "e", "g"})

    async def test_prune_keys(self) -> None:
        """prune_keys forgets idempotency keys stored before a time: that event may be
        enqueued again; newer keys are kept."""
        deliveries: Any = self.deliveries
        self.assertTrue(await deliveries.enqueue([delivery("a")], "old-key"))
        self.assertEqual(await deliveries.prune_keys(0.0), 0)
        self.assertEqual(await deliveries.prune_keys(reactor().seconds() + 1), 1)
        self.assertTrue(await deliveries.enqueue([delivery("b")], "old-key"))

    async def test_stats(self) -> None:
        """stats counts every status (zero included) and gives the age of the oldest due
        delivery, ``None`` when none is due."""
        empty = await self.deliveries.stats(10.0)
        self.assertEqual(empty.counts, dict.fromkeys(STATUSES, 0))
        self.assertIsNone(empty.oldest_due_age)
        await self.put(
            delivery("a", 1.0), delivery("b", 1.0), delivery("c", 1.0), delivery("p", 4.0)
        )
        await self.claim(1.0, lease=100.0)
        await self.deliveries.record([ok("a"), dead("b")])
        stats = await self.deliveries.stats(10.0)
        self.assertEqual(
            stats.counts,
            {PENDING: 1, IN_FLIGHT: 1, RETRYING: 0, DELIVERED: 1, DEAD: 1},
        )
        self.assertEqual(stats.oldest_due_age, 6.0)
        self.assertIsNone((await self.deliveries.stats(3.0)).oldest_due_age)

    # -- subscribers ----------------------------------------------------------------------

    async def test_subscribers_crud(self) -> None:
        """add, get, update (keeping created_at, moving updated_at), deactivate, list and
        remove; the stored values are equal to what was given."""
        added = await self.subscribers.add(SUBSCRIBER)
        self.assertEqual(added, SUBSCRIBER)
        self.assertEqual(await self.subscribers.get(SUBSCRIBER.id), SUBSCRIBER)
        changed = attrs.evolve(
            SUBSCRIBER,
            url="https://example.com/new",
            created_at=datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc),
        )
        updated = await self.subscribers.update(changed)
        self.assertEqual(updated.url, "https://example.com/new")
        self.assertEqual(updated.created_at, SUBSCRIBER.created_at)
        self.assertTrue(updated.updated_at > SUBSCRIBER.updated_at)
        self.assertEqual(await self.subscribers.get(SUBSCRIBER.id), updated)
        inactive = await self.subscribers.deactivate(SUBSCRIBER.id)
        self.assertFalse(inactive.active)
        self.assertEqual(await self.subscribers.deactivate(SUBSCRIBER.id), inactive)
        await self.subscribers.add(attrs.evolve(OTHER, owner="bob"))
        self.assertEqual(
            sorted(s.id for s in await self.subscribers.list()), [SUBSCRIBER.id, OTHER.id]
        )
        self.assertEqual([s.id for s in await self.subscribers.list("bob")], [OTHER.id])
        await self.subscribers.remove(SUBSCRIBER.id)
        await self.assertFails(self.subscribers.get(SUBSCRIBER.id), SubscriberNotFound)
        self.assertEqual([s.id for s in await self.subscribers.list()], [OTHER.id])

    async def test_subscribers_errors(self) -> None:
        """A known id cannot be added again (DuplicateSubscriber); get, update, remove and
        deactivate of an unknown id fail with SubscriberNotFound (a KeyError)."""
        await self.subscribers.add(SUBSCRIBER)
        await self.assertFails(self.subscribers.add(SUBSCRIBER), DuplicateSubscriber)
        missing = OTHER.id
        await self.assertFails(self.subscribers.get(missing), SubscriberNotFound)
        await self.assertFails(self.subscribers.update(OTHER), SubscriberNotFound)
        await self.assertFails(self.subscribers.remove(missing), KeyError)
        await self.assertFails(self.subscribers.deactivate(missing), SubscriberNotFound)

    async def test_subscribers_match(self) -> None:
        """match finds the active subscribers whose pattern matches, following the owner
        rule; writes through the store reach matching at once."""
        shared = Subscriber(event="order.*", url="https://a.example/", secret="s")
        owned = Subscriber(event="*.created", url="https://b.example/", secret="s", owner="7")
        other = Subscriber(event="user.*", url="https://c.example/", secret="s")
        for subscriber in (shared, owned, other):
            await self.subscribers.add(subscriber)

        async def urls(event: str, owner: str | None) -> list[str]:
            return sorted(s.url for s in await self.subscribers.match(event, owner))

        self.assertEqual(await urls("order.created", None), ["https://a.example/"])
        self.assertEqual(
            await urls("order.created", "7"), ["https://a.example/", "https://b.example/"]
        )
        self.assertEqual(await urls("order.created", "8"), ["https://a.example/"])
        await self.subscribers.deactivate(shared.id)
        self.assertEqual(await urls("order.created", "7"), ["https://b.example/"])
        await self.subscribers.update(attrs.evolve(shared, event="user.*"))
        self.assertEqual(await urls("user.x", None), ["https://a.example/", "https://c.example/"])
        await self.subscribers.remove(other.id)
        self.assertEqual(await urls("user.x", None), ["https://a.example/"])

    async def test_subscribers_find(self) -> None:
        """find answers at once, without a Deferred, with the subscriber as this store last
        wrote it: added, updated, deactivated (still found, inactive) and removed (None)."""
        subscriber = Subscriber(event="order.*", url="https://a.example/", secret="s")
        self.assertIsNone(self.subscribers.find(subscriber.id))
        await self.subscribers.add(subscriber)
        self.assertEqual(self.subscribers.find(subscriber.id), subscriber)
        updated = await self.subscribers.update(attrs.evolve(subscriber, url="https://b.example/"))
        self.assertEqual(self.subscribers.find(subscriber.id), updated)
        await self.subscribers.deactivate(subscriber.id)
        found = self.subscribers.find(subscriber.id)
        assert found is not None
        self.assertFalse(found.active)
        await self.subscribers.remove(subscriber.id)
        self.assertIsNone(self.subscribers.find(subscriber.id))

    # -- tokens and health --------------------------------------------------------------

    async def test_tokens(self) -> None:
        """Tokens are stored, found by hash, listed oldest first and revoked (keeping the
        first revocation time); a taken name fails with ValueError, an unknown name's
        revocation with KeyError."""
        store: Any = self.store
        first = await store.add_token(token("ci", 2.0, scopes=frozenset({"publish", "admin"})))
        await store.add_token(token("ops", 1.0))
        await self.assertFails(store.add_token(token("ci", 3.0, hash="other")), ValueError)
        await self.assertFails(store.add_token(token("dup-hash", hash="hash-of-ci")), ValueError)
        self.assertEqual(await store.token_by_hash("hash-of-ci"), first)
        self.assertIsNone(await store.token_by_hash("hash-of-nobody"))
        self.assertEqual([t.name for t in await store.tokens()], ["ops", "ci"])
        revoked = await store.revoke_token("ci", 9.0)
        self.assertEqual(revoked, attrs.evolve(first, revoked_at=9.0))
        self.assertFalse(revoked.active)
        self.assertEqual((await store.revoke_token("ci", 10.0)).revoked_at, 9.0)
        self.assertEqual(await store.token_by_hash("hash-of-ci"), revoked)
        await self.assertFails(store.revoke_token("nobody", 9.0), KeyError)

    async def test_health(self) -> None:
        """Health records are saved (inserted or replaced by subscriber id) and loaded."""
        store: Any = self.store
        self.assertEqual(list(await store.load_health()), [])
        one = EndpointHealth("a", 3, 1.0, 2.0, OPEN, 2.0, None, 2.0)
        two = EndpointHealth("b", updated_at=5.0)
        await store.save_health([one, two])
        self.assertEqual(list(await store.load_health()), [one, two])
        closed = EndpointHealth("a", disabled_since=7.0, updated_at=7.0)
        await store.save_health([closed])
        self.assertEqual(list(await store.load_health()), [closed, two])
        await store.save_health([])


class MemoryStoreTests(StoreTests, TestCase):
    """The store suite against :class:`MemoryStore`."""

    durable = False

    async def open(self, **options: Any) -> Store:
        """A memory store that keeps every finished delivery of the suite."""
        store = await open_store("memory:", reactor(), keep_finished=100_000)
        self.addCleanup(store.close)
        return store


class SQLStoreTests(StoreTests):
    """What the SQL stores add: durability across reopening, concurrency, migrations,
    the subscriber cache, the thread rule."""

    durable = True
    store: SQLStore

    def url(self) -> str:
        """The URL of this test's database."""
        raise NotImplementedError

    async def open(self, **options: Any) -> Store:
        """A started store on this test's database, closed after the test."""
        store = await open_store(self.url(), reactor(), **options)
        self.addCleanup(store.close)
        return store

    async def run_sql(self, store: SQLStore, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """The rows of one query, run on ``store``'s pool."""

        def query(cursor: Any) -> list[tuple[Any, ...]]:
            cursor.execute(store.sql(sql), params)
            return list(cursor.fetchall()) if cursor.description else []

        return await store.run(True, query)

    async def test_survives_reopening(self) -> None:
        """After a crash (the store closed with a delivery claimed and never recorded), a
        new store on the same database claims it again once its lease expires, with the
        same id; delivered ones are not attempted again."""
        await self.put(delivery("crashed", 1.0), delivery("done", 1.0))
        await self.claim(1.0, lease=30.0)
        await self.deliveries.record([ok("done")])
        await self.store.close()
        reopened = await self.open()
        self.assertEqual([d.id for d in await reopened.deliveries.claim(30.0, 10, 30.0)], [])
        (again,) = await reopened.deliveries.claim(31.0, 10, 30.0)
        self.assertEqual(
            again,
            attrs.evolve(
                delivery("crashed", 1.0), status=IN_FLIGHT, lease_expires_at=61.0, claim_token=2
            ),
        )

    async def test_closed(self) -> None:
        """A closed store refuses new work with a StoreError; closing again is harmless."""
        await self.store.close()
        await self.store.close()
        await self.assertFails(self.deliveries.next_due(), StoreError)

    async def test_response_body_cut(self) -> None:
        """Only the first 4 KiB of an attempt's response body are stored."""
        await self.put(delivery("a", 1.0))
        await self.claim(1.0)
        big = attempt("a", response_body=b"x" * 10_000)
        await self.deliveries.record([DeliveryUpdate("a", DELIVERED, big)])
        (stored,) = await self.deliveries.attempts("a")
        self.assertEqual(stored.response_body, b"x" * 4096)

    async def test_record_one_transaction(self) -> None:
        """record is one transaction: when a statement of the batch fails, the attempts
        written before it are rolled back too."""
        await self.put(delivery("a", 1.0))
        await self.claim(1.0)
        self.store.greatest = "no_such_function"  # type: ignore[misc]
        await self.assertFails(self.deliveries.record([ok("a")]), Exception)
        del self.store.greatest
        self.assertEqual(list(await self.deliveries.attempts("a")), [])
        self.assertEqual(await self.status("a"), IN_FLIGHT)

    async def test_concurrent_claimers(self) -> None:
        """Two stores (two pools) claiming from one database at the same time never get
        the same delivery while its lease holds, and between them take every one."""
        count = 600
        await self.put(*(delivery(f"c{i:04d}", float(i % 7)) for i in range(count)))
        other = await self.open(**self.pool_options())
        claimers = [self.store, self.store, other, other]

        async def drain(store: Store) -> list[str]:
            got: list[str] = []
            while True:
                batch = await store.deliveries.claim(10.0, 25, 600.0)
                if not batch:
                    return got
                got.extend(d.id for d in batch)

        results = await gatherResults([Deferred.fromCoroutine(drain(s)) for s in claimers])
        leftover = await self.claim(10.0, limit=count)
        every = [i for ids in results for i in ids] + leftover
        self.assertEqual(len(every), len(set(every)))
        self.assertEqual(sorted(every), [f"c{i:04d}" for i in range(count)])

    def pool_options(self) -> dict[str, Any]:
        """Options for a second store on the same database."""
        return {}

    def unannounced_options(self) -> dict[str, Any]:
        """Options for a store that sees other stores' subscriber changes only when it
        refreshes."""
        return {}

    async def test_refresh_sees_other_store(self) -> None:
        """A store's matching sees another process's subscriber writes after refresh()."""
        watcher = await self.open(**self.unannounced_options())
        await self.subscribers.add(SUBSCRIBER)
        self.assertEqual(list(await watcher.subscribers.match("order.created", None)), [])
        self.assertEqual(await watcher.subscribers.get(SUBSCRIBER.id), SUBSCRIBER)
        await watcher.refresh()
        self.assertEqual(
            list(await watcher.subscribers.match("order.created", None)), [SUBSCRIBER]
        )
        await self.subscribers.remove(SUBSCRIBER.id)
        await watcher.refresh()
        self.assertEqual(list(await watcher.subscribers.match("order.created", None)), [])

    async def test_refresh_interval(self) -> None:
        """With a refresh_interval, another process's new subscriber is matched without an
        explicit refresh; a write made while a refresh reads is not lost."""
        watcher = await self.open(refresh_interval=0.05)
        await self.subscribers.add(SUBSCRIBER)
        for _ in range(100):
            if list(await watcher.subscribers.match("order.created", None)):
                break
            await deferLater(reactor(), 0.02, lambda: None)  # type: ignore[arg-type]
        self.assertEqual(
            list(await watcher.subscribers.match("order.created", None)), [SUBSCRIBER]
        )
        refreshing = watcher.refresh()
        await watcher.subscribers.add(OTHER)
        await refreshing
        self.assertEqual(list(await watcher.subscribers.match("user.created", None)), [OTHER])

    async def test_refresh_interval_positive(self) -> None:
        """A refresh_interval that is not positive is refused at once."""
        try:
            make_store(self.url(), reactor(), refresh_interval=0)
        except ValueError as error:
            self.assertIn("refresh_interval", str(error))
        else:
            raise AssertionError("refresh_interval=0 was accepted")

    async def test_not_on_reactor_thread(self) -> None:
        """Every interaction runs on a pool thread, never the reactor thread; one started
        on the reactor thread is refused."""
        seen: list[bool] = []
        original = self.store._interaction

        def spy(*args: Any, **kwargs: Any) -> Any:
            seen.append(threadable.isInIOThread())
            return original(*args, **kwargs)

        self.patch(self.store, "_interaction", spy)  # type: ignore[attr-defined]
        await self.put(delivery("a", 1.0))
        await self.claim(1.0)
        await self.deliveries.record([ok("a")])
        await self.subscribers.add(SUBSCRIBER)
        await self.deliveries.stats(1.0)
        self.assertTrue(seen)
        self.assertEqual(set(seen), {False})
        self.assertTrue(threadable.isInIOThread())
        try:
            original(None, False, lambda cursor: None)
        except RuntimeError as error:
            self.assertIn("reactor thread", str(error))
        else:
            raise AssertionError("an interaction ran on the reactor thread")

    async def test_migrations_fresh(self) -> None:
        """A new database is at the latest version with every step recorded once; migrating
        again applies nothing."""
        self.assertEqual(await self.store.schema_version(), LATEST_VERSION)
        rows = await self.run_sql(
            self.store, "SELECT version FROM schema_migrations ORDER BY version"
        )
        self.assertEqual([r[0] for r in rows], [m.version for m in MIGRATIONS])
        self.assertEqual(await self.store.migrate(), [])
        self.assertEqual(await self.store.schema_version(), LATEST_VERSION)

    async def test_migrations_newer_refused(self) -> None:
        """A database written by a newer version (a step this one does not know) is refused
        with SchemaError; opening without migrating refuses a database not up to date."""
        await self.run_sql(
            self.store,
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            LATEST_VERSION + 1,
            "from the future",
            0.0,
        )
        error = await self.assertFails(self.store.migrate(), SchemaError)
        self.assertIn("newer", str(error))
        await self.assertFails(open_store(self.url(), reactor(), migrate=False), StoreError)

    async def test_migrations_concurrent(self) -> None:
        """Two stores migrating one database at once apply each step once."""
        extra = Migration(
            LATEST_VERSION + 1,
            "a test table",
            ("CREATE TABLE test_extra (id INTEGER PRIMARY KEY, at {real})",),
        )
        steps = (*MIGRATIONS, extra)
        other = await self.open(**self.pool_options())
        assert isinstance(other, SQLStore)
        dialect = self.store.dialect

        def migrate(store: SQLStore) -> Deferred[list[int]]:
            return store._with_connection(lambda c: schema.migrate(c, dialect, steps))

        first, second = await gatherResults([migrate(self.store), migrate(other)])
        self.assertEqual(sorted(first + second), [extra.version])
        self.assertEqual(await self.store.schema_version(), extra.version)


class SQLiteStoreTests(SQLStoreTests, TestCase):
    """The store suite against :class:`SQLiteStore` on a temporary file."""

    async def setUp(self) -> None:
        self.path = self.scratch("store.db")
        await super().setUp()

    def scratch(self, name: str) -> str:
        """A path in a temporary directory removed after the test (after the store's own
        cleanups, which were registered later and run first)."""
        directory = tempfile.mkdtemp(prefix="twisted-hooks-store-")
        self.addCleanup(shutil.rmtree, directory, True)
        return os.path.join(directory, name)

    def url(self) -> str:
        """``sqlite:`` and the test's file."""
        return f"sqlite:{self.path}"

    async def test_wal_mode(self) -> None:
        """The file is in WAL mode with foreign keys on."""
        self.assertEqual(await self.run_sql(self.store, "PRAGMA journal_mode"), [("wal",)])
        self.assertEqual(await self.run_sql(self.store, "PRAGMA foreign_keys"), [(1,)])

    async def test_new_file_owner_only(self) -> None:
        """A new database file is created mode 0600 whatever the umask, and SQLite gives
        its -wal and -shm files the same mode; opening it logs no warning."""
        path = self.scratch("private.db")
        old_umask = os.umask(0)
        try:
            with capturedLogs() as events:
                store = await open_store(f"sqlite:{path}", reactor())
                self.addCleanup(store.close)
                await store.subscribers.add(SUBSCRIBER)
        finally:
            os.umask(old_umask)
        modes = {
            suffix: stat.S_IMODE(os.stat(path + suffix).st_mode) for suffix in ("", "-wal", "-shm")
        }
        self.assertEqual(modes, {"": 0o600, "-wal": 0o600, "-shm": 0o600})
        self.assertEqual([e for e in events if e.get("log_level") == LogLevel.warn], [])

    async def test_loose_file_warned(self) -> None:
        """Opening an existing file that group or others may read or write logs one
        warning naming the file, its mode and ``chmod 600 PATH``; the file is left as it
        is and the store works."""
        path = self.scratch("shared.db")
        sqlite3.connect(path).close()
        os.chmod(path, 0o664)
        with capturedLogs() as events:
            store = await open_store(f"sqlite:{path}", reactor())
            self.addCleanup(store.close)
        (warning,) = [e for e in events if e.get("log_level") == LogLevel.warn]
        text = formatEvent(warning)
        self.assertIn(f"{path} (mode 664)", text)
        self.assertTrue(text.endswith(f"chmod 600 {path}"), text)
        self.assertEqual(warning["path"], path)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o664)
        await store.subscribers.add(SUBSCRIBER)

    async def test_owner_only_file_not_warned(self) -> None:
        """An existing file of mode 0600 (or stricter) opens without a warning."""
        path = self.scratch("kept.db")
        sqlite3.connect(path).close()
        os.chmod(path, 0o400 | 0o200)
        with capturedLogs() as events:
            store = await open_store(f"sqlite:{path}", reactor())
            self.addCleanup(store.close)
        self.assertEqual([e for e in events if e.get("log_level") == LogLevel.warn], [])

    async def test_migrate_from_older_version(self) -> None:
        """A database at version 1 gets the later steps, and only those."""
        path = self.scratch("old.db")

        def old() -> None:
            connection = sqlite3.connect(path, isolation_level=None)
            try:
                self.assertEqual(schema.migrate(connection, "sqlite", MIGRATIONS[:1]), [1])
            finally:
                connection.close()

        await deferToThread(old)
        store = SQLiteStore(path, reactor())
        self.addCleanup(store.close)
        self.assertEqual(await store.migrate(), [m.version for m in MIGRATIONS[1:]])
        self.assertEqual(await store.schema_version(), LATEST_VERSION)

    async def test_missing_directory(self) -> None:
        """A file in a directory that does not exist fails with a StoreError naming the
        path and saying to create the directory."""
        path = os.path.join(os.path.abspath(self.mktemp()), "nope", "hooks.db")  # type: ignore[attr-defined]
        error = await self.assertFails(open_store(f"sqlite:{path}", reactor()), StoreError)
        self.assertIn(path, str(error))
        self.assertIn("does not exist", str(error))

    async def test_not_a_database(self) -> None:
        """A file that is not an SQLite database fails with a StoreError naming it."""
        path = os.path.abspath(self.mktemp())  # type: ignore[attr-defined]
        with open(path, "wb") as f:
            f.write(b"this is not a database, not at all" * 100)
        error = await self.assertFails(open_store(f"sqlite:{path}", reactor()), StoreError)
        self.assertIn(path, str(error))
        self.assertIn("not an SQLite database", str(error))

    async def test_urls(self) -> None:
        """sqlite: URLs take relative and absolute paths (also sqlite:///abs); an unknown
        scheme is refused with a ValueError naming the accepted forms."""
        relative = self.mktemp()  # type: ignore[attr-defined]
        os.makedirs(relative)
        store = make_store(f"sqlite:{relative}/a.db", reactor())
        self.addCleanup(store.close)
        self.assertEqual((type(store), store.path), (SQLiteStore, f"{relative}/a.db"))  # type: ignore[attr-defined]
        store = make_store(f"sqlite://{self.path}", reactor())
        self.addCleanup(store.close)
        self.assertEqual(store.path, self.path)  # type: ignore[attr-defined]
        store = make_store("postgres://u@h/db", reactor())
        self.addCleanup(store.close)
        self.assertIsInstance(store, PostgresStore)  # type: ignore[attr-defined]
        for bad in ("mysql://x", "sqlite:", "sqlite://host/x.db", "hooks.db"):
            try:
                make_store(bad, reactor())
            except ValueError as error:
                self.assertIn("sqlite:", str(error))
            else:
                raise AssertionError(f"{bad!r} was accepted")
        opened = await open_store(f"sqlite:{relative}/a.db", reactor())
        self.addCleanup(opened.close)
        self.assertTrue(os.path.exists(os.path.join(relative, "a.db")))


class PostgresStoreTests(SQLStoreTests, TestCase):
    """The store suite against :class:`PostgresStore`, each test in a schema of its own."""

    if POSTGRES_DSN is None:
        skip = NO_POSTGRES

    async def setUp(self) -> None:
        import psycopg
        from psycopg.conninfo import make_conninfo

        assert POSTGRES_DSN is not None
        self.schema = f"th_test_{uuid.uuid4().hex[:12]}"

        def create() -> None:
            with psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=5) as c:
                c.execute(f'CREATE SCHEMA "{self.schema}"')

        def drop() -> None:
            with psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=5) as c:
                c.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

        await deferToThread(create)
        # Cleanups run last-added first: the schema is dropped after every store closed.
        self.addCleanup(deferToThread, drop)
        self.dsn = make_conninfo(POSTGRES_DSN, options=f"-c search_path={self.schema}")
        await super().setUp()

    def url(self) -> str:
        """The server's DSN, with this test's schema as search path."""
        return self.dsn

    def pool_options(self) -> dict[str, Any]:
        """Two connections, so one store's claims overlap too."""
        return {"max_connections": 2}

    def unannounced_options(self) -> dict[str, Any]:
        """A store that does not LISTEN for other stores' notifications."""
        return {"listen": False}

    async def test_unreachable(self) -> None:
        """A server that cannot be reached fails with a StoreError naming host, port and
        database, never the password."""
        url = "postgresql://postgres:hunter2secret@127.0.0.1:1/nodb?connect_timeout=2"
        error = await self.assertFails(open_store(url, reactor()), StoreError)
        self.assertIn("127.0.0.1:1", str(error))
        self.assertIn("nodb", str(error))
        self.assertNotIn("hunter2secret", str(error))

    async def test_migrate_from_older_version(self) -> None:
        """A database at version 1 gets the later steps, and only those."""
        import psycopg

        self.schema2 = f"th_test_{uuid.uuid4().hex[:12]}"
        assert POSTGRES_DSN is not None
        from psycopg.conninfo import make_conninfo

        dsn = make_conninfo(POSTGRES_DSN, options=f"-c search_path={self.schema2}")

        def old() -> None:
            with psycopg.connect(POSTGRES_DSN, autocommit=True) as c:
                c.execute(f'CREATE SCHEMA "{self.schema2}"')
            with psycopg.connect(dsn) as c:
                self.assertEqual(schema.migrate(c, "postgresql", MIGRATIONS[:1]), [1])

        def drop() -> None:
            with psycopg.connect(POSTGRES_DSN, autocommit=True) as c:
                c.execute(f'DROP SCHEMA IF EXISTS "{self.schema2}" CASCADE')

        self.addCleanup(deferToThread, drop)
        await deferToThread(old)
        store = PostgresStore(dsn, reactor())
        self.addCleanup(store.close)
        self.assertEqual(await store.migrate(), [m.version for m in MIGRATIONS[1:]])
        self.assertEqual(await store.schema_version(), LATEST_VERSION)

    async def test_claimers_in_threads_skip_locked(self) -> None:
        """Claims that really overlap (many threads, many connections, a slow lease holder)
        never share a delivery: FOR UPDATE SKIP LOCKED."""
        count = 400
        await self.put(*(delivery(f"t{i:04d}", 0.0) for i in range(count)))
        stores = [await self.open(max_connections=4) for _ in range(2)]

        async def drain(store: Store) -> list[str]:
            got: list[str] = []
            while True:
                batch = await store.deliveries.claim(1.0, 7, 600.0)
                if not batch:
                    return got
                got.extend(d.id for d in batch)

        results = await gatherResults(
            [Deferred.fromCoroutine(drain(s)) for s in stores for _ in range(4)]
        )
        leftover = await self.claim(1.0, limit=count)
        every = [i for ids in results for i in ids] + leftover
        self.assertEqual(len(every), len(set(every)))
        self.assertEqual(len(every), count)


class MissingDriverTests(SynchronousTestCase):
    """A PostgreSQL URL without psycopg installed is a clear StoreError."""

    def test_psycopg_missing(self) -> None:
        """When psycopg cannot be imported, PostgresStore says what to install."""
        import builtins

        real_import = builtins.__import__

        def no_psycopg(name: str, *args: Any, **kwargs: Any) -> Any:
            if name == "psycopg" or name.startswith("psycopg."):
                raise ImportError(f"No module named {name!r}")
            return real_import(name, *args, **kwargs)

        self.patch(builtins, "__import__", no_psycopg)
        with self.assertRaises(StoreError) as caught:
            PostgresStore("postgresql://postgres@127.0.0.1/test")
        self.assertIn("pip install 'twisted_hooks[postgres]'", str(caught.exception))
