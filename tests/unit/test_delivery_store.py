"""
Unit tests for :class:`twisted_hooks.webhooks.delivery.MemoryDeliveryStore`.

Every method of the memory store returns an already-fired Deferred, so the tests read
results with ``successResultOf`` and ``failureResultOf``; time is whatever ``now`` the
test passes to :meth:`~MemoryDeliveryStore.claim`.
"""

from __future__ import annotations

import functools
from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_hooks.interfaces import IDeliveryStore
from twisted_hooks.testing import make_delivery
from twisted_hooks.webhooks.delivery import (
    DEAD,
    DELIVERED,
    IN_FLIGHT,
    PENDING,
    RETRYING,
    Attempt,
    Delivery,
    DeliveryNotFound,
    DeliveryUpdate,
    ErrorKind,
    MemoryDeliveryStore,
)
from twisted_hooks.webhooks.subscribers import Subscriber

SUBSCRIBER = Subscriber(event="order.*", url="https://example.com/hook", secret="s3cret")
OTHER = Subscriber(event="*", url="https://other.example.com/hook", secret="s3cret")


#: A pending delivery to :data:`SUBSCRIBER` (``make_delivery`` of twisted_hooks.testing).
delivery = functools.partial(make_delivery, subscriber=SUBSCRIBER)


def attempt(delivery_id: str, number: int = 1, **fields: Any) -> Attempt:
    """An attempt of ``delivery_id``; a success unless ``error_kind`` is given."""
    return Attempt(delivery_id=delivery_id, number=number, started_at=0.0, duration=0.1, **fields)


def failed(delivery_id: str, number: int = 1, message: str = "boom") -> Attempt:
    """A failed attempt (a 500) of ``delivery_id``."""
    return attempt(
        delivery_id,
        number,
        status_code=500,
        error_kind=ErrorKind.STATUS,
        error_message=message,
    )


class StoreTestCase(SynchronousTestCase):
    """Helpers shared by the store tests."""

    def store(self, *deliveries: Delivery, **kwargs: Any) -> MemoryDeliveryStore:
        """A store holding ``deliveries``."""
        store = MemoryDeliveryStore(**kwargs)
        self.assertTrue(self.successResultOf(store.enqueue(list(deliveries))))
        return store

    def claim(
        self, store: MemoryDeliveryStore, now: float, limit: int = 100, lease: float = 60.0
    ) -> list[str]:
        """The ids ``claim`` gives at ``now``."""
        return [d.id for d in self.successResultOf(store.claim(now, limit, lease))]

    def get(self, store: MemoryDeliveryStore, delivery_id: str) -> Delivery:
        """The stored delivery ``delivery_id``."""
        return self.successResultOf(store.get(delivery_id))

    def record(self, store: MemoryDeliveryStore, *updates: DeliveryUpdate) -> None:
        """Record ``updates``; none is dropped as stale."""
        self.assertEqual(self.successResultOf(store.record(list(updates))), [])


class InterfaceTests(StoreTestCase):
    """The store provides its interface."""

    def test_provides_interface(self) -> None:
        """MemoryDeliveryStore provides IDeliveryStore and says it is not durable."""
        store = MemoryDeliveryStore()
        self.assertTrue(verifyObject(IDeliveryStore, store))
        self.assertFalse(store.durable)


class EnqueueClaimTests(StoreTestCase):
    """enqueue and claim."""

    def test_claim_due_only(self) -> None:
        """claim takes the deliveries due at ``now`` and leaves the future ones."""
        store = self.store(delivery("now", 10.0), delivery("later", 20.0))
        self.assertEqual(self.claim(store, 5.0), [])
        self.assertEqual(self.claim(store, 10.0), ["now"])
        self.assertEqual(self.claim(store, 15.0), [])
        self.assertEqual(self.claim(store, 20.0), ["later"])

    def test_claim_marks_in_flight_with_lease(self) -> None:
        """A claimed delivery is in flight, leased until ``now + lease``, in the result and
        in the store."""
        store = self.store(delivery("a", 1.0))
        (claimed,) = self.successResultOf(store.claim(3.0, 10, 30.0))
        self.assertEqual(claimed.status, IN_FLIGHT)
        self.assertEqual(claimed.lease_expires_at, 33.0)
        self.assertEqual(self.get(store, "a"), claimed)

    def test_claim_limit_and_due_order(self) -> None:
        """claim respects ``limit`` and takes the earliest due first, whatever the order of
        enqueueing."""
        store = self.store(delivery("c", 3.0), delivery("a", 1.0), delivery("b", 2.0))
        self.assertEqual(self.claim(store, 10.0, limit=2), ["a", "b"])
        self.assertEqual(self.claim(store, 10.0, limit=2), ["c"])

    def test_claim_ties_in_enqueue_order(self) -> None:
        """Deliveries due at the same time are claimed in the order they were enqueued."""
        store = self.store(delivery("x", 1.0), delivery("y", 1.0), delivery("z", 1.0))
        self.assertEqual(self.claim(store, 1.0), ["x", "y", "z"])

    def test_leased_not_claimed_again_until_expiry(self) -> None:
        """A claimed delivery is not claimed again while its lease holds; once it expires
        (its claimer crashed) it is claimed again, with the same id."""
        store = self.store(delivery("a", 0.0))
        self.assertEqual(self.claim(store, 0.0, lease=60.0), ["a"])
        self.assertEqual(self.claim(store, 59.9), [])
        (again,) = self.successResultOf(store.claim(60.0, 10, 60.0))
        self.assertEqual(again.id, "a")
        self.assertEqual(again.status, IN_FLIGHT)
        self.assertEqual(again.lease_expires_at, 120.0)
        self.assertEqual(self.claim(store, 119.0), [])

    def test_pending_count(self) -> None:
        """pending_count counts the deliveries not finished; len counts all held."""
        store = self.store(delivery("a"), delivery("b"), delivery("c"))
        self.assertEqual(store.pending_count(), 3)
        self.claim(store, 0.0)
        self.assertEqual(store.pending_count(), 3)
        self.record(
            store,
            DeliveryUpdate("a", DELIVERED, attempt("a")),
            DeliveryUpdate("b", RETRYING, failed("b"), 10.0),
        )
        self.assertEqual(store.pending_count(), 2)
        self.record(store, DeliveryUpdate("c", DEAD, failed("c")))
        self.assertEqual(store.pending_count(), 1)
        self.assertEqual(len(store), 3)

    def test_duplicate_enqueue_fails_and_stores_nothing(self) -> None:
        """Enqueueing an id that is already stored fails with a ValueError naming it, and
        nothing of that batch is stored."""
        store = self.store(delivery("a"))
        failure = self.failureResultOf(store.enqueue([delivery("new"), delivery("a")]), ValueError)
        self.assertIn("'a'", str(failure.value))
        self.failureResultOf(store.get("new"), DeliveryNotFound)
        self.assertEqual(len(store), 1)
        self.assertEqual(self.claim(store, 0.0), ["a"])

    def test_duplicate_within_batch_fails_and_stores_nothing(self) -> None:
        """A batch that holds one id twice fails and stores nothing, like a durable store
        whose primary key refuses the second row."""
        store = self.store()
        failure = self.failureResultOf(
            store.enqueue([delivery("ok"), delivery("twice"), delivery("twice", 5.0)]),
            ValueError,
        )
        self.assertIn("'twice'", str(failure.value))
        self.assertEqual(len(store), 0)
        self.assertEqual(self.claim(store, 10.0), [])
        self.assertIsNone(self.successResultOf(store.next_due()))

    def test_enqueue_empty(self) -> None:
        """Enqueueing nothing succeeds and changes nothing."""
        store = self.store()
        self.assertTrue(self.successResultOf(store.enqueue([])))
        self.assertEqual(len(store), 0)


class RecordTests(StoreTestCase):
    """record: delivered, retrying, dead, and the attempt history."""

    def test_delivered(self) -> None:
        """A delivered update ends the delivery: status, attempts, no lease, no error, and
        it is never claimed again."""
        store = self.store(delivery("a"))
        self.claim(store, 0.0)
        self.record(store, DeliveryUpdate("a", DELIVERED, attempt("a", status_code=200)))
        stored = self.get(store, "a")
        self.assertEqual(stored.status, DELIVERED)
        self.assertTrue(stored.finished)
        self.assertEqual(stored.attempts, 1)
        self.assertIsNone(stored.lease_expires_at)
        self.assertIsNone(stored.last_error)
        self.assertEqual(self.claim(store, 1000.0), [])
        self.assertIsNone(self.successResultOf(store.next_due()))

    def test_retrying_claimable_at_next_attempt(self) -> None:
        """A retrying delivery becomes claimable at its ``next_attempt_at``, not before,
        and not at its old lease's expiry."""
        store = self.store(delivery("a"))
        self.claim(store, 0.0, lease=60.0)
        self.record(store, DeliveryUpdate("a", RETRYING, failed("a", 1, "500 oops"), 100.0))
        stored = self.get(store, "a")
        self.assertEqual(stored.status, RETRYING)
        self.assertEqual(stored.next_attempt_at, 100.0)
        self.assertEqual(stored.attempts, 1)
        self.assertEqual(stored.last_error, "500 oops")
        self.assertIsNone(stored.lease_expires_at)
        self.assertEqual(self.claim(store, 60.0), [])  # the old lease entry is stale
        self.assertEqual(self.claim(store, 99.99), [])
        (again,) = self.successResultOf(store.claim(100.0, 10, 60.0))
        self.assertEqual((again.id, again.attempts, again.status), ("a", 1, IN_FLIGHT))

    def test_dead(self) -> None:
        """A dead update ends the delivery, keeps the last error and the attempt count."""
        store = self.store(delivery("a"))
        self.claim(store, 0.0)
        self.record(store, DeliveryUpdate("a", RETRYING, failed("a", 1), 5.0))
        self.claim(store, 5.0)
        self.record(store, DeliveryUpdate("a", DEAD, failed("a", 2, "gave up")))
        stored = self.get(store, "a")
        self.assertEqual(stored.status, DEAD)
        self.assertTrue(stored.finished)
        self.assertEqual(stored.attempts, 2)
        self.assertEqual(stored.last_error, "gave up")
        self.assertEqual(self.claim(store, 1e9), [])

    def test_attempts_history(self) -> None:
        """attempts() gives the recorded attempts of a delivery, oldest first."""
        store = self.store(delivery("a"), delivery("b"))
        first, second = failed("a", 1, "one"), attempt("a", 2, status_code=204)
        self.claim(store, 0.0)
        self.record(store, DeliveryUpdate("a", RETRYING, first, 1.0))
        self.claim(store, 1.0)
        self.record(store, DeliveryUpdate("a", DELIVERED, second))
        self.assertEqual(self.successResultOf(store.attempts("a")), [first, second])
        self.assertEqual(self.successResultOf(store.attempts("b")), [])

    def test_attempts_bounded(self) -> None:
        """Each delivery keeps only its last ``keep_attempts`` attempts, while its attempt
        count goes on."""
        store = self.store(delivery("a"), keep_attempts=2)
        for number in range(1, 5):
            self.claim(store, float(number - 1))
            self.record(store, DeliveryUpdate("a", RETRYING, failed("a", number), float(number)))
        numbers = [a.number for a in self.successResultOf(store.attempts("a"))]
        self.assertEqual(numbers, [3, 4])
        self.assertEqual(self.get(store, "a").attempts, 4)

    def test_record_unknown_ignored(self) -> None:
        """An update for a delivery the store does not hold is ignored."""
        store = self.store(delivery("a"))
        self.record(store, DeliveryUpdate("nope", DELIVERED, attempt("nope")))
        self.failureResultOf(store.get("nope"), DeliveryNotFound)
        self.assertEqual(store.pending_count(), 1)

    def test_finished_is_final(self) -> None:
        """A late update for a finished delivery (from a claimer whose lease had expired)
        neither revives it nor counts it as finished twice."""
        store = self.store(delivery("a"), delivery("b"))
        self.claim(store, 0.0)
        self.record(store, DeliveryUpdate("a", DELIVERED, attempt("a")))
        self.record(store, DeliveryUpdate("a", RETRYING, failed("a", 2, "late"), 10.0))
        self.assertEqual(self.get(store, "a").status, DELIVERED)
        self.assertIsNone(self.get(store, "a").last_error)
        self.assertEqual(self.claim(store, 10.0), [])
        self.record(store, DeliveryUpdate("a", DEAD, failed("a", 2)))
        self.record(store, DeliveryUpdate("a", DELIVERED, attempt("a", 2)))
        self.assertEqual(self.get(store, "a").status, DELIVERED)
        self.assertEqual(store.pending_count(), 1)
        self.assertEqual(len(self.successResultOf(store.attempts("a"))), 4)


class NextDueTests(StoreTestCase):
    """next_due."""

    def test_empty(self) -> None:
        """An empty store has no next due time."""
        self.assertIsNone(self.successResultOf(MemoryDeliveryStore().next_due()))

    def test_earliest(self) -> None:
        """next_due is the earliest due time of the held deliveries."""
        store = self.store(delivery("a", 30.0), delivery("b", 10.0), delivery("c", 20.0))
        self.assertEqual(self.successResultOf(store.next_due()), 10.0)

    def test_lease_expiry_is_due(self) -> None:
        """While a delivery is in flight, its lease expiry is a due time (a crashed
        claimer's work is taken up then)."""
        store = self.store(delivery("a", 0.0), delivery("b", 500.0))
        self.claim(store, 0.0, limit=1, lease=60.0)
        self.assertEqual(self.successResultOf(store.next_due()), 60.0)

    def test_skips_stale(self) -> None:
        """Entries left behind by a delivery that moved on (its old due time, its old lease)
        are skipped."""
        store = self.store(delivery("a", 0.0), delivery("b", 200.0))
        self.claim(store, 0.0, limit=1, lease=60.0)
        self.record(store, DeliveryUpdate("a", RETRYING, failed("a"), 100.0))
        self.assertEqual(self.successResultOf(store.next_due()), 100.0)
        self.claim(store, 100.0, limit=1, lease=60.0)
        self.record(store, DeliveryUpdate("a", DELIVERED, attempt("a", 2)))
        self.assertEqual(self.successResultOf(store.next_due()), 200.0)
        self.claim(store, 200.0)
        self.record(store, DeliveryUpdate("b", DEAD, failed("b")))
        self.assertIsNone(self.successResultOf(store.next_due()))


class LookupTests(StoreTestCase):
    """get, attempts and list."""

    def test_get_unknown(self) -> None:
        """get of an unknown id fails with DeliveryNotFound (a KeyError) naming the id."""
        failure = self.failureResultOf(MemoryDeliveryStore().get("d-404"), DeliveryNotFound)
        self.assertIsInstance(failure.value, KeyError)
        self.assertEqual(str(failure.value), "no delivery with id 'd-404'")

    def test_attempts_unknown(self) -> None:
        """attempts of an unknown id fails with DeliveryNotFound naming the id."""
        failure = self.failureResultOf(MemoryDeliveryStore().attempts("d-404"), DeliveryNotFound)
        self.assertEqual(str(failure.value), "no delivery with id 'd-404'")

    def test_list_newest_first(self) -> None:
        """list gives every held delivery, newest first."""
        store = self.store(delivery("a"), delivery("b"))
        self.successResultOf(store.enqueue([delivery("c")]))
        self.assertEqual([d.id for d in self.successResultOf(store.list())], ["c", "b", "a"])

    def test_list_order_stable_across_updates(self) -> None:
        """Claiming and recording do not change a delivery's place in the list."""
        store = self.store(delivery("a"), delivery("b"))
        self.claim(store, 0.0, limit=1)
        self.record(store, DeliveryUpdate("a", DELIVERED, attempt("a")))
        self.assertEqual([d.id for d in self.successResultOf(store.list())], ["b", "a"])

    def test_list_by_status(self) -> None:
        """list filters by status."""
        store = self.store(delivery("a"), delivery("b", 50.0), delivery("c"))
        self.claim(store, 0.0)
        self.record(store, DeliveryUpdate("a", DELIVERED, attempt("a")))
        self.assertEqual([d.id for d in self.successResultOf(store.list(status=DELIVERED))], ["a"])
        self.assertEqual([d.id for d in self.successResultOf(store.list(status=PENDING))], ["b"])
        self.assertEqual([d.id for d in self.successResultOf(store.list(status=IN_FLIGHT))], ["c"])
        self.assertEqual(self.successResultOf(store.list(status=DEAD)), [])

    def test_list_by_subscriber(self) -> None:
        """list filters by subscriber id, and by status and subscriber together."""
        store = self.store(
            delivery("a"), delivery("b", subscriber=OTHER), delivery("c", subscriber=OTHER)
        )
        self.claim(store, 0.0, limit=2)
        listed = self.successResultOf(store.list(subscriber_id=OTHER.id))
        self.assertEqual([d.id for d in listed], ["c", "b"])
        listed = self.successResultOf(store.list(status=PENDING, subscriber_id=OTHER.id))
        self.assertEqual([d.id for d in listed], ["c"])
        self.assertEqual(self.successResultOf(store.list(subscriber_id="nobody")), [])

    def test_list_limit(self) -> None:
        """list gives at most ``limit`` deliveries, the newest."""
        store = self.store(*(delivery(str(i)) for i in range(5)))
        self.assertEqual([d.id for d in self.successResultOf(store.list(limit=2))], ["4", "3"])

    def test_list_unknown_status(self) -> None:
        """list with an unknown status fails with a ValueError naming it and the valid
        ones."""
        failure = self.failureResultOf(MemoryDeliveryStore().list(status="lost"), ValueError)
        self.assertIn("'lost'", str(failure.value))
        self.assertIn("'pending'", str(failure.value))


class KeepFinishedTests(StoreTestCase):
    """The bound on finished deliveries kept."""

    def finish(self, store: MemoryDeliveryStore, delivery_id: str, status: str) -> None:
        """Claim and end ``delivery_id`` with ``status``."""
        self.successResultOf(store.claim(1e9, 100, 60.0))
        self.record(store, DeliveryUpdate(delivery_id, status, attempt(delivery_id)))

    def test_oldest_finished_dropped(self) -> None:
        """Past ``keep_finished`` finished deliveries, the one finished first is dropped
        (with its attempts); unfinished ones are never dropped."""
        store = self.store(
            delivery("a"), delivery("b"), delivery("c"), delivery("open", 1e12), keep_finished=2
        )
        self.finish(store, "b", DELIVERED)
        self.finish(store, "a", DEAD)
        self.assertEqual(len(store), 4)
        self.finish(store, "c", DELIVERED)
        self.assertEqual(len(store), 3)
        self.failureResultOf(store.get("b"), DeliveryNotFound)
        self.failureResultOf(store.attempts("b"), DeliveryNotFound)
        self.assertEqual(self.get(store, "a").status, DEAD)
        self.assertEqual(self.get(store, "c").status, DELIVERED)
        self.assertEqual(self.get(store, "open").status, PENDING)
        self.assertEqual(store.pending_count(), 1)

    def test_keep_none(self) -> None:
        """With ``keep_finished=0`` a delivery is forgotten as soon as it ends."""
        store = self.store(delivery("a"), keep_finished=0)
        self.finish(store, "a", DELIVERED)
        self.assertEqual(len(store), 0)
        self.assertEqual(store.pending_count(), 0)

    def test_claimed_copy_unaffected(self) -> None:
        """What claim returned is a snapshot: recording does not change it."""
        store = self.store(delivery("a"))
        (claimed,) = self.successResultOf(store.claim(0.0, 1, 60.0))
        self.record(store, DeliveryUpdate("a", DELIVERED, attempt("a")))
        self.assertEqual(claimed.status, IN_FLIGHT)
        self.assertEqual(self.get(store, "a").status, DELIVERED)
