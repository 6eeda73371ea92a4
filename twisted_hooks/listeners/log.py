"""
The log listener: every event it is given, logged with :mod:`twisted.logger`.

::

    [listener:audit]
    use = twisted_hooks.listeners.log
    match.kind =                ; every kind: webhook and operational events
    level = info                ; debug, info, warn, error or critical (default info)

Each event is one log event in the namespace ``twisted_hooks.listeners.log``, with the
stable fields ``listener`` (the listener's name), ``event_name``, ``event_id`` and
``event_kind`` (``webhook`` or ``operational``); an operational event adds
``delivery_id`` and ``reason``. The event's data and sender are not logged.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.logger import Logger, LogLevel

from twisted_hooks.listeners import ListenerContext, check_settings
from twisted_hooks.webhooks.app import OPERATIONAL, WEBHOOK, OperationalEvent
from twisted_hooks.webhooks.events import WebhookEvent

__all__ = ["LEVELS", "LogListener", "load_from_config"]

#: The level names the ``level`` key accepts.
LEVELS: Mapping[str, LogLevel] = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "warning": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}

_KEYS = ("level",)


class LogListener:
    """
    Logs each event it is called with.

    :param name: the listener's name, logged as ``listener``.
    :param level: the log level.
    :param logger: where to log; a :class:`~twisted.logger.Logger` in the namespace
        ``twisted_hooks.listeners.log`` if ``None``.
    """

    def __init__(
        self, name: str = "", level: LogLevel = LogLevel.info, logger: Logger | None = None
    ) -> None:
        self.name = name
        self.level = level
        self._log = logger if logger is not None else Logger(namespace=__name__)

    def __call__(self, event: object) -> None:
        """Log ``event``."""
        if isinstance(event, OperationalEvent):
            self._log.emit(
                self.level,
                "event {event_name} ({event_kind}) for delivery {delivery_id}: {reason}",
                listener=self.name,
                event_name=event.name,
                event_id=event.delivery.event_id,
                event_kind=OPERATIONAL,
                delivery_id=event.delivery.id,
                reason=event.reason,
            )
            return
        self._log.emit(
            self.level,
            "event {event_name} ({event_kind}) {event_id}",
            listener=self.name,
            event_name=getattr(event, "name", type(event).__name__),
            event_id=getattr(event, "id", None),
            event_kind=WEBHOOK if isinstance(event, WebhookEvent) else type(event).__name__,
        )


def load_from_config(config: ListenerContext, prefix: str) -> LogListener:
    """
    Make a :class:`LogListener` from the ``level`` key under ``prefix``.

    :raise ValueError: for an unknown level or key.
    """
    check_settings(config, prefix, _KEYS)
    text = config.settings.get(prefix + "level", "info").strip().lower() or "info"
    level = LEVELS.get(text)
    if level is None:
        raise ValueError(f"level = {text!r}: expected one of {', '.join(LEVELS)}")
    return LogListener(name=prefix.removeprefix("listener.").rstrip("."), level=level)
