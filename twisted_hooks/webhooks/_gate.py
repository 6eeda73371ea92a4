"""
The endpoint gate: the one place that admits an attempt.

Every attempt of a delivery asks :meth:`EndpointGate.admit` first. The gate answers at
once when it can (a :class:`Slot`, or a :class:`~twisted_hooks.webhooks.scheduler.HoldBack`
that gives the delivery back to the store, due later, no attempt counted), and with a
Deferred only when the delivery has to wait for its host's slot. It applies, in order:

1. the host's cap (``max_per_host`` attempts under way to one scheme, host and port). A
   delivery waits for its host's slot only as long as its lease still covers a whole
   attempt afterwards; past that it is given back (due after ``busy_retry``), so that no
   other process can claim it while this one still means to POST it. When the gate stops,
   every waiting delivery is given back at once, due when it was;
2. the endpoint's own limits and health (its ``max_concurrency``, ``rate_limit`` and
   circuit breaker), kept by :class:`~twisted_hooks.webhooks.health.EndpointHealthTracker`.

Which waiting delivery gets a freed host slot is decided by :meth:`EndpointGate.next_waiting`
(the oldest first): the seam where per-endpoint ordering or batching plugs in.
"""

from __future__ import annotations

from collections import deque

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from zope.interface import implementer

from twisted_hooks._fields import check_field
from twisted_hooks.interfaces import IEndpointGate
from twisted_hooks.webhooks._settings import Settings
from twisted_hooks.webhooks.delivery import Delivery
from twisted_hooks.webhooks.health import EndpointHealthTracker
from twisted_hooks.webhooks.scheduler import HoldBack
from twisted_hooks.webhooks.sender import origin_of
from twisted_hooks.webhooks.subscribers import Subscriber

__all__ = ["EndpointGate", "Origin", "Slot"]

#: A host as the gate counts it: ``(scheme, host, port)``.
Origin = tuple[str, str, int]


@attrs.frozen
class Slot:
    """
    The right to make one attempt now; give it back with :meth:`EndpointGate.release`.

    :ivar subscriber_id: the endpoint it counts against.
    :ivar host: the host it counts against.
    """

    subscriber_id: str
    host: Origin


@attrs.define(eq=False)
class _Waiter:
    """A delivery waiting for its host's slot."""

    delivery: Delivery
    subscriber: Subscriber
    host: Origin
    answer: Deferred[Slot | HoldBack]
    timer: IDelayedCall | None = None


@implementer(IEndpointGate)
class EndpointGate:
    """
    Admits attempts: per-host and per-endpoint concurrency, rate limits, circuits, and
    lease-aware waiting.

    :param reactor: time, and the give-up timers of waiting deliveries.
    :param health: the endpoints' health and limits.
    :param max_per_host: attempts under way at once to one (scheme, host, port).
    :param lease: seconds a claimed delivery is leased (claims without a lease expiry are
        taken to have been made now).
    :param timeout: the attempt deadline of the settings; with ``lease`` it sets the
        margin kept between a waiting delivery's start and its lease's end.
    :param busy_retry: seconds after which a delivery that could not get its host's slot
        in time is due again.
    :raise ValueError: for an argument outside the range of the
        :class:`~twisted_hooks.webhooks.Settings` field of the same name, with the
        message ``Settings`` gives.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        health: EndpointHealthTracker,
        *,
        max_per_host: int = 16,
        lease: float = 60.0,
        timeout: float = 10.0,
        busy_retry: float = 1.0,
    ) -> None:
        for name, value in [
            ("max_per_host", max_per_host),
            ("lease", lease),
            ("timeout", timeout),
            ("busy_retry", busy_retry),
        ]:
            check_field(Settings, name, value)
        self._reactor = reactor
        self.health = health
        self.max_per_host = max_per_host
        self.lease = lease
        self.busy_retry = busy_retry
        self._margin = min(1.0, (lease - timeout) / 2)
        self._in_use: dict[Origin, int] = {}
        self._waiting: dict[Origin, deque[_Waiter]] = {}
        #: ``False`` once :meth:`stop` was called (until :meth:`start`).
        self.running = True

    def start(self) -> None:
        """Admit attempts (again)."""
        self.running = True

    def stop(self) -> None:
        """
        Admit nothing more. Every delivery waiting for a host's slot is answered with a
        :class:`HoldBack` due when it was: it goes back to the store, unattempted, rather
        than wait for its lease to run out.
        """
        self.running = False
        waiting, self._waiting = self._waiting, {}
        now = self._reactor.seconds()
        for queue in waiting.values():
            for waiter in queue:
                if waiter.timer is not None and waiter.timer.active():
                    waiter.timer.cancel()
                waiter.answer.callback(self._stopping(waiter.delivery, now))

    def in_use(self, host: Origin) -> int:
        """How many attempts to ``host`` hold a slot."""
        return self._in_use.get(host, 0)

    def waiting(self, host: Origin) -> int:
        """How many deliveries wait for a slot of ``host``."""
        queue = self._waiting.get(host)
        return len(queue) if queue else 0

    def admit(
        self, delivery: Delivery, subscriber: Subscriber
    ) -> Slot | HoldBack | Deferred[Slot | HoldBack]:
        """
        May ``delivery`` be attempted to ``subscriber`` now?

        :return: a :class:`Slot` (go; :meth:`release` it afterwards), a :class:`HoldBack`
            (give it back, due then), or, when it waits for its host's slot, a Deferred
            firing one of these.
        """
        now = self._reactor.seconds()
        if not self.running:
            return self._stopping(delivery, now)
        host = origin_of(subscriber.url)
        in_use = self._in_use.get(host, 0)
        if in_use < self.max_per_host:
            self._in_use[host] = in_use + 1
            return self._endpoint(subscriber, host, now)
        lease_end = delivery.lease_expires_at
        if lease_end is None:
            lease_end = now + self.lease
        latest_start = lease_end - delivery.timeout - self._margin
        waiter = _Waiter(delivery, subscriber, host, Deferred())
        waiter.timer = self._reactor.callLater(max(0.0, latest_start - now), self._give_up, waiter)
        self._waiting.setdefault(host, deque()).append(waiter)
        return waiter.answer

    def release(self, slot: Slot) -> None:
        """The attempt holding ``slot`` is over: free its endpoint's place and its host's
        slot, which goes to the delivery :meth:`next_waiting` chooses, if any."""
        self.health.finished(slot.subscriber_id)
        self._host_free(slot.host)

    def next_waiting(self, host: Origin) -> _Waiter | None:
        """
        Which delivery waiting for ``host`` gets its freed slot (taken off the queue), or
        ``None`` when none waits. The oldest goes first.
        """
        queue = self._waiting.get(host)
        if not queue:
            return None
        waiter = queue.popleft()
        if not queue:
            del self._waiting[host]
        return waiter

    # -- inside ------------------------------------------------------------------------------

    def _endpoint(self, subscriber: Subscriber, host: Origin, now: float) -> Slot | HoldBack:
        """With the host's slot held: the endpoint's limits and circuit decide."""
        health = self.health
        until = health.admit(subscriber, now)
        if until is not None:
            self._host_free(host)
            return HoldBack(until, health.hold_reason(subscriber.id))
        return Slot(subscriber.id, host)

    def _host_free(self, host: Origin) -> None:
        waiter = self.next_waiting(host)
        if waiter is not None:
            if waiter.timer is not None and waiter.timer.active():
                waiter.timer.cancel()
            waiter.answer.callback(
                self._endpoint(waiter.subscriber, host, self._reactor.seconds())
            )
            return
        left = self._in_use[host] - 1
        if left:
            self._in_use[host] = left
        else:
            del self._in_use[host]

    def _give_up(self, waiter: _Waiter) -> None:
        queue = self._waiting.get(waiter.host)
        if queue is not None:
            queue.remove(waiter)
            if not queue:
                del self._waiting[waiter.host]
        host = waiter.host
        waiter.answer.callback(
            HoldBack(
                self._reactor.seconds() + self.busy_retry,
                f"no connection slot to {host[1]}:{host[2]} came free while its lease "
                "still covered an attempt (max_per_host)",
            )
        )

    @staticmethod
    def _stopping(delivery: Delivery, now: float) -> HoldBack:
        return HoldBack(
            min(now, delivery.next_attempt_at),
            "the application is stopping before its attempt started",
        )
