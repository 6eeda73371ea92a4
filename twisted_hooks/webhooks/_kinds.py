"""
The values the publishing and delivering halves of the engine share: the dispatcher details
events are fired with, the operational event value, and the error of a send that reached
an application that is not running.
"""

from __future__ import annotations

import attrs

from twisted_hooks.webhooks.delivery import Attempt, Delivery
from twisted_hooks.webhooks.health import EndpointHealth

__all__ = ["KEYWORDS", "OPERATIONAL", "WEBHOOK", "HooksNotRunning", "OperationalEvent"]

#: The dispatcher keywords webhook and operational events are fired with.
KEYWORDS: tuple[str, ...] = ("name", "kind", "owner")
#: The ``kind`` of published webhook events.
WEBHOOK = "webhook"
#: The ``kind`` of the application's own operational events.
OPERATIONAL = "operational"


class HooksNotRunning(RuntimeError):
    """A send reached an application that is not started (or is stopping)."""


# Tracebacks name it where it has always been imported from.
HooksNotRunning.__module__ = "twisted_hooks.webhooks.app"


@attrs.frozen
class OperationalEvent:
    """
    An event the application fires about its own work.

    :ivar name: ``webhook.delivery.failed`` (an attempt failed),
        ``webhook.delivery.dead`` (a delivery ended undelivered),
        ``webhook.endpoint.disabled`` (a 410 Gone, or failure sustained for
        ``disable_failures`` attempts over ``disable_period``: the subscriber is
        deactivated), ``webhook.endpoint.opened`` (the endpoint's circuit opened: its
        deliveries are held back for ``circuit_cooldown``) or
        ``webhook.endpoint.recovered`` (its circuit closed again).
    :ivar delivery: the delivery concerned (for endpoint events: the one whose attempt
        changed the endpoint's health).
    :ivar attempt: the attempt that caused it.
    :ivar reason: a sentence for people.
    :ivar health: for endpoint events other than 410 Gone, the endpoint's health record
        after the change; else ``None``.
    """

    name: str
    delivery: Delivery
    attempt: Attempt
    reason: str
    health: EndpointHealth | None = None
