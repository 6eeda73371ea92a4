"""
Deliveries, attempts, and the in-memory delivery store.

A :class:`Delivery` is one event on its way to one subscriber. It is created once, with a
stable id (the ``Hook-Delivery`` and ``webhook-id`` headers of every attempt), and moves
through these states::

    pending ──claim──> in_flight ──2xx──> delivered
                          │  ├──failure, retries left──> retrying ──due──> in_flight ...
                          │  └──failure, none left / 410 / refused──> dead
                          └──lease expired (crash)──> claimed again

Leases are *fenced*: each claim gives the delivery a new :attr:`Delivery.claim_token`, and
the outcome of an attempt (a :class:`DeliveryUpdate`) or a release carries the token of the
claim it was made under. A store drops, and logs, a write whose token is not the
delivery's current one: a claimer whose lease expired, and whose delivery another claimer
has taken since, cannot overwrite the newer claimer's outcome.

:class:`Attempt` records one HTTP try; :func:`decide` turns an attempt into a
:class:`DeliveryUpdate` following the retry policy. :class:`MemoryDeliveryStore`, the
``default`` backend's store, is defined in :mod:`twisted_hooks.store` with the other
stores, and importable from here.
"""

from __future__ import annotations

from twisted_hooks.store._memory_deliveries import MemoryDeliveryStore
from twisted_hooks.webhooks import _deliveries as _values
from twisted_hooks.webhooks._deliveries import (
    Attempt,
    Delivery,
    DeliveryNotFound,
    DeliveryStats,
    DeliveryUpdate,
    ErrorKind,
    decide,
    log_order,
    log_stale_write,
)

__all__ = [
    "DEAD",
    "DELIVERED",
    "IN_FLIGHT",
    "PENDING",
    "RETRYING",
    "STATUSES",
    "Attempt",
    "Delivery",
    "DeliveryNotFound",
    "DeliveryStats",
    "DeliveryUpdate",
    "ErrorKind",
    "MemoryDeliveryStore",
    "decide",
    "log_order",
    "log_stale_write",
]

#: Waiting for its first attempt.
PENDING = _values.PENDING
#: Claimed under a lease; an attempt is under way.
IN_FLIGHT = _values.IN_FLIGHT
#: A 2xx answer was received. Final.
DELIVERED = _values.DELIVERED
#: An attempt failed; the next one is due at ``next_attempt_at``.
RETRYING = _values.RETRYING
#: No attempt is left, the subscriber is gone, or the recipient was refused. Final, but
#: kept, visible and replayable.
DEAD = _values.DEAD
#: Every status, in lifecycle order.
STATUSES: tuple[str, ...] = _values.STATUSES
