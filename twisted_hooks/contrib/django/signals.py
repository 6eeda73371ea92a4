"""
The Django signal wiring of decorated models.

==========================================  ==============================================
Django signal                               Events dispatched
==========================================  ==============================================
``pre_save`` (an existing row)              none: the row is fetched as ``previous`` when
                                            an event dispatching on change has a
                                            ``now_*`` filter
``post_save``, ``created``                  ``dispatches_on_create()`` (``on_create``)
``post_save``, not ``created``              ``dispatches_on_change()`` (``on_change``),
                                            with ``previous``
``post_delete``                             ``dispatches_on_delete()`` (``on_delete``)
``m2m_changed`` ``post_add``                ``dispatches_on_m2m_add(field)``
``m2m_changed`` ``post_remove``             ``dispatches_on_m2m_remove(field)``
``m2m_changed`` ``post_clear``              ``dispatches_on_m2m_clear(field)``
==========================================  ==============================================

Saves with ``raw=True`` (fixtures being loaded) dispatch nothing, as in Thorn. A change
made from the other side of a many-to-many relation (``tag.article_set.add(article)``)
dispatches for each article concerned. Every receiver is connected with ``weak=False``
and a ``dispatch_uid``, so connecting a model twice connects it once.

Each event's message is made when the signal fires (the row as it is then); it is sent at
once, or when the transaction commits when the event honors transactions (the default):
a rollback discards it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urljoin

from django.db import transaction
from django.db.models import signals
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_hooks.contrib.django.backends import Outgoing, get_backend
from twisted_hooks.contrib.django.conf import load_config
from twisted_hooks.webhooks.models import CREATE, DELETE, UPDATE, ModelEvent, WebhookCapable

__all__ = [
    "M2M_ADD",
    "M2M_CLEAR",
    "M2M_REMOVE",
    "connect_model",
    "dispatch",
]

_log = Logger(namespace="twisted_hooks.contrib.django")

#: :attr:`~twisted_hooks.webhooks.models.ModelEvent.dispatches_on` of an event sent when
#: objects are added to a many-to-many relation.
M2M_ADD = "m2m_add"
#: ... removed from one.
M2M_REMOVE = "m2m_remove"
#: ... when one is cleared.
M2M_CLEAR = "m2m_clear"

_M2M_ACTIONS = {"post_add": M2M_ADD, "post_remove": M2M_REMOVE, "post_clear": M2M_CLEAR}

#: Where pre_save leaves the row as it was, for post_save.
_PREVIOUS = "_twisted_hooks_previous"
#: Where pre_clear (from the reverse side) leaves the pks of the objects concerned.
_CLEARING = "_twisted_hooks_clearing"


def _events(capable: WebhookCapable, kind: str) -> list[ModelEvent]:
    return [e for e in capable.events.values() if e.dispatches_on == kind]


def _honors_transaction(event: ModelEvent) -> bool:
    # ModelEvent keeps None for "not given", which means the setting here.
    given = getattr(event, "_signal_honors_transaction", None)
    if given is None:
        return load_config().signal_honors_transaction
    return bool(given)


def _ref(event: ModelEvent, instance: object) -> str | None:
    ref = event.get_absolute_url(instance)
    if ref is not None and ref.startswith("/"):
        base = load_config().base_url
        if base is not None:
            return urljoin(base, ref)
    return ref


def _outgoing(event: ModelEvent, instance: object, previous: object) -> Outgoing | None:
    """The message of ``event`` for ``instance``, or ``None`` when its filters fail."""
    if not event.should_dispatch(instance, previous):
        return None
    message = event.message(instance, ref=_ref(event, instance))
    return Outgoing(
        event=event,
        name=message.name,
        payload=message.payload,
        sender=message.sender,
        headers=message.headers,
    )


def _failed(event: ModelEvent, instance: object) -> None:
    if event.propagate_errors:
        raise
    _log.failure(
        "model event {event} for a {model} was not sent (logged and ignored: "
        "ModelEvent(..., propagate_errors=True) raises it instead)",
        Failure(),
        event=event.name,
        model=type(instance).__name__,
    )


def _send(event: ModelEvent, instance: object, outgoing: Outgoing) -> object:
    try:
        return get_backend().send(outgoing)
    except Exception:
        _failed(event, instance)
        return None


def dispatch(
    event: ModelEvent, instance: object, previous: object = None, using: str = "default"
) -> None:
    """
    Dispatch ``event`` for ``instance`` (changed from ``previous``) as a signal would: when
    its filters hold, make the message now and send it now, or when the transaction of
    database ``using`` commits if the event honors transactions.

    With the event's ``propagate_errors`` false (the default) an error is logged; with it
    true it is raised (from the commit, when sent on commit).
    """
    try:
        outgoing = _outgoing(event, instance, previous)
    except Exception:
        _failed(event, instance)
        return
    if outgoing is None:
        return
    if _honors_transaction(event):
        transaction.on_commit(lambda: _send(event, instance, outgoing), using=using)
    else:
        _send(event, instance, outgoing)


def _dispatch_all(
    events: Iterable[ModelEvent], instance: object, previous: object, using: str
) -> None:
    for event in events:
        dispatch(event, instance, previous, using)


def _uid(model: type, what: str) -> str:
    return f"twisted_hooks:{model.__module__}.{model.__qualname__}:{what}"


def _on_pre_save(model: Any, capable: WebhookCapable) -> Callable[..., None]:
    def pre_save(
        sender: type, instance: Any, raw: bool = False, using: str = "default", **kwargs: Any
    ) -> None:
        instance.__dict__.pop(_PREVIOUS, None)
        if raw or instance._state.adding or instance.pk is None:
            return
        if not any(e.use_transitions for e in _events(capable, UPDATE)):
            return
        manager = model._base_manager.using(using)
        instance.__dict__[_PREVIOUS] = manager.filter(pk=instance.pk).first()

    return pre_save


def _on_post_save(capable: WebhookCapable) -> Callable[..., None]:
    def post_save(
        sender: type,
        instance: Any,
        created: bool = False,
        raw: bool = False,
        using: str = "default",
        **kwargs: Any,
    ) -> None:
        previous = instance.__dict__.pop(_PREVIOUS, None)
        if raw:
            return
        if created:
            _dispatch_all(_events(capable, CREATE), instance, None, using)
        else:
            _dispatch_all(_events(capable, UPDATE), instance, previous, using)

    return post_save


def _on_post_delete(capable: WebhookCapable) -> Callable[..., None]:
    def post_delete(sender: type, instance: Any, using: str = "default", **kwargs: Any) -> None:
        _dispatch_all(_events(capable, DELETE), instance, None, using)

    return post_delete


def _on_m2m_changed(decorated: Any, capable: WebhookCapable) -> Callable[..., None]:
    def m2m_changed(
        sender: type,
        instance: Any,
        action: str = "",
        reverse: bool = False,
        pk_set: set[Any] | None = None,
        using: str = "default",
        **kwargs: Any,
    ) -> None:
        if action not in ("pre_clear", *_M2M_ACTIONS):
            return
        for field, events in _m2m_events(capable, action).items():
            descriptor = getattr(decorated, field, None)
            if getattr(descriptor, "through", None) is not sender:
                continue
            if not reverse:
                if action != "pre_clear":
                    _dispatch_all(events, instance, None, using)
                continue
            # From the other side: instance is the related object, and the objects of the
            # decorated model concerned are pk_set (add, remove) or those found before the
            # clear.
            manager = decorated._base_manager.using(using)
            key = f"{_CLEARING}:{field}"
            if action == "pre_clear":
                instance.__dict__[key] = list(
                    manager.filter(**{field: instance}).values_list("pk", flat=True)
                )
                continue
            pks = instance.__dict__.pop(key, []) if action == "post_clear" else pk_set or ()
            for obj in manager.filter(pk__in=list(pks)).order_by("pk"):
                _dispatch_all(events, obj, None, using)

    return m2m_changed


def _m2m_events(capable: WebhookCapable, action: str) -> dict[str, list[ModelEvent]]:
    """The m2m events of ``action`` by related field (pre_clear: those of post_clear)."""
    kind = M2M_CLEAR if action == "pre_clear" else _M2M_ACTIONS[action]
    found: dict[str, list[ModelEvent]] = {}
    for event in _events(capable, kind):
        field = getattr(event, "related_field", None)
        if field:
            found.setdefault(field, []).append(event)
    return found


def connect_model(model: type) -> type:
    """
    Connect the signals of a model decorated with ``webhook_model``: its events are
    dispatched when its rows are saved, deleted, or their many-to-many relations change.
    Connecting twice connects once. Returns ``model``.

    :raise TypeError: when ``model`` has no ``webhooks`` (it was not decorated).
    """
    capable = getattr(model, "webhooks", None)
    if not isinstance(capable, WebhookCapable):
        raise TypeError(f"{model.__name__} has no webhooks: decorate it with @webhook_model first")
    signals.pre_save.connect(
        _on_pre_save(model, capable), sender=model, weak=False, dispatch_uid=_uid(model, "pre")
    )
    signals.post_save.connect(
        _on_post_save(capable), sender=model, weak=False, dispatch_uid=_uid(model, "save")
    )
    signals.post_delete.connect(
        _on_post_delete(capable), sender=model, weak=False, dispatch_uid=_uid(model, "delete")
    )
    # The through models may not exist yet (a related model declared later): connect for
    # every sender and compare with the field's through model when the signal fires.
    signals.m2m_changed.connect(
        _on_m2m_changed(model, capable), weak=False, dispatch_uid=_uid(model, "m2m")
    )
    return model
