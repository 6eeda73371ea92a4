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

Every update and release carries the claim token of the delivery's latest claim by this
scheduler (:attr:`~twisted_hooks.webhooks.delivery.Delivery.claim_token`): a store drops
those of a claim that another claimer has superseded, and such a dropped outcome is not
handed to ``on_update``. When the scheduler itself claims again a delivery it is still
attempting (its lease ran out), it does not attempt it twice, and the outcome carries the
newer token.

Stopping gives back at once, unattempted, the deliveries a claim returns after the stop,
so that they do not wait for their leases to expire.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_hooks._deferreds import NOT_YET, fired_value
from twisted_hooks._fields import check_field
from twisted_hooks.interfaces import IDeliveryStore
from twisted_hooks.webhooks._settings import Settings
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


#: Makes one attempt of a delivery, or holds it back; must not fail. It returns the
#: outcome itself, a Deferred or a coroutine.
AttemptFunction = Callable[[Delivery], "Attempt | HoldBack | Awaitable[Attempt | HoldBack]"]
#: Told of every update after the store has recorded it.
UpdateHandler = Callable[[Delivery, DeliveryUpdate], object]


#: Stands in :attr:`Scheduler._in_flight` for an outcome decided at once.
_DECIDED: Deferred[object] = succeed(None)


class Scheduler(Service):
    """
    Drives deliveries from ``store`` through ``attempt``.

    :param store: the delivery store.
    :param attempt: makes one attempt of a claimed delivery (looks up the subscriber,
        signs and POSTs); it must turn every error into a failed
        :class:`~twisted_hooks.webhooks.delivery.Attempt`. It may answer a
        :class:`HoldBack` instead: the delivery is released until then. It may return the
        outcome itself (decided at once), a Deferred or a coroutine.
    :param reactor: time and timers.
    :param on_update: called with the delivery and its update once recorded.
    :param max_in_flight: attempts under way at once.
    :param lease: seconds a claimed delivery is leased; must outlast an attempt's
        deadline and the recording of its outcome, so that no other claimer takes it
        meanwhile.
    :param batch: the most deliveries claimed at once, and the most updates recorded at
        once.
    :param record_delay: the longest an update waits for others to share its
        :meth:`~twisted_hooks.interfaces.IDeliveryStore.record` call, in seconds; ``0``
        records each update at once. A delivery's slot is free as soon as its attempt
        ends; until its update is recorded it is not attempted again.
    :param poll_interval: seconds between claims when nothing woke the scheduler (for
        stores other processes also write to); ``None`` relies on wake-ups and due times.
    :param rng: the source of retry jitter.
    :raise ValueError: for an argument outside the range of the
        :class:`~twisted_hooks.webhooks.Settings` field it takes (``max_in_flight`` is
        ``max_concurrency``; the others have the same names), with the message
        ``Settings`` gives.

    While attempts are under way, freed slots are refilled in batches (once a quarter of
    the slots, or ``batch``, whichever is less, are free), so that a store shared over a
    network is asked for many deliveries at once rather than one at a time.
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
        check_field(Settings, "max_concurrency", max_in_flight, name="max_in_flight")
        check_field(Settings, "lease", lease)
        check_field(Settings, "batch", batch)
        check_field(Settings, "record_delay", record_delay)
        check_field(Settings, "poll_interval", poll_interval)
        self.store = store
        self._attempt = attempt
        self._reactor = reactor
        self._on_update = on_update
        self.max_in_flight = max_in_flight
        self.lease = lease
        self.batch = batch
        self.record_delay = record_delay
        self.poll_interval = poll_interval
        self._refill = max(1, min(batch, max_in_flight // 4))
        self._rng = rng if rng is not None else random.Random()
        self._in_flight: dict[str, Deferred[object]] = {}
        self._recording: set[str] = set()
        self._writes: set[Deferred[None]] = set()
        self._pumping = False
        self._again = False
        self._timer: IDelayedCall | None = None
        self._timer_at: float | None = None
        self._idle_waiters: list[Deferred[None]] = []
        # The claim under way, if any.
        self._claiming: Deferred[Any] | None = None
        # The claim token of the latest claim of each delivery attempted or being recorded.
        self._tokens: dict[str, int | None] = {}
        self._unrecorded: list[tuple[Delivery, DeliveryUpdate]] = []
        self._record_timer: IDelayedCall | None = None
        self._abandoned = False
        # True while every wake-up since the last full look was for deliveries due now
        # (just enqueued): a short claim then needs no look for the next due time.
        self._due_now = False

    @property
    def in_flight(self) -> int:
        """How many attempts are under way."""
        return len(self._in_flight)

    @property
    def unrecorded(self) -> int:
        """How many finished attempts wait for their update to be recorded."""
        return len(self._recording)

    def startService(self) -> None:
        """Start claiming deliveries."""
        super().startService()  # type: ignore[no-untyped-call]
        self.wake()

    def stopService(self) -> Deferred[None]:
        """
        Stop claiming; fire once the attempts under way have finished and every update
        has been recorded (those waiting for a batch are written at once). What was not
        claimed stays in the store; what a claim under way returns is given back at once
        (:meth:`~twisted_hooks.interfaces.IDeliveryStore.release`, due when it was), not
        attempted.
        """
        super().stopService()  # type: ignore[no-untyped-call]
        self._cancel_timer()
        self._flush()
        return self.wait_in_flight()

    def abandon(self) -> None:
        """
        Give up on the attempts still under way (a shutdown deadline passed): when they
        end, their outcomes are not recorded, so their deliveries stay in flight under
        their leases and are attempted again once the leases expire (after a restart, or
        by another process). Call it after :meth:`stopService`, before closing the store.
        """
        self._abandoned = True
        if self._in_flight:
            _log.info(
                "{count} attempt(s) under way are left to their leases",
                count=len(self._in_flight),
            )
        for waiter in self._idle_waiters:
            waiter.callback(None)
        self._idle_waiters = []

    # -- claiming --------------------------------------------------------------------------

    def wake(self, due_now: bool = False) -> None:
        """
        Claim due deliveries now (call after enqueueing).

        :param due_now: ``True`` when the only news is deliveries due now (just enqueued):
            the due time the timer waits for has not changed, so a claim that finds fewer
            than it asked for does not ask the store for it again.
        """
        if not self.running:
            return
        if self._pumping:
            if not due_now:
                self._due_now = False
            self._again = True
            return
        self._due_now = due_now
        if len(self._in_flight) >= self.max_in_flight:
            return  # a finishing attempt wakes us
        self._pumping = True
        self._claim()

    def _freed(self) -> None:
        """
        A slot was freed: refill once enough are free, or when nothing is under way.

        Not while a claim is under way: when it returns as many as it asked for, it claims
        again anyway (for every free slot); when it returns fewer, nothing more was due.
        A freed slot changes no due time, so the refill is a wake-up for deliveries due now.
        """
        if not self.running or self._pumping:
            return
        free = self.max_in_flight - len(self._in_flight)
        if free >= self._refill or not self._in_flight:
            self.wake(due_now=True)

    def _claim(self) -> None:
        self._again = False
        free = self.max_in_flight - len(self._in_flight)
        if not self.running or free <= 0:
            self._pumping = False
            return
        wanted = min(free, self.batch)
        claimed = maybeDeferred(self.store.claim, self._reactor.seconds(), wanted, self.lease)
        self._claiming = claimed  # before the callbacks, which may run at once
        found = fired_value(claimed)
        if found is not NOT_YET:
            # A store answering at once (the memory store): no callbacks to run.
            try:
                self._claimed(found, wanted)
            except Exception:
                self._pump_failed(Failure())
            return
        claimed.addCallback(self._claimed, wanted).addErrback(self._pump_failed)

    def _claimed(self, claimed: Sequence[Delivery], wanted: int) -> None:
        self._claiming = None
        if not self.running:
            # Stopped while claiming: give them back now rather than leave them in flight
            # until their leases expire.
            for delivery in claimed:
                if delivery.id in self._in_flight or delivery.id in self._recording:
                    self._tokens[delivery.id] = delivery.claim_token  # still ours
                else:
                    self._give_back(delivery, delivery.next_attempt_at, "the scheduler stopped")
            self._pumping = False
            self._maybe_idle()
            return
        for delivery in claimed:
            self._start(delivery)
        if not self.running:
            self._pumping = False
        elif len(claimed) >= wanted or self._again:
            # Claims come in at most ``batch``; the recursion is as deep as the number of
            # batches that fit in the free slots.
            self._claim()
        elif self._due_now and (self._timer is not None or self.poll_interval is None):
            # Only deliveries due now were added since the timer was armed: it still
            # waits for the right time.
            self._pumping = False
        else:
            due = maybeDeferred(self.store.next_due)
            due.addCallback(self._arm_for).addErrback(self._pump_failed)

    def _arm_for(self, due: float | None) -> None:
        if self.running:
            if self.poll_interval is not None:
                poll = self._reactor.seconds() + self.poll_interval
                due = poll if due is None else min(due, poll)
            if due is not None:
                self._arm(due)
            else:
                self._cancel_timer()  # armed for what has since been recorded
        self._pumping = False
        if self._again and self.running:
            self.wake()

    def _pump_failed(self, failure: Failure) -> None:
        self._claiming = None
        self._pumping = False
        _log.failure("claiming due deliveries failed; retrying in 1 s", failure)
        if self.running:
            self._arm(self._reactor.seconds() + 1.0)
        self._maybe_idle()

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

    # -- attempting ------------------------------------------------------------------------

    def _start(self, delivery: Delivery) -> None:
        if delivery.id in self._in_flight or delivery.id in self._recording:
            # Its lease ran out while this scheduler still attempts it (or waits to record
            # its outcome): a second attempt would POST it twice. The new claim is ours
            # too: the outcome is written under it.
            self._tokens[delivery.id] = delivery.claim_token
            return
        self._tokens[delivery.id] = delivery.claim_token
        try:
            result = self._attempt(delivery)
            if isinstance(result, (Attempt, HoldBack)):
                # Decided at once (held back, or a removed subscriber): no Deferred.
                self._in_flight[delivery.id] = _DECIDED
                self._attempted(result, delivery)
                return
            outcome: Deferred[object] = (
                result if isinstance(result, Deferred) else Deferred.fromCoroutine(result)  # type: ignore[arg-type]
            )
        except Exception:
            outcome = fail()
        ended = fired_value(outcome)
        if ended is not NOT_YET:
            self._in_flight[delivery.id] = _DECIDED
            self._attempted(ended, delivery)
            return
        self._in_flight[delivery.id] = outcome
        outcome.addBoth(self._attempted, delivery)

    def _attempted(self, outcome: object, delivery: Delivery) -> None:
        del self._in_flight[delivery.id]
        if self._abandoned:
            # The outcome is not recorded: the delivery stays under its lease.
            self._tokens.pop(delivery.id, None)
            if isinstance(outcome, Failure):
                outcome.trap(Exception)
            return
        if isinstance(outcome, Failure):
            _log.failure("attempt of {delivery_id} raised", outcome, delivery_id=delivery.id)
            error = outcome.value
            now = self._reactor.seconds()
            outcome = Attempt(
                delivery_id=delivery.id,
                number=delivery.attempts + 1,
                started_at=now,
                duration=0.0,
                error_kind=ErrorKind.INTERNAL,
                error_message=f"{type(error).__name__}: {error}",
                exception=error if isinstance(error, Exception) else None,
            )
        if isinstance(outcome, HoldBack):
            _log.debug(
                "{delivery_id} held back until {until}: {reason}",
                delivery_id=delivery.id,
                until=outcome.until,
                reason=outcome.reason,
            )
            self._give_back(delivery, outcome.until)
        else:
            assert isinstance(outcome, Attempt)
            update = decide(delivery, outcome, self._reactor.seconds(), self._rng)
            self._recording.add(delivery.id)
            self._unrecorded.append((delivery, update))
            if len(self._unrecorded) >= self.batch or self.record_delay == 0 or not self.running:
                self._flush()
            elif self._record_timer is None:
                self._record_timer = self._reactor.callLater(self.record_delay, self._flush)
        self._freed()
        self._maybe_idle()

    def _give_back(self, delivery: Delivery, until: float, why: str = "") -> None:
        """Release ``delivery``, unattempted, due again at ``until``, under its claim."""
        if why:
            _log.debug("{delivery_id} given back: {why}", delivery_id=delivery.id, why=why)
        self._recording.add(delivery.id)
        token = self._tokens.get(delivery.id, delivery.claim_token)
        if token is None:
            released = maybeDeferred(self.store.release, delivery.id, until)
        else:
            released = maybeDeferred(self.store.release, delivery.id, until, token)
        self._track(released, [delivery.id])
        released.addErrback(self._release_failed, delivery)

    def _release_failed(self, failure: Failure, delivery: Delivery) -> None:
        _log.failure(
            "giving back {delivery_id} failed; it will be claimed again when its lease expires",
            failure,
            delivery_id=delivery.id,
        )

    # -- batched recording -------------------------------------------------------------------

    def _track(self, write: Deferred[Any], delivery_ids: list[str]) -> None:
        """Keep ``write`` until it ends; then its deliveries may be claimed again."""
        self._writes.add(write)

        def ended(result: object) -> object:
            self._writes.discard(write)
            self._recording.difference_update(delivery_ids)
            for delivery_id in delivery_ids:
                self._tokens.pop(delivery_id, None)
            # What was written may be due at a new time (a retry, a release): look again.
            self.wake()
            self._maybe_idle()
            return result

        write.addBoth(ended)

    def _flush(self) -> None:
        if self._record_timer is not None:
            if self._record_timer.active():
                self._record_timer.cancel()
            self._record_timer = None
        if not self._unrecorded:
            return
        items, self._unrecorded = self._unrecorded, []
        items = [(delivery, self._fenced(update)) for delivery, update in items]
        recorded = maybeDeferred(self.store.record, [update for _, update in items])
        recorded.addCallback(self._record_again)
        recorded.addCallbacks(
            self._recorded, self._record_failed, callbackArgs=(items,), errbackArgs=(items,)
        )
        self._track(recorded, [delivery.id for delivery, _ in items])

    def _fenced(self, update: DeliveryUpdate) -> DeliveryUpdate:
        """``update`` under the latest claim this scheduler made of its delivery."""
        token = self._tokens.get(update.delivery_id, update.claim_token)
        if token == update.claim_token:
            return update
        return attrs.evolve(update, claim_token=token)

    def _record_again(
        self, dropped: Sequence[DeliveryUpdate] | None
    ) -> Sequence[DeliveryUpdate] | Deferred[Sequence[DeliveryUpdate]]:
        """The updates the store dropped as stale; those this scheduler claimed again while
        they were being written are written once more, under the newer claim."""
        if not dropped:
            return ()
        again: list[DeliveryUpdate] = []
        kept: list[DeliveryUpdate] = []
        for update in dropped:
            fenced = self._fenced(update)
            if fenced.claim_token == update.claim_token:
                kept.append(update)  # another claimer's claim superseded it
            else:
                again.append(fenced)
        if not again:
            return kept
        written = maybeDeferred(self.store.record, again)
        return written.addCallback(lambda still: [*kept, *(still or ())])

    def _recorded(
        self, dropped: Sequence[DeliveryUpdate], items: list[tuple[Delivery, DeliveryUpdate]]
    ) -> None:
        on_update = self._on_update
        if on_update is None:
            return
        stale = {update.delivery_id for update in dropped}
        for delivery, update in items:
            if delivery.id in stale:
                continue  # superseded by another claimer's outcome: not this one's news
            try:
                on_update(delivery, update)
            except Exception:
                _log.failure("update handler failed for {delivery_id}", delivery_id=delivery.id)

    def _record_failed(
        self, failure: Failure, items: list[tuple[Delivery, DeliveryUpdate]]
    ) -> None:
        _log.failure(
            "recording the outcome of {count} attempt(s) failed; {delivery_ids} will be "
            "claimed again when their leases expire",
            failure,
            count=len(items),
            delivery_ids=", ".join(delivery.id for delivery, _ in items),
        )

    # -- idleness ----------------------------------------------------------------------------

    def _idle(self) -> bool:
        return not self._in_flight and not self._recording and self._claiming is None

    def _maybe_idle(self) -> None:
        if self._idle_waiters and self._idle():
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def wait_in_flight(self) -> Deferred[None]:
        """A Deferred that fires when no attempt or claim is under way and every update
        (and release) has been written."""
        if self._idle():
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter
