"""
Unit tests for what :class:`twisted_hooks.webhooks.app.Hooks` offers its clients (the HTTP
API among them) besides sending: reading and changing subscribers, reading the delivery
log, and sending an event built beforehand (:meth:`Hooks.build_event`,
:meth:`Hooks.send_event`).

Hooks runs on a :class:`~twisted.internet.task.Clock` with the
:class:`~twisted_hooks.testing.FakeSender` of :mod:`twisted_hooks.testing`; the stores are
in memory. Nothing touches the network.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_hooks.testing import FakeSender
from twisted_hooks.webhooks import _publisher, encoding
from twisted_hooks.webhooks.app import Hooks, HooksNotRunning, Settings
from twisted_hooks.webhooks.delivery import DEAD, DELIVERED, Delivery
from twisted_hooks.webhooks.encoding import EncodingError
from twisted_hooks.webhooks.events import SendResult, WebhookEvent
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.subscribers import Subscriber, SubscriberNotFound
from twisted_hooks.webhooks.validators import SecurityError

URL = "https://example.com/hook"
OTHER_URL = "https://other.example.com/hook"


class HooksTestCase(SynchronousTestCase):
    """Builds a started Hooks on a Clock and a FakeSender."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000.0)
        self.sender = FakeSender(self.clock)
        self.hooks = Hooks(
            self.clock,
            sender=self.sender,
            settings=Settings(retry=RetryPolicy(delays=(), jitter=0.0), record_delay=0.0),
            rng=random.Random(0),
            default_secret="default-secret",
        )
        self.hooks.startService()
        self.addCleanup(self.stop)

    def stop(self) -> None:
        """Stop the application if it runs."""
        if self.hooks.running:
            self.hooks.stopService()

    def subscribe(self, event: str = "order.*", url: str = URL, **fields: Any) -> Subscriber:
        """Subscribe ``url`` to ``event``."""
        return self.successResultOf(self.hooks.subscribe(event, url, **fields))

    def stored(self, subscriber_id: str) -> Subscriber:
        """The subscriber as the store keeps it."""
        return self.successResultOf(self.hooks.subscribers.get(subscriber_id))


class SubscriberReadTests(HooksTestCase):
    """Hooks.get_subscriber and Hooks.list_subscribers."""

    def test_get_subscriber(self) -> None:
        """get_subscriber fires the stored subscriber with this id."""
        subscriber = self.subscribe(owner="alice")
        self.assertEqual(
            self.successResultOf(self.hooks.get_subscriber(subscriber.id)), subscriber
        )

    def test_get_unknown_subscriber(self) -> None:
        """An unknown id fails get_subscriber's Deferred with SubscriberNotFound."""
        self.failureResultOf(self.hooks.get_subscriber("nope"), SubscriberNotFound)

    def test_list_subscribers_all_or_one_owner(self) -> None:
        """list_subscribers() gives every stored subscriber; with an owner, only that
        owner's (not the ownerless ones, not another owner's)."""
        everyone = self.subscribe()
        alice = self.subscribe(url=OTHER_URL, owner="alice")
        bob = self.subscribe(owner="bob")
        listed = self.successResultOf(self.hooks.list_subscribers())
        self.assertEqual({s.id for s in listed}, {everyone.id, alice.id, bob.id})
        mine = self.successResultOf(self.hooks.list_subscribers("alice"))
        self.assertEqual([s.id for s in mine], [alice.id])
        self.assertEqual(list(self.successResultOf(self.hooks.list_subscribers("carol"))), [])


class UpdateSubscriberTests(HooksTestCase):
    """Hooks.update_subscriber: the rules of subscribe, and (de)activation."""

    def test_changes_are_stored(self) -> None:
        """Changed fields are stored and fired; the other fields are kept."""
        subscriber = self.subscribe(secret="old-secret", owner="alice")
        updated = self.successResultOf(
            self.hooks.update_subscriber(subscriber, url=OTHER_URL, secret="new-secret")
        )
        self.assertEqual((updated.url, updated.secret), (OTHER_URL, "new-secret"))
        self.assertEqual(
            (updated.id, updated.owner, updated.event), (subscriber.id, "alice", "order.*")
        )
        self.assertEqual(self.stored(subscriber.id), updated)

    def test_by_id(self) -> None:
        """Given an id, the subscriber is read first, then changed."""
        subscriber = self.subscribe()
        updated = self.successResultOf(self.hooks.update_subscriber(subscriber.id, event="user.*"))
        self.assertEqual(updated.event, "user.*")
        self.assertEqual(self.stored(subscriber.id).event, "user.*")

    def test_unknown_id(self) -> None:
        """An unknown id fails the Deferred with SubscriberNotFound."""
        self.failureResultOf(
            self.hooks.update_subscriber("nope", url=OTHER_URL), SubscriberNotFound
        )

    def test_refused_url(self) -> None:
        """A new URL the recipient policy refuses raises SecurityError at once, as in
        subscribe, and nothing is stored."""
        subscriber = self.subscribe()
        for url in ("https://10.0.0.1/hook", "https://169.254.169.254/hook"):
            with self.assertRaises(SecurityError):
                self.hooks.update_subscriber(subscriber, url=url)
        self.assertEqual(self.stored(subscriber.id).url, URL)

    def test_refused_url_by_id(self) -> None:
        """Given an id, a refused URL fails the Deferred instead."""
        subscriber = self.subscribe()
        self.failureResultOf(
            self.hooks.update_subscriber(subscriber.id, url="https://10.0.0.1/hook"),
            SecurityError,
        )
        self.assertEqual(self.stored(subscriber.id).url, URL)

    def test_invalid_field(self) -> None:
        """A value the Subscriber field rules refuse raises ValueError naming it; nothing
        is stored."""
        subscriber = self.subscribe()
        with self.assertRaisesRegex(ValueError, "digest"):
            self.hooks.update_subscriber(subscriber, digest="md5")
        self.assertEqual(self.stored(subscriber.id), subscriber)

    def test_unknown_field(self) -> None:
        """A name that is no Subscriber field raises TypeError."""
        subscriber = self.subscribe()
        with self.assertRaises(TypeError):
            self.hooks.update_subscriber(subscriber, colour="blue")

    def test_id_cannot_change(self) -> None:
        """Changing the id raises ValueError saying so; giving the same id is allowed."""
        subscriber = self.subscribe()
        with self.assertRaisesRegex(ValueError, "id cannot change"):
            self.hooks.update_subscriber(subscriber, id="another")
        same = self.successResultOf(
            self.hooks.update_subscriber(subscriber, id=subscriber.id, secret="s2")
        )
        self.assertEqual(same.secret, "s2")

    def test_active_must_be_bool(self) -> None:
        """active given as anything but True or False raises ValueError naming it."""
        subscriber = self.subscribe()
        with self.assertRaisesRegex(ValueError, "active must be true or false"):
            self.hooks.update_subscriber(subscriber, active="no")

    def test_deactivate(self) -> None:
        """active=False deactivates: stored inactive, and a send reaches it no more."""
        subscriber = self.subscribe()
        updated = self.successResultOf(self.hooks.update_subscriber(subscriber, active=False))
        self.assertFalse(updated.active)
        self.assertFalse(self.stored(subscriber.id).active)
        sent = self.successResultOf(self.hooks.send("order.created", {}))
        self.assertEqual(sent.deliveries, ())

    def test_reactivate_after_changes(self) -> None:
        """active=True makes a deactivated subscriber active again, with the other
        changes stored too, and forgets its endpoint's failures (as reactivate does)."""
        subscriber = self.subscribe()
        self.sender.queue(URL, 500)
        self.successResultOf(self.hooks.send("order.created", {}))
        self.successResultOf(self.hooks.drain())
        self.assertEqual(self.hooks.endpoint_health.health(subscriber.id).consecutive_failures, 1)
        inactive = self.successResultOf(self.hooks.update_subscriber(subscriber, active=False))
        updated = self.successResultOf(
            self.hooks.update_subscriber(inactive, active=True, secret="fresh")
        )
        self.assertTrue(updated.active)
        self.assertEqual(updated.secret, "fresh")
        self.assertEqual(self.stored(subscriber.id), updated)
        self.assertEqual(self.hooks.endpoint_health.health(subscriber.id).consecutive_failures, 0)

    def test_active_unchanged_is_left_alone(self) -> None:
        """active=True on an active subscriber, or False on an inactive one, stores the
        other changes and nothing else."""
        subscriber = self.subscribe()
        still = self.successResultOf(self.hooks.update_subscriber(subscriber, active=True))
        self.assertTrue(still.active)
        inactive = self.successResultOf(self.hooks.update_subscriber(subscriber, active=False))
        again = self.successResultOf(
            self.hooks.update_subscriber(inactive, active=False, url=OTHER_URL)
        )
        self.assertEqual((again.active, again.url), (False, OTHER_URL))


class DeliveryLogTests(HooksTestCase):
    """Hooks.get_delivery, Hooks.list_deliveries and Hooks.delivery_attempts."""

    def deliver(self, name: str = "order.created") -> list[Delivery]:
        """Send ``name`` and let every attempt end."""
        sent = self.successResultOf(self.hooks.send(name, {"n": 1}))
        self.successResultOf(self.hooks.drain())
        return list(sent.deliveries)

    def test_get_delivery(self) -> None:
        """get_delivery fires the delivery with its current state; an unknown id fails
        with KeyError."""
        self.subscribe()
        [made] = self.deliver()
        got = self.successResultOf(self.hooks.get_delivery(made.id))
        self.assertEqual((got.id, got.status, got.attempts), (made.id, DELIVERED, 1))
        self.failureResultOf(self.hooks.get_delivery("nope"), KeyError)

    def test_list_deliveries_filters(self) -> None:
        """list_deliveries takes the store's filters: status, subscriber, subscriber ids,
        limit, and the after cursor; newest first."""
        ok = self.subscribe()
        failing = self.subscribe(url=OTHER_URL)
        self.sender.answer(OTHER_URL, 500)
        first = self.deliver()
        self.clock.advance(1.0)
        second = self.deliver()
        newest = sorted(second, key=lambda d: d.id, reverse=True) + sorted(
            first, key=lambda d: d.id, reverse=True
        )
        listed = self.successResultOf(self.hooks.list_deliveries())
        self.assertEqual([d.id for d in listed], [d.id for d in newest])
        dead = self.successResultOf(self.hooks.list_deliveries(DEAD))
        self.assertEqual({d.subscriber.id for d in dead}, {failing.id})
        self.assertEqual(len(dead), 2)
        mine = self.successResultOf(self.hooks.list_deliveries(subscriber_id=ok.id))
        self.assertEqual({d.subscriber.id for d in mine}, {ok.id})
        among = self.successResultOf(self.hooks.list_deliveries(subscriber_ids=[failing.id]))
        self.assertEqual([d.id for d in among], [d.id for d in dead])
        page = self.successResultOf(self.hooks.list_deliveries(limit=1))
        self.assertEqual([d.id for d in page], [newest[0].id])
        rest = self.successResultOf(
            self.hooks.list_deliveries(after=(page[0].created_at, page[0].id))
        )
        self.assertEqual([d.id for d in rest], [d.id for d in newest[1:]])
        later = self.successResultOf(self.hooks.list_deliveries(since=self.clock.seconds()))
        self.assertEqual({d.id for d in later}, {d.id for d in second})

    def test_delivery_attempts(self) -> None:
        """delivery_attempts fires the attempts of a delivery, oldest first; an unknown id
        fails with KeyError."""
        self.subscribe()
        self.sender.queue(URL, 503)
        [dead] = self.deliver()
        attempts = self.successResultOf(self.hooks.delivery_attempts(dead.id))
        self.assertEqual([a.status_code for a in attempts], [503])
        self.failureResultOf(self.hooks.delivery_attempts("nope"), KeyError)


class BuiltEventTests(HooksTestCase):
    """Hooks.build_event and Hooks.send_event: one validation and encoding per send."""

    def count_encodings(self) -> list[object]:
        """Count every encoding of a send's data, through each name the engine uses."""
        encoded: list[object] = []
        real = encoding.encode_body

        def counting(data: object, content_type: str) -> bytes:
            encoded.append(data)
            return real(data, content_type)

        self.patch(encoding, "encode_body", counting)
        self.patch(_publisher, "encode_body", counting)
        return encoded

    def test_build_publishes_nothing(self) -> None:
        """build_event validates and encodes, once, and publishes nothing; send_event
        then publishes it without encoding it again, with its id and body."""
        self.subscribe()
        encoded = self.count_encodings()
        event = self.hooks.build_event("order.created", {"n": 1}, "alice", event_id="e-1")
        self.assertIsInstance(event, WebhookEvent)
        self.assertEqual((event.id, event.idempotent, event.body), ("e-1", True, b'{"n":1}'))
        self.assertEqual(encoded, [{"n": 1}])
        self.assertEqual(self.sender.calls, [])
        result = self.successResultOf(self.hooks.send_event(event))
        self.assertIsInstance(result, SendResult)
        self.assertIs(result.event, event)
        self.assertEqual([d.body for d in result.deliveries], [event.body])
        self.assertEqual(encoded, [{"n": 1}])

    def test_send_encodes_once(self) -> None:
        """Hooks.send encodes the data once for JSON subscribers."""
        self.subscribe()
        self.subscribe(url=OTHER_URL)
        encoded = self.count_encodings()
        self.successResultOf(self.hooks.send("order.created", {"n": 2}))
        self.assertEqual(encoded, [{"n": 2}])

    def test_build_refuses_bad_sends(self) -> None:
        """build_event raises at once for an invalid name and for data that cannot be
        encoded."""
        with self.assertRaises(ValueError):
            self.hooks.build_event("", {})
        with self.assertRaises(EncodingError):
            self.hooks.build_event("order.created", {"when": object()})

    def test_send_event_while_stopped(self) -> None:
        """A built event sent to a stopped application fails with HooksNotRunning."""
        event = self.hooks.build_event("order.created", {})
        self.hooks.stopService()
        self.failureResultOf(self.hooks.send_event(event), HooksNotRunning)

    def test_send_event_inside_buffer(self) -> None:
        """Inside buffer_events a built event is held like a send, and published by the
        flush."""
        self.subscribe()
        event = self.hooks.build_event("order.created", {})
        with self.hooks.buffer_events():
            held = self.hooks.send_event(event)
            self.assertNoResult(held)
        self.assertEqual(len(self.successResultOf(held).deliveries), 1)
