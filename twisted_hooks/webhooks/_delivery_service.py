"""
The delivering half of the engine: :class:`DeliveryService`.

It is an :class:`~twisted.application.service.IService` holding the
:class:`~twisted_hooks.webhooks.scheduler.Scheduler` (which claims due deliveries from the
store under fenced leases), the :class:`~twisted_hooks.webhooks._gate.EndpointGate` (which
admits each attempt) and the sender (which only sends). For each claimed delivery it looks
up the subscriber as it is now, asks the gate, and hands the delivery to the sender; the
scheduler records each outcome. Once recorded, an outcome is told to the update observers,
to the send's callbacks, to the endpoint's health, and, when it is news (a failure, a dead
delivery, a circuit opened or closed, an endpoint disabled), fired on the dispatcher as an
:class:`~twisted_hooks.webhooks.OperationalEvent` (``kind="operational"``), which any
handler subscribes to like any other event.

Deliveries reach it from the store; the publisher only tells it, through
:meth:`DeliveryService.accepted`, that new ones are due (and which send's callbacks they
carry), so that they are attempted at once rather than at the next poll.
"""

from __future__ import annotations

import datetime
import functools
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_hooks._deferreds import NOT_YET, fired_value
from twisted_hooks.interfaces import (
    IDeliveryIntake,
    IDeliveryStore,
    IEventDispatcher,
    IPolicySender,
    ISubscriberStore,
    IWebhookSender,
)
from twisted_hooks.store._memory_subscribers import MemorySubscriberStore
from twisted_hooks.webhooks._gate import EndpointGate, Slot
from twisted_hooks.webhooks._kinds import OPERATIONAL, OperationalEvent
from twisted_hooks.webhooks._settings import Settings
from twisted_hooks.webhooks.delivery import (
    DEAD,
    DELIVERED,
    Attempt,
    Delivery,
    DeliveryUpdate,
    ErrorKind,
)
from twisted_hooks.webhooks.events import Request, SendOptions, WebhookEvent
from twisted_hooks.webhooks.health import (
    DISABLED,
    OPENED,
    RECOVERED,
    EndpointHealth,
    EndpointHealthTracker,
    HealthEvent,
)
from twisted_hooks.webhooks.logs import loggable_url
from twisted_hooks.webhooks.scheduler import HoldBack, Scheduler
from twisted_hooks.webhooks.subscribers import (
    Subscriber,
    SubscriberNotFound,
)

__all__ = ["DeliveryService"]

_log = Logger(namespace="twisted_hooks.webhooks")

#: What one attempt of a claimed delivery comes to.
_Outcome = Attempt | HoldBack

#: :func:`loggable_url`, remembered for the endpoints logged most recently (each outcome's
#: log line names its endpoint).
_loggable_url = functools.lru_cache(maxsize=1024)(loggable_url)


@attrs.frozen
class _Pending:
    """What the service remembers of a send until each of its deliveries ends."""

    event: WebhookEvent
    options: SendOptions


def _log_outcome(delivery: Delivery, update: DeliveryUpdate) -> None:
    """
    The one log line of a recorded attempt: delivered (info), failed with a retry due, or
    dead (warn). Its fields are stable: ``delivery_id``, ``event``, ``url`` (origin and
    path only: :func:`~twisted_hooks.webhooks.logs.loggable_url`), ``attempt``, ``elapsed``
    (milliseconds), ``status_code``, ``error_kind``, and for failures ``reason`` and, when a
    retry is due, ``retry_at`` (ISO 8601, UTC).
    """
    attempt = update.attempt
    fields: dict[str, Any] = {
        "delivery_id": delivery.id,
        "event": delivery.event,
        "url": _loggable_url(delivery.subscriber.url),
        "attempt": attempt.number,
        "elapsed": round(attempt.duration * 1000, 1),
        "status_code": attempt.status_code,
        "error_kind": attempt.error_kind,
    }
    if update.status == DELIVERED:
        _log.info("delivered {event} {delivery_id} to {url} in {elapsed:.0f} ms", **fields)
        return
    fields["reason"] = attempt.error_message or attempt.error_kind or "unknown"
    if update.status == DEAD:
        _log.warn(
            "dead {event} {delivery_id} to {url} after {attempt} attempt(s) ({reason})",
            **fields,
        )
        return
    when = update.next_attempt_at
    fields["retry_at"] = (
        None
        if when is None
        else datetime.datetime.fromtimestamp(when, datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
    )
    _log.warn(
        "failed {event} {delivery_id} to {url} on attempt {attempt} ({reason}), "
        "retry at {retry_at}",
        **fields,
    )


def _with_headers(subscriber: Subscriber, headers: tuple[tuple[str, str], ...]) -> Subscriber:
    """``subscriber`` with a send's extra headers over its custom headers of the same name."""
    names = {name.lower() for name, _ in headers}
    kept = tuple(pair for pair in subscriber.headers if pair[0].lower() not in names)
    return attrs.evolve(subscriber, headers=kept + headers)


@implementer(IDeliveryIntake)
class DeliveryService(MultiService):
    """
    Attempts due deliveries: scheduler, endpoint gate and sender, and the news of their
    outcomes.

    :param reactor: time and timers.
    :param settings: concurrency, leases, batching, health thresholds.
    :param deliveries: the delivery store it claims from and records in.
    :param subscribers: the subscriber store, for each attempt's current subscriber and
        for deactivation.
    :param static: the static subscribers (same uses, for deliveries made for them).
    :param sender: makes each HTTP attempt; given a send's own recipient policy when it
        provides :class:`~twisted_hooks.interfaces.IPolicySender`.
    :param health: the endpoints' health, limits and circuits.
    :param dispatcher: where operational events are fired (while it runs).
    :param rng: the source of retry jitter.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        settings: Settings,
        *,
        deliveries: IDeliveryStore,
        subscribers: ISubscriberStore,
        static: MemorySubscriberStore,
        sender: IWebhookSender,
        health: EndpointHealthTracker,
        dispatcher: IEventDispatcher,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._reactor = reactor
        self.settings = settings
        self.deliveries = deliveries
        self.subscribers = subscribers
        self._static = static
        self.sender = sender
        self._policy_aware = IPolicySender.providedBy(sender)
        self.health = health
        self.dispatcher = dispatcher
        #: Admits each attempt.
        self.gate = EndpointGate(
            reactor,
            health,
            max_per_host=settings.max_per_host,
            lease=settings.lease,
            timeout=settings.timeout,
            busy_retry=settings.busy_retry,
        )
        #: Claims due deliveries and records their outcomes.
        self.scheduler = Scheduler(
            deliveries,
            self._attempt,
            reactor,
            self._on_update,
            max_in_flight=settings.max_concurrency,
            lease=settings.lease,
            batch=settings.batch,
            record_delay=settings.record_delay,
            poll_interval=settings.poll_interval,
            rng=rng,
        )
        self.scheduler.setServiceParent(self)  # type: ignore[no-untyped-call]
        self._pending: dict[str, _Pending] = {}
        self._observers: list[Callable[[Delivery, DeliveryUpdate], object]] = []
        # The ids of the deliveries this process accepted (sent, retried) that have not
        # ended: deliveries of other runs or processes do not count.
        self._own: set[str] = set()
        self._drain_waiters: list[Deferred[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def startService(self) -> None:
        """Load the endpoints' health, then start claiming and attempting."""
        self.health.startService()
        self.gate.start()
        super().startService()  # type: ignore[no-untyped-call]

    def stopService(self) -> Deferred[None]:
        """
        Stop claiming; give back at once what waits for a slot; let the attempts under way
        finish and be recorded; save the endpoints' health; close idle connections.
        """
        d: Deferred[Any] = super().stopService()  # type: ignore[no-untyped-call]
        # The scheduler has stopped: what waits for a host's slot goes back to the store.
        self.gate.stop()
        d.addCallback(lambda _: self.health.stopService())
        close = getattr(self.sender, "close", None)
        if close is not None:
            d.addCallback(lambda _: close())
        return d.addCallback(lambda _: None)

    # -- IDeliveryIntake -----------------------------------------------------------------------

    def accepted(self, event: WebhookEvent, deliveries: Sequence[Delivery]) -> None:
        """``deliveries`` of ``event`` are stored and due: note the send's callbacks and
        headers, count them for :meth:`drain`, and claim them now."""
        options = event.options
        if options.has_callbacks or options.policy is not None or options.headers:
            pending = _Pending(event, options)
            for delivery in deliveries:
                self._pending[delivery.id] = pending
        self._own.update(delivery.id for delivery in deliveries)
        self.scheduler.wake(due_now=True)

    def revived(self, delivery: Delivery) -> None:
        """A dead delivery was made due again: count it for :meth:`drain`, claim it now."""
        self._own.add(delivery.id)
        self.scheduler.wake()

    def wake(self) -> None:
        """Deliveries may have become due: claim now."""
        self.scheduler.wake()

    # -- draining --------------------------------------------------------------------------

    def drain(self) -> Deferred[None]:
        """A Deferred that fires once every delivery :meth:`accepted` or :meth:`revived`
        has ended, delivered or dead."""
        if not self._own:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._drain_waiters.append(waiter)
        return waiter

    @property
    def unfinished(self) -> int:
        """How many of the deliveries :meth:`drain` waits for have not ended yet."""
        return len(self._own)

    def observe_updates(
        self, observer: Callable[[Delivery, DeliveryUpdate], object]
    ) -> Callable[[], None]:
        """Call ``observer(delivery, update)`` for every outcome once recorded; see
        :meth:`twisted_hooks.webhooks.Hooks.observe_updates`.

        :return: a function that stops the observing."""
        self._observers.append(observer)

        def stop() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return stop

    # -- the delivery log --------------------------------------------------------------------

    def get_delivery(self, delivery_id: str) -> Deferred[Delivery]:
        """One delivery with its current state; see
        :meth:`twisted_hooks.webhooks.Hooks.get_delivery`."""
        return self.deliveries.get(delivery_id)

    def list_deliveries(
        self,
        status: str | None = None,
        subscriber_id: str | None = None,
        limit: int = 100,
        since: float | None = None,
        *,
        subscriber_ids: Iterable[str] | None = None,
        after: tuple[float, str] | None = None,
    ) -> Deferred[Sequence[Delivery]]:
        """A page of the delivery log, newest first; see
        :meth:`twisted_hooks.webhooks.Hooks.list_deliveries`."""
        return self.deliveries.list(
            status, subscriber_id, limit, since, subscriber_ids=subscriber_ids, after=after
        )

    def delivery_attempts(self, delivery_id: str) -> Deferred[Sequence[Attempt]]:
        """The attempts of one delivery, oldest first; see
        :meth:`twisted_hooks.webhooks.Hooks.delivery_attempts`."""
        return self.deliveries.attempts(delivery_id)

    # -- one attempt -------------------------------------------------------------------------

    def _attempt(self, delivery: Delivery) -> _Outcome | Deferred[_Outcome]:
        if delivery.refresh_subscriber:
            # The subscriber as it is now: removed or deactivated ends the delivery.
            found = self.subscribers.find(delivery.subscriber.id)
            if found is None:
                # Unknown to this process's view of the store: another process may have
                # made it since this one last refreshed. The store itself decides.
                current: Deferred[Subscriber | None] = self.subscribers.get(  # type: ignore[assignment]
                    delivery.subscriber.id
                )
                current.addErrback(_subscriber_removed)
                return current.addCallback(self._attempt_to, delivery)
            return self._attempt_to(found, delivery)
        # Static and per-event subscribers: the static table may know a newer state (a
        # 410 deactivates there); otherwise the snapshot is the subscriber.
        found = self._static.find(delivery.subscriber.id)
        return self._attempt_to(found or delivery.subscriber, delivery)

    def _attempt_to(
        self, subscriber: Subscriber | None, delivery: Delivery
    ) -> _Outcome | Deferred[_Outcome]:
        if subscriber is None or not subscriber.active:
            state = "removed" if subscriber is None else "deactivated"
            return Attempt(
                delivery_id=delivery.id,
                number=delivery.attempts + 1,
                started_at=self._reactor.seconds(),
                duration=0.0,
                error_kind=ErrorKind.SUBSCRIBER,
                error_message=f"subscriber {delivery.subscriber.id} was {state}",
            )
        admitted = self.gate.admit(delivery, subscriber)
        if isinstance(admitted, Slot):
            return self._send(admitted, subscriber, delivery)
        if isinstance(admitted, HoldBack):
            return admitted
        return admitted.addCallback(self._admitted, subscriber, delivery)

    def _admitted(
        self, admitted: Slot | HoldBack, subscriber: Subscriber, delivery: Delivery
    ) -> _Outcome | Deferred[_Outcome]:
        if isinstance(admitted, HoldBack):
            return admitted
        return self._send(admitted, subscriber, delivery)

    def _send(
        self, slot: Slot, subscriber: Subscriber, delivery: Delivery
    ) -> _Outcome | Deferred[_Outcome]:
        pending = self._pending.get(delivery.id) if self._pending else None
        policy = None
        if pending is not None:
            policy = pending.options.policy
            if pending.options.headers:
                subscriber = _with_headers(subscriber, pending.options.headers)
        try:
            attempted: Deferred[_Outcome]
            if policy is not None and self._policy_aware:
                sender: Any = self.sender
                attempted = sender.attempt(delivery, subscriber, policy)
            else:
                attempted = self.sender.attempt(delivery, subscriber)  # type: ignore[assignment]
        except BaseException:
            self.gate.release(slot)
            raise
        # The slot is held for the HTTP exchange only: given back here, not once the
        # outcome is recorded, so a failed record cannot leak it.
        ended = fired_value(attempted)
        if ended is not NOT_YET:
            self.gate.release(slot)
            return ended
        return attempted.addBoth(self._release, slot)

    def _release(self, result: _Outcome, slot: Slot) -> _Outcome:
        self.gate.release(slot)
        return result

    # -- outcomes --------------------------------------------------------------------------

    def _on_update(self, delivery: Delivery, update: DeliveryUpdate) -> None:
        for observer in self._observers:
            try:
                observer(delivery, update)
            except Exception:
                _log.failure(
                    "an update observer failed for {delivery_id}", delivery_id=delivery.id
                )
        attempt = update.attempt
        pending = self._pending.get(delivery.id) if self._pending else None
        if pending is not None:
            _callbacks(pending, delivery, attempt)
        if attempt.error_kind == ErrorKind.GONE:
            self._deactivate(delivery, attempt)
        _log_outcome(delivery, update)
        if not attempt.succeeded:
            self._operational("webhook.delivery.failed", delivery, attempt, attempt.error_message)
        if update.status == DEAD:
            self._operational("webhook.delivery.dead", delivery, attempt, attempt.error_message)
        events = self.health.observe(delivery.subscriber, attempt, self._reactor.seconds())
        for event in events:
            self._health_event(event, delivery, attempt)
        if update.status in (DELIVERED, DEAD):
            if pending is not None:
                del self._pending[delivery.id]
            own = self._own
            if delivery.id in own:
                own.discard(delivery.id)
                if not own and self._drain_waiters:
                    waiters, self._drain_waiters = self._drain_waiters, []
                    for waiter in waiters:
                        waiter.callback(None)

    def _health_event(self, event: HealthEvent, delivery: Delivery, attempt: Attempt) -> None:
        fields = {
            "subscriber_id": delivery.subscriber.id,
            "url": loggable_url(delivery.subscriber.url),
        }
        if event.kind == DISABLED:
            _log.warn("endpoint {subscriber_id} at {url}: {reason}", reason=event.reason, **fields)
            self._deactivate(delivery, attempt, event)
        elif event.kind == OPENED:
            _log.warn("endpoint {subscriber_id} at {url}: {reason}", reason=event.reason, **fields)
            self._operational(
                "webhook.endpoint.opened", delivery, attempt, event.reason, event.health
            )
        elif event.kind == RECOVERED:
            _log.info("endpoint {subscriber_id} at {url}: {reason}", reason=event.reason, **fields)
            self._operational(
                "webhook.endpoint.recovered", delivery, attempt, event.reason, event.health
            )

    def _deactivate(
        self, delivery: Delivery, attempt: Attempt, event: HealthEvent | None = None
    ) -> None:
        """Deactivate the subscriber after a 410 Gone (``event`` is ``None``) or sustained
        failure, then fire ``webhook.endpoint.disabled``."""
        store = self.subscribers if delivery.refresh_subscriber else self._static
        why = "answered 410 Gone" if event is None else "failed for too long"

        def done(result: object) -> None:
            if (
                isinstance(result, Failure)
                and result.check(SubscriberNotFound)
                and not delivery.refresh_subscriber
            ):
                # Given with the event (or by a callable): there is no subscription to
                # deactivate, and nothing went wrong.
                _log.info(
                    "subscriber {subscriber_id} at {url} {why}; it is not stored, "
                    "so there is no subscription to deactivate",
                    subscriber_id=delivery.subscriber.id,
                    url=loggable_url(delivery.subscriber.url),
                    why=why,
                )
                return
            if isinstance(result, Failure):
                _log.failure(
                    "could not deactivate subscriber {subscriber_id}",
                    result,
                    subscriber_id=delivery.subscriber.id,
                )
                return
            if event is None:
                reason = "the endpoint answered 410 Gone; the subscription is deactivated"
            else:
                reason = f"{event.reason}; the subscription is deactivated"
            self._operational(
                "webhook.endpoint.disabled",
                delivery,
                attempt,
                reason,
                None if event is None else event.health,
            )

        store.deactivate(delivery.subscriber.id).addBoth(done)

    def _operational(
        self,
        name: str,
        delivery: Delivery,
        attempt: Attempt,
        reason: str | None,
        health: EndpointHealth | None = None,
    ) -> None:
        if not self.dispatcher.running:
            return
        event = OperationalEvent(name, delivery, attempt, reason or "", health)
        self.dispatcher.fire_event(event, name=name, kind=OPERATIONAL)


def _subscriber_removed(failure: Failure) -> None:
    failure.trap(SubscriberNotFound)
    return None


def _callbacks(pending: _Pending, delivery: Delivery, attempt: Attempt) -> None:
    """Thorn's per-send callbacks for one recorded attempt; their errors are logged."""
    options = pending.options
    request = Request(
        delivery=delivery,
        subscriber=delivery.subscriber,
        attempt=attempt,
        data=pending.event.data,
        sender=pending.event.sender,
    )
    exception: BaseException = attempt.exception or RuntimeError(attempt.error_message)
    try:
        if attempt.succeeded:
            if options.on_success is not None:
                options.on_success(request)
        elif attempt.error_kind == ErrorKind.TIMEOUT and options.on_timeout is not None:
            options.on_timeout(request, exception)
        elif options.on_error is not None:
            options.on_error(request, exception)
    except Exception:
        _log.failure("a send callback failed for delivery {delivery_id}", delivery_id=delivery.id)
