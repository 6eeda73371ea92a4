"""
Model events: Thorn's :class:`ModelEvent`, :func:`webhook_model` and
:class:`model_reverser`, for plain Python objects (attrs classes, dataclasses, any class).

A :class:`ModelEvent` is an :class:`~twisted_hooks.webhooks.events.Event` about one object
(a *model instance*). It sends Thorn's model message::

    {"event": "article.created", "ref": "https://...", "sender": "42", "data": {...}}

:func:`webhook_model` attaches events to a class as ``cls.webhooks`` (a
:class:`WebhookCapable`). Code that creates, changes or deletes objects says so with
``Article.webhooks.dispatch_on_create(article)``,
``Article.webhooks.dispatch_on_change(article, previous)`` and
``Article.webhooks.dispatch_on_delete(article)``; each sends the events of the class that
dispatch on that change and whose filters match. See :doc:`/models` for the guide.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Callable, Mapping
from operator import attrgetter
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
    "ModelMessage",
    "Sent",
    "WebhookCapable",
    "default_payload",
    "model_reverser",
    "webhook_model",
]

_log = Logger()

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


def _model_payload(instance: object) -> object:
    """``instance.webhook_payload()`` when defined (Thorn), else :func:`default_payload`."""
    method = getattr(instance, "webhook_payload", None)
    if method is not None:
        return method()
    return default_payload(instance)


def _model_headers(instance: object) -> Mapping[str, str] | None:
    """``instance.webhook_headers()`` when defined (Thorn), else ``None``."""
    method = getattr(instance, "webhook_headers", None)
    if method is not None:
        return cast("Mapping[str, str] | None", method())
    return None


def _capable(instance: object) -> WebhookCapable | None:
    """The :class:`WebhookCapable` of ``instance``'s class, if it was decorated."""
    found = getattr(type(instance), "webhooks", None)
    return found if isinstance(found, WebhookCapable) else None


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


class model_reverser:
    """
    Describes how to get the URL of an object: the ``ref`` of its model messages.

    There is no URL resolver for plain Python objects, so ``view_name`` is a format
    string, or a callable returning the URL. The other arguments name attributes of the
    instance (dotted paths, ``"category.name"`` for ``instance.category.name``), whose
    values are given to it positionally and by keyword::

        model_reverser("https://shop.example/articles/{uuid}/", uuid="uuid")
        # "https://shop.example/articles/{uuid}/".format(uuid=article.uuid)

        model_reverser("https://shop.example/{}/{slug}/", "category.name", slug="slug")
        # "https://shop.example/{}/{slug}/".format(article.category.name, slug=article.slug)

        model_reverser(url_for_article, uuid="uuid")
        # url_for_article(uuid=article.uuid)

    A framework integration overrides :meth:`reverse` to resolve view names (Thorn's
    ``model_reverser("article:detail", uuid="uuid")`` on Django).

    :param view_name: a :meth:`str.format` template, or a callable returning the URL.
    :param args: attribute paths whose values are the positional arguments.
    :param kwargs: attribute paths whose values are the keyword arguments.
    """

    def __init__(self, view_name: str | Callable[..., str], *args: str, **kwargs: str) -> None:
        if not (isinstance(view_name, str) or callable(view_name)):
            raise TypeError(
                f"model_reverser needs a URL template or a callable, got {view_name!r}"
            )
        self.view_name = view_name
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"<model_reverser {self.view_name!r}>"

    def __call__(self, instance: object, app: object = None) -> str:
        """
        The URL of ``instance``.

        :param instance: the object.
        :param app: accepted for Thorn's calling convention; unused here.
        :raise AttributeError: when an attribute path does not resolve.
        """
        args = [attrgetter(path)(instance) for path in self.args]
        kwargs = {key: attrgetter(path)(instance) for key, path in self.kwargs.items()}
        return self.reverse(self.view_name, args, kwargs)

    def reverse(
        self, view_name: str | Callable[..., str], args: list[Any], kwargs: dict[str, Any]
    ) -> str:
        """Turn the view name and the instance's values into a URL (override to resolve)."""
        if isinstance(view_name, str):
            return view_name.format(*args, **kwargs)
        return str(view_name(*args, **kwargs))


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
        return _model_payload(instance)

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
        return _model_headers(instance)

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


def _events_of(items: Mapping[str, object]) -> dict[str, ModelEvent]:
    events: dict[str, ModelEvent] = {}
    for key, value in items.items():
        if value is None:
            continue
        if not isinstance(value, ModelEvent):
            raise TypeError(f"webhook_model {key}= must be a ModelEvent, got {value!r}")
        events[key] = value
    return events


class WebhookCapable:
    """
    What :func:`webhook_model` sets as ``cls.webhooks``: the events of a class.

    An inner ``class webhooks:`` becomes a subclass of this one, so its methods (such as
    ``payload`` and ``headers``) and attributes (``reverse``, ``sender_field``) are kept.

    :param on_create: sent when an object is created.
    :param on_change: sent when an object is changed.
    :param on_delete: sent when an object is deleted.
    :param reverse: the default ``reverse`` of the events that have none.
    :param sender_field: the default ``sender_field`` of the events that have none.
    :param kwargs: other ``on_*`` events, sent as their ``dispatches_on_*`` say.
    :raise TypeError: for an argument that is neither an ``on_*`` event nor one of the
        above.
    """

    #: The default ``reverse`` of the events.
    reverse: Callable[[Any], str | None] | None = None
    #: The default ``sender_field`` of the events.
    sender_field: str | None = None
    #: The events, by name (``"on_create"``, ``"on_publish"``, ...).
    events: dict[str, ModelEvent]
    #: The decorated class.
    model: type | None = None

    def __init__(
        self,
        on_create: ModelEvent | None = None,
        on_change: ModelEvent | None = None,
        on_delete: ModelEvent | None = None,
        reverse: Callable[[Any], str | None] | None = None,
        sender_field: str | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(k for k in kwargs if not k.startswith("on_"))
        if unknown:
            raise TypeError(
                f"webhook_model() got unexpected argument(s) {unknown!r}: events are "
                "on_* arguments (on_create, on_change, on_delete, on_publish, ...)"
            )
        self.events = {}
        if reverse is not None:
            self.reverse = reverse
        if sender_field is not None:
            self.sender_field = sender_field
        standard = _events_of(
            {"on_create": on_create, "on_change": on_change, "on_delete": on_delete}
        )
        for key, kind in (("on_create", CREATE), ("on_change", UPDATE), ("on_delete", DELETE)):
            if key in standard:
                standard[key]._set_default_dispatch(kind)
        self.update_events({**_events_of(kwargs), **standard})

    def update_events(self, events: Mapping[str, ModelEvent]) -> None:
        """Add ``events`` (by name), giving them this class's defaults."""
        for key, event in events.items():
            self.events[key] = self.contribute_to_event(event)

    def contribute_to_event(self, event: ModelEvent) -> ModelEvent:
        """Give ``event`` the default ``reverse`` and ``sender_field`` it lacks."""
        if event.reverse is None:
            event.reverse = self.reverse
        if event.sender_field is None:
            event.sender_field = self.sender_field
        return event

    def contribute_to_model(self, model: type) -> type:
        """Attach to ``model`` as ``model.webhooks``; returns ``model``."""
        for event in self.events.values():
            event.connect_model(model)
        self.model = model
        model.webhooks = self  # type: ignore[attr-defined]
        return model

    def payload(self, instance: object) -> object:
        """
        The ``data`` of the messages: ``instance.webhook_payload()`` when defined, else
        :func:`default_payload`. An inner ``class webhooks:`` may override it.
        """
        return _model_payload(instance)

    def headers(self, instance: object) -> Mapping[str, str] | None:
        """
        Extra request headers: ``instance.webhook_headers()`` when defined, else none. An
        inner ``class webhooks:`` may override it.
        """
        return _model_headers(instance)

    def __getitem__(self, key: str) -> ModelEvent:
        return self.events[key]

    def __setitem__(self, key: str, event: ModelEvent) -> None:
        self.update_events({key: event})

    def __delitem__(self, key: str) -> None:
        del self.events[key]

    def _dispatch(self, kind: str, instance: object, previous: object) -> dict[str, Sent]:
        return {
            key: event.on_signal(instance, previous)
            for key, event in self.events.items()
            if event.dispatches_on == kind
        }

    def dispatch_on_create(self, instance: object) -> dict[str, Sent]:
        """
        ``instance`` was created: dispatch the events that dispatch on create.

        :return: each such event's :meth:`ModelEvent.on_signal` result, by name.
        """
        return self._dispatch(CREATE, instance, None)

    def dispatch_on_change(self, instance: object, previous: object = None) -> dict[str, Sent]:
        """
        ``instance`` was changed from ``previous`` (for ``now_*`` filters): dispatch the
        events that dispatch on change.

        :return: each such event's :meth:`ModelEvent.on_signal` result, by name.
        """
        return self._dispatch(UPDATE, instance, previous)

    def dispatch_on_delete(self, instance: object) -> dict[str, Sent]:
        """
        ``instance`` was deleted: dispatch the events that dispatch on delete.

        :return: each such event's :meth:`ModelEvent.on_signal` result, by name.
        """
        return self._dispatch(DELETE, instance, None)


_NOT_COPIED = frozenset({"__dict__", "__weakref__"})


def _augment(model: type, kwargs: dict[str, Any]) -> type:
    declared = vars(model).get("webhooks")
    handlers: dict[str, Any] = {}
    base: type[WebhookCapable]
    if declared is None or isinstance(declared, WebhookCapable):
        base = WebhookCapable
    elif isinstance(declared, type) and issubclass(declared, WebhookCapable):
        base = declared
    elif isinstance(declared, type):
        namespace = {k: v for k, v in vars(declared).items() if k not in _NOT_COPIED}
        handlers = {k: v for k, v in namespace.items() if k.startswith("on_")}
        rest = {k: v for k, v in namespace.items() if k not in handlers}
        base = type("webhooks", (WebhookCapable,), rest)
    else:
        raise TypeError(
            f"{model.__name__}.webhooks must be a class (the inner 'class webhooks:' "
            f"holding the events), got {type(declared).__name__}"
        )
    capable = base(**{**handlers, **kwargs})
    return capable.contribute_to_model(model)


def webhook_model(*args: Any, **kwargs: Any) -> Any:
    """
    Decorate a class to send webhooks when its objects are created, changed or deleted.

    Either with an inner ``class webhooks:`` holding the events::

        @webhook_model
        @attrs.frozen
        class Article:
            uuid: str
            state: str = "PENDING"

            class webhooks:
                on_create = ModelEvent("article.created")
                on_change = ModelEvent("article.changed")
                on_delete = ModelEvent("article.removed")
                on_publish = ModelEvent(
                    "article.published", state__now_eq="PUBLISHED"
                ).dispatches_on_change()

                def payload(self, article):
                    return {"uuid": article.uuid, "state": article.state}

    or with the events as arguments (``@webhook_model(on_create=ModelEvent(...), ...)``);
    both may be combined. The class gets ``webhooks``, a :class:`WebhookCapable`. Put the
    decorator above ``@attrs.define`` or ``@dataclass``: they may make a new class.

    :param on_create: the event sent when an object is created.
    :param on_change: the event sent when an object is changed.
    :param on_delete: the event sent when an object is deleted.
    :param on_$event: other events; say when they are sent with
        ``.dispatches_on_create()``, ``.dispatches_on_change()`` or
        ``.dispatches_on_delete()``, or send them yourself.
    :param sender_field: the default ``sender_field`` of the events
        (``"author.account.user"``).
    :param reverse: the default ``reverse`` of the events: a :class:`model_reverser` or
        a callable taking the instance.
    :return: the class, or a decorator when called with arguments.
    :raise TypeError: for a positional argument that is not a class, or an unknown
        keyword argument.
    """
    if len(args) == 1 and not kwargs:
        if not isinstance(args[0], type):
            raise TypeError(f"@webhook_model decorates a class, got {args[0]!r}")
        return _augment(args[0], {})
    if args:
        raise TypeError(
            "@webhook_model takes the class, or keyword arguments only "
            f"({len(args)} positional argument(s) given)"
        )
    unknown = sorted(
        k for k in kwargs if not k.startswith("on_") and k not in ("reverse", "sender_field")
    )
    if unknown:  # now, not when the class is decorated
        raise TypeError(f"webhook_model() got unexpected argument(s) {unknown!r}")

    def decorate(model: type) -> type:
        return _augment(model, kwargs)

    return decorate
