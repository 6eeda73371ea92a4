"""
The webhook application: :class:`Hooks`.

``Hooks`` owns the pieces of the main path and wires them together::

    Hooks.send ──> EventDispatcher.fire_event ──> WebhookHandler (a handler in a phase)
      ──> subscriber stores: pattern match ──> one Delivery per subscriber
      ──> delivery store: enqueue ──> Scheduler ──> HTTPSender ──> record, callbacks,
          operational events

Webhook events are fired on the application's dispatcher with the details ``name`` (the
event name), ``kind`` (``"webhook"``) and ``owner`` (the sender's identity), so
in-process handlers can subscribe to them like to any event. The application's own
operational events (:class:`OperationalEvent`: ``webhook.delivery.failed``,
``webhook.delivery.dead``, ``webhook.endpoint.disabled``, ``webhook.endpoint.opened``,
``webhook.endpoint.recovered``) are fired with ``kind="operational"``; the webhook handler
ignores them, so they never become webhooks themselves.

Before each attempt the endpoint's health
(:class:`~twisted_hooks.webhooks.health.EndpointHealthTracker`) is asked whether it may go:
a subscriber's ``max_concurrency`` and ``rate_limit``, and its circuit breaker, hold a
delivery back (released to the store, due again later, no attempt counted) rather than
fail it.
"""

from __future__ import annotations

import datetime
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import attrs
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTCP, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_hooks.dispatcher import EventDispatcher, FireResult
from twisted_hooks.interfaces import (
    IDeliveryStore,
    IHealthStore,
    ISubscriberStore,
    IWebhookSender,
)
from twisted_hooks.webhooks._settings import BACKENDS, Settings
from twisted_hooks.webhooks.buffer import BufferState, EventBuffer
from twisted_hooks.webhooks.delivery import (
    DEAD,
    DELIVERED,
    Attempt,
    Delivery,
    DeliveryUpdate,
    ErrorKind,
    MemoryDeliveryStore,
)
from twisted_hooks.webhooks.encoding import JSON, EncodingError, encode_body
from twisted_hooks.webhooks.events import (
    Event,
    Request,
    SendOptions,
    SendResult,
    WebhookEvent,
)
from twisted_hooks.webhooks.health import (
    DISABLED,
    OPENED,
    RECOVERED,
    EndpointHealth,
    EndpointHealthTracker,
    HealthEvent,
)
from twisted_hooks.webhooks.logs import loggable_url
from twisted_hooks.webhooks.patterns import pattern_matches, validate_event_name
from twisted_hooks.webhooks.scheduler import HoldBack, Scheduler
from twisted_hooks.webhooks.sender import HTTPSender, origin_of
from twisted_hooks.webhooks.signing import generate_secret
from twisted_hooks.webhooks.subscribers import (
    MemorySubscriberStore,
    Subscriber,
    SubscriberNotFound,
    parse_subscribers,
    resolve_subscribers,
    sender_ident,
)
from twisted_hooks.webhooks.validators import IPNetwork

__all__ = [
    "BACKENDS",
    "KEYWORDS",
    "OPERATIONAL",
    "WEBHOOK",
    "Hooks",
    "HooksNotRunning",
    "OperationalEvent",
    "Settings",
    "WebhookHandler",
]

#: The dispatcher keywords webhook and operational events are fired with.
KEYWORDS: tuple[str, ...] = ("name", "kind", "owner")
#: The ``kind`` of published webhook events.
WEBHOOK = "webhook"
#: The ``kind`` of the application's own operational events.
OPERATIONAL = "operational"

_log = Logger(namespace="twisted_hooks.webhooks")

_T = TypeVar("_T")

#: A send held by :meth:`Hooks.buffer_events`: the event, its encoded bodies, and the
#: Deferred its sender waits on.
_Held = tuple["WebhookEvent", dict[str, bytes], Deferred["SendResult"]]


class HooksNotRunning(RuntimeError):
    """A send reached an application that is not started (or is stopping)."""


@attrs.frozen
class OperationalEvent:
    """
    An event the application fires about its own work.

    :ivar name: ``webhook.delivery.failed`` (an attempt failed),
        ``webhook.delivery.dead`` (a delivery ended undelivered),
        ``webhook.endpoint.disabled`` (a 410 Gone, or failure sustained for
        ``disable_failures`` attempts over ``disable_period``: the subscriber is
        deactivated), ``webhook.endpoint.opened`` (the endpoint's circuit opened: its
        deliveries are held back for ``circuit_cooldown``) or
        ``webhook.endpoint.recovered`` (its circuit closed again).
    :ivar delivery: the delivery concerned (for endpoint events: the one whose attempt
        changed the endpoint's health).
    :ivar attempt: the attempt that caused it.
    :ivar reason: a sentence for people.
    :ivar health: for endpoint events other than 410 Gone, the endpoint's health record
        after the change; else ``None``.
    """

    name: str
    delivery: Delivery
    attempt: Attempt
    reason: str
    health: EndpointHealth | None = None


@attrs.frozen
class _Pending:
    """What the application remembers about a delivery of its own until it ends."""

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
        "url": loggable_url(delivery.subscriber.url),
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


class WebhookHandler:
    """
    The dispatcher handler that turns webhook events into deliveries.

    :param hooks: the application it works for.
    """

    def __init__(self, hooks: Hooks) -> None:
        self._hooks = hooks

    def __call__(self, event: WebhookEvent) -> Deferred[SendResult]:
        """Find the subscribers of ``event``, make and enqueue its deliveries."""
        return self._hooks._deliver(event)


class Hooks(MultiService):
    """
    The webhook application: send events, manage subscribers, deliver.

    :param reactor: the reactor; the global one if ``None`` (looked up now).
    :param settings: defaults; see :class:`Settings`.
    :param dispatcher: the dispatcher to fire events on; a new one if ``None``. It must
        allow the keywords :data:`KEYWORDS` and have the phase ``settings.phase``.
    :param subscribers: the subscriber store; in memory if ``None``.
    :param deliveries: the delivery store; in memory (the ``default`` backend) if ``None``.
    :param sender: makes HTTP attempts; an :class:`HTTPSender` from the settings if ``None``.
    :param static_subscribers: subscribers in Thorn's ``THORN_SUBSCRIBERS`` shapes.
    :param default_secret: the secret of static subscribers given without one; a random
        one (readable as :attr:`default_secret`) if ``None``.
    :param rng: the source of retry jitter.
    :param health: where endpoint health (failure streaks, circuits, disabling) is kept
        across restarts; in memory only if ``None``. See :attr:`endpoint_health`.
    :param allowed_networks: internal networks (CIDR text or :mod:`ipaddress` networks)
        webhooks may reach, on any port, added to ``settings.policy``'s allow-list. Local
        development is ``Hooks(reactor, allowed_networks=["127.0.0.0/8", "::1/128"])``.

    It is an :class:`~twisted.application.service.IService`: start it (``startService``,
    or as part of a service tree) before sending; stopping it lets attempts under way
    finish.
    """

    def __init__(
        self,
        reactor: Any = None,
        *,
        settings: Settings | None = None,
        dispatcher: EventDispatcher | None = None,
        subscribers: ISubscriberStore | None = None,
        deliveries: IDeliveryStore | None = None,
        sender: IWebhookSender | None = None,
        static_subscribers: Mapping[str, object] | None = None,
        default_secret: str | None = None,
        rng: random.Random | None = None,
        health: IHealthStore | None = None,
        allowed_networks: Iterable[str | IPNetwork] = (),
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self._reactor: IReactorTime = reactor
        settings = settings if settings is not None else Settings()
        if isinstance(allowed_networks, str):
            allowed_networks = [allowed_networks]
        allowed = tuple(allowed_networks)
        if allowed:
            policy = settings.policy
            settings = attrs.evolve(
                settings,
                policy=attrs.evolve(policy, allowed_networks=(*policy.allowed_networks, *allowed)),
            )
        self.settings = settings
        if dispatcher is None:
            dispatcher = EventDispatcher(KEYWORDS, reactor=reactor)
        missing = set(KEYWORDS) - dispatcher.allowed_match_spec_keywords
        if missing:
            raise ValueError(f"the dispatcher must allow the keywords {sorted(missing)!r}")
        if self.settings.phase not in dispatcher.phases:
            raise ValueError(
                f"the dispatcher has no phase {self.settings.phase!r}; its phases are "
                f"{dispatcher.phases!r}"
            )
        self.dispatcher = dispatcher
        self.subscribers: ISubscriberStore = (
            subscribers if subscribers is not None else MemorySubscriberStore()
        )
        self.deliveries: IDeliveryStore = (
            deliveries if deliveries is not None else MemoryDeliveryStore()
        )
        if sender is None:
            tcp: IReactorTCP = reactor
            sender = HTTPSender(
                tcp,
                self.settings.policy,
                max_concurrency=self.settings.max_concurrency,
                max_per_host=self.settings.max_per_host,
                max_response_body=self.settings.max_response_body,
            )
        self.sender = sender
        self.default_secret = default_secret if default_secret is not None else generate_secret()
        static, callables = parse_subscribers(static_subscribers or {}, self.default_secret)
        self._static = MemorySubscriberStore(static)
        self._static_callables = callables
        settings = self.settings
        #: The live health of every endpoint: limits, circuits, disabling.
        self.endpoint_health = EndpointHealthTracker(
            reactor,
            health,
            circuit_failures=settings.circuit_failures,
            circuit_cooldown=settings.circuit_cooldown,
            disable_failures=settings.disable_failures,
            disable_period=settings.disable_period,
            busy_retry=settings.busy_retry,
            probe_timeout=settings.lease,
            save_delay=settings.health_save_delay,
        )
        # Not a child service: it starts before the scheduler (its records load first)
        # and stops once the scheduler has drained (the last outcomes are saved).
        self.scheduler = Scheduler(
            self.deliveries,
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
        # The encoded bodies of events between send and the webhook handler, by event id.
        self._bodies: dict[str, dict[str, bytes]] = {}
        # Attempts under way per (scheme, host, port), capped by settings.max_per_host, and
        # the deliveries waiting for a slot (with their give-up timers).
        self._hosts: dict[tuple[str, str, int], int] = {}
        self._host_queues: dict[
            tuple[str, str, int], deque[tuple[Deferred[bool], IDelayedCall]]
        ] = {}
        # The ids of the deliveries this application accepted (sent, retried, recovered)
        # that have not ended: deliveries of other runs or processes do not count.
        self._own: set[str] = set()
        self._drain_waiters: list[Deferred[None]] = []
        self._buffer: BufferState[_Held] = BufferState()
        self._accepting = False
        self._pruning: LoopingCall | None = None
        self._handler = WebhookHandler(self)
        self._handler_id: int = dispatcher.add_event_handler(  # type: ignore[assignment]
            self._handler, self.settings.phase, use_weakref=False, kind=WEBHOOK
        ).result

    # -- lifecycle -------------------------------------------------------------------------

    def startService(self) -> None:
        """Start the dispatcher and the scheduler; sends are accepted from now on."""
        self.dispatcher.start()
        self._accepting = True
        self.endpoint_health.startService()
        super().startService()  # type: ignore[no-untyped-call]
        self._pruning = LoopingCall(self._prune_logged)
        self._pruning.clock = self._reactor
        self._pruning.start(self.settings.prune_interval, now=False)

    def stopService(self) -> Deferred[None]:
        """
        Refuse new sends, let the attempts under way finish and be recorded, save the
        endpoints' health, then stop the dispatcher and close idle connections. Deliveries
        not yet attempted stay in the delivery store (lost with the process for the
        in-memory store): those claimed but still waiting for a connection slot are given
        back to it at once, due when they were, rather than left to their leases.
        """
        self._accepting = False
        if self._pruning is not None and self._pruning.running:
            self._pruning.stop()
        d: Deferred[Any] = super().stopService()  # type: ignore[no-untyped-call]
        # The scheduler has stopped: what waits for a host's slot goes back to the store.
        self._give_back_waiting()
        d.addCallback(lambda _: self.endpoint_health.stopService())
        d.addCallback(lambda _: self.dispatcher.stop())
        close = getattr(self.sender, "close", None)
        if close is not None:
            d.addCallback(lambda _: close())
        return d.addCallback(lambda _: None)

    def drain(self) -> Deferred[None]:
        """
        A Deferred that fires once every delivery this application made (by
        :meth:`send`) or revived (by :meth:`retry`) has ended, delivered or dead.

        Deliveries of other runs or processes sharing the store, and those revived in bulk
        by :meth:`recover`, are not waited for: watch the store's
        :meth:`~twisted_hooks.interfaces.IDeliveryStore.stats` for those.
        """
        if not self._own:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._drain_waiters.append(waiter)
        return waiter

    @property
    def unfinished(self) -> int:
        """How many of the deliveries :meth:`drain` waits for have not ended yet."""
        return len(self._own)

    # -- replay and retention ----------------------------------------------------------------

    def retry(self, delivery_id: str) -> Deferred[Delivery]:
        """
        Attempt a dead delivery again, now, with its id (``Hook-Delivery``, ``webhook-id``)
        and attempt history: it resumes its retry schedule, and gets one more attempt when
        the schedule was used up.

        :return: a Deferred firing the revived delivery; it fails with
            :class:`KeyError` for an unknown id and :class:`ValueError` for a delivery
            that is not dead.
        """
        revived = self.deliveries.retry(delivery_id, self._reactor.seconds())
        return revived.addCallback(self._revived)

    def recover(self, subscriber_id: str, since: float) -> Deferred[int]:
        """
        Attempt again every dead delivery of a subscriber made at or after ``since``
        (seconds since the epoch), as :meth:`retry` does one.

        :return: a Deferred firing how many deliveries were revived.
        """
        recovered = self.deliveries.recover(subscriber_id, since, self._reactor.seconds())
        return recovered.addCallback(self._recovered)

    def _revived(self, delivery: Delivery) -> Delivery:
        self._own.add(delivery.id)
        self.scheduler.wake()
        return delivery

    def _recovered(self, count: int) -> int:
        if count:
            self.scheduler.wake()
        return count

    def reactivate(self, subscriber_id: str) -> Deferred[Subscriber]:
        """
        Make a deactivated subscriber active again (after a 410, or after it was disabled
        for sustained failure) and forget its endpoint's failure streak and circuit.
        Deliveries that died meanwhile stay dead: :meth:`recover` them.
        """
        store = self.subscribers if self._static.find(subscriber_id) is None else self._static

        def activate(subscriber: Subscriber) -> Deferred[Subscriber]:
            self.endpoint_health.reset(subscriber_id, self._reactor.seconds())
            if subscriber.active:
                return succeed(subscriber)
            return store.update(attrs.evolve(subscriber, active=True))

        return store.get(subscriber_id).addCallback(activate)

    def prune(self) -> Deferred[tuple[int, int]]:
        """
        Delete delivered deliveries older than ``settings.keep_delivered`` (dead ones are
        kept) and idempotency keys older than ``settings.keep_keys``. The running
        application does this every ``settings.prune_interval`` seconds.

        :return: a Deferred firing ``(deliveries deleted, keys deleted)``.
        """
        now = self._reactor.seconds()
        keep = self.settings.keep_delivered
        pruned: Deferred[int] = (
            self.deliveries.prune(now - keep) if keep is not None else succeed(0)
        )

        def keys(deliveries: int) -> Deferred[tuple[int, int]]:
            forgotten = self.deliveries.prune_keys(now - self.settings.keep_keys)
            return forgotten.addCallback(lambda count: (deliveries, count))

        return pruned.addCallback(keys)

    def _prune_logged(self) -> Deferred[None]:
        def done(counts: tuple[int, int]) -> None:
            if any(counts):
                _log.info(
                    "pruned {deliveries} delivered deliveries and {keys} idempotency keys",
                    deliveries=counts[0],
                    keys=counts[1],
                )

        def failed(failure: Failure) -> None:
            _log.failure("pruning the delivery store failed; trying again later", failure)

        return self.prune().addCallbacks(done, failed)

    # -- subscribers -------------------------------------------------------------------------

    def subscribe(self, event: str, url: str, **fields: Any) -> Deferred[Subscriber]:
        """
        Add a subscriber of ``event`` (a pattern) at ``url``.

        :param fields: other :class:`Subscriber` fields (``secret``, ``digest``,
            ``content_type``, ``owner``, ``headers``, ...).
        :raise ValueError: at once, for an invalid field.
        :raise twisted_hooks.webhooks.validators.SecurityError: at once, for a URL the
            recipient validators refuse without resolving it (scheme, port, literal
            internal address).
        """
        subscriber = Subscriber(event=event, url=url, **fields)
        self.settings.policy.check_url(url)
        return self.subscribers.add(subscriber)

    def unsubscribe(self, subscriber_id: str) -> Deferred[None]:
        """Remove a subscriber; its pending deliveries end dead at their next attempt."""
        return self.subscribers.remove(subscriber_id)

    def event(self, name: str, **kwargs: Any) -> Event:
        """An :class:`~twisted_hooks.webhooks.events.Event` bound to this application."""
        return Event(name, app=self, **kwargs)

    # -- sending -----------------------------------------------------------------------------

    def send(
        self,
        name: str,
        data: object,
        sender: object = None,
        *,
        event_id: str | None = None,
        options: SendOptions | None = None,
    ) -> Deferred[SendResult]:
        """
        Publish an event: fire it on the dispatcher, whose webhook handler makes one
        delivery per subscriber.

        :param name: the event name.
        :param data: the payload.
        :param sender: who sends it (subscribers with an owner receive only their own).
        :param event_id: the event's id; a new UUID if ``None``. An id given here is the
            send's idempotency key: when the delivery store already knows it (the event
            was published before, by this process or another sharing the store), nothing
            is delivered and the result says :attr:`~SendResult.duplicate`. Keys are
            remembered for ``settings.keep_keys`` seconds (24 hours by default; a memory
            store also forgets the oldest beyond 100,000).
        :param options: per-send settings.
        :return: a Deferred firing a :class:`SendResult` once the deliveries are accepted.
            Inside :meth:`buffer_events` it fires when the buffer is flushed.
        :raise ValueError: at once, for an invalid name or backend, or a per-send timeout
            that is not shorter than ``settings.lease`` (a lease must outlast the attempt,
            or another claimer could attempt the same delivery meanwhile).
        :raise twisted_hooks.webhooks.encoding.EncodingError: at once, for data that cannot
            be encoded as JSON.
        """
        validate_event_name(name)
        options = options if options is not None else SendOptions()
        if options.backend is not None and options.backend not in BACKENDS:
            raise ValueError(
                f"unknown backend {options.backend!r}; use one of {sorted(BACKENDS)!r}"
            )
        if options.timeout is not None and not 0 < options.timeout < self.settings.lease:
            raise ValueError(
                f"timeout {options.timeout:g} s must be positive and shorter than the lease "
                f"({self.settings.lease:g} s); raise Settings.lease for longer attempts"
            )
        event = WebhookEvent(
            name=name,
            data=data,
            sender=sender,
            id=event_id if event_id is not None else str(uuid.uuid4()),
            timestamp=self._reactor.seconds(),
            options=options,
            idempotent=event_id is not None,
        )
        body = encode_body(data, JSON)  # fail now for data that cannot be sent at all
        bodies = {JSON: body}
        if self._buffer.depth:
            waiter: Deferred[SendResult] = Deferred()
            self._buffer.hold((event, bodies, waiter))
            return waiter
        return self._fire(event, bodies)

    def _fire(self, event: WebhookEvent, bodies: dict[str, bytes]) -> Deferred[SendResult]:
        if not self._accepting:
            return fail(
                HooksNotRunning(
                    f"event {event.name!r} was not sent: the application is not running "
                    "(start it with startService(), or add it to a running service)"
                )
            )
        self._bodies[event.id] = bodies
        d = self.dispatcher.fire_event(
            event, name=event.name, kind=WEBHOOK, owner=sender_ident(event.sender)
        )
        return d.addCallback(self._send_result, event)

    def _send_result(self, result: FireResult, event: WebhookEvent) -> SendResult:
        self._bodies.pop(event.id, None)
        if result.dropped:
            raise HooksNotRunning(f"event {event.name!r} was dropped: the dispatcher is stopped")
        outcome = result.for_handler(self._handler_id)
        if outcome is None:
            raise RuntimeError("the webhook handler was removed from the dispatcher")
        if outcome.failure is not None:
            outcome.failure.raiseException()
        assert isinstance(outcome.value, SendResult)
        return outcome.value

    def buffer_events(
        self, flush_freq: int | None = None, flush_timeout: float | None = None
    ) -> EventBuffer[_Held]:
        """
        Thorn's ``buffer_events``: hold sends until the outermost context exits.

        Use it in the reactor thread (synchronous code uses
        :meth:`twisted_hooks.sync.BlockingHooks.buffer_events`)::

            with hooks.buffer_events(flush_freq=100, flush_timeout=2.0) as buffer:
                for thing in things:
                    hooks.send("thing.done", thing)
                    buffer.maybe_flush()

        Each held send's Deferred fires when its flush has made its deliveries; ``flush()``
        returns a Deferred firing the list of :class:`SendResult` (or failures).
        """
        return EventBuffer(
            self._buffer, self._flush, self._reactor.seconds, flush_freq, flush_timeout
        )

    def _flush(self, items: list[_Held]) -> Deferred[list[Any]]:
        results: list[Deferred[SendResult]] = []
        for event, bodies, waiter in items:
            d = self._fire(event, bodies)
            # Not chainDeferred: it would leave d with None, and flush()'s list with it.
            d.addBoth(self._relay, waiter)
            results.append(d)
        return DeferredList(results, consumeErrors=True).addCallback(
            lambda pairs: [value for _, value in pairs]
        )

    @staticmethod
    def _relay(result: Any, waiter: Deferred[SendResult]) -> Any:
        if isinstance(result, Failure):
            waiter.errback(result)
        else:
            waiter.callback(result)
        return result

    # -- the webhook handler's work ------------------------------------------------------------

    def _candidates(self, event: WebhookEvent, owner: str | None) -> list[Subscriber]:
        found: list[Subscriber] = []
        for pattern, produce in self._static_callables:
            if pattern_matches(pattern, event.name):
                produced = produce(event.name, sender=event.sender)
                found.extend(resolve_subscribers(event.name, produced, self.default_secret))
        for source in event.options.subscribers:
            produced = source(event.name, sender=event.sender) if callable(source) else source
            found.extend(resolve_subscribers(event.name, produced, self.default_secret))
        return [s for s in found if s.receives(owner)]

    def _deliver(self, event: WebhookEvent) -> Deferred[SendResult]:
        options = event.options
        backend = options.backend or self.settings.backend
        if backend == "disabled":
            return succeed(SendResult(event))
        owner = sender_ident(event.sender)
        matched = self.subscribers.match(event.name, owner)
        return matched.addCallback(self._make_deliveries, event, owner)

    def _make_deliveries(
        self, stored: Sequence[Subscriber], event: WebhookEvent, owner: str | None
    ) -> SendResult | Deferred[SendResult]:
        options = event.options
        groups: list[tuple[Sequence[Subscriber], bool]] = [(stored, True)]
        if len(self._static):
            groups.append((self._static.matching(event.name, owner), False))
        if self._static_callables or options.subscribers:
            groups.append((self._candidates(event, owner), False))
        bodies = self._bodies.get(event.id) or {}
        now = self._reactor.seconds()
        timeout = options.timeout if options.timeout is not None else self.settings.timeout
        retry = options.retry if options.retry is not None else self.settings.retry
        keepalive = options.allow_keepalive if options.allow_keepalive is not None else True
        deliveries: list[Delivery] = []
        skipped: list[tuple[str, str]] = []
        seen: set[str] = set()
        for group, refresh in groups:
            for subscriber in group:
                if subscriber.id in seen:
                    continue
                seen.add(subscriber.id)
                body = bodies.get(subscriber.content_type)
                if body is None:
                    try:
                        body = bodies[subscriber.content_type] = encode_body(
                            event.data, subscriber.content_type
                        )
                    except EncodingError as error:
                        _log.error(
                            "event {event} cannot be sent to subscriber {subscriber_id}: {reason}",
                            event=event.name,
                            subscriber_id=subscriber.id,
                            reason=str(error),
                        )
                        skipped.append((subscriber.id, str(error)))
                        continue
                deliveries.append(
                    Delivery(
                        id=str(uuid.uuid4()),
                        event=event.name,
                        event_id=event.id,
                        subscriber=subscriber,
                        body=body,
                        created_at=now,
                        next_attempt_at=now,
                        retry=retry,
                        timeout=timeout,
                        allow_keepalive=keepalive,
                        refresh_subscriber=refresh,
                    )
                )
        key = event.id if event.idempotent else None
        # With a key, the key is stored even without deliveries: the event was published,
        # and publishing it again must not reach later subscribers.
        if not deliveries and key is None:
            return SendResult(event, (), tuple(skipped))
        enqueued = self.deliveries.enqueue(deliveries, key)
        return enqueued.addCallback(self._enqueued, event, deliveries, skipped)

    def _enqueued(
        self,
        stored: bool,
        event: WebhookEvent,
        deliveries: list[Delivery],
        skipped: list[tuple[str, str]],
    ) -> SendResult:
        if not stored:
            _log.info(
                "event {event} with id {event_id} was published already; not again",
                event=event.name,
                event_id=event.id,
            )
            return SendResult(event, duplicate=True)
        if deliveries:
            options = event.options
            if options.has_callbacks or options.policy is not None or options.headers:
                pending = _Pending(event, options)
                for delivery in deliveries:
                    self._pending[delivery.id] = pending
            self._own.update(delivery.id for delivery in deliveries)
            self.scheduler.wake()
        return SendResult(event, tuple(deliveries), tuple(skipped))

    def _attempt(self, delivery: Delivery) -> Deferred[Attempt | HoldBack]:
        if delivery.refresh_subscriber:
            # The subscriber as it is now: removed or deactivated ends the delivery.
            found = self.subscribers.find(delivery.subscriber.id)
            if found is None:
                # Unknown to this process's view of the store: another process may have
                # made it since this one last refreshed. The store itself decides.
                current: Deferred[Subscriber | None] = self.subscribers.get(  # type: ignore[assignment]
                    delivery.subscriber.id
                )
                current.addErrback(self._subscriber_removed)
                return current.addCallback(self._attempt_to, delivery)
            return self._attempt_to(found, delivery)
        # Static and per-event subscribers: the static table may know a newer state (a
        # 410 deactivates there); otherwise the snapshot is the subscriber.
        found = self._static.find(delivery.subscriber.id)
        return self._attempt_to(found or delivery.subscriber, delivery)

    @staticmethod
    def _subscriber_removed(failure: Failure) -> None:
        failure.trap(SubscriberNotFound)
        return None

    def _attempt_to(
        self, subscriber: Subscriber | None, delivery: Delivery
    ) -> Deferred[Attempt | HoldBack]:
        now = self._reactor.seconds()
        if subscriber is None or not subscriber.active:
            state = "removed" if subscriber is None else "deactivated"
            return succeed(
                Attempt(
                    delivery_id=delivery.id,
                    number=delivery.attempts + 1,
                    started_at=now,
                    duration=0.0,
                    error_kind=ErrorKind.SUBSCRIBER,
                    error_message=f"subscriber {delivery.subscriber.id} was {state}",
                )
            )
        # The per-host cap is applied here, not by waiting in the sender: a delivery waits
        # for its host's slot only as long as its lease still covers a whole attempt
        # afterwards; past that it is given back (due now), so that no other process can
        # claim it while this one still means to POST it.
        host = origin_of(subscriber.url)
        lease_end = delivery.lease_expires_at
        if lease_end is None:
            lease_end = now + self.settings.lease
        margin = min(1.0, (self.settings.lease - self.settings.timeout) / 2)
        latest_start = lease_end - delivery.timeout - margin
        slot = self._host_slot(host, latest_start, now)
        return slot.addCallback(self._with_host_slot, subscriber, delivery, host)

    def _host_slot(
        self, host: tuple[str, str, int], latest_start: float, now: float
    ) -> Deferred[bool]:
        """A slot among the host's ``max_per_host``: ``True`` once had, ``False`` when
        ``latest_start`` passes first, or at once when the scheduler has stopped."""
        if not self.scheduler.running:
            return succeed(False)
        in_use = self._hosts.get(host, 0)
        if in_use < self.settings.max_per_host:
            self._hosts[host] = in_use + 1
            return succeed(True)
        waiter: Deferred[bool] = Deferred()
        queue = self._host_queues.setdefault(host, deque())

        def give_up() -> None:
            queue.remove(entry)
            if not queue:
                del self._host_queues[host]
            waiter.callback(False)

        timer = self._reactor.callLater(max(0.0, latest_start - now), give_up)
        entry = (waiter, timer)
        queue.append(entry)
        return waiter

    def _give_back_waiting(self) -> None:
        """Tell every delivery waiting for a host's slot that none will come (the scheduler
        has stopped): each is given back to the store, unattempted."""
        queues, self._host_queues = self._host_queues, {}
        for queue in queues.values():
            for waiter, timer in queue:
                if timer.active():
                    timer.cancel()
                waiter.callback(False)

    def _host_free(self, host: tuple[str, str, int]) -> None:
        """Hand the host's freed slot to the oldest waiter, or count it free."""
        queue = self._host_queues.get(host)
        if queue:
            waiter, timer = queue.popleft()
            if not queue:
                del self._host_queues[host]
            timer.cancel()
            waiter.callback(True)
            return
        left = self._hosts[host] - 1
        if left:
            self._hosts[host] = left
        else:
            del self._hosts[host]

    def _with_host_slot(
        self,
        granted: bool,
        subscriber: Subscriber,
        delivery: Delivery,
        host: tuple[str, str, int],
    ) -> Attempt | HoldBack | Deferred[Attempt | HoldBack]:
        now = self._reactor.seconds()
        if not granted and not self.scheduler.running:
            return HoldBack(
                min(now, delivery.next_attempt_at),
                "the application is stopping before its attempt started",
            )
        if not granted:
            return HoldBack(
                now + self.settings.busy_retry,
                f"no connection slot to {host[1]}:{host[2]} came free while its lease "
                "still covered an attempt (max_per_host)",
            )
        health = self.endpoint_health
        until = health.admit(subscriber, now)
        if until is not None:
            self._host_free(host)
            return HoldBack(until, health.hold_reason(subscriber.id))
        pending = self._pending.get(delivery.id) if self._pending else None
        policy = pending.options.policy if pending is not None else None
        if pending is not None and pending.options.headers:
            subscriber = _with_headers(subscriber, pending.options.headers)
        attempted: Deferred[Attempt | HoldBack]
        try:
            if policy is not None and isinstance(self.sender, HTTPSender):
                attempted = self.sender.attempt(delivery, subscriber, policy)  # type: ignore[assignment]
            else:
                attempted = self.sender.attempt(delivery, subscriber)  # type: ignore[assignment]
        except BaseException:
            self._endpoint_free(None, subscriber.id, host)
            raise
        # The endpoint's and the host's slots are held for the HTTP exchange only: freed
        # here, not once the outcome is recorded, so a failed record cannot leak them.
        return attempted.addBoth(self._endpoint_free, subscriber.id, host)

    def _endpoint_free(self, result: _T, subscriber_id: str, host: tuple[str, str, int]) -> _T:
        self.endpoint_health.finished(subscriber_id)
        self._host_free(host)
        return result

    def observe_updates(
        self, observer: Callable[[Delivery, DeliveryUpdate], object]
    ) -> Callable[[], None]:
        """
        Call ``observer(delivery, update)`` for every attempt outcome once it is recorded
        (successes included, which no operational event announces): for metrics and
        audit trails. An observer that raises is logged and does not disturb delivery.

        :return: a function that stops the observing.
        """
        self._observers.append(observer)

        def stop() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return stop

    def _on_update(self, delivery: Delivery, update: DeliveryUpdate) -> None:
        for observer in self._observers:
            try:
                observer(delivery, update)
            except Exception:
                _log.failure(
                    "an update observer failed for {delivery_id}", delivery_id=delivery.id
                )
        attempt = update.attempt
        pending = self._pending.get(delivery.id)
        if pending is not None:
            self._callbacks(pending, delivery, attempt)
        if attempt.error_kind == ErrorKind.GONE:
            self._deactivate(delivery, attempt)
        _log_outcome(delivery, update)
        if not attempt.succeeded:
            self._operational("webhook.delivery.failed", delivery, attempt, attempt.error_message)
        if update.status == DEAD:
            self._operational("webhook.delivery.dead", delivery, attempt, attempt.error_message)
        events = self.endpoint_health.observe(
            delivery.subscriber, attempt, self._reactor.seconds()
        )
        for event in events:
            self._health_event(event, delivery, attempt)
        if update.status in (DELIVERED, DEAD):
            self._pending.pop(delivery.id, None)
            own = self._own
            if delivery.id in own:
                own.discard(delivery.id)
                if not own and self._drain_waiters:
                    waiters, self._drain_waiters = self._drain_waiters, []
                    for waiter in waiters:
                        waiter.callback(None)

    def _callbacks(self, pending: _Pending, delivery: Delivery, attempt: Attempt) -> None:
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
            _log.failure(
                "a send callback failed for delivery {delivery_id}", delivery_id=delivery.id
            )

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

    # -- inspection ------------------------------------------------------------------------------

    def static_subscribers(self) -> Deferred[Sequence[Subscriber]]:
        """The static subscribers (from configuration)."""
        return self._static.list()
