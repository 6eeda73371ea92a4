"""
The scheduler: claims due deliveries from a delivery store and attempts them.

It works the same way on every store: :meth:`Scheduler.wake` after deliveries are
enqueued, and a timer for the earliest due time (plus, for stores shared by many
processes, a poll). It keeps at most ``max_in_flight`` deliveries under way; each finished
attempt is turned into an update by :func:`~twisted_hooks.webhooks.delivery.decide`. Updates
are written in batches (one :meth:`~twisted_hooks.interfaces.IDeliveryStore.record` call for
up to ``batch`` of them, at most ``record_delay`` seconds after the first), then handed to
``on_update`` (callbacks, operational events, deactivation). An attempt function may also
answer :class:`HoldBack` (an endpoint's limits): the delivery is released, unattempted.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_hooks.interfaces import IDeliveryStore
from twisted_hooks.webhooks.delivery import (
    Attempt,
    Delivery,
    DeliveryUpdate,
    ErrorKind,
    decide,
)

__all__ = ["AttemptFunction", "HoldBack", "Scheduler", "UpdateHandler"]

_log = Logger(namespace="twisted_hooks.webhooks.scheduler")


@attrs.frozen
class HoldBack:
    """
    What an attempt function answers instead of an :class:`Attempt` when the delivery may
    not be attempted yet (its endpoint's concurrency cap, rate limit or open circuit): the
    scheduler releases it, unattempted and without counting an attempt, due again at
    ``until``.

    :ivar until: when the delivery is due again, seconds since the epoch.
    :ivar reason: why it was held back, for logs.
    """

    until: float
    reason: str = ""


#: Makes one attempt of a delivery, or holds it back; must not fail.
AttemptFunction = Callable[[Delivery], Awaitable[Attempt | HoldBack]]
#: Told of every update after the store has recorded it.
UpdateHandler = Callable[[Delivery, DeliveryUpdate], object]


class Scheduler(Service):
    """
    Drives deliveries from ``store`` through ``attempt``.

    :param store: the delivery store.
    :param attempt: makes one attempt of a claimed delivery (looks up the subscriber,
        signs and POSTs); it must turn every error into a failed
        :class:`~twisted_hooks.webhooks.delivery.Attempt`. It may answer a
        :class:`HoldBack` instead: the delivery is released until then.
    :param reactor: time and timers.
    :param on_update: called with the delivery and its update once recorded.
    :param max_in_flight: deliveries under way at once: attempted, or attempted and
        waiting for their update to be recorded.
    :param lease: seconds a claimed delivery is leased; must outlast an attempt's
        deadline (and the recording of its outcome) so that no other claimer takes it
        meanwhile.
    :param batch: the most deliveries claimed at once, and the most updates recorded at
        once.
    :param record_delay: the longest an update waits for others to share its
        :meth:`~twisted_hooks.interfaces.IDeliveryStore.record` call, in seconds; ``0``
        records each update at once.
    :param poll_interval: seconds between claims when nothing woke the scheduler (for
        stores other processes also write to); ``None`` relies on wake-ups and due times.
    :param rng: the source of retry jitter.
    """

    def __init__(
        self,
        store: IDeliveryStore,
        attempt: AttemptFunction,
        reactor: IReactorTime,
        on_update: UpdateHandler | None = None,
        *,
        max_in_flight: int = 256,
        lease: float = 60.0,
        batch: int = 100,
        record_delay: float = 0.01,
        poll_interval: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_in_flight < 1 or batch < 1:
            raise ValueError("max_in_flight and batch must be at least 1")
        if lease <= 0:
            raise ValueError("lease must be positive")
        if record_delay < 0:
            raise ValueError("record_delay must not be negative")
        self.store = store
        self._attempt = attempt
        self._reactor = reactor
        self._on_update = on_update
        self.max_in_flight = max_in_flight
        self.lease = lease
        self.batch = batch
        self.record_delay = record_delay
        self.poll_interval = poll_interval
        self._rng = rng if rng is not None else random.Random()
        self._in_flight: dict[str, Deferred[None]] = {}
        self._pumping = False
        self._again = False
        self._timer: IDelayedCall | None = None
        self._timer_at: float | None = None
        self._idle_waiters: list[Deferred[None]] = []
        self._unrecorded: list[tuple[Delivery, DeliveryUpdate, Deferred[None]]] = []
        self._record_timer: IDelayedCall | None = None

    @property
    def in_flight(self) -> int:
        """How many deliveries are under way (attempted, or waiting for their update to be
        recorded)."""
        return len(self._in_flight)

    def startService(self) -> None:
        """Start claiming deliveries."""
        super().startService()  # type: ignore[no-untyped-call]
        self.wake()

    def stopService(self) -> Deferred[None]:
        """
        Stop claiming; write the updates waiting for their batch at once; fire once the
        attempts under way have finished and been recorded. What was not claimed stays in
        the store.
        """
        super().stopService()  # type: ignore[no-untyped-call]
        self._cancel_timer()
        self._flush()
        if not self._in_flight:
            return succeed(None)
        return DeferredList(list(self._in_flight.values()), consumeErrors=True).addCallback(
            lambda _: None
        )

    def wake(self) -> None:
        """Claim due deliveries now (call after enqueueing)."""
        if not self.running:
            return
        if self._pumping:
            self._again = True
            return
        if len(self._in_flight) >= self.max_in_flight:
            # A pump would claim nothing and arm nothing; a finishing attempt wakes us.
            return
        Deferred.fromCoroutine(self._pump()).addErrback(self._pump_failed)

    def _pump_failed(self, failure: Failure) -> None:
        self._pumping = False
        _log.failure("claiming due deliveries failed; retrying in 1 s", failure)
        self._arm(self._reactor.seconds() + 1.0)

    async def _pump(self) -> None:
        self._pumping = True
        try:
            while self.running:
                self._again = False
                free = self.max_in_flight - len(self._in_flight)
                if free <= 0:
                    return  # a finishing attempt wakes us
                now = self._reactor.seconds()
                wanted = min(free, self.batch)
                claimed = await self.store.claim(now, wanted, self.lease)
                for delivery in claimed:
                    self._start(delivery)
                if len(claimed) < wanted and not self._again:
                    break
            if self.running:
                due = await self.store.next_due()
                if self.poll_interval is not None:
                    poll = self._reactor.seconds() + self.poll_interval
                    due = poll if due is None else min(due, poll)
                if due is not None:
                    self._arm(due)
                else:
                    self._cancel_timer()  # armed for what has since been recorded
        finally:
            self._pumping = False
        if self._again and self.running:
            self.wake()

    def _arm(self, when: float) -> None:
        if self._timer is not None and self._timer.active():
            assert self._timer_at is not None
            if self._timer_at <= when:
                return
            self._timer.cancel()
        delay = max(0.0, when - self._reactor.seconds())
        self._timer_at = when
        self._timer = self._reactor.callLater(delay, self._fired)

    def _fired(self) -> None:
        self._timer = None
        self._timer_at = None
        self.wake()

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _start(self, delivery: Delivery) -> None:
        if delivery.id in self._in_flight:
            # Its lease ran out while this scheduler still attempts it (or waits to record
            # its outcome): a second attempt would POST it twice.
            return
        d = Deferred.fromCoroutine(self._run(delivery))
        if not d.called:
            self._in_flight[delivery.id] = d
        d.addErrback(self._run_failed, delivery)

    def _run_failed(self, failure: Failure, delivery: Delivery) -> None:
        _log.failure(
            "giving back {delivery_id} failed; it will be claimed again when its lease expires",
            failure,
            delivery_id=delivery.id,
        )

    async def _run(self, delivery: Delivery) -> None:
        try:
            try:
                outcome = await self._attempt(delivery)
            except Exception as error:
                _log.failure("attempt of {delivery_id} raised", delivery_id=delivery.id)
                now = self._reactor.seconds()
                outcome = Attempt(
                    delivery_id=delivery.id,
                    number=delivery.attempts + 1,
                    started_at=now,
                    duration=0.0,
                    error_kind=ErrorKind.INTERNAL,
                    error_message=f"{type(error).__name__}: {error}",
                    exception=error,
                )
            if isinstance(outcome, HoldBack):
                _log.debug(
                    "{delivery_id} held back until {until}: {reason}",
                    delivery_id=delivery.id,
                    until=outcome.until,
                    reason=outcome.reason,
                )
                await self.store.release(delivery.id, outcome.until)
                return
            update = decide(delivery, outcome, self._reactor.seconds(), self._rng)
            await self._write(delivery, update)
        finally:
            self._in_flight.pop(delivery.id, None)
            if self.running:
                self.wake()
            if not self._in_flight and self._idle_waiters:
                waiters, self._idle_waiters = self._idle_waiters, []
                for waiter in waiters:
                    waiter.callback(None)

    # -- batched recording -------------------------------------------------------------------

    def _write(self, delivery: Delivery, update: DeliveryUpdate) -> Deferred[None]:
        """Queue an update for the next batch; the Deferred fires once the batch has been
        recorded and announced, or its recording failed (logged)."""
        done: Deferred[None] = Deferred()
        self._unrecorded.append((delivery, update, done))
        if len(self._unrecorded) >= self.batch or self.record_delay == 0 or not self.running:
            self._flush()
        elif self._record_timer is None:
            self._record_timer = self._reactor.callLater(self.record_delay, self._flush)
        return done

    def _flush(self) -> None:
        if self._record_timer is not None:
            if self._record_timer.active():
                self._record_timer.cancel()
            self._record_timer = None
        if not self._unrecorded:
            return
        items, self._unrecorded = self._unrecorded, []
        recorded = maybeDeferred(self.store.record, [update for _, update, _ in items])
        recorded.addCallbacks(
            self._recorded, self._record_failed, callbackArgs=(items,), errbackArgs=(items,)
        )

    def _recorded(
        self, _: object, items: list[tuple[Delivery, DeliveryUpdate, Deferred[None]]]
    ) -> None:
        on_update = self._on_update
        for delivery, update, done in items:
            if on_update is not None:
                try:
                    on_update(delivery, update)
                except Exception:
                    _log.failure(
                        "update handler failed for {delivery_id}", delivery_id=delivery.id
                    )
            done.callback(None)

    def _record_failed(
        self, failure: Failure, items: list[tuple[Delivery, DeliveryUpdate, Deferred[None]]]
    ) -> None:
        _log.failure(
            "recording the outcome of {count} attempt(s) failed; {delivery_ids} will be "
            "claimed again when their leases expire",
            failure,
            count=len(items),
            delivery_ids=", ".join(delivery.id for delivery, _, _ in items),
        )
        for _, _, done in items:
            done.callback(None)

    def wait_in_flight(self) -> Deferred[None]:
        """A Deferred that fires when no delivery is under way."""
        if not self._in_flight:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter
