"""
Deliveries as values: :class:`Delivery`, :class:`Attempt`, :class:`DeliveryUpdate`,
:class:`DeliveryStats`, the statuses, :func:`decide` and :func:`log_order`. Re-exported by
:mod:`twisted_hooks.webhooks.delivery`.
"""

from __future__ import annotations

import random

import attrs
from twisted.logger import Logger

from twisted_hooks.webhooks._subscriber import Subscriber
from twisted_hooks.webhooks.retry import RetryPolicy

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
    "decide",
    "log_order",
    "log_stale_write",
]

_log = Logger(namespace="twisted_hooks.webhooks.delivery")


#: Waiting for its first attempt.
PENDING = "pending"


#: Claimed under a lease; an attempt is under way.
IN_FLIGHT = "in_flight"


#: A 2xx answer was received. Final.
DELIVERED = "delivered"


#: An attempt failed; the next one is due at ``next_attempt_at``.
RETRYING = "retrying"


#: No attempt is left, the subscriber is gone, or the recipient was refused. Final, but
#: kept, visible and replayable.
DEAD = "dead"


#: Every status, in lifecycle order.
STATUSES: tuple[str, ...] = (PENDING, IN_FLIGHT, RETRYING, DELIVERED, DEAD)


class ErrorKind:
    """The kinds of failed attempt, as stored in :attr:`Attempt.error_kind`."""

    #: The deadline (connect, headers and body together) passed.
    TIMEOUT = "timeout"
    #: The connection could not be made, or broke.
    CONNECTION = "connection"
    #: The host name did not resolve.
    DNS = "dns"
    #: A non-2xx status other than those below.
    STATUS = "status"
    #: A 3xx answer: redirects are not followed.
    REDIRECT = "redirect"
    #: 410 Gone: the subscription is deactivated, the delivery dead.
    GONE = "gone"
    #: The recipient was refused by the recipient validators. Not retried.
    SECURITY = "security"
    #: The subscriber was removed or deactivated before the attempt.
    SUBSCRIBER = "subscriber"
    #: Anything else (a bug); retried.
    INTERNAL = "internal"

    #: Kinds that end the delivery at once, whatever retries are left.
    PERMANENT: frozenset[str] = frozenset({GONE, SECURITY, SUBSCRIBER})


@attrs.frozen
class Attempt:
    """
    One HTTP attempt of a delivery.

    :ivar delivery_id: the delivery it belongs to.
    :ivar number: 1 for the first attempt, 2 for the first retry, ...
    :ivar started_at: when it started, seconds since the epoch.
    :ivar duration: seconds from start to the end of the body (or the failure).
    :ivar status_code: the HTTP status, or ``None`` when no answer came.
    :ivar error_kind: ``None`` for a success, else one of :class:`ErrorKind`'s values.
    :ivar error_message: what went wrong, for people.
    :ivar response_body: the first 4 KiB of the response body.
    :ivar retry_after: seconds asked for by a ``Retry-After`` header (429 and 503 only).
    :ivar exception: the exception behind a failure, for callbacks; not stored durably.
    """

    delivery_id: str
    number: int
    started_at: float
    duration: float
    status_code: int | None = None
    error_kind: str | None = None
    error_message: str | None = None
    response_body: bytes = b""
    retry_after: float | None = None
    exception: BaseException | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def succeeded(self) -> bool:
        """``True`` for a 2xx answer."""
        return self.error_kind is None


@attrs.frozen
class Delivery:
    """
    One event on its way to one subscriber.

    :ivar id: stable across retries and restarts: ``Hook-Delivery`` and ``webhook-id``.
    :ivar event: the event name (``Hook-Event``).
    :ivar event_id: the id of the published event; every delivery of one send shares it.
    :ivar subscriber: the subscriber as it was when the delivery was made; its current
        state is looked up again before each attempt.
    :ivar body: the encoded body, in the subscriber's content type.
    :ivar created_at: when it was made, seconds since the epoch.
    :ivar next_attempt_at: when the next attempt is due.
    :ivar retry: the retry policy.
    :ivar timeout: the deadline of one attempt, in seconds.
    :ivar allow_keepalive: ``False`` closes the connection after each attempt.
    :ivar refresh_subscriber: ``True`` when the subscriber comes from the subscriber store:
        it is looked up again before each attempt, and a removed or deactivated subscriber
        ends the delivery. Static and per-event subscribers use their snapshot.
    :ivar attempts: attempts made so far.
    :ivar status: one of :data:`STATUSES`.
    :ivar lease_expires_at: while in flight, when another claimer may take it.
    :ivar last_error: the last attempt's error message, if it failed.
    :ivar finished_at: when it was delivered or died, or ``None`` while it is not finished.
    :ivar claim_token: the fencing token of its latest claim: 1 after the first claim,
        one more at each claim after that; ``None`` before the first (and in stores that
        do not fence). Updates and releases carry it back to the store, which drops those
        of an older claim.
    """

    id: str
    event: str
    event_id: str
    subscriber: Subscriber
    body: bytes
    created_at: float
    next_attempt_at: float
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    timeout: float = 10.0
    allow_keepalive: bool = True
    refresh_subscriber: bool = True
    attempts: int = 0
    status: str = PENDING
    lease_expires_at: float | None = None
    last_error: str | None = None
    finished_at: float | None = None
    claim_token: int | None = None

    @property
    def finished(self) -> bool:
        """``True`` once delivered or dead."""
        return self.status in (DELIVERED, DEAD)


@attrs.frozen
class DeliveryUpdate:
    """
    What an attempt changed: the delivery's new status and, for a retry, when.

    :ivar delivery_id: the delivery.
    :ivar status: :data:`DELIVERED`, :data:`RETRYING` or :data:`DEAD`.
    :ivar attempt: the attempt that led here.
    :ivar next_attempt_at: when the retry is due (``RETRYING`` only).
    :ivar claim_token: the :attr:`Delivery.claim_token` of the claim the attempt was made
        under; the store drops the update when the delivery has been claimed again since.
        ``None`` writes without that check.
    """

    delivery_id: str
    status: str
    attempt: Attempt
    next_attempt_at: float | None = None
    claim_token: int | None = None


@attrs.frozen
class DeliveryStats:
    """
    A summary of a delivery store, for metrics.

    :ivar counts: how many deliveries are in each status (every status of
        :data:`STATUSES` is present).
    :ivar oldest_due_age: seconds since the oldest claimable delivery became due, or
        ``None`` when none is due.
    """

    counts: dict[str, int] = attrs.field(eq=True, hash=False)
    oldest_due_age: float | None = None


def decide(delivery: Delivery, attempt: Attempt, now: float, rng: random.Random) -> DeliveryUpdate:
    """
    Turn an attempt into the delivery's next state.

    A 2xx is delivered. 410 Gone, a refused recipient or a vanished subscriber is dead at
    once. Anything else is retried on the delivery's policy (``Retry-After`` honoured up
    to its cap) until no retry is left, and then dead.
    """
    token = delivery.claim_token
    if attempt.error_kind is None:
        return DeliveryUpdate(delivery.id, DELIVERED, attempt, claim_token=token)
    if attempt.error_kind in ErrorKind.PERMANENT:
        return DeliveryUpdate(delivery.id, DEAD, attempt, claim_token=token)
    delay = delivery.retry.next_delay(attempt.number, rng, attempt.retry_after)
    if delay is None:
        return DeliveryUpdate(delivery.id, DEAD, attempt, claim_token=token)
    return DeliveryUpdate(delivery.id, RETRYING, attempt, now + delay, claim_token=token)


def log_stale_write(
    delivery_id: str, write: str, claim_token: int | None, current: int | None
) -> None:
    """
    Log, as a warning, a write a store dropped because it was made under a claim older
    than the delivery's latest one (its lease had expired, and the delivery was claimed
    again).

    :param delivery_id: the delivery.
    :param write: what was dropped, for people (``"outcome of attempt 2"``, ``"release"``).
    :param claim_token: the token the write carried.
    :param current: the delivery's current token.
    """
    _log.warn(
        "dropped the late {write} of delivery {delivery_id}: it was made under claim"
        " {claim_token}, whose lease had expired, and the delivery has been claimed again"
        " since (claim {current}); the newer claim's outcome stands",
        write=write,
        delivery_id=delivery_id,
        claim_token=claim_token,
        current=current,
    )


class DeliveryNotFound(KeyError):
    """No delivery has the id asked for."""

    def __str__(self) -> str:
        return f"no delivery with id {self.args[0]!r}"


def log_order(delivery: Delivery) -> tuple[int, float, str, str]:
    """
    The key of the delivery log's order (sorted descending: newest first): creation time,
    then id, as the SQL stores sort ``created_at, id`` (a stored time that is not a
    number, which only a hand-edited row has, sorts after every number).
    """
    created: object = delivery.created_at
    if isinstance(created, int | float) and not isinstance(created, bool):
        return (0, float(created), "", delivery.id)
    return (1, 0.0, str(created), delivery.id)
