"""
Unit tests for :class:`twisted_hooks.webhooks.scheduler.Scheduler`.

The scheduler runs on a :class:`~twisted_hooks.webhooks.delivery.MemoryDeliveryStore`
and a :class:`~twisted.internet.task.Clock`; attempts are made by :class:`FakeAttempts`,
which answers each delivery as the test scripted it, either at once or through a
Deferred the test fires by hand.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from twisted_hooks.testing import HOLD, FakeSender, make_delivery
from twisted_hooks.webhooks.app import Hooks, Settings
from twisted_hooks.webhooks.delivery import (
    DEAD,
    DELIVERED,
    IN_FLIGHT,
    PENDING,
    RETRYING,
    Attempt,
    Delivery,
    DeliveryUpdate,
    ErrorKind,
    MemoryDeliveryStore,
)
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.scheduler import HoldBack, Scheduler

#: Two retries, 10 s and 20 s after a failure, without jitter.
TWO_RETRIES = RetryPolicy(delays=(10.0, 20.0), jitter=0.0)

#: What FakeAttempts answers: a success.
OK: dict[str, Any] = {"status_code": 200}
#: What FakeAttempts answers: a 500.
ERROR: dict[str, Any] = {
    "status_code": 500,
    "error_kind": ErrorKind.STATUS,
    "error_message": "500 Internal Server Error",
}
#: The scheduler's default record_delay: updates wait this long to share a record call.
RECORD_DELAY = 0.01


#: A pending delivery to :data:`~twisted_hooks.testing.EXAMPLE_SUBSCRIBER`, with two retries.
delivery = functools.partial(make_delivery, retry=TWO_RETRIES)


class FakeAttempts:
    """
    An attempt function: answers each delivery with the next scripted outcome for its id
    (``OK`` when nothing is scripted), an exception to raise, a :class:`HoldBack`, or
    ``HOLD``.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls: list[Delivery] = []
        self.script: dict[str, list[object]] = {}
        self.held: dict[str, list[Deferred[Attempt]]] = {}

    def make(self, delivery: Delivery, fields: dict[str, Any]) -> Attempt:
        """The attempt of ``delivery`` with ``fields``, numbered after the last."""
        return Attempt(
            delivery_id=delivery.id,
            number=delivery.attempts + 1,
            started_at=self.clock.seconds(),
            duration=0.0,
            **fields,
        )

    def __call__(self, delivery: Delivery) -> Deferred[Attempt | HoldBack]:
        self.calls.append(delivery)
        script = self.script.get(delivery.id)
        outcome = script.pop(0) if script else OK
        if outcome is HOLD:
            held: Deferred[Attempt] = Deferred()
            self.held.setdefault(delivery.id, []).append(held)
            return held  # type: ignore[return-value]
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, HoldBack):
            return succeed(outcome)
        assert isinstance(outcome, dict)
        return succeed(self.make(delivery, outcome))

    def finish(self, delivery_id: str, fields: dict[str, Any] = OK) -> None:
        """Fire the oldest held attempt of ``delivery_id`` with ``fields``."""
        held = self.held[delivery_id].pop(0)
        delivery = next(d for d in reversed(self.calls) if d.id == delivery_id)
        held.callback(self.make(delivery, fields))

    def ids(self) -> list[str]:
        """The ids attempted, in order."""
        return [d.id for d in self.calls]


class SchedulerTestCase(SynchronousTestCase):
    """Builds a scheduler on a memory store, a Clock and FakeAttempts."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = MemoryDeliveryStore()
        self.attempts = FakeAttempts(self.clock)
        self.updates: list[tuple[Delivery, DeliveryUpdate, str]] = []

    def on_update(self, delivery: Delivery, update: DeliveryUpdate) -> None:
        """Note each update with the status the store holds at that moment."""
        stored = self.successResultOf(self.store.get(delivery.id))
        self.updates.append((delivery, update, stored.status))

    def scheduler(self, *, start: bool = True, **kwargs: Any) -> Scheduler:
        """A scheduler over the test's store; started unless ``start`` is false."""
        kwargs.setdefault("rng", random.Random(0))
        scheduler = Scheduler(self.store, self.attempts, self.clock, self.on_update, **kwargs)
        if start:
            scheduler.startService()
            self.addCleanup(self.stop, scheduler)
        return scheduler

    def stop(self, scheduler: Scheduler) -> None:
        """Stop ``scheduler`` if it still runs."""
        if scheduler.running:
            scheduler.stopService()

    def enqueue(self, *deliveries: Delivery) -> None:
        """Put ``deliveries`` in the store."""
        self.successResultOf(self.store.enqueue(list(deliveries)))

    def status(self, delivery_id: str) -> str:
        """The stored status of ``delivery_id``."""
        return self.successResultOf(self.store.get(delivery_id)).status

    def advance_to(self, when: float) -> None:
        """Move the clock to exactly ``when``."""
        self.clock.advance(when - self.clock.seconds())
        self.assertEqual(self.clock.seconds(), when)

    def settle(self) -> None:
        """Let the waiting updates' batch be recorded (``record_delay`` passes)."""
        self.clock.advance(RECORD_DELAY)


class ConstructionTests(SchedulerTestCase):
    """Arguments are checked."""

    def test_bad_arguments(self) -> None:
        """max_in_flight and batch below 1, and a lease that is not positive, are
        refused with a ValueError naming them."""
        for kwargs, word in [
            ({"max_in_flight": 0}, "max_in_flight"),
            ({"batch": 0}, "batch"),
            ({"lease": 0.0}, "lease"),
            ({"lease": -1.0}, "lease"),
            ({"record_delay": -0.1}, "record_delay"),
        ]:
            with self.assertRaises(ValueError) as caught:
                self.scheduler(start=False, **kwargs)
            self.assertIn(word, str(caught.exception))

    def test_same_rules_as_settings(self) -> None:
        """Each argument is refused by the rule of the Settings field it takes, with the
        same message (``max_in_flight`` is Settings' ``max_concurrency``): a value
        Settings refuses, the scheduler refuses alike, above and below the range."""
        cases: list[tuple[str, str, object]] = [
            ("max_in_flight", "max_concurrency", 0),
            ("max_in_flight", "max_concurrency", 100_001),
            ("max_in_flight", "max_concurrency", 2.5),
            ("lease", "lease", 0),
            ("lease", "lease", 86_401.0),
            ("lease", "lease", float("nan")),
            ("batch", "batch", 0),
            ("batch", "batch", True),
            ("record_delay", "record_delay", -0.1),
            ("poll_interval", "poll_interval", 0.001),
            ("poll_interval", "poll_interval", 3601.0),
            ("poll_interval", "poll_interval", "1"),
        ]
        for argument, setting, value in cases:
            with self.assertRaises(ValueError) as by_settings:
                Settings(**{setting: value})  # type: ignore[arg-type]
            with self.assertRaises(ValueError) as by_scheduler:
                self.scheduler(start=False, **{argument: value})
            self.assertEqual(
                str(by_scheduler.exception),
                str(by_settings.exception).replace(setting, argument, 1),
            )
            self.assertIn(f"{argument} must be", str(by_scheduler.exception))

    def test_settings_range_is_accepted(self) -> None:
        """The ends of the Settings ranges are accepted by the scheduler too, and
        ``poll_interval=None`` still means no polling."""
        scheduler = self.scheduler(
            start=False,
            max_in_flight=100_000,
            lease=86_400.0,
            batch=1,
            record_delay=0,
            poll_interval=3600.0,
        )
        self.assertEqual((scheduler.max_in_flight, scheduler.lease), (100_000, 86_400.0))
        self.assertIsNone(self.scheduler(start=False, poll_interval=None).poll_interval)


class ClaimingTests(SchedulerTestCase):
    """What makes the scheduler claim."""

    def test_start_claims_due(self) -> None:
        """startService attempts the deliveries already due, and not those due later."""
        self.enqueue(delivery("a"), delivery("b"), delivery("later", 50.0))
        scheduler = self.scheduler(start=False)
        self.assertEqual(self.attempts.ids(), [])
        scheduler.startService()
        self.addCleanup(self.stop, scheduler)
        self.assertEqual(self.attempts.ids(), ["a", "b"])
        self.settle()
        self.assertEqual(self.status("a"), DELIVERED)
        self.assertEqual(self.status("later"), PENDING)

    def test_claimed_delivery_is_in_flight_during_attempt(self) -> None:
        """The attempt function gets the claimed delivery: in flight, under the lease."""
        self.attempts.script["a"] = [HOLD]
        self.enqueue(delivery("a"))
        self.clock.advance(5.0)
        scheduler = self.scheduler(lease=30.0)
        (claimed,) = self.attempts.calls
        self.assertEqual(claimed.status, IN_FLIGHT)
        self.assertEqual(claimed.lease_expires_at, 35.0)
        self.assertEqual(scheduler.in_flight, 1)

    def test_future_delivery_attempted_at_due_time(self) -> None:
        """A delivery due later is attempted by a timer exactly at its due time."""
        self.enqueue(delivery("later", 50.0))
        self.scheduler()
        self.clock.advance(49.9)
        self.assertEqual(self.attempts.ids(), [])
        self.advance_to(50.0)
        self.assertEqual(self.attempts.ids(), ["later"])

    def test_wake_after_enqueue(self) -> None:
        """A delivery enqueued while the scheduler runs is attempted on wake(), not
        before."""
        scheduler = self.scheduler()
        self.enqueue(delivery("a"))
        self.assertEqual(self.attempts.ids(), [])
        scheduler.wake()
        self.assertEqual(self.attempts.ids(), ["a"])

    def test_wake_earlier_than_timer(self) -> None:
        """An enqueued delivery due before the armed timer moves the timer earlier."""
        scheduler = self.scheduler()
        self.enqueue(delivery("late", 100.0))
        scheduler.wake()
        self.enqueue(delivery("early", 10.0))
        scheduler.wake()
        self.advance_to(10.0)
        self.assertEqual(self.attempts.ids(), ["early"])
        self.advance_to(100.0)
        self.assertEqual(self.attempts.ids(), ["early", "late"])

    def test_wake_when_stopped(self) -> None:
        """wake() on a scheduler that is not running claims nothing."""
        scheduler = self.scheduler(start=False)
        self.enqueue(delivery("a"))
        scheduler.wake()
        self.assertEqual(self.attempts.ids(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_batch(self) -> None:
        """Claims take at most ``batch`` deliveries at a time, and go on until none is
        due."""
        self.enqueue(*(delivery(str(i)) for i in range(5)))
        self.scheduler(batch=2)
        self.assertEqual(self.attempts.ids(), ["0", "1", "2", "3", "4"])

    def test_poll_interval(self) -> None:
        """poll_interval arms a timer even when nothing is due, so deliveries written by
        others (no wake) are found at the next poll."""
        self.scheduler(poll_interval=30.0)
        (call,) = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), 30.0)
        self.enqueue(delivery("a"))
        self.clock.advance(29.0)
        self.assertEqual(self.attempts.ids(), [])
        self.clock.advance(1.0)
        self.assertEqual(self.attempts.ids(), ["a"])
        self.settle()
        (call,) = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), 60.0)

    def test_no_timer_without_work(self) -> None:
        """Without poll_interval and with nothing due, no timer is armed."""
        self.scheduler()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_claim_failure_retried(self) -> None:
        """A store whose claim fails is logged and tried again a second later."""
        store = FlakyStore()
        self.store = store
        store.claim_failures = 1
        self.enqueue(delivery("a"))
        self.scheduler()
        self.assertEqual(len(self.flushLoggedErrors(ConnectionError)), 1)
        self.assertEqual(self.attempts.ids(), [])
        self.clock.advance(1.0)
        self.assertEqual(self.attempts.ids(), ["a"])


class FlakyStore(MemoryDeliveryStore):
    """A memory store whose claim and record fail as many times as asked."""

    claim_failures = 0
    record_failures = 0

    def claim(self, now: float, limit: int, lease: float) -> Deferred[Sequence[Delivery]]:
        if self.claim_failures:
            self.claim_failures -= 1
            return fail(ConnectionError("database went away"))
        return super().claim(now, limit, lease)

    def record(self, updates: Sequence[DeliveryUpdate]) -> Deferred[Sequence[DeliveryUpdate]]:
        if self.record_failures:
            self.record_failures -= 1
            return fail(ConnectionError("database went away"))
        return super().record(updates)


class ConcurrencyTests(SchedulerTestCase):
    """max_in_flight."""

    def test_max_in_flight(self) -> None:
        """No more than max_in_flight attempts are under way; each one that finishes
        (and whose outcome is recorded) pulls the next due delivery."""
        for name in "abcd":
            self.attempts.script[name] = [HOLD]
        self.enqueue(*(delivery(name) for name in "abcd"))
        scheduler = self.scheduler(max_in_flight=2)
        self.assertEqual(self.attempts.ids(), ["a", "b"])
        self.assertEqual(scheduler.in_flight, 2)
        self.assertEqual(self.status("c"), PENDING)
        self.attempts.finish("b")
        self.settle()
        self.assertEqual(self.attempts.ids(), ["a", "b", "c"])
        self.assertEqual(scheduler.in_flight, 2)
        self.attempts.finish("a")
        self.attempts.finish("c")
        self.settle()
        self.assertEqual(self.attempts.ids(), ["a", "b", "c", "d"])
        self.assertEqual(scheduler.in_flight, 1)
        self.attempts.finish("d")
        self.settle()
        self.assertEqual(scheduler.in_flight, 0)
        self.assertEqual([self.status(n) for n in "abcd"], [DELIVERED] * 4)

    def test_wait_in_flight(self) -> None:
        """wait_in_flight fires at once when idle, else when the last attempt under way
        has finished and its outcome has been recorded."""
        scheduler = self.scheduler()
        self.assertIsNone(self.successResultOf(scheduler.wait_in_flight()))
        self.attempts.script = {"a": [HOLD], "b": [HOLD]}
        self.enqueue(delivery("a"), delivery("b"))
        scheduler.wake()
        waiting = scheduler.wait_in_flight()
        self.attempts.finish("a")
        self.settle()
        self.assertNoResult(waiting)
        self.attempts.finish("b")
        self.assertNoResult(waiting)
        self.settle()
        self.assertIsNone(self.successResultOf(waiting))

    def test_own_attempt_not_repeated_on_lease_expiry(self) -> None:
        """A delivery this scheduler is still attempting is not attempted a second time
        when its lease runs out, and stays counted in flight until its attempt ends."""
        self.attempts.script["a"] = [HOLD]
        self.enqueue(delivery("a"))
        scheduler = self.scheduler(lease=10.0)
        self.clock.advance(10.0)
        self.clock.advance(10.0)
        self.assertEqual(self.attempts.ids(), ["a"])
        self.assertEqual(scheduler.in_flight, 1)
        stopped = scheduler.stopService()
        self.assertNoResult(stopped)
        self.attempts.finish("a")
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(self.status("a"), DELIVERED)


class RetryTests(SchedulerTestCase):
    """Failed attempts, retries and dead deliveries."""

    def test_retry_at_due_time_with_jitter(self) -> None:
        """A failed attempt is retried exactly at its due time, the delay spread by the
        jitter drawn from the scheduler's random source."""
        policy = RetryPolicy(delays=(10.0,), jitter=0.2)
        expected = 10.0 * random.Random(7).uniform(0.8, 1.2)
        self.assertNotEqual(expected, 10.0)
        self.attempts.script["a"] = [ERROR]
        self.enqueue(delivery("a", retry=policy))
        self.scheduler(rng=random.Random(7))
        self.settle()
        self.assertEqual(self.status("a"), RETRYING)
        stored = self.successResultOf(self.store.get("a"))
        self.assertEqual(stored.next_attempt_at, expected)
        self.advance_to(expected - 0.001)
        self.assertEqual(self.attempts.ids(), ["a"])
        self.advance_to(expected)
        self.assertEqual(self.attempts.ids(), ["a", "a"])
        self.assertEqual(self.attempts.calls[1].attempts, 1)
        self.settle()
        self.assertEqual(self.status("a"), DELIVERED)

    def test_dead_after_last_attempt(self) -> None:
        """After the last retry fails the delivery is dead, with every attempt recorded,
        and nothing more is scheduled."""
        self.attempts.script["a"] = [ERROR, ERROR, ERROR]
        self.enqueue(delivery("a"))
        self.scheduler()
        self.advance_to(10.0)
        self.settle()
        self.assertEqual(self.status("a"), RETRYING)
        self.advance_to(30.0)
        self.assertEqual(self.attempts.ids(), ["a", "a", "a"])
        self.settle()
        stored = self.successResultOf(self.store.get("a"))
        self.assertEqual((stored.status, stored.attempts), (DEAD, 3))
        numbers = [a.number for a in self.successResultOf(self.store.attempts("a"))]
        self.assertEqual(numbers, [1, 2, 3])
        self.assertEqual([u.status for _, u, _ in self.updates], [RETRYING, RETRYING, DEAD])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_permanent_failure_dead_at_once(self) -> None:
        """A 410 Gone ends the delivery at once, whatever retries are left."""
        self.attempts.script["a"] = [
            {"status_code": 410, "error_kind": ErrorKind.GONE, "error_message": "gone"}
        ]
        self.enqueue(delivery("a"))
        self.scheduler()
        self.settle()
        self.assertEqual(self.status("a"), DEAD)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_retry_after(self) -> None:
        """A Retry-After longer than the scheduled delay pushes the retry to it."""
        self.attempts.script["a"] = [
            {**ERROR, "status_code": 503, "retry_after": 120.0},
        ]
        self.enqueue(delivery("a"))
        self.scheduler()
        self.settle()
        update = self.updates[0][1]
        self.assertEqual(update.next_attempt_at, 120.0)
        self.advance_to(119.0)
        self.assertEqual(self.attempts.ids(), ["a"])
        self.advance_to(120.0)
        self.assertEqual(self.attempts.ids(), ["a", "a"])

    def test_retry_after_shorter_than_schedule(self) -> None:
        """A Retry-After shorter than the scheduled delay does not bring the retry
        earlier."""
        self.attempts.script["a"] = [{**ERROR, "status_code": 429, "retry_after": 1.0}]
        self.enqueue(delivery("a"))
        self.scheduler()
        self.settle()
        self.assertEqual(self.updates[0][1].next_attempt_at, 10.0)

    def test_attempt_raises(self) -> None:
        """An attempt function that raises is logged and recorded as an INTERNAL failure
        naming the exception, and the delivery is retried."""
        self.attempts.script["a"] = [RuntimeError("bug in the sender")]
        self.enqueue(delivery("a"))
        self.scheduler()
        self.settle()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        (recorded,) = self.successResultOf(self.store.attempts("a"))
        self.assertEqual(recorded.error_kind, ErrorKind.INTERNAL)
        self.assertEqual(recorded.error_message, "RuntimeError: bug in the sender")
        self.assertIsInstance(recorded.exception, RuntimeError)
        self.assertEqual(recorded.number, 1)
        self.assertEqual(self.status("a"), RETRYING)
        self.advance_to(10.0)
        self.settle()
        self.assertEqual(self.status("a"), DELIVERED)

    def test_attempt_fails_async(self) -> None:
        """An attempt whose Deferred fails is recorded as an INTERNAL failure too."""
        self.attempts.script["a"] = [HOLD]
        self.enqueue(delivery("a"))
        scheduler = self.scheduler()
        self.attempts.held["a"].pop().errback(ValueError("late bug"))
        self.settle()
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        (recorded,) = self.successResultOf(self.store.attempts("a"))
        self.assertEqual(recorded.error_kind, ErrorKind.INTERNAL)
        self.assertEqual(recorded.error_message, "ValueError: late bug")
        self.assertEqual(scheduler.in_flight, 0)

    def test_record_failure_retried_after_lease(self) -> None:
        """When the store cannot record an attempt, it is logged, the update is not
        announced, and the delivery is claimed again (same id) when its lease expires."""
        store = FlakyStore()
        self.store = store
        store.record_failures = 1
        self.enqueue(delivery("a"))
        scheduler = self.scheduler(lease=60.0)
        self.settle()
        self.assertEqual(len(self.flushLoggedErrors(ConnectionError)), 1)
        self.assertEqual(self.updates, [])
        self.assertEqual(scheduler.in_flight, 0)
        self.assertEqual(self.status("a"), IN_FLIGHT)
        self.advance_to(60.0)
        self.assertEqual(self.attempts.ids(), ["a", "a"])
        self.settle()
        self.assertEqual(self.status("a"), DELIVERED)


class UpdateHandlerTests(SchedulerTestCase):
    """on_update."""

    def test_called_after_record(self) -> None:
        """on_update gets the claimed delivery and each update, after the store has
        recorded it."""
        self.attempts.script["a"] = [ERROR, OK]
        self.enqueue(delivery("a"))
        self.scheduler()
        self.advance_to(10.0)
        self.settle()
        self.assertEqual(
            [(d.id, d.attempts, u.status, stored) for d, u, stored in self.updates],
            [("a", 0, RETRYING, RETRYING), ("a", 1, DELIVERED, DELIVERED)],
        )
        self.assertEqual([u.attempt.number for _, u, _ in self.updates], [1, 2])

    def test_failing_handler_logged(self) -> None:
        """An on_update that raises is logged with the delivery id and does not stop the
        scheduler: the next deliveries are attempted and announced."""
        calls: list[str] = []

        def on_update(delivery: Delivery, update: DeliveryUpdate) -> None:
            calls.append(delivery.id)
            raise ZeroDivisionError("handler bug")

        self.enqueue(delivery("a"), delivery("b"))
        scheduler = Scheduler(self.store, self.attempts, self.clock, on_update)
        with capturedLogs() as events:
            scheduler.startService()
            self.settle()
        self.addCleanup(self.stop, scheduler)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)
        self.assertEqual(calls, ["a", "b"])
        self.assertEqual([self.status("a"), self.status("b")], [DELIVERED, DELIVERED])
        failures = [e for e in events if e.get("log_level") == LogLevel.critical]
        self.assertEqual([e["delivery_id"] for e in failures], ["a", "b"])
        self.enqueue(delivery("c"))
        scheduler.wake()
        self.settle()
        self.assertEqual(calls, ["a", "b", "c"])
        self.flushLoggedErrors(ZeroDivisionError)

    def test_no_handler(self) -> None:
        """A scheduler without on_update works."""
        self.enqueue(delivery("a"))
        scheduler = Scheduler(self.store, self.attempts, self.clock)
        scheduler.startService()
        self.addCleanup(self.stop, scheduler)
        self.settle()
        self.assertEqual(self.status("a"), DELIVERED)


class StopTests(SchedulerTestCase):
    """stopService."""

    def test_stop_waits_for_in_flight(self) -> None:
        """stopService stops claiming, fires only once the attempts under way have finished
        and been recorded, and leaves the unclaimed deliveries in the store."""
        self.attempts.script["a"] = [HOLD]
        self.enqueue(delivery("a"), delivery("b"), delivery("c", 5.0))
        scheduler = self.scheduler(max_in_flight=1)
        stopped = scheduler.stopService()
        self.assertNoResult(stopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.attempts.finish("a")
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(self.status("a"), DELIVERED)
        self.assertEqual(self.attempts.ids(), ["a"])
        self.clock.advance(100.0)
        self.assertEqual(self.attempts.ids(), ["a"])
        self.assertEqual([self.status("b"), self.status("c")], [PENDING, PENDING])
        self.assertEqual(self.store.pending_count(), 2)

    def test_stop_idle(self) -> None:
        """stopService of an idle scheduler fires at once and cancels its timer."""
        self.enqueue(delivery("later", 50.0))
        scheduler = self.scheduler(poll_interval=10.0)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertIsNone(self.successResultOf(scheduler.stopService()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_failed_retry_while_stopping_not_rescheduled(self) -> None:
        """An attempt that fails while the scheduler stops is recorded as retrying, but no
        timer is armed for it."""
        self.attempts.script["a"] = [HOLD]
        self.enqueue(delivery("a"))
        scheduler = self.scheduler()
        stopped = scheduler.stopService()
        self.attempts.finish("a", ERROR)
        self.successResultOf(stopped)
        self.assertEqual(self.status("a"), RETRYING)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_restart(self) -> None:
        """A stopped scheduler started again attempts what was left in the store."""
        self.enqueue(delivery("a"))
        scheduler = self.scheduler(start=False)
        scheduler.startService()
        scheduler.stopService()
        self.enqueue(delivery("b"))
        scheduler.wake()
        self.assertEqual(self.attempts.ids(), ["a"])
        scheduler.startService()
        self.addCleanup(self.stop, scheduler)
        self.assertEqual(self.attempts.ids(), ["a", "b"])


class CountingStore(FlakyStore):
    """A flaky memory store that notes each record and release call."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[list[str]] = []
        self.releases: list[tuple[str, float]] = []
        self.release_failures = 0

    def record(self, updates: Sequence[DeliveryUpdate]) -> Deferred[Sequence[DeliveryUpdate]]:
        self.records.append([u.delivery_id for u in updates])
        return super().record(updates)

    def release(
        self, delivery_id: str, due_at: float, claim_token: int | None = None
    ) -> Deferred[None]:
        self.releases.append((delivery_id, due_at))
        if self.release_failures:
            self.release_failures -= 1
            return fail(ConnectionError("database went away"))
        return super().release(delivery_id, due_at, claim_token)


class CountingTestCase(SchedulerTestCase):
    """Runs on a CountingStore."""

    def setUp(self) -> None:
        super().setUp()
        self.store = self.counting = CountingStore()


class HoldBackTests(CountingTestCase):
    """An attempt function that holds a delivery back."""

    def test_released_not_attempted(self) -> None:
        """A HoldBack releases the delivery until its time: no attempt is recorded or
        counted, on_update is not called, its slot is free; it is claimed again at that
        time and its real attempt is number 1."""
        self.attempts.script["a"] = [HoldBack(5.0, "rate limit")]
        self.enqueue(delivery("a"))
        scheduler = self.scheduler()
        self.assertEqual(self.counting.releases, [("a", 5.0)])
        stored = self.successResultOf(self.store.get("a"))
        self.assertEqual(
            (stored.status, stored.attempts, stored.next_attempt_at), (PENDING, 0, 5.0)
        )
        self.assertEqual(scheduler.in_flight, 0)
        self.settle()
        self.assertEqual(self.counting.records, [])
        self.assertEqual(self.updates, [])
        self.assertEqual(self.successResultOf(self.store.attempts("a")), [])
        self.advance_to(4.9)
        self.assertEqual(self.attempts.ids(), ["a"])
        self.advance_to(5.0)
        self.assertEqual(self.attempts.ids(), ["a", "a"])
        self.settle()
        stored = self.successResultOf(self.store.get("a"))
        self.assertEqual((stored.status, stored.attempts), (DELIVERED, 1))

    def test_retrying_delivery_keeps_attempts(self) -> None:
        """A retry held back stays retrying with its attempts counted so far."""
        self.attempts.script["a"] = [ERROR, HoldBack(15.0, "circuit open")]
        self.enqueue(delivery("a"))
        self.scheduler()
        self.advance_to(10.0)
        stored = self.successResultOf(self.store.get("a"))
        self.assertEqual(
            (stored.status, stored.attempts, stored.next_attempt_at), (RETRYING, 1, 15.0)
        )
        self.advance_to(15.0)
        self.settle()
        self.assertEqual(self.status("a"), DELIVERED)
        self.assertEqual(
            [a.number for a in self.successResultOf(self.store.attempts("a"))], [1, 2]
        )

    def test_release_failure(self) -> None:
        """A release the store refuses is logged; the delivery is claimed again when its
        lease expires."""
        self.counting.release_failures = 1
        self.attempts.script["a"] = [HoldBack(5.0, "busy")]
        self.enqueue(delivery("a"))
        scheduler = self.scheduler(lease=30.0)
        self.assertEqual(len(self.flushLoggedErrors(ConnectionError)), 1)
        self.assertEqual(scheduler.in_flight, 0)
        self.assertEqual(self.status("a"), IN_FLIGHT)
        self.advance_to(30.0)
        self.assertEqual(self.attempts.ids(), ["a", "a"])
        self.settle()
        self.assertEqual(self.status("a"), DELIVERED)


class RecordBatchingTests(CountingTestCase):
    """Outcomes are written in batches."""

    def test_one_record_call(self) -> None:
        """Attempts finishing together are written with one record call after
        record_delay; until then they are in flight in the store, wait unrecorded in the
        scheduler (their slots already free), and on_update is not called."""
        self.enqueue(*(delivery(name) for name in "abc"))
        scheduler = self.scheduler()
        self.assertEqual(self.attempts.ids(), ["a", "b", "c"])
        self.assertEqual(self.counting.records, [])
        self.assertEqual([self.status(n) for n in "abc"], [IN_FLIGHT] * 3)
        self.assertEqual((scheduler.in_flight, scheduler.unrecorded), (0, 3))
        self.assertEqual(self.updates, [])
        self.clock.advance(RECORD_DELAY / 2)
        self.assertEqual(self.counting.records, [])
        self.clock.advance(RECORD_DELAY / 2)
        self.assertEqual(self.counting.records, [["a", "b", "c"]])
        self.assertEqual([(d.id, s) for d, _, s in self.updates], [(n, DELIVERED) for n in "abc"])
        self.assertEqual((scheduler.in_flight, scheduler.unrecorded), (0, 0))

    def test_full_batch_written_at_once(self) -> None:
        """As soon as ``batch`` outcomes wait they are written, without waiting for the
        timer; the rest wait for theirs."""
        self.attempts.script = {name: [HOLD] for name in "abc"}
        self.enqueue(*(delivery(name) for name in "abc"))
        self.scheduler(batch=2)
        self.attempts.finish("a")
        self.assertEqual(self.counting.records, [])
        self.attempts.finish("b")
        self.assertEqual(self.counting.records, [["a", "b"]])
        self.attempts.finish("c")
        self.assertEqual(self.counting.records, [["a", "b"]])
        self.settle()
        self.assertEqual(self.counting.records, [["a", "b"], ["c"]])

    def test_timer_from_first_outcome(self) -> None:
        """record_delay counts from the first waiting outcome, not the last."""
        self.attempts.script = {"a": [HOLD], "b": [HOLD]}
        self.enqueue(delivery("a"), delivery("b"))
        self.scheduler(record_delay=1.0)
        self.attempts.finish("a")
        self.clock.advance(0.6)
        self.attempts.finish("b")
        self.clock.advance(0.4)
        self.assertEqual(self.counting.records, [["a", "b"]])

    def test_zero_delay(self) -> None:
        """record_delay=0 writes each outcome at once."""
        self.enqueue(delivery("a"), delivery("b"))
        self.scheduler(record_delay=0.0)
        self.assertEqual(self.counting.records, [["a"], ["b"]])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_slot_freed_when_attempt_ends(self) -> None:
        """
        A delivery's slot is freed when its attempt ends, not when its outcome is
        written: with max_in_flight=1 the next delivery is attempted before the first
        one's record, and the first is not attempted again meanwhile.
        """
        self.attempts.script = {"a": [HOLD]}
        self.enqueue(delivery("a"), delivery("b"))
        scheduler = self.scheduler(max_in_flight=1)
        self.assertEqual(self.attempts.ids(), ["a"])
        self.assertEqual(scheduler.in_flight, 1)
        self.attempts.finish("a")
        self.assertEqual(self.attempts.ids(), ["a", "b"])
        self.assertEqual(self.counting.records, [])
        self.settle()
        self.assertEqual(self.counting.records, [["a", "b"]])
        self.assertEqual(self.attempts.ids(), ["a", "b"])

    def test_not_claimed_while_unwritten(self) -> None:
        """A delivery whose lease runs out while its outcome waits to be written is not
        attempted again."""
        self.enqueue(delivery("a"))
        self.scheduler(lease=0.004)
        self.clock.advance(0.005)
        self.assertEqual(self.attempts.ids(), ["a"])
        self.clock.advance(0.005)
        self.assertEqual(self.attempts.ids(), ["a"])
        self.assertEqual(self.status("a"), DELIVERED)

    def test_failing_record(self) -> None:
        """A batch the store cannot write is logged once, naming its deliveries; they are
        not announced, their slots are freed, and they are claimed again (same ids) when
        their leases expire, then delivered."""
        self.counting.record_failures = 1
        self.enqueue(delivery("a"), delivery("b"))
        with capturedLogs() as events:
            scheduler = self.scheduler(lease=30.0)
            self.settle()
        self.assertEqual(len(self.flushLoggedErrors(ConnectionError)), 1)
        (logged,) = [e for e in events if e.get("log_level") == LogLevel.critical]
        self.assertEqual(logged["delivery_ids"], "a, b")
        self.assertEqual(self.updates, [])
        self.assertEqual(scheduler.in_flight, 0)
        self.assertEqual([self.status("a"), self.status("b")], [IN_FLIGHT, IN_FLIGHT])
        self.advance_to(30.0)
        self.assertEqual(self.attempts.ids(), ["a", "b", "a", "b"])
        self.settle()
        self.assertEqual([self.status("a"), self.status("b")], [DELIVERED, DELIVERED])
        self.assertEqual(self.counting.records, [["a", "b"], ["a", "b"]])

    def test_record_raising(self) -> None:
        """A store whose record raises instead of failing its Deferred is handled the
        same way."""

        def broken(updates: Sequence[DeliveryUpdate]) -> Deferred[None]:
            raise RuntimeError("bug in the store")

        self.counting.record = broken  # type: ignore[method-assign]
        self.enqueue(delivery("a"))
        scheduler = self.scheduler()
        self.settle()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(scheduler.in_flight, 0)
        self.assertEqual(self.status("a"), IN_FLIGHT)


class StopFlushTests(CountingTestCase):
    """stopService and the waiting batch."""

    def test_stop_flushes(self) -> None:
        """stopService writes the waiting outcomes at once, announces them, and fires
        once they are written; no timer is left."""
        self.enqueue(delivery("a"), delivery("b"))
        scheduler = self.scheduler(record_delay=5.0)
        self.assertEqual(self.counting.records, [])
        stopped = scheduler.stopService()
        self.assertEqual(self.counting.records, [["a", "b"]])
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual([d.id for d, _, _ in self.updates], ["a", "b"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_outcome_after_stop_written_at_once(self) -> None:
        """An attempt finishing after stopService is written at once (no batch delay), so
        the stop is not held up."""
        self.attempts.script["a"] = [HOLD]
        self.enqueue(delivery("a"))
        scheduler = self.scheduler(record_delay=5.0)
        stopped = scheduler.stopService()
        self.assertNoResult(stopped)
        self.attempts.finish("a")
        self.assertEqual(self.counting.records, [["a"]])
        self.assertIsNone(self.successResultOf(stopped))


class AbandonTests(CountingTestCase):
    """abandon: a shutdown deadline passed; what is under way is left to its lease."""

    def test_abandoned_attempts_are_not_recorded(self) -> None:
        """
        After stopService and abandon, the stop's Deferred fires at once; an attempt that
        ends later is not recorded (its delivery stays in flight under its lease) and
        nothing is logged as an error.
        """
        self.attempts.script = {"a": [HOLD]}
        self.enqueue(delivery("a"))
        scheduler = self.scheduler()
        stopped = scheduler.stopService()
        self.assertNoResult(stopped)
        scheduler.abandon()
        self.successResultOf(stopped)
        self.attempts.finish("a")
        self.settle()
        self.assertEqual(self.counting.records, [])
        self.assertEqual(self.status("a"), IN_FLIGHT)
        self.assertEqual(scheduler.in_flight, 0)
        self.assertEqual(self.flushLoggedErrors(), [])


class TokenStore(CountingStore):
    """A counting store that also notes the claim token of each release and record, and
    whose next claims or records can be held back until the test fires them."""

    def __init__(self) -> None:
        super().__init__()
        self.release_tokens: list[int | None] = []
        self.record_tokens: list[list[int | None]] = []
        self.hold_claims = 0
        self.hold_records = 0
        self.held: list[Deferred[None]] = []

    def release(
        self, delivery_id: str, due_at: float, claim_token: int | None = None
    ) -> Deferred[None]:
        self.release_tokens.append(claim_token)
        return super().release(delivery_id, due_at, claim_token)

    def record(self, updates: Sequence[DeliveryUpdate]) -> Deferred[Sequence[DeliveryUpdate]]:
        self.record_tokens.append([u.claim_token for u in updates])
        if not self.hold_records:
            return super().record(updates)
        self.hold_records -= 1
        gate: Deferred[None] = Deferred()
        self.held.append(gate)
        # The write happens when the test lets it.
        return gate.addCallback(lambda _: MemoryDeliveryStore.record(self, updates))

    def claim(self, now: float, limit: int, lease: float) -> Deferred[Sequence[Delivery]]:
        if not self.hold_claims:
            return super().claim(now, limit, lease)
        self.hold_claims -= 1
        gate: Deferred[None] = Deferred()
        self.held.append(gate)
        # The claim happens when the test lets it, at the time given now.
        return gate.addCallback(lambda _: MemoryDeliveryStore.claim(self, now, limit, lease))

    def go(self) -> None:
        """Let the oldest held claim or record happen."""
        self.held.pop(0).callback(None)


class FencingTests(SchedulerTestCase):
    """Updates and releases carry the claim token; a superseded outcome is not news."""

    def setUp(self) -> None:
        super().setUp()
        self.store = self.tokens = TokenStore()

    def test_update_and_release_carry_the_claim_token(self) -> None:
        """The outcome of an attempt is written with the token of the claim it was made
        under, and so is a release (HoldBack)."""
        self.attempts.script["b"] = [HoldBack(5.0, "busy")]
        self.enqueue(delivery("a"), delivery("b"))
        self.scheduler()
        self.settle()
        self.assertEqual(self.tokens.record_tokens, [[1]])
        self.assertEqual(self.tokens.release_tokens, [1])
        self.advance_to(5.0)
        self.settle()
        self.assertEqual(self.tokens.record_tokens, [[1], [2]])
        self.assertEqual([self.status("a"), self.status("b")], [DELIVERED, DELIVERED])

    def test_own_claim_renewed_while_attempting(self) -> None:
        """When this scheduler claims again a delivery it is still attempting (its lease
        ran out), the attempt is not repeated and its outcome is written under the newer
        claim, so the store takes it."""
        self.attempts.script["a"] = [HOLD]
        self.enqueue(delivery("a"))
        self.scheduler(lease=10.0)
        self.advance_to(10.0)
        self.assertEqual(self.successResultOf(self.store.get("a")).claim_token, 2)
        self.attempts.finish("a")
        self.settle()
        self.assertEqual(self.attempts.ids(), ["a"])
        self.assertEqual(self.tokens.record_tokens, [[2]])
        self.assertEqual(self.status("a"), DELIVERED)
        self.assertEqual([u.claim_token for _, u, _ in self.updates], [2])

    def test_claimed_again_by_another_while_attempting(self) -> None:
        """Another claimer takes the delivery once this scheduler's lease has expired,
        and records a success; this scheduler's late failure is dropped by the store,
        logged, and not handed to on_update; the delivery stays delivered."""
        self.attempts.script["a"] = [HOLD]
        self.enqueue(delivery("a"))
        self.scheduler(lease=10.0, poll_interval=None)
        self.clock.advance(0.5)
        (other,) = self.successResultOf(MemoryDeliveryStore.claim(self.store, 10.5, 1, 10.0))
        self.assertEqual(other.claim_token, 2)
        self.successResultOf(
            MemoryDeliveryStore.record(
                self.store,
                [DeliveryUpdate("a", DELIVERED, self.attempts.make(other, OK), claim_token=2)],
            )
        )
        with capturedLogs() as events:
            self.attempts.finish("a", ERROR)
            self.settle()
        self.assertEqual(self.tokens.record_tokens, [[1]])
        self.assertEqual(self.updates, [])
        self.assertEqual(self.status("a"), DELIVERED)
        stale = [e for e in events if e.get("log_level") == LogLevel.warn]
        self.assertEqual([e["delivery_id"] for e in stale], ["a"])
        self.assertEqual(
            [a.status_code for a in self.successResultOf(self.store.attempts("a"))], [200]
        )

    def test_claimed_again_by_itself_while_recording(self) -> None:
        """This scheduler claims a delivery again while its outcome is being written
        (the lease ran out meanwhile): the store drops the write made under the old
        claim, the scheduler writes it once more under the new one, announces it once,
        and does not attempt the delivery again."""
        self.tokens.hold_records = 1
        self.enqueue(delivery("a"))
        scheduler = self.scheduler(lease=1.0, record_delay=0.0)
        self.assertEqual(self.tokens.record_tokens, [[1]])
        self.advance_to(1.0)  # the lease expires while the write is held: claimed again
        self.assertEqual(self.successResultOf(self.store.get("a")).claim_token, 2)
        with capturedLogs():
            self.tokens.go()
        self.assertEqual(self.tokens.record_tokens, [[1], [2]])
        self.assertEqual(self.status("a"), DELIVERED)
        self.assertEqual(self.attempts.ids(), ["a"])
        self.assertEqual([(d.id, s) for d, _, s in self.updates], [("a", DELIVERED)])
        self.assertEqual((scheduler.in_flight, scheduler.unrecorded), (0, 0))

    def test_store_without_tokens(self) -> None:
        """A store that does not fence (claimed deliveries without a token, record firing
        None) works as before: releases are made without a token argument."""

        releases: list[tuple[str, float]] = []

        class Unfenced(MemoryDeliveryStore):
            def claim(self, now: float, limit: int, lease: float) -> Deferred[Sequence[Delivery]]:
                claimed = super().claim(now, limit, lease)
                return claimed.addCallback(
                    lambda found: [attrs.evolve(d, claim_token=None) for d in found]
                )

            def record(self, updates: Sequence[DeliveryUpdate]) -> Deferred[None]:  # type: ignore[override]
                super().record(updates)
                return succeed(None)

            def release(self, delivery_id: str, due_at: float) -> Deferred[None]:  # type: ignore[override]
                releases.append((delivery_id, due_at))
                return super().release(delivery_id, due_at)

        self.store = Unfenced()
        self.attempts.script["b"] = [HoldBack(3.0, "busy")]
        self.enqueue(delivery("a"), delivery("b"))
        self.scheduler()
        self.settle()
        self.advance_to(3.0)
        self.settle()
        self.assertEqual(releases, [("b", 3.0)])
        self.assertEqual([self.status("a"), self.status("b")], [DELIVERED, DELIVERED])
        self.assertEqual([d.id for d, _, _ in self.updates], ["a", "b"])


class StopGivesBackTests(SchedulerTestCase):
    """Deliveries claimed but not attempted when the scheduler stops go back at once."""

    def setUp(self) -> None:
        super().setUp()
        self.store = self.tokens = TokenStore()

    def test_claim_returning_after_stop(self) -> None:
        """A claim under way when the scheduler stops: what it returns is given back at
        once (due when it was, under its claim), never attempted, and the stop fires only
        once those releases are written."""
        self.enqueue(delivery("a", 0.0), delivery("b", 0.5))
        self.tokens.hold_claims = 1
        self.clock.advance(1.0)
        scheduler = self.scheduler()
        stopped = scheduler.stopService()
        self.assertNoResult(stopped)
        self.tokens.go()
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(self.attempts.ids(), [])
        self.assertEqual(self.tokens.releases, [("a", 0.0), ("b", 0.5)])
        self.assertEqual(self.tokens.release_tokens, [1, 1])
        stored = [self.successResultOf(self.store.get(name)) for name in "ab"]
        self.assertEqual(
            [(d.status, d.next_attempt_at, d.lease_expires_at) for d in stored],
            [(PENDING, 0.0, None), (PENDING, 0.5, None)],
        )
        self.assertEqual(scheduler.unrecorded, 0)

    def test_stop_while_claim_fails(self) -> None:
        """A claim under way that fails after the stop lets the stop fire, without a
        retry timer."""
        self.enqueue(delivery("a"))
        self.tokens.hold_claims = 1
        scheduler = self.scheduler()
        stopped = scheduler.stopService()
        self.assertNoResult(stopped)
        self.tokens.held.pop(0).errback(ConnectionError("database went away"))
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(len(self.flushLoggedErrors(ConnectionError)), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.status("a"), PENDING)


class HooksStopTests(SynchronousTestCase):
    """:class:`Hooks` stopping: deliveries waiting for a host's slot are given back."""

    def test_waiting_for_a_host_slot_given_back(self) -> None:
        """With max_per_host=1 and one attempt held open, the other claimed deliveries
        to that host wait for its slot; stopService gives them back to the store at once
        (pending, due when they were, not leased), while the stop waits for the attempt
        under way, whose outcome is recorded; no other attempt is made."""
        clock = Clock()
        clock.advance(1000.0)
        sender = FakeSender(clock, default=HOLD)

        store = MemoryDeliveryStore()
        hooks = Hooks(
            clock,
            settings=Settings(max_per_host=1, lease=120.0, record_delay=0.0),
            deliveries=store,
            sender=sender,
            rng=random.Random(0),
        )
        hooks.startService()
        self.successResultOf(hooks.subscribe("order.*", "https://example.com/hook"))
        sent = [
            self.successResultOf(hooks.send("order.paid", {"n": n})).deliveries[0].id
            for n in range(3)
        ]
        clock.advance(1.0)
        self.assertEqual([h.delivery.id for h in sender.held], sent[:1])
        statuses = [self.successResultOf(store.get(i)).status for i in sent]
        self.assertEqual(statuses, [IN_FLIGHT] * 3)

        stopped = hooks.stopService()
        waiting = [self.successResultOf(store.get(i)) for i in sent[1:]]
        self.assertEqual(
            [(d.status, d.next_attempt_at, d.lease_expires_at) for d in waiting],
            [(PENDING, 1000.0, None)] * 2,
        )
        self.assertNoResult(stopped)
        sender.finish(200)
        self.successResultOf(stopped)
        self.assertEqual(self.successResultOf(store.get(sent[0])).status, DELIVERED)
        self.assertEqual(sender.held, [])
        self.assertEqual(clock.getDelayedCalls(), [])
