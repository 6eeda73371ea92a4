"""
Endpoint health: failure streaks, circuit breakers and automatic disabling.

An *endpoint* is a subscriber. :class:`EndpointHealth` is what is stored about one
(:class:`~twisted_hooks.interfaces.IHealthStore`).
"""

from __future__ import annotations

import attrs

__all__ = ["CIRCUITS", "CLOSED", "HALF_OPEN", "OPEN", "EndpointHealth"]

#: Attempts flow normally.
CLOSED = "closed"
#: Too many consecutive failures: attempts are held back until the cool-down ends.
OPEN = "open"
#: The cool-down ended: one probe attempt decides whether the circuit closes or opens again.
HALF_OPEN = "half_open"
#: Every circuit state.
CIRCUITS: tuple[str, ...] = (CLOSED, OPEN, HALF_OPEN)


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
