"""
Unit tests for :mod:`twisted_hooks.webhooks.health`: the per-endpoint gate (concurrency
caps, token-bucket rate limits, circuit breakers), automatic disabling and the persistence
of health records through :class:`~twisted_hooks.testing.MemoryHealthStore`, the
:class:`~twisted_hooks.interfaces.IHealthStore` of :mod:`twisted_hooks.testing`.

Time is a :class:`~twisted.internet.task.Clock`; ``admit`` and ``observe`` are given its
time explicitly.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_hooks.testing import MemoryHealthStore
from twisted_hooks.webhooks.delivery import Attempt, ErrorKind
from twisted_hooks.webhooks.health import (
    CLOSED,
    COUNTED_FAILURES,
    DISABLED,
    HALF_OPEN,
    OPEN,
    OPENED,
    RECOVERED,
    EndpointHealth,
    EndpointHealthTracker,
)
from twisted_hooks.webhooks.subscribers import MIN_RATE_LIMIT, Subscriber

ENDPOINT = Subscriber(event="*", url="https://example.com/hook", secret="s3cret")


def failure(kind: str = ErrorKind.STATUS, message: str = "500 Internal Server Error") -> Attempt:
    """A failed attempt of kind ``kind``."""
    return Attempt("d", 1, 0.0, 0.0, error_kind=kind, error_message=message)


SUCCESS = Attempt("d", 1, 0.0, 0.0, status_code=200)


class HealthTestCase(SynchronousTestCase):
    """A tracker on a Clock, with the default thresholds unless a test says otherwise."""

    def setUp(self) -> None:
        self.clock = Clock()

    def tracker(
        self, store: MemoryHealthStore | None = None, **kwargs: Any
    ) -> EndpointHealthTracker:
        """A started tracker (stopped at cleanup)."""
        tracker = EndpointHealthTracker(self.clock, store, **kwargs)
        tracker.startService()
        self.addCleanup(lambda: tracker.running and tracker.stopService())
        return tracker

    def fail_times(
        self, tracker: EndpointHealthTracker, count: int, every: float = 0.0, **fields: Any
    ) -> list[Any]:
        """Observe ``count`` failures ``every`` seconds apart; the events they produced."""
        events: list[Any] = []
        for _ in range(count):
            events += tracker.observe(ENDPOINT, failure(**fields), self.clock.seconds())
            self.clock.advance(every)
        return events


class ConstructionTests(HealthTestCase):
    """Arguments are checked."""

    def test_bad_arguments(self) -> None:
        """Thresholds below 1 and durations that are not positive are refused, naming the
        argument."""
        for kwargs, word in [
            ({"circuit_failures": 0}, "circuit_failures"),
            ({"disable_failures": 0}, "disable_failures"),
            ({"circuit_cooldown": 0.0}, "circuit_cooldown"),
            ({"busy_retry": -1.0}, "busy_retry"),
            ({"probe_timeout": 0.0}, "probe_timeout"),
            ({"disable_period": -1.0}, "disable_period"),
            ({"save_delay": -1.0}, "save_delay"),
        ]:
            with self.assertRaises(ValueError) as caught:
                EndpointHealthTracker(self.clock, **kwargs)
            self.assertIn(word, str(caught.exception))


class AdmitTests(HealthTestCase):
    """Concurrency caps and rate limits."""

    def test_unlimited(self) -> None:
        """An endpoint without limits and with a closed circuit always goes; its slots are
        still counted and freed."""
        tracker = self.tracker()
        for _ in range(100):
            self.assertIsNone(tracker.admit(ENDPOINT, 0.0))
        self.assertEqual(tracker.in_use(ENDPOINT.id), 100)
        tracker.finished(ENDPOINT.id)
        self.assertEqual(tracker.in_use(ENDPOINT.id), 99)

    def test_finished_unknown_endpoint(self) -> None:
        """finished() of an endpoint never admitted, or with no slot taken, does
        nothing."""
        tracker = self.tracker()
        tracker.finished("nobody")
        self.assertEqual(tracker.in_use("nobody"), 0)
        self.assertIsNone(tracker.admit(ENDPOINT, 0.0))
        tracker.finished(ENDPOINT.id)
        tracker.finished(ENDPOINT.id)
        self.assertEqual(tracker.in_use(ENDPOINT.id), 0)

    def test_concurrency_cap(self) -> None:
        """With max_concurrency=2 a third attempt is held for busy_retry, and goes once a
        slot is freed."""
        tracker = self.tracker(busy_retry=0.5)
        capped = attrs.evolve(ENDPOINT, max_concurrency=2)
        self.assertIsNone(tracker.admit(capped, 10.0))
        self.assertIsNone(tracker.admit(capped, 10.0))
        self.assertEqual(tracker.admit(capped, 10.0), 10.5)
        self.assertIn("cap", tracker.hold_reason(capped.id))
        tracker.finished(capped.id)
        self.assertIsNone(tracker.admit(capped, 10.1))
        self.assertEqual(tracker.in_use(capped.id), 2)

    def test_token_bucket(self) -> None:
        """rate_limit=2: two attempts go at once (a full bucket), the third is held until
        a token has refilled (+0.5 s), the fourth queues one token later; the bucket refills
        continuously up to its capacity."""
        tracker = self.tracker()
        limited = attrs.evolve(ENDPOINT, rate_limit=2.0)
        self.assertIsNone(tracker.admit(limited, 0.0))
        self.assertIsNone(tracker.admit(limited, 0.0))
        self.assertEqual(tracker.admit(limited, 0.0), 0.5)
        self.assertIn("rate limit", tracker.hold_reason(limited.id))
        self.assertEqual(tracker.admit(limited, 0.0), 1.0)
        self.assertEqual(tracker.admit(limited, 0.25), 1.5)
        self.assertIsNone(tracker.admit(limited, 0.5))
        self.assertIsNone(tracker.admit(limited, 1.0))
        # A long pause refills the bucket to its capacity of two, not more.
        self.assertIsNone(tracker.admit(limited, 100.0))
        self.assertIsNone(tracker.admit(limited, 100.0))
        self.assertIsNotNone(tracker.admit(limited, 100.0))

    def test_slow_rate(self) -> None:
        """A rate below one per second has a bucket of one token: one attempt goes, the
        next when a whole token has refilled."""
        tracker = self.tracker()
        slow = attrs.evolve(ENDPOINT, rate_limit=0.5)
        self.assertIsNone(tracker.admit(slow, 0.0))
        self.assertEqual(tracker.admit(slow, 0.0), 2.0)
        self.assertIsNone(tracker.admit(slow, 2.0))

    def test_rate_below_the_range(self) -> None:
        """A rate limit below MIN_RATE_LIMIT (stored by an older version) is taken as
        MIN_RATE_LIMIT: the held attempt comes back 1 / MIN_RATE_LIMIT seconds later, not
        1e300 seconds later."""
        tracker = self.tracker()
        tiny = attrs.evolve(ENDPOINT, rate_limit=1e-300)
        self.assertIsNone(tracker.admit(tiny, 0.0))
        self.assertEqual(tracker.admit(tiny, 0.0), 1 / MIN_RATE_LIMIT)

    def test_cap_before_token(self) -> None:
        """An attempt held by the concurrency cap does not spend a rate-limit token."""
        tracker = self.tracker()
        both = attrs.evolve(ENDPOINT, max_concurrency=1, rate_limit=2.0)
        self.assertIsNone(tracker.admit(both, 0.0))
        self.assertEqual(tracker.admit(both, 0.0), 1.0)  # busy_retry
        tracker.finished(both.id)
        self.assertIsNone(tracker.admit(both, 0.0))


class CircuitTests(HealthTestCase):
    """The circuit breaker."""

    def test_opens_after_consecutive_failures(self) -> None:
        """Four failures leave the circuit closed; the fifth opens it (an OPENED event) and
        attempts are held until the cool-down ends."""
        tracker = self.tracker()
        self.assertEqual(self.fail_times(tracker, 4), [])
        self.assertEqual(tracker.health(ENDPOINT.id).circuit, CLOSED)
        self.assertIsNone(tracker.admit(ENDPOINT, 0.0))
        tracker.finished(ENDPOINT.id)
        self.clock.advance(2.0)
        (event,) = self.fail_times(tracker, 1)
        self.assertEqual(event.kind, OPENED)
        self.assertIn("5 failed attempt(s)", event.reason)
        health = tracker.health(ENDPOINT.id)
        self.assertEqual((health.circuit, health.opened_at), (OPEN, 2.0))
        self.assertEqual(health.consecutive_failures, 5)
        self.assertEqual(tracker.admit(ENDPOINT, 2.0), 32.0)
        self.assertEqual(tracker.admit(ENDPOINT, 31.9), 32.0)
        self.assertIn("open", tracker.hold_reason(ENDPOINT.id))
        self.assertEqual(tracker.in_use(ENDPOINT.id), 0)

    def test_success_resets_streak(self) -> None:
        """A success between failures starts the count again."""
        tracker = self.tracker()
        self.fail_times(tracker, 4)
        self.assertEqual(tracker.observe(ENDPOINT, SUCCESS, 0.0), [])
        self.assertEqual(tracker.health(ENDPOINT.id).consecutive_failures, 0)
        self.assertEqual(self.fail_times(tracker, 4), [])
        self.assertEqual(tracker.health(ENDPOINT.id).circuit, CLOSED)

    def test_uncounted_failures(self) -> None:
        """Refused recipients, vanished subscribers, our own bugs and 410 Gone say nothing
        about the endpoint's health: they never open the circuit."""
        tracker = self.tracker()
        for kind in (ErrorKind.SECURITY, ErrorKind.SUBSCRIBER, ErrorKind.INTERNAL, ErrorKind.GONE):
            self.assertNotIn(kind, COUNTED_FAILURES)
            self.assertEqual(self.fail_times(tracker, 10, kind=kind), [])
        self.assertEqual(tracker.health(ENDPOINT.id).consecutive_failures, 0)
        for kind in (ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.DNS, ErrorKind.REDIRECT):
            self.assertIn(kind, COUNTED_FAILURES)

    def test_one_probe_when_half_open(self) -> None:
        """After the cool-down one probe goes (half-open) while the others are held; its
        success closes the circuit with a RECOVERED event, and attempts flow again."""
        tracker = self.tracker(busy_retry=2.0)
        self.fail_times(tracker, 5)
        self.assertIsNone(tracker.admit(ENDPOINT, 30.0))
        self.assertEqual(tracker.health(ENDPOINT.id).circuit, HALF_OPEN)
        self.assertEqual(tracker.admit(ENDPOINT, 30.0), 32.0)
        self.assertIn("probe", tracker.hold_reason(ENDPOINT.id))
        self.assertEqual(tracker.admit(ENDPOINT, 31.0), 33.0)
        tracker.finished(ENDPOINT.id)
        (event,) = tracker.observe(ENDPOINT, SUCCESS, 31.5)
        self.assertEqual(event.kind, RECOVERED)
        self.assertEqual(event.health, EndpointHealth(ENDPOINT.id, updated_at=31.5))
        self.assertIn("closed", event.reason)
        self.assertIsNone(tracker.admit(ENDPOINT, 31.5))
        self.assertIsNone(tracker.admit(ENDPOINT, 31.5))

    def test_probe_failure_reopens(self) -> None:
        """A failed probe opens the circuit again at once (an OPENED event) for another
        cool-down."""
        tracker = self.tracker()
        self.fail_times(tracker, 5)
        self.assertIsNone(tracker.admit(ENDPOINT, 30.0))
        tracker.finished(ENDPOINT.id)
        (event,) = tracker.observe(ENDPOINT, failure(ErrorKind.TIMEOUT, "no answer"), 31.0)
        self.assertEqual(event.kind, OPENED)
        self.assertIn("again", event.reason)
        self.assertIn("no answer", event.reason)
        health = tracker.health(ENDPOINT.id)
        self.assertEqual((health.circuit, health.opened_at), (OPEN, 31.0))
        self.assertEqual(health.consecutive_failures, 6)
        self.assertEqual(tracker.admit(ENDPOINT, 31.0), 61.0)

    def test_late_failures_while_open(self) -> None:
        """Failures of attempts that were under way when the circuit opened lengthen the
        streak but neither move the cool-down nor announce anything again."""
        tracker = self.tracker()
        self.fail_times(tracker, 5)
        self.clock.advance(3.0)
        self.assertEqual(self.fail_times(tracker, 2), [])
        health = tracker.health(ENDPOINT.id)
        self.assertEqual((health.opened_at, health.consecutive_failures), (0.0, 7))

    def test_uncounted_outcome_ends_probe(self) -> None:
        """A probe that ends without saying anything about the endpoint (here our own bug)
        leaves the circuit half-open and lets the next attempt probe."""
        tracker = self.tracker()
        self.fail_times(tracker, 5)
        self.assertIsNone(tracker.admit(ENDPOINT, 30.0))
        self.assertIsNotNone(tracker.admit(ENDPOINT, 30.0))
        tracker.finished(ENDPOINT.id)
        self.assertEqual(tracker.observe(ENDPOINT, failure(ErrorKind.INTERNAL), 30.5), [])
        self.assertEqual(tracker.health(ENDPOINT.id).circuit, HALF_OPEN)
        self.assertIsNone(tracker.admit(ENDPOINT, 30.5))

    def test_lost_probe_given_up(self) -> None:
        """A probe whose outcome never comes (its record failed) is given up after
        probe_timeout, and another probe goes."""
        tracker = self.tracker(probe_timeout=60.0)
        self.fail_times(tracker, 5)
        self.assertIsNone(tracker.admit(ENDPOINT, 30.0))
        tracker.finished(ENDPOINT.id)
        self.assertIsNotNone(tracker.admit(ENDPOINT, 89.9))
        self.assertIsNone(tracker.admit(ENDPOINT, 90.0))

    def test_limited_probe_given_back(self) -> None:
        """When the endpoint's rate limit holds the would-be probe, no probe is counted as
        out: the next attempt is held by the rate limit again, not by a phantom probe, and
        probes once a token is there."""
        tracker = self.tracker()
        slow = attrs.evolve(ENDPOINT, rate_limit=0.01)  # one token per 100 s
        self.assertIsNone(tracker.admit(slow, 0.0))
        tracker.finished(slow.id)
        for _ in range(5):
            tracker.observe(slow, failure(), 0.0)
        self.assertEqual(tracker.admit(slow, 30.0), 100.0)
        self.assertIn("rate limit", tracker.hold_reason(slow.id))
        self.assertIsNotNone(tracker.admit(slow, 31.0))
        self.assertIn("rate limit", tracker.hold_reason(slow.id))
        self.assertIsNone(tracker.admit(slow, 100.0))
        self.assertEqual(tracker.health(slow.id).circuit, HALF_OPEN)
        self.assertEqual(tracker.admit(slow, 101.0), 102.0)
        self.assertIn("probe", tracker.hold_reason(slow.id))

    def test_success_while_open_recovers(self) -> None:
        """A success arriving while the circuit is open (an attempt that was under way)
        closes it too."""
        tracker = self.tracker()
        self.fail_times(tracker, 5)
        (event,) = tracker.observe(ENDPOINT, SUCCESS, 1.0)
        self.assertEqual(event.kind, RECOVERED)
        self.assertIsNone(tracker.admit(ENDPOINT, 1.0))

    def test_success_on_healthy_endpoint(self) -> None:
        """Successes of an endpoint with no failures announce nothing and change
        nothing."""
        tracker = self.tracker()
        self.assertEqual(tracker.observe(ENDPOINT, SUCCESS, 5.0), [])
        self.assertIsNone(tracker.admit(ENDPOINT, 5.0))
        self.assertEqual(tracker.observe(ENDPOINT, SUCCESS, 5.0), [])
        self.assertEqual(tracker.health(ENDPOINT.id), EndpointHealth(ENDPOINT.id))


class DisableTests(HealthTestCase):
    """Automatic disabling after sustained failure."""

    def test_enough_failures_too_soon(self) -> None:
        """N failures within less than T do not disable the endpoint."""
        tracker = self.tracker(disable_failures=3, disable_period=100.0)
        events = self.fail_times(tracker, 10, every=10.0)  # 10 failures over 90 s
        self.assertNotIn(DISABLED, [e.kind for e in events])
        self.assertIsNone(tracker.health(ENDPOINT.id).disabled_since)

    def test_long_enough_too_few(self) -> None:
        """A streak spanning T with fewer than N failures does not disable either."""
        tracker = self.tracker(disable_failures=5, disable_period=100.0)
        events = self.fail_times(tracker, 4, every=100.0)
        self.assertNotIn(DISABLED, [e.kind for e in events])

    def test_disabled(self) -> None:
        """The failure that makes the streak N long over at least T disables the endpoint,
        once: a DISABLED event, and disabled_since set."""
        tracker = self.tracker(disable_failures=3, disable_period=100.0)
        self.fail_times(tracker, 2, every=60.0)
        self.assertEqual(self.clock.seconds(), 120.0)
        (event,) = self.fail_times(tracker, 1)
        self.assertEqual(event.kind, DISABLED)
        self.assertIn("3 attempt(s) in a row over 120 s", event.reason)
        self.assertEqual(event.health.disabled_since, 120.0)
        self.assertEqual(tracker.health(ENDPOINT.id).first_failure_at, 0.0)
        later = [e.kind for e in self.fail_times(tracker, 3)]
        self.assertNotIn(DISABLED, later)  # not again
        self.assertEqual(tracker.health(ENDPOINT.id).disabled_since, 120.0)

    def test_default_thresholds(self) -> None:
        """By default 50 failures over a day disable, and not fewer or sooner."""
        tracker = self.tracker()
        kinds = [e.kind for e in self.fail_times(tracker, 49, every=3600.0)]
        self.assertNotIn(DISABLED, kinds)
        self.assertEqual([e.kind for e in self.fail_times(tracker, 1)], [DISABLED])

    def test_success_resets(self) -> None:
        """A success ends the streak and clears the disabled mark; a new streak has to
        last again."""
        tracker = self.tracker(disable_failures=2, disable_period=10.0)
        self.fail_times(tracker, 3, every=10.0)
        self.assertIsNotNone(tracker.health(ENDPOINT.id).disabled_since)
        tracker.observe(ENDPOINT, SUCCESS, self.clock.seconds())
        health = tracker.health(ENDPOINT.id)
        self.assertEqual((health.consecutive_failures, health.disabled_since), (0, None))
        self.assertEqual(self.fail_times(tracker, 1), [])
        events = self.fail_times(tracker, 5, every=1.0)
        self.assertNotIn(DISABLED, [e.kind for e in events])

    def test_reset(self) -> None:
        """reset() forgets an endpoint's failures: closed circuit, no disabled mark."""
        tracker = self.tracker(disable_failures=5, disable_period=0.0)
        self.fail_times(tracker, 5)
        self.assertIsNotNone(tracker.health(ENDPOINT.id).disabled_since)
        tracker.reset(ENDPOINT.id, 1.0)
        self.assertEqual(tracker.health(ENDPOINT.id), EndpointHealth(ENDPOINT.id, updated_at=1.0))
        self.assertIsNone(tracker.admit(ENDPOINT, 1.0))
        tracker.reset("nobody", 1.0)  # an unknown endpoint: nothing to forget


class PersistenceTests(HealthTestCase):
    """Loading and saving through an IHealthStore."""

    def test_load_restores_open_circuit_and_disabled(self) -> None:
        """Records loaded at start are honoured: an open circuit holds attempts until its
        cool-down ends; a disabled endpoint stays disabled; records() lists them."""
        open_record = EndpointHealth(
            ENDPOINT.id, 5, 0.0, 4.0, OPEN, opened_at=10.0, updated_at=10.0
        )
        disabled = EndpointHealth("other", 50, 0.0, 90_000.0, disabled_since=90_000.0)
        tracker = self.tracker(MemoryHealthStore([open_record, disabled]))
        self.assertEqual(tracker.health(ENDPOINT.id), open_record)
        self.assertEqual(tracker.admit(ENDPOINT, 20.0), 40.0)
        self.assertEqual(tracker.health("other").disabled_since, 90_000.0)
        self.assertEqual(
            sorted(r.subscriber_id for r in tracker.records()), sorted([ENDPOINT.id, "other"])
        )

    def test_live_state_wins_over_late_load(self) -> None:
        """A record loaded after the endpoint already changed here does not overwrite the
        live state; one for an endpoint only admitted so far does."""
        store = MemoryHealthStore()
        tracker = EndpointHealthTracker(self.clock, store)
        self.fail_times(tracker, 1)
        other = attrs.evolve(ENDPOINT, id="00000000-0000-0000-0000-000000000002")
        self.assertIsNone(tracker.admit(other, 0.0))
        store.records = {
            ENDPOINT.id: EndpointHealth(ENDPOINT.id, 9, updated_at=5.0),
            other.id: EndpointHealth(other.id, 9, updated_at=5.0),
        }
        tracker.startService()
        self.addCleanup(tracker.stopService)
        self.assertEqual(tracker.health(ENDPOINT.id).consecutive_failures, 1)
        self.assertEqual(tracker.health(other.id).consecutive_failures, 9)
        self.assertEqual(tracker.in_use(other.id), 1)

    def test_load_failure_logged(self) -> None:
        """A load that fails is logged; every endpoint starts healthy."""
        store = MemoryHealthStore()
        store.fail_load = True
        tracker = self.tracker(store)
        self.assertEqual(len(self.flushLoggedErrors(ConnectionError)), 1)
        self.assertIsNone(tracker.admit(ENDPOINT, 0.0))

    def test_saves_batched(self) -> None:
        """Changes are saved save_delay after the first one, every changed record in one
        call with its latest state; a healthy success saves nothing."""
        store = MemoryHealthStore()
        tracker = self.tracker(store, save_delay=1.0)
        other = attrs.evolve(ENDPOINT, id="00000000-0000-0000-0000-000000000002")
        tracker.observe(other, SUCCESS, 0.0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.fail_times(tracker, 3, every=0.1)
        tracker.observe(other, failure(), 0.3)
        self.assertEqual(store.saves, [])
        self.clock.advance(0.7)
        (saved,) = store.saves
        self.assertEqual(
            {r.subscriber_id: r.consecutive_failures for r in saved}, {ENDPOINT.id: 3, other.id: 1}
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10.0)
        self.assertEqual(len(store.saves), 1)

    def test_save_failure_retried(self) -> None:
        """A failing save is logged and its records are written with the next save."""
        store = MemoryHealthStore()
        store.fail_saves = 1
        tracker = self.tracker(store, save_delay=1.0)
        self.fail_times(tracker, 1)
        self.clock.advance(1.0)
        self.assertEqual(len(self.flushLoggedErrors(ConnectionError)), 1)
        self.assertNotIn(ENDPOINT.id, store.records)
        self.clock.advance(1.0)
        self.assertEqual(store.records[ENDPOINT.id].consecutive_failures, 1)
        self.assertEqual(len(store.saves), 2)

    def test_one_save_at_a_time(self) -> None:
        """save() while a save is under way waits for it, then writes what changed
        meanwhile."""
        store = MemoryHealthStore()
        store.hold_saves = True
        tracker = self.tracker(store, save_delay=1.0)
        self.fail_times(tracker, 1)
        first = tracker.save()
        self.fail_times(tracker, 1)
        second = tracker.save()
        self.assertEqual(len(store.saves), 1)
        store.held.pop().callback(None)
        self.assertIsNone(self.successResultOf(first))
        self.assertEqual(len(store.saves), 2)
        self.assertEqual(store.saves[1][0].consecutive_failures, 2)
        store.held.pop().callback(None)
        self.assertIsNone(self.successResultOf(second))

    def test_stop_saves(self) -> None:
        """stopService writes the unsaved changes at once and fires when they are
        written; without a store it fires at once."""
        store = MemoryHealthStore()
        tracker = self.tracker(store, save_delay=60.0)
        self.fail_times(tracker, 2)
        self.assertIsNone(self.successResultOf(tracker.stopService()))
        self.assertEqual(store.records[ENDPOINT.id].consecutive_failures, 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertIsNone(self.successResultOf(self.tracker().stopService()))
