"""
Where the Django integration's webhooks go: the engine in this process, a running
service, or nowhere (``TWISTED_HOOKS["MODE"]``).

A backend is built once, on the first send (:func:`get_backend`), from the Django
settings; changing those settings (``override_settings`` in tests) drops it
(:func:`reset_backend`), and the next send builds a new one.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from twisted_hooks.contrib.django.conf import (
    DISABLED,
    INPROCESS,
    DjangoConfig,
    load_config,
)
from twisted_hooks.webhooks.encoding import encode_json
from twisted_hooks.webhooks.subscribers import sender_ident

if TYPE_CHECKING:
    from twisted_hooks.sync import BlockingHooks
    from twisted_hooks.webhooks import models

__all__ = [
    "Backend",
    "DisabledBackend",
    "InProcessBackend",
    "Outgoing",
    "ServiceBackend",
    "ServiceError",
    "get_backend",
    "get_hooks",
    "reset_backend",
]


class ServiceError(RuntimeError):
    """
    The service did not accept a published event: unreachable, timed out, or answered
    with an error (the message says which, with the service's own ``detail``).
    """


@attrs.frozen
class Outgoing:
    """
    One model message, ready to send: made when the signal fires, sent then or when the
    transaction commits.

    :ivar event: the :class:`~twisted_hooks.webhooks.models.ModelEvent`.
    :ivar name: the event name (its template formatted).
    :ivar payload: the message, ``{"event", "ref", "sender", "data"}``.
    :ivar sender: the sender object (a Django user), matched against subscribers' owners
        through :func:`~twisted_hooks.webhooks.subscribers.sender_ident`.
    :ivar headers: extra request headers, or ``None``.
    """

    event: models.ModelEvent
    name: str
    payload: object
    sender: object
    headers: Mapping[str, str] | None = None

    @property
    def message(self) -> models.ModelMessage:
        """The message as :meth:`~twisted_hooks.webhooks.models.ModelEvent.send_message`
        sends it."""
        from twisted_hooks.webhooks.models import ModelMessage

        return ModelMessage(
            name=self.name, payload=self.payload, sender=self.sender, headers=self.headers
        )


class Backend(Protocol):
    """What sends :class:`Outgoing` messages."""

    def send(self, outgoing: Outgoing) -> object:
        """Send one message; return what the mode gives (see the implementations)."""

    def close(self) -> None:
        """Release what the backend holds."""


class DisabledBackend:
    """``MODE = "disabled"``: sends nothing (Thorn's ``"disabled"`` dispatcher)."""

    def send(self, outgoing: Outgoing) -> None:
        """Send nothing."""
        return None

    def close(self) -> None:
        """Nothing to release."""


class InProcessBackend:
    """
    ``MODE = "inprocess"``: a :class:`~twisted_hooks.webhooks.Hooks` application in this
    process, run by crochet's reactor thread (:func:`twisted_hooks.sync.setup`) behind a
    :class:`~twisted_hooks.sync.BlockingHooks` facade.

    A send waits until the deliveries are accepted (committed, with ``DATABASE``), not
    until they are delivered: attempts and retries go on in the reactor thread.

    :param config: the settings.
    """

    def __init__(self, config: DjangoConfig) -> None:
        from twisted_hooks import sync

        sync.setup()
        stores: dict[str, Any] = {}
        self._store: Any = None
        if config.database is not None:
            from twisted_hooks.store import open_store

            store = sync.blocking_call(open_store, config.database, timeout=config.send_timeout)
            self._store = store
            stores = {
                "subscribers": store.subscribers,
                "deliveries": store.deliveries,
                "health": store,
            }
        #: The blocking facade of the application.
        self.hooks: BlockingHooks = sync.BlockingHooks.create(
            timeout=config.send_timeout,
            settings=config.settings,
            static_subscribers=config.static_subscribers,
            default_secret=config.default_secret,
            **stores,
        )

    def send(self, outgoing: Outgoing) -> object:
        """
        Publish through the application, with the event's options (timeout, retry,
        recipient validators, ...) and headers.

        :return: the :class:`~twisted_hooks.webhooks.SendResult` (``None`` inside
            :meth:`~twisted_hooks.sync.BlockingHooks.buffer_events`).
        """
        return outgoing.event.send_message(self.hooks, outgoing.message)

    def close(self) -> None:
        """Stop the application (attempts under way finish) and close its store."""
        from twisted_hooks import sync

        self.hooks.stop()
        if self._store is not None:
            sync.blocking_call(self._store.close)


class ServiceBackend:
    """
    ``MODE = "service"``: ``POST URL/events/`` of a running twisted_hooks service, with
    the bearer ``TOKEN`` (scope ``publish``), from the calling thread (the standard
    library's :mod:`urllib`; a send blocks for at most ``SEND_TIMEOUT`` seconds).

    The body is ``{"event": name, "data": message, "sender": owner, "id": uuid}``, the
    sender being the :func:`~twisted_hooks.webhooks.subscribers.sender_ident` of the
    event's sender (``null`` for none). Delivery settings (timeout, retries, validators,
    subscribers) are the service's; an event's own ``timeout``, ``retry*``,
    ``recipient_validators``, ``subscribers`` and extra headers are not sent.

    :param config: the settings.
    """

    def __init__(self, config: DjangoConfig) -> None:
        assert config.url is not None and config.token is not None
        self.url = config.url + "/events/"
        self._token = config.token
        self.timeout = config.send_timeout

    def send(self, outgoing: Outgoing) -> dict[str, Any]:
        """
        Publish one message.

        :return: the service's answer: ``{"id", "deliveries", "duplicate", "skipped"}``.
        :raise ServiceError: when the service cannot be reached in time or refuses.
        """
        body = encode_json(
            {
                "event": outgoing.name,
                "data": outgoing.payload,
                "sender": sender_ident(outgoing.sender),
                "id": str(uuid.uuid4()),
            }
        )
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self._token}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read(4096).decode("utf-8", "replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.loads(detail).get("detail", detail)
            hint = ""
            if error.code in (401, 403):
                hint = " (check TWISTED_HOOKS['TOKEN']: it needs the publish scope)"
            raise ServiceError(
                f"the twisted_hooks service refused event {outgoing.name!r}: POST {self.url} "
                f"answered {error.code}: {detail}{hint}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ServiceError(
                f"event {outgoing.name!r} was not published: the twisted_hooks service at "
                f"{self.url} could not be reached within {self.timeout:g} s ({reason}); "
                "check TWISTED_HOOKS['URL'] and that the service runs"
            ) from None
        try:
            result: dict[str, Any] = json.loads(answer)
        except ValueError:
            raise ServiceError(
                f"POST {self.url} answered something that is not JSON: is TWISTED_HOOKS['URL'] "
                "the twisted_hooks service?"
            ) from None
        return result

    def close(self) -> None:
        """Nothing to release."""


_lock = threading.Lock()
_backend: list[Backend] = []


def _build(config: DjangoConfig) -> Backend:
    if config.mode == INPROCESS:
        return InProcessBackend(config)
    if config.mode == DISABLED:
        return DisabledBackend()
    return ServiceBackend(config)


def get_backend() -> Backend:
    """
    The backend of the current Django settings, built on first use.

    :raise twisted_hooks.contrib.django.conf.ConfigurationError: for wrong settings.
    """
    with _lock:
        if not _backend:
            _backend.append(_build(load_config()))
        return _backend[0]


def get_hooks() -> BlockingHooks:
    """
    The :class:`~twisted_hooks.sync.BlockingHooks` facade of the in-process application,
    to subscribe, drain and so on from Django code::

        get_hooks().subscribe("article.*", "https://example.com/hooks/article")

    :raise RuntimeError: when ``TWISTED_HOOKS["MODE"]`` is not ``"inprocess"``.
    """
    backend = get_backend()
    if not isinstance(backend, InProcessBackend):
        raise RuntimeError(
            "get_hooks() is for TWISTED_HOOKS['MODE'] = 'inprocess'; in 'service' mode "
            "subscribe through the service's /hooks/ API"
        )
    return backend.hooks


def reset_backend() -> None:
    """
    Drop the current backend (stopping an in-process application); the next send builds
    one from the settings as they are then. Called when ``TWISTED_HOOKS`` or a ``THORN_*``
    setting changes (``django.test.signals.setting_changed``).
    """
    with _lock:
        old = _backend[:]
        _backend.clear()
    for backend in old:
        backend.close()
