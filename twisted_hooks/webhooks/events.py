"""
Webhook events: Thorn's :class:`Event`, and what a send carries and returns.

An :class:`Event` names an event and its delivery settings; :meth:`Event.send` publishes
data through an application (:class:`~twisted_hooks.webhooks.app.Hooks`). The application
fires a :class:`WebhookEvent` on its dispatcher, so in-process handlers see every webhook
event too, and its webhook handler turns it into deliveries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred

from twisted_hooks._fields import Rule, rule_of
from twisted_hooks.registry import (
    default_registry,
    query_application,
    register_application,
    unregister_application,
)
from twisted_hooks.webhooks._settings import BACKENDS, Settings
from twisted_hooks.webhooks._subscriber import _headers
from twisted_hooks.webhooks.buffer import EventBuffer
from twisted_hooks.webhooks.delivery import Attempt, Delivery
from twisted_hooks.webhooks.patterns import validate_event_name
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.subscribers import Subscriber
from twisted_hooks.webhooks.validators import IRecipientValidator, RecipientPolicy

__all__ = [
    "Application",
    "Callback",
    "Configured",
    "ErrorCallback",
    "Event",
    "NoApplication",
    "Request",
    "SendOptions",
    "SendResult",
    "WebhookEvent",
    "get_default_app",
    "set_default_app",
]

#: The rule of an event's ``timeout``: that of the application's.
_TIMEOUT: Rule = rule_of(attrs.fields(Settings).timeout) or Rule()


class Configured(Protocol):
    """What has the settings an :class:`Event`'s options start from: an application, or
    a :class:`~twisted_hooks.sync.BlockingHooks` facade."""

    @property
    def settings(self) -> Settings:
        """The application's defaults."""


class Application(Protocol):
    """
    What an :class:`Event` needs of its application (a
    :class:`~twisted_hooks.webhooks.Hooks` has it): the settings its options start from,
    and the Deferred ``send``.
    """

    @property
    def settings(self) -> Settings:
        """The application's defaults."""

    def send(
        self,
        name: str,
        data: object,
        sender: object = None,
        *,
        event_id: str | None = None,
        options: SendOptions | None = None,
    ) -> Deferred[SendResult]:
        """Publish an event; see :meth:`twisted_hooks.webhooks.Hooks.send`."""

    def buffer_events(
        self, flush_freq: int | None = None, flush_timeout: float | None = None
    ) -> EventBuffer[Any]:
        """Hold sends; see :meth:`twisted_hooks.webhooks.Hooks.buffer_events`."""


#: Thorn's ``on_success(request)``.
Callback = Callable[["Request"], object]
#: Thorn's ``on_error(request, exc)`` and ``on_timeout(request, exc)``.
ErrorCallback = Callable[["Request", BaseException], object]


@attrs.frozen
class SendOptions:
    """
    The per-send settings of one event; ``None`` means the application's default.

    :ivar timeout: the deadline of each attempt, in seconds.
    :ivar retry: the retry policy.
    :ivar policy: the recipient policy (from the event's ``recipient_validators``).
    :ivar allow_keepalive: ``False`` closes the connection after each attempt.
    :ivar subscribers: extra subscribers for this send, in ``THORN_SUBSCRIBERS`` shapes.
    :ivar on_success: called with a :class:`Request` when an attempt succeeds.
    :ivar on_error: called with a :class:`Request` and the error when an attempt fails.
    :ivar on_timeout: called with a :class:`Request` and the error when an attempt times
        out (``on_error`` is not called then).
    :ivar backend: ``"default"`` or ``"disabled"`` for this send.
    :ivar headers: extra headers for every delivery of this send, as ``(name, value)``
        pairs (a mapping is accepted), over the subscriber's custom headers of the same
        name; the engine's own headers cannot be set. Like the callbacks they are kept in
        this process only: a delivery attempted again after a restart goes without them.
    """

    timeout: float | None = None
    retry: RetryPolicy | None = None
    policy: RecipientPolicy | None = None
    allow_keepalive: bool | None = None
    subscribers: tuple[object, ...] = ()
    on_success: Callback | None = None
    on_error: ErrorCallback | None = None
    on_timeout: ErrorCallback | None = None
    backend: str | None = None
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_headers)

    @property
    def has_callbacks(self) -> bool:
        """``True`` when any Thorn callback is set."""
        return not (self.on_success is None and self.on_error is None and self.on_timeout is None)


@attrs.frozen
class WebhookEvent:
    """
    What the dispatcher's handlers receive for a published webhook event.

    :ivar name: the event name, such as ``order.created``.
    :ivar data: the payload (before encoding).
    :ivar sender: who sent it (compared with subscribers' owners), or ``None``.
    :ivar id: the event's id; every delivery of it carries it as ``event_id``.
    :ivar timestamp: when it was published, seconds since the epoch.
    :ivar options: the per-send settings.
    :ivar idempotent: ``True`` when the publisher chose :attr:`id`: it is the idempotency
        key of the send, and a second send with the same id delivers nothing.
    :ivar body: :attr:`data` encoded as JSON, once, when the event was published (every
        JSON subscriber's delivery carries these bytes); ``None`` for an event made
        elsewhere, which is then encoded when its deliveries are made.
    """

    name: str
    data: object
    sender: object
    id: str
    timestamp: float
    options: SendOptions = attrs.field(factory=SendOptions, eq=False, repr=False)
    idempotent: bool = False
    body: bytes | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class SendResult:
    """
    What a send produced.

    :ivar event: the event as fired.
    :ivar deliveries: one delivery per subscriber reached, accepted by the delivery store.
    :ivar skipped: ``(subscriber id, reason)`` for subscribers the data could not be
        encoded for (form encoding of non-mapping data).
    :ivar duplicate: ``True`` when an event with the same explicit id was published
        already (the delivery store knows its idempotency key): nothing new was delivered
        and :attr:`deliveries` is empty.
    """

    event: WebhookEvent
    deliveries: tuple[Delivery, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    duplicate: bool = False

    @property
    def delivery_ids(self) -> tuple[str, ...]:
        """The ids of :attr:`deliveries`."""
        return tuple(d.id for d in self.deliveries)


@attrs.frozen
class Request:
    """
    What Thorn's callbacks receive: one attempt of one delivery.

    :ivar delivery: the delivery, as it was when attempted.
    :ivar subscriber: the subscriber it was sent to.
    :ivar attempt: the attempt.
    :ivar data: the event data.
    :ivar sender: the event sender.
    """

    delivery: Delivery
    subscriber: Subscriber
    attempt: Attempt
    data: object = None
    sender: object = None

    @property
    def id(self) -> str:
        """The delivery id (Thorn's ``request.id``)."""
        return self.delivery.id

    @property
    def event(self) -> str:
        """The event name."""
        return self.delivery.event

    @property
    def url(self) -> str:
        """The subscriber URL."""
        return self.subscriber.url

    @property
    def status_code(self) -> int | None:
        """The HTTP status of the attempt, if an answer came."""
        return self.attempt.status_code


class NoApplication(RuntimeError):
    """An :class:`Event` was sent with no application given and no default set."""


def set_default_app(app: Application | None) -> None:
    """
    Make ``app`` the application of events created without ``app=`` (``None`` clears): it
    is registered in :func:`twisted_hooks.registry.default_registry` as the
    :class:`~twisted_hooks.interfaces.IWebhookApplication`.
    """
    if app is None:
        unregister_application(default_registry())
    else:
        register_application(default_registry(), app)


def get_default_app() -> Application:
    """The application set by :func:`set_default_app`; raises :class:`NoApplication`."""
    app: Application | None = query_application(default_registry())
    if app is None:
        raise NoApplication(
            "this Event has no application: create it with Event(name, app=hooks), or call "
            "twisted_hooks.webhooks.set_default_app(hooks) first"
        )
    return app


class Event:
    """
    A webhook event, with Thorn's arguments.

    :param name: the event name, dot-separated (``user.created``).
    :param timeout: the deadline of each attempt, in seconds (application default if
        ``None``).
    :param dispatcher: Thorn's backend name for this event: ``"default"`` or
        ``"disabled"``.
    :param retry: ``False`` disables retries.
    :param retry_max: retries (with ``retry_delay``: a fixed schedule, as in Thorn).
    :param retry_delay: seconds between retries.
    :param app: the :class:`~twisted_hooks.webhooks.app.Hooks` application; the default
        application (:func:`set_default_app`) if ``None``.
    :param recipient_validators: validators replacing the application's for this event
        (its allow-listed networks still apply).
    :param subscribers: extra subscribers, in ``THORN_SUBSCRIBERS`` shapes.
    :param request_data: a mapping merged into every (mapping) payload of this event.
    :param allow_keepalive: ``False`` closes the connection after each attempt.

    :raise ValueError: for an invalid name or argument.
    :raise TypeError: for an argument Thorn does not have.
    """

    def __init__(
        self,
        name: str,
        timeout: float | None = None,
        dispatcher: str | None = None,
        retry: bool | None = None,
        retry_max: int | None = None,
        retry_delay: float | None = None,
        app: Application | None = None,
        recipient_validators: Sequence[IRecipientValidator] | None = None,
        subscribers: object = None,
        request_data: Mapping[str, Any] | None = None,
        allow_keepalive: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"Event() got unexpected argument(s) {sorted(kwargs)!r}")
        self.name = validate_event_name(name)
        if timeout is not None:
            _TIMEOUT.check("timeout", timeout)
        if dispatcher is not None and dispatcher not in BACKENDS:
            raise ValueError(
                f"unknown dispatcher backend {dispatcher!r}; use one of {sorted(BACKENDS)!r} "
                "(durable stores are chosen on the application)"
            )
        if request_data is not None and not isinstance(request_data, Mapping):
            raise ValueError("request_data must be a mapping")
        self.timeout = timeout
        self.dispatcher = dispatcher
        self.retry = retry
        self.retry_max = retry_max
        self.retry_delay = retry_delay
        self.app = app
        self.recipient_validators = (
            tuple(recipient_validators) if recipient_validators is not None else None
        )
        if subscribers is None:
            self.subscribers: tuple[object, ...] = ()
        elif isinstance(subscribers, list | tuple):
            self.subscribers = tuple(subscribers)
        else:
            self.subscribers = (subscribers,)
        self.request_data = dict(request_data) if request_data is not None else None
        self.allow_keepalive = allow_keepalive
        # Fail now, not at send time, for retry settings that make no sense.
        RetryPolicy.from_thorn(retry, retry_max, retry_delay)

    def __repr__(self) -> str:
        return f"<Event {self.name!r}>"

    def prepare_payload(self, data: object) -> object:
        """The payload to send: ``data`` with :attr:`request_data` merged in (mappings)."""
        if self.request_data and isinstance(data, Mapping):
            return {**data, **self.request_data}
        return data

    def options(
        self,
        app: Configured,
        on_success: Callback | None = None,
        on_error: ErrorCallback | None = None,
        on_timeout: ErrorCallback | None = None,
        timeout: float | None = None,
    ) -> SendOptions:
        """The :class:`SendOptions` of one send of this event through ``app``."""
        retry = None
        if (self.retry, self.retry_max, self.retry_delay) != (None, None, None):
            retry = RetryPolicy.from_thorn(
                self.retry, self.retry_max, self.retry_delay, default=app.settings.retry
            )
        policy = None
        if self.recipient_validators is not None:
            policy = RecipientPolicy(
                validators=self.recipient_validators,
                allowed_networks=app.settings.policy.allowed_networks,
            )
        return SendOptions(
            timeout=timeout if timeout is not None else self.timeout,
            retry=retry,
            policy=policy,
            allow_keepalive=self.allow_keepalive,
            subscribers=self.subscribers,
            on_success=on_success,
            on_error=on_error,
            on_timeout=on_timeout,
            backend=self.dispatcher,
        )

    def send(
        self,
        data: object,
        sender: object = None,
        on_success: Callback | None = None,
        on_error: ErrorCallback | None = None,
        on_timeout: ErrorCallback | None = None,
        timeout: float | None = None,
    ) -> Deferred[SendResult]:
        """
        Publish ``data`` to every subscriber of this event.

        :param data: the payload; JSON-serializable (with Thorn's extra types).
        :param sender: who sends it: subscribers with an owner receive only their own.
        :param on_success: ``on_success(request)`` after each successful attempt.
        :param on_error: ``on_error(request, exc)`` after each failed attempt.
        :param on_timeout: ``on_timeout(request, exc)`` after each attempt that timed out.
        :param timeout: this send's attempt deadline, overriding the event's.
        :return: a Deferred firing a :class:`SendResult` once the deliveries are accepted
            (committed, for durable stores), not once they are delivered.
        :raise twisted_hooks.webhooks.encoding.EncodingError: at once, for data that
            cannot be encoded.
        :raise NoApplication: when there is no application.
        """
        app = self.app if self.app is not None else get_default_app()
        options = self.options(app, on_success, on_error, on_timeout, timeout)
        return app.send(self.name, self.prepare_payload(data), sender, options=options)
