"""
Webhooks: events delivered to subscribers as signed HTTP POSTs, retried with backoff.

The application object is :class:`Hooks`; Thorn's :class:`Event` sends through it. It
composes a :class:`Publisher` (from a send to stored deliveries) and a
:class:`DeliveryService` (scheduler, :class:`EndpointGate`, sender). The pieces behind
it, each behind a small interface, live in the submodules:
:mod:`~twisted_hooks.webhooks.patterns` (event patterns),
:mod:`~twisted_hooks.webhooks.subscribers` (subscribers and their store),
:mod:`~twisted_hooks.webhooks.encoding` (bodies),
:mod:`~twisted_hooks.webhooks.signing` (Thorn and Standard Webhooks signatures),
:mod:`~twisted_hooks.webhooks.validators` and :mod:`~twisted_hooks.webhooks.safe_agent`
(recipient validation against SSRF), :mod:`~twisted_hooks.webhooks.retry` (the retry
schedule), :mod:`~twisted_hooks.webhooks.delivery` (deliveries and their store),
:mod:`~twisted_hooks.webhooks.scheduler`, :mod:`~twisted_hooks.webhooks.sender` (the HTTP
attempt) and :mod:`~twisted_hooks.webhooks.buffer` (Thorn's ``buffer_events``).
"""

from __future__ import annotations

from typing import Any

from twisted_hooks.store._memory_deliveries import MemoryDeliveryStore
from twisted_hooks.store._memory_subscribers import MemorySubscriberStore
from twisted_hooks.webhooks._delivery_service import DeliveryService
from twisted_hooks.webhooks._gate import EndpointGate
from twisted_hooks.webhooks._publisher import Publisher
from twisted_hooks.webhooks.app import (
    Hooks,
    HooksNotRunning,
    OperationalEvent,
    Settings,
    WebhookHandler,
)
from twisted_hooks.webhooks.buffer import EventBuffer
from twisted_hooks.webhooks.delivery import (
    Attempt,
    Delivery,
    DeliveryUpdate,
    ErrorKind,
)
from twisted_hooks.webhooks.encoding import EncodingError
from twisted_hooks.webhooks.events import (
    Event,
    NoApplication,
    Request,
    SendOptions,
    SendResult,
    WebhookEvent,
    get_default_app,
    set_default_app,
)
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.sender import HTTPSender
from twisted_hooks.webhooks.signing import (
    generate_secret,
    sign,
    sign_standard,
    verify,
    verify_standard,
)
from twisted_hooks.webhooks.subscribers import Subscriber
from twisted_hooks.webhooks.validators import (
    RecipientPolicy,
    SecurityError,
    block_cidr_network,
    block_internal_ips,
    ensure_port,
    ensure_protocol,
)

__all__ = [
    "Attempt",
    "Delivery",
    "DeliveryService",
    "DeliveryUpdate",
    "EncodingError",
    "EndpointGate",
    "ErrorKind",
    "Event",
    "EventBuffer",
    "HTTPSender",
    "Hooks",
    "HooksNotRunning",
    "MemoryDeliveryStore",
    "MemorySubscriberStore",
    "NoApplication",
    "OperationalEvent",
    "Publisher",
    "RecipientPolicy",
    "Request",
    "RetryPolicy",
    "SecurityError",
    "SendOptions",
    "SendResult",
    "Settings",
    "Subscriber",
    "WebhookEvent",
    "WebhookHandler",
    "block_cidr_network",
    "block_internal_ips",
    "buffer_events",
    "ensure_port",
    "ensure_protocol",
    "generate_secret",
    "get_default_app",
    "set_default_app",
    "sign",
    "sign_standard",
    "verify",
    "verify_standard",
]


def buffer_events(
    flush_freq: int | None = None, flush_timeout: float | None = None, app: Hooks | None = None
) -> EventBuffer[Any]:
    """
    Thorn's ``thorn.buffer_events``: :meth:`Hooks.buffer_events` of ``app``, or of the
    default application (:func:`set_default_app`).
    """
    target = app if app is not None else get_default_app()
    return target.buffer_events(flush_freq, flush_timeout)
