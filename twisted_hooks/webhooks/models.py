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

from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any

from twisted_hooks.webhooks._model_event import (
    CREATE,
    DELETE,
    UPDATE,
    Facade,
    Filter,
    ModelEvent,
    ModelHooks,
    ModelMessage,
    Sent,
    default_payload,
    model_headers,
    model_payload,
)

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


def _events_of(items: Mapping[str, object]) -> dict[str, ModelEvent]:
    events: dict[str, ModelEvent] = {}
    for key, value in items.items():
        if value is None:
            continue
        if not isinstance(value, ModelEvent):
            raise TypeError(f"webhook_model {key}= must be a ModelEvent, got {value!r}")
        events[key] = value
    return events


class WebhookCapable(ModelHooks):
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
        return model_payload(instance)

    def headers(self, instance: object) -> Mapping[str, str] | None:
        """
        Extra request headers: ``instance.webhook_headers()`` when defined, else none. An
        inner ``class webhooks:`` may override it.
        """
        return model_headers(instance)

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
