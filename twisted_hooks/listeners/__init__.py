"""
Listeners: in-process handlers of the service's events, configured Kinto-style.

Each ``[listener:NAME]`` section of the configuration names a module with ``use``; the
service imports it and calls its ``load_from_config(config, prefix)``, which returns the
handler::

    [listener:audit]
    use = twisted_hooks.listeners.log   ; a module with load_from_config(config, prefix)
    phase = after                       ; a dispatcher phase (default "after")
    match.name = order.created          ; match spec: name, kind, owner (default kind webhook)
    level = info                        ; the listener's own settings

``config`` is a :class:`ListenerContext`; ``prefix`` is ``"listener.NAME."``. A listener
reads its own keys as Kinto's do::

    from twisted.logger import Logger

    log = Logger()

    def load_from_config(config, prefix=""):
        settings = config.get_settings()
        channel = settings.get(prefix + "channel", "#general")

        def handler(event):
            log.info("{name} for {channel}", name=event.name, channel=channel)

        return handler

The handler is registered on the service's dispatcher in its ``phase`` for the events of
its match spec, held strongly. It is called with the dispatcher's event objects: a
:class:`~twisted_hooks.webhooks.WebhookEvent` (kind ``webhook``: ``.name``, ``.data``,
``.sender``, ``.id``, ``.timestamp``) or an
:class:`~twisted_hooks.webhooks.OperationalEvent` (kind ``operational``). It may return a
value, a Deferred or a coroutine; a failure is recorded in the fire's
:class:`~twisted_hooks.FireResult` and logged, and affects no other handler. A handler
runs on the reactor thread: blocking work belongs in a thread pool (as
:mod:`twisted_hooks.listeners.redis` does). A handler with a ``close()`` method has it
called when the service stops (see :meth:`LoadedListeners.close`).

The built-in listeners are :mod:`twisted_hooks.listeners.log` and
:mod:`twisted_hooks.listeners.redis`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface.registry import Components

from twisted_hooks.interfaces import IEventDispatcher
from twisted_hooks.service.config import LISTENER_KEYS, ConfigError, ListenerSpec, ServiceConfig
from twisted_hooks.webhooks.app import OperationalEvent
from twisted_hooks.webhooks.events import WebhookEvent
from twisted_hooks.webhooks.subscribers import sender_ident

__all__ = [
    "ListenerContext",
    "LoadedListeners",
    "check_settings",
    "event_record",
    "load_listeners",
]

_log = Logger(namespace="twisted_hooks.listeners")


@attrs.frozen
class ListenerContext:
    """
    What a listener's ``load_from_config(config, prefix)`` receives as ``config``.

    :ivar settings: every configuration value as text, flat
        (:attr:`~twisted_hooks.service.config.ServiceConfig.raw`): the listener reads
        ``settings[prefix + "url"]`` and so on.
    :ivar registry: the component registry in which the service registered its
        dispatcher: :func:`twisted_hooks.registry.get_dispatcher` finds it there.
    :ivar reactor: the reactor the service runs on.
    """

    settings: Mapping[str, str]
    registry: Components
    reactor: Any

    def get_settings(self) -> Mapping[str, str]:
        """:attr:`settings`, as Kinto's ``config.get_settings()`` returns them."""
        return self.settings


class LoadedListeners(list[int]):
    """
    The handler ids of the loaded listeners, in the configuration's order, and a way to
    unload them.

    :ivar handlers: each listener's handler, by listener name.
    """

    def __init__(self, dispatcher: IEventDispatcher) -> None:
        super().__init__()
        self.handlers: dict[str, Callable[[Any], object]] = {}
        self._dispatcher = dispatcher

    def close(self) -> Deferred[None]:
        """
        Remove the handlers from the dispatcher, then call the ``close()`` method of those
        that have one (a Redis listener stops its thread pool).

        :return: a Deferred firing ``None`` once every ``close()`` has finished; a failing
            one is logged, not raised.
        """
        for handler_id in self:
            self._dispatcher.remove_event_handler(handler_id).addErrback(
                lambda failure: failure.trap(KeyError)
            )
        self.clear()
        closing: list[Deferred[object]] = []
        for name, handler in self.handlers.items():
            close = getattr(handler, "close", None)
            if callable(close):
                d = maybeDeferred(close)
                d.addErrback(_log_close_failure, name)
                closing.append(d)
        self.handlers = {}
        return DeferredList(closing).addCallback(lambda _: None)


def _log_close_failure(failure: Failure, name: str) -> None:
    _log.failure("listener {listener} failed to close", failure, listener=name)


def check_settings(config: ListenerContext, prefix: str, known: tuple[str, ...]) -> None:
    """
    Refuse keys under ``prefix`` that a listener does not know, so that a misspelt key is
    an error rather than silently ignored.

    :param config: the context given to ``load_from_config``.
    :param prefix: the listener's prefix, such as ``"listener.audit."``.
    :param known: the listener's own keys (the service's keys ``use``, ``phase`` and
        ``match.*`` are always allowed).
    :raise ValueError: naming the unknown key and the known ones.
    """
    for name in config.settings:
        if not name.startswith(prefix):
            continue
        key = name[len(prefix) :]
        if key not in known and key not in LISTENER_KEYS:
            raise ValueError(f"unknown key {key!r}; this listener's keys are {', '.join(known)}")


def event_record(event: object) -> dict[str, object]:
    """
    A JSON-ready record of an event handed to listeners::

        {"event": name, "id": ..., "timestamp": ..., "sender": ..., "data": ...}

    For a :class:`~twisted_hooks.webhooks.WebhookEvent`: its name, id, timestamp, sender
    (as an owner identity, :func:`~twisted_hooks.webhooks.subscribers.sender_ident`) and
    data. For an :class:`~twisted_hooks.webhooks.OperationalEvent`: its name, the id of the
    published event concerned, the end of the attempt, no sender, and as data the
    delivery's and subscriber's ids, the attempt's number, status code and error kind, and
    the reason (never the subscriber's URL, which may hold a secret). Other objects give
    their ``name`` (or their type's name) and no id.
    """
    if isinstance(event, WebhookEvent):
        return {
            "event": event.name,
            "id": event.id,
            "timestamp": event.timestamp,
            "sender": sender_ident(event.sender),
            "data": event.data,
        }
    if isinstance(event, OperationalEvent):
        attempt = event.attempt
        return {
            "event": event.name,
            "id": event.delivery.event_id,
            "timestamp": attempt.started_at + attempt.duration,
            "sender": None,
            "data": {
                "delivery_id": event.delivery.id,
                "subscriber_id": event.delivery.subscriber.id,
                "event": event.delivery.event,
                "attempt": attempt.number,
                "status_code": attempt.status_code,
                "error_kind": attempt.error_kind,
                "reason": event.reason,
            },
        }
    return {
        "event": str(getattr(event, "name", type(event).__name__)),
        "id": None,
        "timestamp": None,
        "sender": None,
        "data": None,
    }


def _fail(config: ServiceConfig, spec: ListenerSpec, message: str) -> ConfigError:
    where = f"{config.path}: " if config.path else ""
    return ConfigError(
        f"{where}[{spec.section}] (use = {spec.use}): {message}",
        source=config.path,
        section=spec.section,
        key="use",
    )


def _make_handler(
    config: ServiceConfig, spec: ListenerSpec, context: ListenerContext
) -> Callable[[Any], object]:
    try:
        module = importlib.import_module(spec.use)
    except Exception as error:
        raise _fail(
            config,
            spec,
            f"the module cannot be imported ({type(error).__name__}: {error}); install it, "
            "or correct the dotted name",
        ) from error
    load = getattr(module, "load_from_config", None)
    if not callable(load):
        raise _fail(
            config,
            spec,
            f"the module {spec.use} has no load_from_config(config, prefix) function; "
            "point use at a listener module",
        )
    try:
        handler = load(context, spec.prefix)
    except Exception as error:
        raise _fail(
            config, spec, f"load_from_config failed: {type(error).__name__}: {error}"
        ) from error
    if not callable(handler):
        raise _fail(
            config,
            spec,
            f"load_from_config returned {handler!r}, which is not callable; it must return "
            "the handler",
        )
    return handler  # type: ignore[no-any-return]


def load_listeners(
    config: ServiceConfig,
    dispatcher: IEventDispatcher,
    registry: Components,
    reactor: Any = None,
) -> LoadedListeners:
    """
    Load the configured listeners and register their handlers on ``dispatcher``.

    For each :attr:`~twisted_hooks.service.config.ServiceConfig.listeners` entry, import
    its ``use`` module, call ``load_from_config(ListenerContext, "listener.NAME.")`` and
    register the handler returned with
    ``dispatcher.add_event_handler(handler, phase, use_weakref=False, **match_spec)``.

    :param config: the service's configuration.
    :param dispatcher: the dispatcher to register on (the application's).
    :param registry: the registry the dispatcher is registered in, handed to listeners.
    :param reactor: the reactor handed to listeners; the global one if ``None``.
    :return: the handler ids (a list), with :attr:`LoadedListeners.handlers` and
        :meth:`LoadedListeners.close`.
    :raise ConfigError: naming the listener's section, when its module cannot be
        imported, has no ``load_from_config``, or ``load_from_config`` raises or returns
        something not callable, or the phase or match spec is not the dispatcher's. The
        listeners loaded before it are unloaded first.
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    context = ListenerContext(settings=config.raw, registry=registry, reactor=reactor)
    loaded = LoadedListeners(dispatcher)
    try:
        for spec in config.listeners:
            handler = _make_handler(config, spec, context)
            loaded.handlers[spec.name] = handler
            match: dict[str, Any] = dict(spec.match_spec)
            try:
                registered = dispatcher.add_event_handler(
                    handler, spec.phase, use_weakref=False, **match
                )
            except (TypeError, ValueError) as error:
                raise _fail(config, spec, f"the handler cannot be registered: {error}") from error
            ids: list[int] = []
            registered.addCallback(ids.append)
            loaded.extend(ids)
            _log.info(
                "loaded listener {listener} ({use}) in phase {phase} for {match_spec!r}",
                listener=spec.name,
                use=spec.use,
                phase=spec.phase,
                match_spec=dict(spec.match_spec),
            )
    except ConfigError:
        loaded.close()
        raise
    return loaded
