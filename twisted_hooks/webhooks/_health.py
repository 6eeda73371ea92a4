"""
Endpoint health as values: :class:`EndpointHealth`, :class:`HealthEvent` and the circuit
states. Re-exported by :mod:`twisted_hooks.webhooks.health`.
"""

from __future__ import annotations

import attrs
from twisted.logger import Logger

from twisted_hooks.webhooks._deliveries import ErrorKind

__all__ = [
    "CIRCUITS",
    "CLOSED",
    "COUNTED_FAILURES",
    "DISABLED",
    "HALF_OPEN",
    "OPEN",
    "OPENED",
    "RECOVERED",
    "EndpointHealth",
    "HealthEvent",
]

_log = Logger(namespace="twisted_hooks.webhooks.health")


#: Attempts flow normally.
CLOSED = "closed"


#: Too many consecutive failures: attempts are held back until the cool-down ends.
OPEN = "open"


#: The cool-down ended: one probe attempt decides whether the circuit closes or opens again.
HALF_OPEN = "half_open"


#: Every circuit state.
CIRCUITS: tuple[str, ...] = (CLOSED, OPEN, HALF_OPEN)


#: A :class:`HealthEvent`: the circuit opened (from closed, or again after a failed probe).
OPENED = "opened"


#: A :class:`HealthEvent`: the circuit closed again after being open.
RECOVERED = "recovered"


#: A :class:`HealthEvent`: the endpoint failed for long enough to be disabled.
DISABLED = "disabled"


#: The kinds of failed attempt that count against an endpoint: it was reached (or should
#: have been) and did not answer 2xx. A refused recipient, a vanished subscriber or a bug
#: of ours says nothing about the endpoint; 410 Gone deactivates it on its own.
COUNTED_FAILURES: frozenset[str] = frozenset(
    {ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.DNS, ErrorKind.STATUS, ErrorKind.REDIRECT}
)


@attrs.frozen
class EndpointHealth:
    """
    The health of one endpoint.

    :ivar subscriber_id: the endpoint.
    :ivar consecutive_failures: failed attempts since the last success.
    :ivar first_failure_at: when the current failure streak began (``None`` without one).
    :ivar last_failure_at: when its latest failure happened.
    :ivar circuit: :data:`CLOSED`, :data:`OPEN` or :data:`HALF_OPEN`.
    :ivar opened_at: when the circuit last opened.
    :ivar disabled_since: when the endpoint was disabled for sustained failure, or ``None``.
    :ivar updated_at: when this record last changed.
    """

    subscriber_id: str
    consecutive_failures: int = 0
    first_failure_at: float | None = None
    last_failure_at: float | None = None
    circuit: str = CLOSED
    opened_at: float | None = None
    disabled_since: float | None = None
    updated_at: float = 0.0


@attrs.frozen
class HealthEvent:
    """
    A change of an endpoint's health that the application announces.

    :ivar kind: :data:`OPENED`, :data:`RECOVERED` or :data:`DISABLED`.
    :ivar health: the endpoint's health record after the change.
    :ivar reason: what happened, for people.
    """

    kind: str
    health: EndpointHealth
    reason: str
