"""
Unit tests for the two halves :class:`~twisted_hooks.webhooks.Hooks` composes: the
:class:`~twisted_hooks.webhooks.Publisher` (a send to stored deliveries, attempting
nothing) and the :class:`~twisted_hooks.webhooks.DeliveryService` (told of stored
deliveries, it attempts them). Memory stores, a Clock and the FakeSender of
:mod:`twisted_hooks.testing`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_hooks.dispatcher import EventDispatcher
from twisted_hooks.interfaces import IDeliveryIntake, IPolicySender, IPublisher
from twisted_hooks.testing import FakeSender
from twisted_hooks.webhooks import (
    DeliveryService,
    Hooks,
    HooksNotRunning,
    MemoryDeliveryStore,
    MemorySubscriberStore,
    Publisher,
    Settings,
    Subscriber,
)
from twisted_hooks.webhooks.delivery import DELIVERED, PENDING, Delivery
from twisted_hooks.webhooks.encoding import FORM
from twisted_hooks.webhooks.events import WebhookEvent
from twisted_hooks.webhooks.sender import HTTPSender

NOW = 1_700_000_000.0
URL = "https://hooks.example.com/receive"


class Intake:
    """An IDeliveryIntake that notes what it is told."""

    def __init__(self) -> None:
        self.accepted_: list[tuple[WebhookEvent, list[Delivery]]] = []
        self.revived_: list[Delivery] = []
        self.woken = 0

    def accepted(self, event: WebhookEvent, deliveries: Any) -> None:
        self.accepted_.append((event, list(deliveries)))

    def revived(self, delivery: Delivery) -> None:
        self.revived_.append(delivery)

    def wake(self) -> None:
        self.woken += 1


class PublisherTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.subscribers = MemorySubscriberStore()
        self.deliveries = MemoryDeliveryStore()

    def publisher(self, **kwargs: Any) -> Publisher:
        publisher = Publisher(
            self.clock,
            Settings(),
            subscribers=self.subscribers,
            deliveries=self.deliveries,
            default_secret="s3cret",
            **kwargs,
        )
        publisher.startService()
        self.addCleanup(publisher.stopService)
        return publisher

    def subscribe(self, **fields: Any) -> Subscriber:
        subscriber = Subscriber(event="order.*", url=URL, secret="s3cret", **fields)
        return self.successResultOf(self.subscribers.add(subscriber))

    def test_provides_IPublisher(self) -> None:
        """Publisher provides IPublisher; DeliveryService provides IDeliveryIntake; the
        HTTPSender provides IPolicySender."""
        self.assertTrue(verifyObject(IPublisher, self.publisher()))
        hooks = Hooks(self.clock, sender=FakeSender(self.clock))
        self.assertTrue(verifyObject(IDeliveryIntake, hooks.delivery_service))
        self.assertIsInstance(hooks.delivery_service, DeliveryService)
        self.assertTrue(verifyObject(IPolicySender, HTTPSender(self.clock)))  # type: ignore[arg-type]

    def test_alone_it_stores_and_attempts_nothing(self) -> None:
        """A publisher without an intake (as ``twisted-hooks send`` runs it) stores one
        pending delivery per subscriber, with the JSON body encoded once at the send, and
        attempts nothing."""
        subscriber = self.subscribe()
        publisher = self.publisher()
        result = self.successResultOf(publisher.send("order.created", {"n": 1}))
        (delivery,) = result.deliveries
        self.assertEqual(result.event.body, b'{"n":1}')
        self.assertEqual(delivery.body, b'{"n":1}')
        self.assertEqual(delivery.subscriber.id, subscriber.id)
        stored = self.successResultOf(self.deliveries.get(delivery.id))
        self.assertEqual(stored.status, PENDING)
        self.assertEqual(stored.attempts, 0)

    def test_tells_the_intake_once_stored(self) -> None:
        """With an intake, the stored deliveries of each send are handed to it with their
        event, once, after the store accepted them; a duplicate send hands nothing."""
        self.subscribe()
        self.subscribe(content_type=FORM)
        intake = Intake()
        publisher = self.publisher(intake=intake)
        result = self.successResultOf(publisher.send("order.created", {"n": 1}, event_id="e1"))
        ((event, handed),) = intake.accepted_
        self.assertIs(event, result.event)
        self.assertEqual(handed, list(result.deliveries))
        self.assertEqual(sorted(d.body for d in handed), [b"n=1", b'{"n":1}'])
        again = self.successResultOf(publisher.send("order.created", {"n": 1}, event_id="e1"))
        self.assertTrue(again.duplicate)
        self.assertEqual(len(intake.accepted_), 1)

    def test_own_dispatcher_is_started_and_stopped(self) -> None:
        """A publisher given no dispatcher runs its own, started and stopped with it;
        once stopped, a send fails with HooksNotRunning naming the event."""
        publisher = self.publisher()
        self.assertTrue(publisher.dispatcher.running)
        self.successResultOf(publisher.stopService())
        self.assertFalse(publisher.dispatcher.running)
        failure = self.failureResultOf(publisher.send("order.created", {}), HooksNotRunning)
        self.assertIn("'order.created'", str(failure.value))

    def test_bad_dispatcher_is_refused(self) -> None:
        """A dispatcher without the keywords the publisher fires with is refused at once,
        naming the missing ones."""
        with self.assertRaises(ValueError) as raised:
            Publisher(
                self.clock,
                Settings(),
                dispatcher=EventDispatcher(["name"]),
                subscribers=self.subscribers,
                deliveries=self.deliveries,
                default_secret="s3cret",
            )
        self.assertIn("['kind', 'owner']", str(raised.exception))


class DeliveryServiceTests(SynchronousTestCase):
    def test_hooks_delivers_through_its_halves(self) -> None:
        """Through Hooks, a send reaches the delivery service, which attempts it at once
        (no poll) and records it delivered; drain() fires when it has ended."""
        clock = Clock()
        clock.advance(NOW)
        sender = FakeSender(clock, default=204)
        hooks = Hooks(clock, sender=sender)
        hooks.startService()
        self.addCleanup(hooks.stopService)
        self.successResultOf(hooks.subscribe("order.*", URL))
        result = self.successResultOf(hooks.send("order.created", {"n": 1}))
        (delivery,) = result.deliveries
        self.assertEqual([call.delivery.id for call in sender.calls], [delivery.id])
        drained = hooks.drain()
        clock.advance(Settings().record_delay)
        self.successResultOf(drained)
        stored = self.successResultOf(hooks.deliveries.get(delivery.id))
        self.assertEqual(stored.status, DELIVERED)
        self.assertEqual(hooks.unfinished, 0)
