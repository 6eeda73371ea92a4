"""
Model events: :class:`ModelEvent`, its filters and transitions, and the model message it
sends. The public names are those of :mod:`twisted_hooks.webhooks.models`.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias, cast
from weakref import WeakSet

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_hooks.q import Q
from twisted_hooks.webhooks.app import Hooks
from twisted_hooks.webhooks.events import (
    Application,
    Callback,
    ErrorCallback,
    Event,
    SendResult,
    get_default_app,
)
from twisted_hooks.webhooks.patterns import validate_event_name
from twisted_hooks.webhooks.subscribers import sender_ident

if TYPE_CHECKING:
    from twisted_hooks.sync import BlockingHooks

__all__ = [
    "CREATE",
    "DELETE",
    "UPDATE",
    "Facade",
    "Filter",
    "ModelEvent",
    "ModelHooks",
    "ModelMessage",
    "Sent",
    "default_payload",
    "model_headers",
    "model_payload",
]

_log = Logger(namespace="twisted_hooks.webhooks.models")

#: :attr:`ModelEvent.dispatches_on` of an event sent when an object is created.
CREATE = "create"
#: :attr:`ModelEvent.dispatches_on` of an event sent when an object is changed.
UPDATE = "change"
#: :attr:`ModelEvent.dispatches_on` of an event sent when an object is deleted.
DELETE = "delete"

#: A filter: ``filter(instance, previous)``, true when the event is to be sent.
#: :class:`~twisted_hooks.Q` objects are filters.
Filter: TypeAlias = Callable[[Any, Any], object]

#: What sending a model event gives: with a :class:`~twisted_hooks.webhooks.Hooks`
#: application, a Deferred firing the :class:`~twisted_hooks.webhooks.SendResult` (or
#: ``None`` when nothing was sent); with a :class:`~twisted_hooks.sync.BlockingHooks`
#: facade, the result itself (or ``None``).
Sent: TypeAlias = "Deferred[SendResult | None] | SendResult | None"

#: What sends a model message: a :class:`~twisted_hooks.webhooks.Hooks` application (its
#: ``send`` returns a Deferred) or a :class:`~twisted_hooks.sync.BlockingHooks` facade (its
#: ``send`` waits and returns the result).
Facade: TypeAlias = "Hooks | BlockingHooks"


@attrs.frozen
class ModelMessage:
    """
    One model message, built and ready to send (:meth:`ModelEvent.message`).

    :ivar name: the event name (the event's template formatted with the instance).
    :ivar payload: Thorn's message ``{"event", "ref", "sender", "data"}``, with the event's
        ``request_data`` merged in.
    :ivar sender: the sender object, matched against subscribers' owners.
    :ivar headers: extra request headers, or ``None``.
    """

    name: str
    payload: object
    sender: object
    headers: Mapping[str, str] | None = None


#: The :class:`~twisted_hooks.webhooks.events.Event` arguments a ModelEvent passes on.
_EVENT_ARGUMENTS = frozenset(
    {
        "timeout",
        "dispatcher",
        "retry",
        "retry_max",
        "retry_delay",
        "recipient_validators",
        "subscribers",
        "request_data",
        "allow_keepalive",
    }
)


def default_payload(instance: object) -> object:
    """
    The data of a model message when the class defines no payload: the fields of an attrs
    instance or a dataclass, as a dict (nested attrs instances and dataclasses, in any
    mix, as dicts too, like :func:`attrs.asdict`); ``{}`` for anything else.
    """
    if _is_record(instance):
        return _plain(instance)
    return {}


def _is_record(value: object) -> bool:
    kind = type(value)
    return attrs.has(kind) or (dataclasses.is_dataclass(value) and not isinstance(value, type))


def _plain(value: object) -> object:
    """``value`` with attrs instances and dataclasses, at any depth, as dicts."""
    if _is_record(value):
        kind = type(value)
        names = (
            [field.name for field in attrs.fields(kind)]
            if attrs.has(kind)
            else [field.name for field in dataclasses.fields(value)]  # type: ignore[arg-type]
        )
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def model_payload(instance: object) -> object:
    """``instance.webhook_payload()`` when defined (Thorn), else :func:`default_payload`."""
    method = getattr(instance, "webhook_payload", None)
    if method is not None:
        return method()
    return default_payload(instance)


def model_headers(instance: object) -> Mapping[str, str] | None:
    """``instance.webhook_headers()`` when defined (Thorn), else ``None``."""
    method = getattr(instance, "webhook_headers", None)
    if method is not None:
        return cast("Mapping[str, str] | None", method())
    return None


class ModelHooks:
    """
    The base of :class:`~twisted_hooks.webhooks.models.WebhookCapable`: what a
    :class:`ModelEvent` asks the ``webhooks`` of an instance's class for.
    """

    def payload(self, instance: object) -> object:
        """The ``data`` of the messages about ``instance``."""
        raise NotImplementedError

    def headers(self, instance: object) -> Mapping[str, str] | None:
        """Extra request headers for the messages about ``instance``, or ``None``."""
        raise NotImplementedError


def _capable(instance: object) -> ModelHooks | None:
    """The :class:`~twisted_hooks.webhooks.models.WebhookCapable` of ``instance``'s class,
    if it was decorated."""
    found = getattr(type(instance), "webhooks", None)
    return found if isinstance(found, ModelHooks) else None


def _follow(instance: object, path: str) -> object:
    """``instance.a.b`` for ``"a.b"``; ``None`` as soon as a step is ``None``."""
    value = instance
    for name in path.split("."):
        if value is None:
            return None
        value = getattr(value, name)
    return value


def _name_skeleton(name: str) -> str:
    """``name`` with each replacement field as ``x``; :class:`ValueError` if malformed."""
    if not isinstance(name, str):
        raise ValueError(f"a ModelEvent name must be a string, got {name!r}")
    try:
        parsed = list(string.Formatter().parse(name))
    except ValueError as error:
        raise ValueError(f"ModelEvent name {name!r} is not a valid template: {error}") from None
    parts = []
    for literal, field, _, _ in parsed:
        parts.append(literal)
        if field is not None:
            head = field.split(".", 1)[0].split("[", 1)[0]
            if head not in ("", "0"):
                raise ValueError(
                    f"ModelEvent name {name!r} refers to {{{field}}}: the template is "
                    "formatted with the instance as its only argument, so write "
                    f"{{.{field}}} for an attribute of the instance"
                )
            parts.append("x")
    return "".join(parts)


class ModelEvent(Event):
    """
    An event about an object, sending Thorn's model message.

    The message is ``{"event": name, "ref": url or None, "sender": sender or None,
    "data": payload}``, and it goes to the subscribers of the (formatted) event name.

    :param name: the event name, or a template formatted with the instance
        (Thorn: ``"user.{.username}"`` sends ``user.alice`` for ``alice``).
    :param filters: other conditions, all of which must hold: :class:`~twisted_hooks.Q`
        objects, or any callable ``filter(instance, previous)``.
    :param reverse: the ``ref``: a :class:`model_reverser`, or any callable taking the
        instance and returning its URL. Without one, the instance's ``get_absolute_url()``
        is used when it has one.
    :param sender_field: the attribute path of the sender, such as ``"account.user"``
        (``instance.account.user``); ``None`` along the path gives no sender.
    :param signal_honors_transaction: Thorn's: send only when the current database
        transaction commits. Kept for framework integrations; plain objects have no
        transaction and send at once.
    :param propagate_errors: ``False`` (the default): an error while dispatching (a
        filter, the name, the URL, the payload, the send) is logged and the dispatch gives
        ``None``; ``True``: it is raised to the caller.
    :param payload: a callable ``payload(instance)`` giving the ``data``, over the
        class's (see :meth:`instance_data`).
    :param headers: a callable ``headers(instance)`` giving extra request headers, over
        the class's (see :meth:`instance_headers`).
    :param app: the :class:`~twisted_hooks.webhooks.Hooks` application, or a
        :class:`~twisted_hooks.sync.BlockingHooks` facade; the default application
        (:func:`~twisted_hooks.webhooks.set_default_app`) if ``None``.
    :param kwargs: the :class:`~twisted_hooks.webhooks.Event` arguments (``timeout``,
        ``retry``, ...) and filters ``field__operator=value`` (``state__eq="PUBLISHED"``,
        ``state__now_eq="PUBLISHED"``, ``author__name__startswith="A"``), turned into a
        :class:`~twisted_hooks.Q`.

    :raise ValueError: for an invalid name or template, or an invalid filter.
    :raise TypeError: for a filter without an operator (``state="PUBLISHED"``) or
        another unknown argument.
    """

    def __init__(
        self,
        name: str,
        *filters: Filter,
        reverse: Callable[[Any], str | None] | None = None,
        sender_field: str | None = None,
        signal_honors_transaction: bool | None = None,
        propagate_errors: bool = False,
        payload: Callable[[Any], object] | None = None,
        headers: Callable[[Any], Mapping[str, str] | None] | None = None,
        app: Hooks | BlockingHooks | None = None,
        **kwargs: Any,
    ) -> None:
        event_kwargs = {k: v for k, v in kwargs.items() if k in _EVENT_ARGUMENTS}
        filter_fields = {k: v for k, v in kwargs.items() if k not in _EVENT_ARGUMENTS}
        for key in filter_fields:
            if "__" not in key:
                raise TypeError(
                    f"ModelEvent() got {key}={filter_fields[key]!r}: not an Event argument, "
                    f"and a filter needs an operator: did you mean '{key}__eq'?"
                )
        for item in filters:
            if not callable(item):
                raise TypeError(
                    f"ModelEvent() filters are Q objects or callables (instance, previous), "
                    f"got {item!r}"
                )
        skeleton = _name_skeleton(name)
        validate_event_name(skeleton)
        #: What sends this event's messages (``None``: the default application, at send
        #: time).
        self.facade: Facade | None = app
        hooks = app if app is None or isinstance(app, Hooks) else app.hooks
        super().__init__(skeleton, app=hooks, **event_kwargs)
        #: The name or name template.
        self.name = name
        #: The ``field__operator`` filters given as keywords (Thorn's ``filter_fields``).
        self.filter_fields: dict[str, Any] = filter_fields
        #: ``True`` when a filter is a ``now_*`` transition, which needs ``previous``.
        self.use_transitions = any("__now_" in key for key in filter_fields)
        predicates: list[Filter] = list(filters)
        if filter_fields:
            predicates.insert(0, Q(**filter_fields))
        #: Every filter, keyword filters first (as one Q).
        self.filters: tuple[Filter, ...] = tuple(predicates)
        self.reverse = reverse
        self.sender_field = sender_field
        self._signal_honors_transaction = signal_honors_transaction
        self.propagate_errors = propagate_errors
        self.payload = payload
        self.headers = headers
        #: ``"create"``, ``"change"`` or ``"delete"``: what the event is sent on, once set
        #: by :meth:`dispatches_on_create` and friends (or :func:`webhook_model`).
        self.dispatches_on: str | None = None
        #: The classes this event was attached to (Thorn's ``models``).
        self.models: WeakSet[type] = WeakSet()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    @property
    def signal_honors_transaction(self) -> bool:
        """Whether a framework integration sends on commit (``False`` when not given)."""
        return bool(self._signal_honors_transaction)

    # -- how it is dispatched ------------------------------------------------------------

    def _set_default_dispatch(self, kind: str) -> ModelEvent:
        # As Thorn: the first one set stays, so an event given as webhook_model's on_create
        # after .dispatches_on_change() still dispatches on change.
        if self.dispatches_on is None:
            self.dispatches_on = kind
        return self

    def dispatches_on_create(self) -> ModelEvent:
        """Send this event when an object is created; returns the event."""
        return self._set_default_dispatch(CREATE)

    def dispatches_on_change(self) -> ModelEvent:
        """Send this event when an object is changed; returns the event."""
        return self._set_default_dispatch(UPDATE)

    def dispatches_on_delete(self) -> ModelEvent:
        """Send this event when an object is deleted; returns the event."""
        return self._set_default_dispatch(DELETE)

    def connect_model(self, model: type) -> None:
        """Note that ``model`` (a class) has this event."""
        self.models.add(model)

    # -- the message ---------------------------------------------------------------------

    def get_name(self, instance: object) -> str:
        """The event name for ``instance``: the template formatted with it."""
        return self.name.format(instance)

    def get_absolute_url(self, instance: object) -> str | None:
        """The ``ref``: :attr:`reverse`'s URL, else ``instance.get_absolute_url()``."""
        if self.reverse is not None:
            url = self.reverse(instance)
            if url:
                return url
        method = getattr(instance, "get_absolute_url", None)
        if method is not None:
            return cast("str | None", method())
        return None

    def instance_data(self, instance: object) -> object:
        """
        The ``data`` for ``instance``: this event's ``payload`` callable; else the
        ``payload`` method of the class's ``webhooks`` (an inner ``class webhooks:`` may
        define ``def payload(self, instance)``); else ``instance.webhook_payload()``; else
        :func:`default_payload`.
        """
        if self.payload is not None:
            return self.payload(instance)
        capable = _capable(instance)
        if capable is not None:
            return capable.payload(instance)
        return model_payload(instance)

    def instance_headers(self, instance: object) -> Mapping[str, str] | None:
        """
        Extra request headers for ``instance``: this event's ``headers`` callable; else the
        ``headers`` method of the class's ``webhooks``; else ``instance.webhook_headers()``;
        else none.
        """
        if self.headers is not None:
            return self.headers(instance)
        capable = _capable(instance)
        if capable is not None:
            return capable.headers(instance)
        return model_headers(instance)

    def instance_sender(self, instance: object) -> object:
        """The sender: the object at :attr:`sender_field` of ``instance``, or ``None``."""
        if self.sender_field:
            return _follow(instance, self.sender_field)
        return None

    def to_message(
        self, data: object, instance: object, sender: object = None, ref: str | None = None
    ) -> dict[str, object]:
        """
        The model message. The sender is given as its ``get_username()`` when it has one
        (a Django user, as in Thorn), else as its owner identity
        (:func:`~twisted_hooks.webhooks.subscribers.sender_ident`: ``pk``, ``id`` or
        itself, as a string); ``data`` is ``{}`` when empty.
        """
        get_username = getattr(sender, "get_username", None)
        sent_by = str(get_username()) if callable(get_username) else sender_ident(sender)
        return {
            "event": self.get_name(instance),
            "ref": ref,
            "sender": sent_by,
            "data": data or {},
        }

    # -- sending -------------------------------------------------------------------------

    def should_dispatch(self, instance: object, previous: object = None) -> bool:
        """Whether every filter holds for ``instance``, changed from ``previous``."""
        return all(predicate(instance, previous) for predicate in self.filters)

    # Thorn's ModelEvent.send takes the instance first, unlike Event.send.
    def send(  # type: ignore[override]
        self,
        instance: object,
        data: object = None,
        sender: object = None,
        *,
        headers: Mapping[str, str] | None = None,
        on_success: Callback | None = None,
        on_error: ErrorCallback | None = None,
        on_timeout: ErrorCallback | None = None,
        timeout: float | None = None,
    ) -> Sent:
        """
        Send this event for ``instance`` now, without looking at the filters.

        Errors are raised (or fail the Deferred) whatever :attr:`propagate_errors` says:
        that setting is for dispatches (:meth:`on_signal`), as in Thorn.

        :param instance: the object.
        :param data: the ``data``; :meth:`instance_data` if ``None``.
        :param sender: the sender; :meth:`instance_sender` if ``None``.
        :param headers: extra request headers; :meth:`instance_headers` if ``None``.
        :param on_success: as for :meth:`Event.send <twisted_hooks.webhooks.Event.send>`.
        :param on_error: as for :meth:`Event.send <twisted_hooks.webhooks.Event.send>`.
        :param on_timeout: as for :meth:`Event.send <twisted_hooks.webhooks.Event.send>`.
        :param timeout: this send's attempt deadline, overriding the event's.
        :return: see :data:`Sent`.
        """
        message = self.message(instance, data, sender, headers=headers)
        return self.send_message(
            self.facade if self.facade is not None else get_default_app(),
            message,
            on_success=on_success,
            on_error=on_error,
            on_timeout=on_timeout,
            timeout=timeout,
        )

    def message(
        self,
        instance: object,
        data: object = None,
        sender: object = None,
        *,
        headers: Mapping[str, str] | None = None,
        ref: str | None = None,
    ) -> ModelMessage:
        """
        Build the message of this event for ``instance``, without sending it.

        :param instance: the object.
        :param data: the ``data``; :meth:`instance_data` if ``None``.
        :param sender: the sender; :meth:`instance_sender` if ``None``.
        :param headers: extra request headers; :meth:`instance_headers` if ``None``.
        :param ref: the ``ref``; :meth:`get_absolute_url` if ``None``.
        """
        if data is None:
            data = self.instance_data(instance)
        if sender is None:
            sender = self.instance_sender(instance)
        if headers is None:
            headers = self.instance_headers(instance)
        if ref is None:
            ref = self.get_absolute_url(instance)
        message = self.to_message(data, instance, sender=sender, ref=ref)
        return ModelMessage(
            name=cast(str, message["event"]),
            payload=self.prepare_payload(message),
            sender=sender,
            headers=headers,
        )

    def send_message(
        self,
        through: Facade | Application,
        message: ModelMessage,
        *,
        on_success: Callback | None = None,
        on_error: ErrorCallback | None = None,
        on_timeout: ErrorCallback | None = None,
        timeout: float | None = None,
    ) -> Sent:
        """
        Send ``message`` through ``through``, with this event's options (timeout, retry,
        recipient validators, ...) and the message's headers: the one way model messages
        are sent.

        :param through: a :class:`~twisted_hooks.webhooks.Hooks` application, or a
            :class:`~twisted_hooks.sync.BlockingHooks` facade.
        :return: what its ``send`` returns: a Deferred firing the
            :class:`~twisted_hooks.webhooks.SendResult` for an application, the result
            itself for a blocking facade.
        """
        options = self.options(through, on_success, on_error, on_timeout, timeout)
        if message.headers:
            options = attrs.evolve(options, headers=message.headers)
        sent = through.send(message.name, message.payload, message.sender, options=options)
        return cast("Sent", sent)

    def send_from_instance(self, instance: object) -> Sent:
        """Thorn's name for :meth:`send` with everything taken from ``instance``."""
        return self.send(instance)

    def on_signal(self, instance: object, previous: object = None) -> Sent:
        """
        Dispatch this event for ``instance``: send it when the filters hold.

        With :attr:`propagate_errors` false an error is logged and gives ``None`` (a
        Deferred firing ``None`` with a :class:`~twisted_hooks.webhooks.Hooks`
        application); with it true the error is raised, or fails the Deferred.

        :param instance: the object, as it is now.
        :param previous: the object before the change, for ``now_*`` filters; ``None``
            for none (on create: a transition then holds when its operator holds now).
        :return: see :data:`Sent`; ``None`` (or a Deferred firing ``None``) when the
            filters do not hold.
        """
        try:
            if not self.should_dispatch(instance, previous):
                return self._nothing()
            result = self.send(instance)
        except Exception:
            if self.propagate_errors:
                raise
            self._log_error(Failure(), instance)
            return self._nothing()
        if isinstance(result, Deferred) and not self.propagate_errors:
            result.addErrback(self._swallow, instance)
        return result

    def _nothing(self) -> Sent:
        blocking = self.facade is not None and not isinstance(self.facade, Hooks)
        return None if blocking else succeed(None)

    def _swallow(self, failure: Failure, instance: object) -> None:
        self._log_error(failure, instance)
        return None

    def _log_error(self, failure: Failure, instance: object) -> None:
        _log.failure(
            "model event {event} for a {model} was not sent (logged and ignored: "
            "ModelEvent(..., propagate_errors=True) raises it instead)",
            failure,
            event=self.name,
            model=type(instance).__name__,
        )
