"""
The publishing half of the engine: :class:`Publisher`.

A send is validated and its data encoded as JSON once; the :class:`WebhookEvent` carries
those bytes (:attr:`WebhookEvent.body`) through the dispatcher to the publisher's own
handler, which matches the subscribers (stored, static, and those given with the event),
makes one :class:`~twisted_hooks.webhooks.delivery.Delivery` per subscriber and enqueues
them in the delivery store in one call. The deliveries then go, one way, to the
:class:`~twisted_hooks.interfaces.IDeliveryIntake` given (the delivery service), if any:
without one (``twisted-hooks send``) they wait in the store for a running service.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_hooks._deferreds import NOT_YET, fired_value
from twisted_hooks.dispatcher import EventDispatcher, FireResult
from twisted_hooks.interfaces import IDeliveryIntake, IDeliveryStore, IPublisher, ISubscriberStore
from twisted_hooks.store._memory_subscribers import MemorySubscriberStore
from twisted_hooks.webhooks._kinds import KEYWORDS, WEBHOOK, HooksNotRunning
from twisted_hooks.webhooks._settings import BACKENDS, Settings
from twisted_hooks.webhooks.buffer import BufferState, EventBuffer
from twisted_hooks.webhooks.delivery import Delivery
from twisted_hooks.webhooks.encoding import JSON, EncodingError, encode_body
from twisted_hooks.webhooks.events import SendOptions, SendResult, WebhookEvent
from twisted_hooks.webhooks.patterns import pattern_matches, validate_event_name
from twisted_hooks.webhooks.subscribers import (
    Subscriber,
    resolve_subscribers,
    sender_ident,
)

__all__ = ["Publisher"]

_log = Logger(namespace="twisted_hooks.webhooks")

#: A send held by :meth:`Publisher.buffer_events`: the event and the Deferred its sender
#: waits on.
_Held = tuple[WebhookEvent, Deferred[SendResult]]
#: A static subscriber given as a callable: its pattern and the callable.
_Producer = tuple[str, Callable[..., Any]]


@implementer(IPublisher)
class Publisher(Service):
    """
    Publishes events: the dispatcher's webhook handler, from a send to stored deliveries.

    :param reactor: the clock of events' and deliveries' times.
    :param settings: the defaults of deliveries (timeout, retry policy, backend, phase).
    :param dispatcher: where webhook events are fired; it must allow :data:`KEYWORDS` and
        have the phase ``settings.phase``. A new one (started and stopped with the
        publisher) if ``None``.
    :param subscribers: the subscriber store.
    :param deliveries: the delivery store deliveries are enqueued in.
    :param static: the static subscribers (from configuration).
    :param static_callables: static subscribers given as callables, with their patterns.
    :param default_secret: the secret of subscribers given with an event without one.
    :param intake: told of the deliveries of each send once stored; ``None`` leaves them
        to whatever claims them from the store.

    It is an :class:`~twisted.application.service.IService`: sends are accepted while it
    runs.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        settings: Settings,
        *,
        dispatcher: EventDispatcher | None = None,
        subscribers: ISubscriberStore,
        deliveries: IDeliveryStore,
        static: MemorySubscriberStore | None = None,
        static_callables: Sequence[_Producer] = (),
        default_secret: str,
        intake: IDeliveryIntake | None = None,
    ) -> None:
        self._reactor = reactor
        self.settings = settings
        self._owns_dispatcher = dispatcher is None
        if dispatcher is None:
            dispatcher = EventDispatcher(KEYWORDS, reactor=reactor)
        missing = set(KEYWORDS) - dispatcher.allowed_match_spec_keywords
        if missing:
            raise ValueError(f"the dispatcher must allow the keywords {sorted(missing)!r}")
        if settings.phase not in dispatcher.phases:
            raise ValueError(
                f"the dispatcher has no phase {settings.phase!r}; its phases are "
                f"{dispatcher.phases!r}"
            )
        self.dispatcher = dispatcher
        self.subscribers = subscribers
        self.deliveries = deliveries
        self.static = static if static is not None else MemorySubscriberStore()
        self._static_callables = tuple(static_callables)
        self.default_secret = default_secret
        self._intake = intake
        self._buffer: BufferState[_Held] = BufferState()
        self._accepting = False
        self.handler_id: int = dispatcher.add_event_handler(  # type: ignore[assignment]
            self.handle, settings.phase, use_weakref=False, kind=WEBHOOK
        ).result

    # -- lifecycle ---------------------------------------------------------------------------

    def startService(self) -> None:
        """Accept sends (starting the dispatcher if it is the publisher's own)."""
        if self._owns_dispatcher or not self.dispatcher.running:
            self.dispatcher.start()
        self._accepting = True
        super().startService()  # type: ignore[no-untyped-call]

    def stopService(self) -> Deferred[None]:
        """Refuse new sends; a dispatcher of the publisher's own is stopped (once the
        fires under way have finished)."""
        self._accepting = False
        super().stopService()  # type: ignore[no-untyped-call]
        if self._owns_dispatcher:
            return self.dispatcher.stop()
        return succeed(None)

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
        Publish an event; see :meth:`twisted_hooks.webhooks.Hooks.send`. The same as
        ``publish(build(name, data, sender, event_id=event_id, options=options))``.

        :raise ValueError: at once, for an invalid name, backend or per-send timeout.
        :raise twisted_hooks.webhooks.encoding.EncodingError: at once, for data that cannot
            be encoded as JSON.
        """
        return self.publish(self.build(name, data, sender, event_id=event_id, options=options))

    def build(
        self,
        name: str,
        data: object,
        sender: object = None,
        *,
        event_id: str | None = None,
        options: SendOptions | None = None,
    ) -> WebhookEvent:
        """
        Validate a send and encode its data as JSON, once: the :class:`WebhookEvent`
        :meth:`publish` takes. Nothing is published. It reads only the settings and the
        clock, so a thread other than the reactor's may call it (the blocking facade
        builds the sends it buffers in the caller's thread).

        :raise ValueError: for an invalid name, backend or per-send timeout.
        :raise twisted_hooks.webhooks.encoding.EncodingError: for data that cannot be
            encoded as JSON.
        """
        validate_event_name(name)
        settings = self.settings
        if options is None:
            options = _NO_OPTIONS
        else:
            if options.backend is not None and options.backend not in BACKENDS:
                raise ValueError(
                    f"unknown backend {options.backend!r}; use one of {sorted(BACKENDS)!r}"
                )
            if options.timeout is not None and not 0 < options.timeout < settings.lease:
                raise ValueError(
                    f"timeout {options.timeout:g} s must be positive and shorter than the "
                    f"lease ({settings.lease:g} s); raise Settings.lease for longer attempts"
                )
        return WebhookEvent(
            name=name,
            data=data,
            sender=sender,
            id=event_id if event_id is not None else _new_id(),
            timestamp=self._reactor.seconds(),
            options=options,
            idempotent=event_id is not None,
            # Encoded now: data that cannot be sent at all fails the send at once.
            body=encode_body(data, JSON),
        )

    def publish(self, event: WebhookEvent) -> Deferred[SendResult]:
        """
        Publish an event made by :meth:`build`, without validating or encoding it again:
        fire it on the dispatcher (or hold it, inside :meth:`buffer_events`).

        :return: a Deferred firing a :class:`SendResult` once the deliveries are
            accepted; it fails with :class:`HooksNotRunning` while the publisher is
            stopped.
        """
        if self._buffer.depth:
            waiter: Deferred[SendResult] = Deferred()
            self._buffer.hold((event, waiter))
            return waiter
        return self._fire(event)

    def _fire(self, event: WebhookEvent) -> Deferred[SendResult]:
        if not self._accepting:
            return fail(
                HooksNotRunning(
                    f"event {event.name!r} was not sent: the application is not running "
                    "(start it with startService(), or add it to a running service)"
                )
            )
        d = self.dispatcher.fire_event(
            event, name=event.name, kind=WEBHOOK, owner=sender_ident(event.sender)
        )
        result = fired_value(d)
        if result is not NOT_YET:
            try:
                return succeed(self._send_result(result, event))
            except Exception:
                return fail()
        return d.addCallback(self._send_result, event)

    def _send_result(self, result: FireResult, event: WebhookEvent) -> SendResult:
        if result.dropped:
            raise HooksNotRunning(f"event {event.name!r} was dropped: the dispatcher is stopped")
        outcome = result.for_handler(self.handler_id)
        if outcome is None:
            raise RuntimeError("the webhook handler was removed from the dispatcher")
        if outcome.failure is not None:
            outcome.failure.raiseException()
        assert isinstance(outcome.value, SendResult)
        return outcome.value

    def buffer_events(
        self, flush_freq: int | None = None, flush_timeout: float | None = None
    ) -> EventBuffer[_Held]:
        """Hold sends until the outermost context exits; see
        :meth:`twisted_hooks.webhooks.Hooks.buffer_events`."""
        return EventBuffer(
            self._buffer, self._flush, self._reactor.seconds, flush_freq, flush_timeout
        )

    def _flush(self, items: list[_Held]) -> Deferred[list[Any]]:
        results: list[Deferred[SendResult]] = []
        for event, waiter in items:
            d = self._fire(event)
            # Not chainDeferred: it would leave d with None, and flush()'s list with it.
            d.addBoth(_relay, waiter)
            results.append(d)
        return DeferredList(results, consumeErrors=True).addCallback(
            lambda pairs: [value for _, value in pairs]
        )

    # -- subscriptions -----------------------------------------------------------------------

    def get_subscriber(self, subscriber_id: str) -> Deferred[Subscriber]:
        """A stored subscriber; see :meth:`twisted_hooks.webhooks.Hooks.get_subscriber`."""
        return self.subscribers.get(subscriber_id)

    def list_subscribers(self, owner: str | None = None) -> Deferred[Sequence[Subscriber]]:
        """The stored subscribers, or an owner's; see
        :meth:`twisted_hooks.webhooks.Hooks.list_subscribers`."""
        return self.subscribers.list(owner)

    def update_subscriber(self, subscriber: Subscriber, **changes: Any) -> Deferred[Subscriber]:
        """
        Store ``subscriber`` with ``changes`` (:class:`Subscriber` fields other than
        ``id`` and ``active``), checked by the field rules and, for a new URL, by the
        recipient policy, as a new subscriber is.

        :raise ValueError: at once, for an invalid field or a change of ``id``.
        :raise TypeError: at once, for an unknown field.
        :raise twisted_hooks.webhooks.validators.SecurityError: at once, for a URL the
            recipient policy refuses.
        """
        if "id" in changes and changes["id"] != subscriber.id:
            raise ValueError("a subscriber's id cannot change; subscribe a new one instead")
        if "active" in changes:
            raise ValueError("active is changed by deactivate_subscriber or reactivation")
        changed = attrs.evolve(subscriber, **changes)
        if "url" in changes:
            self.settings.policy.check_url(changed.url)
        return self.subscribers.update(changed)

    def deactivate_subscriber(self, subscriber_id: str) -> Deferred[Subscriber]:
        """Mark a stored subscriber inactive; fires the stored value."""
        return self.subscribers.deactivate(subscriber_id)

    # -- the webhook handler -----------------------------------------------------------------

    def handle(self, event: WebhookEvent) -> SendResult | Deferred[SendResult]:
        """
        The dispatcher's webhook handler: find the subscribers of ``event``, make its
        deliveries and enqueue them.

        :return: the :class:`SendResult` (or a Deferred firing it) once they are stored.
        """
        backend = event.options.backend or self.settings.backend
        if backend == "disabled":
            return SendResult(event)
        owner = sender_ident(event.sender)
        matched = self.subscribers.match(event.name, owner)
        found = fired_value(matched)
        if found is not NOT_YET:
            return self._make_deliveries(found, event, owner)
        return matched.addCallback(self._make_deliveries, event, owner)

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

    def _make_deliveries(
        self, stored: Sequence[Subscriber], event: WebhookEvent, owner: str | None
    ) -> SendResult | Deferred[SendResult]:
        options = event.options
        groups: list[tuple[Sequence[Subscriber], bool]] = [(stored, True)]
        if len(self.static):
            groups.append((self.static.matching(event.name, owner), False))
        if self._static_callables or options.subscribers:
            groups.append((self._candidates(event, owner), False))
        bodies: dict[str, bytes] = {}
        if event.body is not None:
            bodies[JSON] = event.body
        settings = self.settings
        now = self._reactor.seconds()
        timeout = options.timeout if options.timeout is not None else settings.timeout
        retry = options.retry if options.retry is not None else settings.retry
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
                        id=_new_id(),
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
        written = fired_value(enqueued)
        if written is not NOT_YET:
            return self._enqueued(written, event, deliveries, skipped)
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
        if deliveries and self._intake is not None:
            self._intake.accepted(event, deliveries)
        return SendResult(event, tuple(deliveries), tuple(skipped))


#: The options of a send given none (values, never changed).
_NO_OPTIONS = SendOptions()

#: The variant digit of a UUID (RFC 9562: ``10`` then two random bits), by random digit.
_VARIANT = "89ab" * 4


def _new_id() -> str:
    """
    A new random (version 4) UUID in its canonical form: what ``str(uuid.uuid4())`` gives,
    from the same 122 random bits of :func:`os.urandom`, without building a
    :class:`uuid.UUID` (every event and every delivery gets one).
    """
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16)]}{h[17:20]}-{h[20:]}"


def _relay(result: Any, waiter: Deferred[SendResult]) -> Any:
    if isinstance(result, Failure):
        waiter.errback(result)
    else:
        waiter.callback(result)
    return result
