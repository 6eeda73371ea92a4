"""
Unit tests for :class:`twisted_hooks.webhooks.EndpointGate`, the one place an attempt is
admitted: the per-host cap with lease-aware waiting, the endpoint's own limits and circuit
(through :class:`~twisted_hooks.webhooks.health.EndpointHealthTracker`), the order in which
waiting deliveries get a freed slot, and giving back what waits when it stops. Time is a
:class:`~twisted.internet.task.Clock`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_hooks.interfaces import IEndpointGate
from twisted_hooks.testing import make_delivery
from twisted_hooks.webhooks import EndpointGate, Subscriber
from twisted_hooks.webhooks._gate import Slot
from twisted_hooks.webhooks._settings import Settings
from twisted_hooks.webhooks.delivery import Attempt, Delivery, ErrorKind
from twisted_hooks.webhooks.health import EndpointHealthTracker
from twisted_hooks.webhooks.scheduler import HoldBack

NOW = 1_700_000_000.0
URL = "https://hooks.example.com/receive"
HOST = ("https", "hooks.example.com", 443)


def subscriber(url: str = URL, **fields: Any) -> Subscriber:
    return Subscriber(event="order.*", url=url, secret="s3cret", **fields)


class GateTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.health = EndpointHealthTracker(self.clock, circuit_failures=2)
        self.gate = EndpointGate(
            self.clock, self.health, max_per_host=2, lease=60.0, timeout=10.0, busy_retry=1.0
        )

    def delivery(self, target: Subscriber, number: int, **fields: Any) -> Delivery:
        fields.setdefault("lease_expires_at", NOW + 60.0)
        return make_delivery(f"d{number}", NOW, subscriber=target, **fields)

    def admit(self, target: Subscriber, number: int, **fields: Any) -> Any:
        return self.gate.admit(self.delivery(target, number, **fields), target)

    def test_provides_IEndpointGate(self) -> None:
        """EndpointGate provides IEndpointGate."""
        self.assertTrue(verifyObject(IEndpointGate, self.gate))

    def test_max_per_host_must_be_positive(self) -> None:
        """max_per_host below 1 is refused at once, naming the setting and the value."""
        with self.assertRaises(ValueError) as raised:
            EndpointGate(self.clock, self.health, max_per_host=0)
        self.assertIn("max_per_host must be at least 1, got 0", str(raised.exception))

    def test_same_rules_as_settings(self) -> None:
        """max_per_host, lease, timeout and busy_retry are refused by the rules of the
        Settings fields of the same names, with the same messages."""
        cases: list[tuple[str, object]] = [
            ("max_per_host", 10_001),
            ("max_per_host", 1.5),
            ("lease", 0),
            ("lease", 86_401.0),
            ("timeout", 0),
            ("timeout", 3601.0),
            ("busy_retry", 0),
            ("busy_retry", float("inf")),
        ]
        for name, value in cases:
            with self.assertRaises(ValueError) as by_settings:
                Settings(**{name: value})  # type: ignore[arg-type]
            with self.assertRaises(ValueError) as by_gate:
                EndpointGate(self.clock, self.health, **{name: value})  # type: ignore[arg-type]
            self.assertEqual(str(by_gate.exception), str(by_settings.exception))
            self.assertIn(f"{name} must be", str(by_gate.exception))

    def test_free_slot_is_given_at_once(self) -> None:
        """Under the host's cap, admit answers a Slot at once, no Deferred, counting the
        endpoint and the host; release frees both."""
        target = subscriber()
        slot = self.admit(target, 1)
        self.assertEqual(slot, Slot(target.id, HOST))
        self.assertEqual(self.gate.in_use(HOST), 1)
        self.assertEqual(self.health.in_use(target.id), 1)
        self.gate.release(slot)
        self.assertEqual(self.gate.in_use(HOST), 0)
        self.assertEqual(self.health.in_use(target.id), 0)

    def test_host_cap_makes_deliveries_wait_in_order(self) -> None:
        """Past max_per_host, deliveries wait; each freed slot goes to the oldest waiter
        (next_waiting), and the host's count stays at the cap meanwhile."""
        target = subscriber()
        first, second = self.admit(target, 1), self.admit(target, 2)
        third, fourth = self.admit(target, 3), self.admit(target, 4)
        self.assertIsInstance(third, Deferred)
        self.assertEqual(self.gate.waiting(HOST), 2)
        self.assertNoResult(third)
        self.gate.release(first)
        self.assertEqual(self.successResultOf(third), Slot(target.id, HOST))
        self.assertNoResult(fourth)
        self.assertEqual(self.gate.in_use(HOST), 2)
        self.gate.release(second)
        self.assertEqual(self.successResultOf(fourth), Slot(target.id, HOST))
        self.assertEqual(self.gate.waiting(HOST), 0)

    def test_hosts_are_counted_apart(self) -> None:
        """The cap counts (scheme, host, port): another port or scheme is another host."""
        target = subscriber()
        self.admit(target, 1)
        self.admit(target, 2)
        for number, url in enumerate(
            ["https://hooks.example.com:8443/r", "http://hooks.example.com/r"], 3
        ):
            self.assertIsInstance(self.admit(subscriber(url), number), Slot)

    def test_waiting_gives_up_before_the_lease_stops_covering_an_attempt(self) -> None:
        """A waiting delivery is given back (due after busy_retry) at the latest moment
        its lease still covers a whole attempt plus a margin, never later; the reason
        names the host and max_per_host."""
        target = subscriber()
        self.admit(target, 1)
        self.admit(target, 2)
        waiting = self.admit(target, 3, lease_expires_at=NOW + 30.0, timeout=10.0)
        # lease end 30 s away, attempt 10 s, margin min(1, (60 - 10) / 2) = 1 s: 19 s.
        self.clock.advance(18.9)
        self.assertNoResult(waiting)
        self.clock.advance(0.1)
        held = self.successResultOf(waiting)
        self.assertIsInstance(held, HoldBack)
        self.assertEqual(held.until, NOW + 19.0 + 1.0)
        self.assertIn("hooks.example.com:443", held.reason)
        self.assertIn("max_per_host", held.reason)
        self.assertEqual(self.gate.waiting(HOST), 0)

    def test_lease_already_too_short(self) -> None:
        """A delivery whose lease cannot cover an attempt any more is given back at once
        (on the next timer turn) instead of waiting."""
        target = subscriber()
        self.admit(target, 1)
        self.admit(target, 2)
        waiting = self.admit(target, 3, lease_expires_at=NOW + 5.0)
        self.clock.advance(0)
        self.assertIsInstance(self.successResultOf(waiting), HoldBack)

    def test_stop_gives_back_what_waits(self) -> None:
        """stop() answers every waiting delivery with a HoldBack due when it was (not
        later), cancels their timers, and refuses later admissions the same way."""
        target = subscriber()
        self.admit(target, 1)
        self.admit(target, 2)
        waiting = self.admit(target, 3)
        self.gate.stop()
        held = self.successResultOf(waiting)
        self.assertEqual(held, HoldBack(NOW, held.reason))
        self.assertIn("stopping", held.reason)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        late = self.admit(target, 4)
        self.assertIsInstance(late, HoldBack)
        self.assertFalse(self.gate.running)
        self.gate.start()
        self.assertIsInstance(self.admit(subscriber("https://other.example.com/"), 5), Slot)

    def test_endpoint_limit_holds_back_and_frees_the_host(self) -> None:
        """A subscriber's max_concurrency holds a delivery back (until busy_retry) without
        keeping the host slot it took."""
        target = subscriber(max_concurrency=1)
        self.assertIsInstance(self.admit(target, 1), Slot)
        held = self.admit(target, 2)
        self.assertEqual(held.until, NOW + 1.0)
        self.assertEqual(self.gate.in_use(HOST), 1)

    def test_open_circuit_holds_back(self) -> None:
        """An endpoint whose circuit opened is held back with the tracker's reason."""
        target = subscriber()
        for number in range(2):
            failed = Attempt(
                delivery_id=f"f{number}",
                number=1,
                started_at=NOW,
                duration=0.1,
                status_code=500,
                error_kind=ErrorKind.STATUS,
                error_message="500",
            )
            self.health.observe(target, failed, NOW)
        held = self.admit(target, 1)
        self.assertIsInstance(held, HoldBack)
        self.assertGreater(held.until, NOW)
        self.assertEqual(held.reason, self.health.hold_reason(target.id))
        self.assertEqual(self.gate.in_use(HOST), 0)

    def test_freed_slot_checks_the_waiters_endpoint(self) -> None:
        """A waiter given a freed host slot is still checked against its endpoint's
        limits: held back then, the slot goes on being free."""
        limited = subscriber(max_concurrency=1)
        other = subscriber("https://hooks.example.com/other")
        first = self.admit(limited, 1)
        second = self.admit(other, 2)
        waiting = self.admit(limited, 3)
        self.gate.release(second)
        held = self.successResultOf(waiting)
        self.assertIsInstance(held, HoldBack)
        self.assertEqual(self.gate.in_use(HOST), 1)
        self.gate.release(first)
        self.assertEqual(self.gate.in_use(HOST), 0)
