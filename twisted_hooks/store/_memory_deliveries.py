"""
The in-memory delivery store: :class:`MemoryDeliveryStore`, the ``default`` backend's
deliveries. Re-exported by :mod:`twisted_hooks.webhooks.delivery` and
:mod:`twisted_hooks.webhooks`, where it is documented.
"""

from __future__ import annotations

import heapq
import itertools
import operator
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from twisted_hooks.interfaces import IDeliveryStore
from twisted_hooks.webhooks._deliveries import (
    DEAD,
    DELIVERED,
    IN_FLIGHT,
    PENDING,
    RETRYING,
    STATUSES,
    Attempt,
    Delivery,
    DeliveryNotFound,
    DeliveryStats,
    DeliveryUpdate,
    log_order,
    log_stale_write,
)

__all__ = ["MemoryDeliveryStore"]


#: Every field of :class:`Delivery`, in the order of its ``__init__``'s parameters.
_FIELDS: tuple[str, ...] = tuple(field.name for field in attrs.fields(Delivery))
#: Reads every field of a delivery at once, in :data:`_FIELDS` order.
_values_of = operator.attrgetter(*_FIELDS)
_STATUS = _FIELDS.index("status")
_LEASE = _FIELDS.index("lease_expires_at")
_TOKEN = _FIELDS.index("claim_token")
_ATTEMPTS = _FIELDS.index("attempts")
_LAST_ERROR = _FIELDS.index("last_error")
_FINISHED_AT = _FIELDS.index("finished_at")
_NEXT = _FIELDS.index("next_attempt_at")


def _replaced(delivery: Delivery, changes: dict[int, Any]) -> Delivery:
    """``delivery`` with the fields at the given positions of :data:`_FIELDS` changed: what
    :func:`attrs.evolve` makes, without looking its fields up at each call (the store does
    it at every claim and every outcome)."""
    values = list(_values_of(delivery))
    for index, value in changes.items():
        values[index] = value
    return Delivery(*values)


@implementer(IDeliveryStore)
class MemoryDeliveryStore:
    """
    Deliveries kept in memory: the ``default`` backend.

    Due deliveries sit in a heap ordered by due time; claims pop it, leases expire like a
    durable store's, and are fenced the same way (:attr:`Delivery.claim_token`). Finished
    deliveries are kept for inspection up to ``keep_finished`` (oldest dropped first), and
    each delivery keeps its last ``keep_attempts`` attempts. Every method returns an
    already-fired Deferred.
    """

    durable = False

    def __init__(
        self, keep_finished: int = 10_000, keep_attempts: int = 20, keep_keys: int = 100_000
    ) -> None:
        self._deliveries: dict[str, Delivery] = {}
        self._attempts: dict[str, deque[Attempt]] = {}
        self._due: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._finished: deque[str] = deque()
        self._keep_finished = keep_finished
        self._keep_attempts = keep_attempts
        # Idempotency keys, oldest first, with the creation time of their deliveries
        # (None for a publication that reached no subscriber: kept until pushed out).
        self._keys: dict[str, float | None] = {}
        self._keep_keys = keep_keys

    def __len__(self) -> int:
        """How many deliveries are held (unfinished ones and the kept finished ones)."""
        return len(self._deliveries)

    def pending_count(self) -> int:
        """How many deliveries are not finished yet."""
        return len(self._deliveries) - len(self._finished)

    def _schedule(self, when: float, delivery_id: str) -> None:
        heapq.heappush(self._due, (when, next(self._order), delivery_id))

    def enqueue(
        self, deliveries: Sequence[Delivery], idempotency_key: str | None = None
    ) -> Deferred[bool]:
        """Hold new deliveries, due at their ``next_attempt_at``; with a known
        ``idempotency_key`` (the last ``keep_keys`` are remembered), hold nothing and fire
        ``False``."""
        if idempotency_key is not None and idempotency_key in self._keys:
            return succeed(False)
        batch: set[str] = set()
        for delivery in deliveries:
            if delivery.id in self._deliveries:
                return fail(ValueError(f"delivery {delivery.id!r} is already stored"))
            if delivery.id in batch:
                return fail(ValueError(f"delivery {delivery.id!r} is given twice"))
            batch.add(delivery.id)
        for delivery in deliveries:
            self._deliveries[delivery.id] = delivery
            self._schedule(delivery.next_attempt_at, delivery.id)
        if idempotency_key is not None:
            self._keys[idempotency_key] = deliveries[0].created_at if deliveries else None
            while len(self._keys) > self._keep_keys:
                del self._keys[next(iter(self._keys))]
        return succeed(True)

    def claim(self, now: float, limit: int, lease: float) -> Deferred[Sequence[Delivery]]:
        """Take up to ``limit`` due deliveries (expired leases included), leased until
        ``now + lease``."""
        claimed: list[Delivery] = []
        due = self._due
        while due and len(claimed) < limit and due[0][0] <= now:
            when, _, delivery_id = heapq.heappop(due)
            delivery = self._deliveries.get(delivery_id)
            if delivery is None or not self._claimable(delivery, when):
                continue  # stale heap entry: the delivery moved on since
            leased = _replaced(
                delivery,
                {
                    _STATUS: IN_FLIGHT,
                    _LEASE: now + lease,
                    _TOKEN: (delivery.claim_token or 0) + 1,
                },
            )
            self._deliveries[delivery_id] = leased
            self._schedule(now + lease, delivery_id)
            claimed.append(leased)
        return succeed(claimed)

    @staticmethod
    def _claimable(delivery: Delivery, when: float) -> bool:
        if delivery.status in (PENDING, RETRYING):
            return delivery.next_attempt_at == when
        if delivery.status == IN_FLIGHT:
            return delivery.lease_expires_at == when
        return False

    def record(self, updates: Sequence[DeliveryUpdate]) -> Deferred[Sequence[DeliveryUpdate]]:
        """Apply attempt outcomes; fire the updates dropped (and logged) because the
        delivery was claimed again after the claim they carry."""
        stale: list[DeliveryUpdate] = []
        for update in updates:
            delivery = self._deliveries.get(update.delivery_id)
            if delivery is None:
                continue
            if update.claim_token is not None and update.claim_token != delivery.claim_token:
                log_stale_write(
                    update.delivery_id,
                    f"outcome of attempt {update.attempt.number}",
                    update.claim_token,
                    delivery.claim_token,
                )
                stale.append(update)
                continue
            attempts = self._attempts.get(update.delivery_id)
            if attempts is None:
                attempts = self._attempts[update.delivery_id] = deque(maxlen=self._keep_attempts)
            attempts.append(update.attempt)
            if delivery.finished:
                continue  # a late update (an expired lease's claimer): the end is final
            ended = update.status in (DELIVERED, DEAD)
            attempt = update.attempt
            changed = _replaced(
                delivery,
                {
                    _STATUS: update.status,
                    _FINISHED_AT: attempt.started_at + attempt.duration if ended else None,
                    _ATTEMPTS: max(delivery.attempts, attempt.number),
                    _LEASE: None,
                    _LAST_ERROR: attempt.error_message,
                    _NEXT: (
                        update.next_attempt_at
                        if update.next_attempt_at is not None
                        else delivery.next_attempt_at
                    ),
                },
            )
            self._deliveries[update.delivery_id] = changed
            if update.status == RETRYING:
                assert update.next_attempt_at is not None
                self._schedule(update.next_attempt_at, update.delivery_id)
            elif changed.finished:
                self._finish(update.delivery_id)
        return succeed(stale)

    def _finish(self, delivery_id: str) -> None:
        self._finished.append(delivery_id)
        while len(self._finished) > self._keep_finished:
            old = self._finished.popleft()
            self._deliveries.pop(old, None)
            self._attempts.pop(old, None)

    def release(
        self, delivery_id: str, due_at: float, claim_token: int | None = None
    ) -> Deferred[None]:
        """Give back a claimed delivery, unattempted, due again at ``due_at``; dropped (and
        logged) when ``claim_token`` is given and the delivery was claimed again since."""
        delivery = self._deliveries.get(delivery_id)
        if delivery is None:
            return fail(DeliveryNotFound(delivery_id))
        if claim_token is not None and claim_token != delivery.claim_token:
            log_stale_write(delivery_id, "release", claim_token, delivery.claim_token)
            return succeed(None)
        if delivery.status != IN_FLIGHT:
            return succeed(None)
        self._deliveries[delivery_id] = attrs.evolve(
            delivery,
            status=RETRYING if delivery.attempts else PENDING,
            next_attempt_at=due_at,
            lease_expires_at=None,
        )
        self._schedule(due_at, delivery_id)
        return succeed(None)

    def _earliest(self) -> float | None:
        due = self._due
        while due:
            when, _, delivery_id = due[0]
            delivery = self._deliveries.get(delivery_id)
            if delivery is not None and self._claimable(delivery, when):
                return when
            heapq.heappop(due)
        return None

    def next_due(self) -> Deferred[float | None]:
        """The earliest due time in the heap (stale entries are dropped first)."""
        return succeed(self._earliest())

    def retry(self, delivery_id: str, now: float) -> Deferred[Delivery]:
        """Make a dead delivery pending again, due at ``now``."""
        delivery = self._deliveries.get(delivery_id)
        if delivery is None:
            return fail(DeliveryNotFound(delivery_id))
        if delivery.status != DEAD:
            return fail(
                ValueError(f"delivery {delivery_id!r} is {delivery.status}; only dead ones retry")
            )
        return succeed(self._revive(delivery, now))

    def _revive(self, delivery: Delivery, now: float) -> Delivery:
        revived = attrs.evolve(
            delivery,
            status=RETRYING if delivery.attempts else PENDING,
            next_attempt_at=now,
            finished_at=None,
        )
        self._deliveries[delivery.id] = revived
        if delivery.id in self._finished:
            self._finished.remove(delivery.id)
        self._schedule(now, delivery.id)
        return revived

    def recover(self, subscriber_id: str, since: float, now: float) -> Deferred[int]:
        """Make the dead deliveries of a subscriber made at or after ``since`` pending."""
        dead = [
            d
            for d in self._deliveries.values()
            if d.status == DEAD and d.subscriber.id == subscriber_id and d.created_at >= since
        ]
        for delivery in dead:
            self._revive(delivery, now)
        return succeed(len(dead))

    def prune(self, before: float) -> Deferred[int]:
        """Forget delivered deliveries delivered before ``before``."""
        old = {
            d.id
            for d in self._deliveries.values()
            if d.status == DELIVERED and d.finished_at is not None and d.finished_at < before
        }
        for delivery_id in old:
            del self._deliveries[delivery_id]
            self._attempts.pop(delivery_id, None)
        if old:
            self._finished = deque(i for i in self._finished if i not in old)
        return succeed(len(old))

    def prune_keys(self, before: float) -> Deferred[int]:
        """Forget the idempotency keys of publications made before ``before``."""
        old = [k for k, at in self._keys.items() if at is not None and at < before]
        for key in old:
            del self._keys[key]
        return succeed(len(old))

    def stats(self, now: float) -> Deferred[DeliveryStats]:
        """Counts by status, and the age of the oldest due delivery."""
        counts = dict.fromkeys(STATUSES, 0)
        for delivery in self._deliveries.values():
            counts[delivery.status] += 1
        earliest = self._earliest()
        age = now - earliest if earliest is not None and earliest <= now else None
        return succeed(DeliveryStats(counts, age))

    def get(self, delivery_id: str) -> Deferred[Delivery]:
        """A delivery by id; fails with :class:`DeliveryNotFound`."""
        delivery = self._deliveries.get(delivery_id)
        if delivery is None:
            return fail(DeliveryNotFound(delivery_id))
        return succeed(delivery)

    def attempts(self, delivery_id: str) -> Deferred[Sequence[Attempt]]:
        """The attempts kept for a delivery, oldest first."""
        if delivery_id not in self._deliveries:
            return fail(DeliveryNotFound(delivery_id))
        return succeed(list(self._attempts.get(delivery_id, ())))

    def list(
        self,
        status: str | None = None,
        subscriber_id: str | None = None,
        limit: int = 100,
        since: float | None = None,
        *,
        subscriber_ids: Iterable[str] | None = None,
        after: tuple[float, str] | None = None,
    ) -> Deferred[Sequence[Delivery]]:
        """Held deliveries in the delivery log's order (:func:`log_order`, newest first),
        filtered by status, subscriber, any of ``subscriber_ids`` and creation time; only
        those after the ``(created_at, id)`` position ``after``; at most ``limit``."""
        if status is not None and status not in STATUSES:
            return fail(ValueError(f"unknown status {status!r}; use one of {STATUSES!r}"))
        among = None if subscriber_ids is None else frozenset(subscriber_ids)
        position = None if after is None else (0, float(after[0]), "", after[1])
        found: list[Delivery] = []
        for delivery in self._deliveries.values():
            if status is not None and delivery.status != status:
                continue
            if subscriber_id is not None and delivery.subscriber.id != subscriber_id:
                continue
            if among is not None and delivery.subscriber.id not in among:
                continue
            if since is not None and delivery.created_at < since:
                continue
            if position is not None and not log_order(delivery) < position:
                continue
            found.append(delivery)
        found.sort(key=log_order, reverse=True)
        return succeed(found[: max(0, limit)])
