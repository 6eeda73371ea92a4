"""
Unit tests for the webhook application :class:`twisted_hooks.webhooks.app.Hooks`, Thorn's
:class:`~twisted_hooks.webhooks.events.Event` and event buffering.

Hooks runs on a :class:`~twisted.internet.task.Clock` with the
:class:`~twisted_hooks.testing.FakeSender` of :mod:`twisted_hooks.testing`: it answers each
attempt as the test queued it for the subscriber's URL, at once or through a Deferred the
test fires by hand (``HOLD``). Nothing touches the network.
"""

from __future__ import annotations

import importlib
import random
import uuid
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from twisted_hooks.dispatcher import EventDispatcher
from twisted_hooks.testing import HOLD, FakeSender, MemoryHealthStore, Outcome
from twisted_hooks.webhooks.app import (
    KEYWORDS,
    Hooks,
    HooksNotRunning,
    OperationalEvent,
    Settings,
)
from twisted_hooks.webhooks.delivery import (
    DEAD,
    DELIVERED,
    IN_FLIGHT,
    PENDING,
    RETRYING,
    Attempt,
    Delivery,
    DeliveryUpdate,
    ErrorKind,
    MemoryDeliveryStore,
)
from twisted_hooks.webhooks.encoding import FORM, EncodingError, encode_json
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
from twisted_hooks.webhooks.health import OPEN, EndpointHealth
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.sender import HTTPSender
from twisted_hooks.webhooks.signing import sign_standard, standard_key
from twisted_hooks.webhooks.subscribers import MemorySubscriberStore, Subscriber, static_id
from twisted_hooks.webhooks.validators import (
    RecipientPolicy,
    SecurityError,
    ensure_protocol,
)

URL = "https://example.com/hook"
OTHER_URL = "https://other.example.com/hook"
FORM_URL = "https://form.example.com/hook"

#: One retry, 10 s after the first failure, no jitter.
ONE_RETRY = RetryPolicy(delays=(10.0,), jitter=0.0)

OK = Outcome()
ERROR = Outcome(
    status_code=500,
    error_kind=ErrorKind.STATUS,
    error_message="500 Internal Server Error",
)
GONE = Outcome(status_code=410, error_kind=ErrorKind.GONE, error_message="410 Gone")
TIMEOUT = Outcome(
    status_code=None, error_kind=ErrorKind.TIMEOUT, error_message="no answer within 10 s"
)


class RecordingHTTPSender(HTTPSender):
    """An HTTPSender that notes the policy each attempt is given, and sends nothing."""

    def __init__(self, reactor: MemoryReactorClock) -> None:
        super().__init__(reactor)
        self.clock = reactor
        self.policies: list[RecipientPolicy | None] = []

    def attempt(
        self, delivery: Delivery, subscriber: Subscriber, policy: RecipientPolicy | None = None
    ) -> Deferred[Attempt]:
        self.policies.append(policy)
        return succeed(Attempt(delivery.id, delivery.attempts + 1, self.clock.seconds(), 0.0, 200))


class Model:
    """A sender with a Django-like ``pk``."""

    def __init__(self, pk: object) -> None:
        self.pk = pk


class User:
    """A sender with an ``id``."""

    def __init__(self, id: object) -> None:
        self.id = id


class AppTestCase(SynchronousTestCase):
    """Builds a started Hooks on a Clock and a FakeSender."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000.0)
        self.sender = FakeSender(self.clock)

    def hooks(self, *, start: bool = True, **kwargs: Any) -> Hooks:
        """A Hooks application; started unless ``start`` is false."""
        kwargs.setdefault("sender", self.sender)
        # Outcomes are recorded at once: these tests are about the application, not about
        # the scheduler's batching (RecordBatchingTests uses the default delay).
        kwargs.setdefault("settings", Settings(retry=ONE_RETRY, record_delay=0.0))
        kwargs.setdefault("rng", random.Random(0))
        kwargs.setdefault("default_secret", "default-secret")
        hooks = Hooks(self.clock, **kwargs)
        if start:
            hooks.startService()
        self.addCleanup(self.stop, hooks)
        return hooks

    def stop(self, hooks: Hooks) -> None:
        """Stop ``hooks`` if it runs."""
        if hooks.running:
            hooks.stopService()

    def subscribe(self, hooks: Hooks, event: str, url: str = URL, **fields: Any) -> Subscriber:
        """Subscribe ``url`` to ``event``."""
        return self.successResultOf(hooks.subscribe(event, url, **fields))

    def send(self, hooks: Hooks, name: str, data: object = None, **kwargs: Any) -> SendResult:
        """Send an event; its Deferred has fired with a SendResult."""
        result = self.successResultOf(
            hooks.send(name, {"n": 1} if data is None else data, **kwargs)
        )
        self.assertIsInstance(result, SendResult)
        return result

    def stored(self, hooks: Hooks, delivery_id: str) -> Delivery:
        """The stored state of a delivery."""
        return self.successResultOf(hooks.deliveries.get(delivery_id))

    def all_deliveries(self, hooks: Hooks) -> Sequence[Delivery]:
        """Every delivery held by the application's store."""
        return self.successResultOf(hooks.deliveries.list(limit=10_000))

    def operational(self, hooks: Hooks, name: str | None) -> list[OperationalEvent]:
        """Collect the operational events ``name`` (every one for ``None``) fired on the
        application's dispatcher."""
        seen: list[OperationalEvent] = []

        def handler(event: OperationalEvent) -> None:
            seen.append(event)

        hooks.dispatcher.add_event_handler(
            handler, "during", use_weakref=False, name=name, kind="operational"
        )
        return seen


class LifecycleTests(AppTestCase):
    """Starting and stopping."""

    def test_send_before_start(self) -> None:
        """A send before startService fails with HooksNotRunning naming the event and what
        to do; nothing is enqueued or attempted."""
        hooks = self.hooks(start=False)
        self.subscribe(hooks, "order.created")
        failure = self.failureResultOf(hooks.send("order.created", {}), HooksNotRunning)
        message = str(failure.value)
        self.assertIn("'order.created'", message)
        self.assertIn("not running", message)
        self.assertIn("startService()", message)
        self.assertEqual(self.all_deliveries(hooks), [])
        self.assertEqual(self.sender.calls, [])

    def test_send_after_stop(self) -> None:
        """A send after stopService fails with HooksNotRunning."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        self.successResultOf(hooks.stopService())
        self.failureResultOf(hooks.send("order.created", {}), HooksNotRunning)
        self.assertEqual(self.sender.calls, [])

    def test_stop_lets_in_flight_finish(self) -> None:
        """stopService refuses new sends at once, fires only after the attempts under way
        have finished and been recorded, then stops the dispatcher and closes the
        sender."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        self.sender.queue(URL, HOLD)
        (delivery,) = self.send(hooks, "order.created").deliveries
        stopped = hooks.stopService()
        self.assertNoResult(stopped)
        self.failureResultOf(hooks.send("order.created", {}), HooksNotRunning)
        self.assertTrue(hooks.dispatcher.running)
        self.assertEqual(self.sender.closed, 0)
        self.sender.finish()
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(self.stored(hooks, delivery.id).status, DELIVERED)
        self.assertFalse(hooks.dispatcher.running)
        self.assertEqual(self.sender.closed, 1)

    def test_stop_leaves_unclaimed(self) -> None:
        """Deliveries not yet due when the application stops stay in the store, not
        attempted."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        self.sender.queue(URL, ERROR)
        (delivery,) = self.send(hooks, "order.created").deliveries
        self.successResultOf(hooks.stopService())
        self.clock.advance(100.0)
        self.assertEqual(len(self.sender.calls), 1)
        self.assertEqual(self.stored(hooks, delivery.id).status, RETRYING)

    def test_default_sender_is_http(self) -> None:
        """Without a sender, the application builds an HTTPSender on its reactor (nothing
        is connected until an attempt)."""
        reactor = MemoryReactorClock()
        hooks = Hooks(reactor)
        self.assertIsInstance(hooks.sender, HTTPSender)
        self.assertEqual(reactor.tcpClients, [])


class SendTests(AppTestCase):
    """Hooks.send and the webhook handler."""

    def test_one_delivery_per_subscriber(self) -> None:
        """A send fires at once with a SendResult holding one pending delivery per matching
        subscriber, sharing the event's id, each in its subscriber's content type; the
        body of a content type is encoded once."""
        hooks = self.hooks()
        self.sender.queue(URL, HOLD)
        self.sender.queue(OTHER_URL, HOLD)
        self.sender.queue(FORM_URL, HOLD)
        json_a = self.subscribe(hooks, "order.created", URL)
        json_b = self.subscribe(hooks, "order.*", OTHER_URL)
        form = self.subscribe(hooks, "*", FORM_URL, content_type=FORM)
        self.subscribe(hooks, "user.created", "https://nobody.example.com/")
        data = {"id": 7, "total": "9.50"}
        result = self.send(hooks, "order.created", data, event_id="evt-1")
        self.assertEqual(result.event.id, "evt-1")
        self.assertEqual(result.event.name, "order.created")
        self.assertEqual(result.skipped, ())
        by_subscriber = {d.subscriber.id: d for d in result.deliveries}
        self.assertEqual(set(by_subscriber), {json_a.id, json_b.id, form.id})
        self.assertEqual({d.event_id for d in result.deliveries}, {"evt-1"})
        self.assertEqual({d.event for d in result.deliveries}, {"order.created"})
        self.assertEqual(len(set(result.delivery_ids)), 3)
        self.assertEqual(by_subscriber[json_a.id].body, encode_json(data))
        self.assertIs(by_subscriber[json_a.id].body, by_subscriber[json_b.id].body)
        self.assertEqual(by_subscriber[form.id].body, b"id=7&total=9.50")
        for delivery in result.deliveries:
            self.assertEqual(delivery.status, PENDING)
            self.assertEqual(delivery.created_at, 1000.0)
            self.assertTrue(delivery.refresh_subscriber)
            self.assertEqual(delivery.retry, ONE_RETRY)
            self.assertEqual(delivery.timeout, 10.0)
        self.assertEqual(len(self.sender.calls), 3)
        self.assertEqual(hooks.unfinished, 3)

    def test_new_event_ids(self) -> None:
        """Without an event_id every send gets a new one."""
        hooks = self.hooks()
        first = self.send(hooks, "order.created").event.id
        second = self.send(hooks, "order.created").event.id
        self.assertNotEqual(first, second)

    def test_attempted_and_delivered(self) -> None:
        """The deliveries of a send are attempted with the stored subscriber and end
        delivered."""
        hooks = self.hooks()
        subscriber = self.subscribe(hooks, "order.created")
        (delivery,) = self.send(hooks, "order.created").deliveries
        ((attempted, to),) = self.sender.calls
        self.assertEqual((attempted.id, to), (delivery.id, subscriber))
        self.assertEqual(self.stored(hooks, delivery.id).status, DELIVERED)
        self.assertEqual(hooks.unfinished, 0)

    def test_pattern_matching(self) -> None:
        """Subscribers receive the events their patterns match, and only those."""
        hooks = self.hooks()
        patterns = [
            "order.created",
            "order.*",
            "*.created",
            "*",
            "order.*.paid",
            "user.*",
            "*.deleted",
            "order.updated",
        ]
        ids = {
            self.subscribe(hooks, pattern, f"https://h{n}.example.com/").id: pattern
            for n, pattern in enumerate(patterns)
        }

        def reached(name: str) -> set[str]:
            return {ids[d.subscriber.id] for d in self.send(hooks, name).deliveries}

        self.assertEqual(reached("order.created"), {"order.created", "order.*", "*.created", "*"})
        self.assertEqual(reached("order.eu.paid"), {"order.*", "order.*.paid", "*"})
        self.assertEqual(reached("user.deleted"), {"user.*", "*.deleted", "*"})
        self.assertEqual(reached("ping"), {"*"})

    def test_owner_rule(self) -> None:
        """Thorn's owner rule: an owned subscriber receives only its owner's events (the
        sender's pk, or id); an ownerless one receives every event."""
        hooks = self.hooks()
        mine = self.subscribe(hooks, "order.*", URL, owner="1")
        theirs = self.subscribe(hooks, "order.*", OTHER_URL, owner="2")
        everyone = self.subscribe(hooks, "order.*", FORM_URL)

        def reached(sender: object) -> set[str]:
            result = self.send(hooks, "order.created", sender=sender)
            return {d.subscriber.id for d in result.deliveries}

        self.assertEqual(reached(Model(1)), {mine.id, everyone.id})
        self.assertEqual(reached(User(2)), {theirs.id, everyone.id})
        self.assertEqual(reached(Model(3)), {everyone.id})
        self.assertEqual(reached(None), {everyone.id})
        self.assertEqual(reached("1"), {mine.id, everyone.id})

    def test_owner_on_dispatcher(self) -> None:
        """The sender's identity is the ``owner`` detail of the fire, so in-process
        handlers can filter on it."""
        hooks = self.hooks()
        seen: list[WebhookEvent] = []

        def handler(event: WebhookEvent) -> None:
            seen.append(event)

        hooks.dispatcher.add_event_handler(handler, "before", use_weakref=False, owner="42")
        self.send(hooks, "order.created", sender=Model(42))
        self.send(hooks, "order.created", sender=Model(7))
        self.assertEqual([e.sender.pk for e in seen], [42])  # type: ignore[attr-defined]

    def test_inactive_subscriber_gets_nothing(self) -> None:
        """A deactivated subscriber is not matched."""
        hooks = self.hooks()
        subscriber = self.subscribe(hooks, "order.created")
        self.successResultOf(hooks.subscribers.deactivate(subscriber.id))
        self.assertEqual(self.send(hooks, "order.created").deliveries, ())

    def test_unencodable_data(self) -> None:
        """Data that cannot be encoded raises EncodingError at once, naming the value;
        nothing is enqueued or attempted."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        with self.assertRaises(EncodingError) as caught:
            hooks.send("order.created", {"when": object()})
        self.assertIn("not JSON serializable", str(caught.exception))
        self.assertEqual(self.all_deliveries(hooks), [])
        self.assertEqual(self.sender.calls, [])

    def test_form_subscriber_with_non_mapping(self) -> None:
        """Data that is not a mapping cannot be form-encoded: form subscribers are skipped
        with a reason, and the JSON subscribers still get theirs."""
        hooks = self.hooks()
        json_sub = self.subscribe(hooks, "order.created")
        form = self.subscribe(hooks, "order.created", FORM_URL, content_type=FORM)
        result = self.send(hooks, "order.created", [1, 2, 3])
        self.assertEqual([d.subscriber.id for d in result.deliveries], [json_sub.id])
        self.assertEqual(result.deliveries[0].body, b"[1,2,3]")
        ((skipped_id, reason),) = result.skipped
        self.assertEqual(skipped_id, form.id)
        self.assertIn("mapping", reason)
        self.assertEqual(self.sender.urls(), [URL])

    def test_invalid_name(self) -> None:
        """An invalid event name raises ValueError at once."""
        hooks = self.hooks()
        for name in ["", "order..created", "order.*", " order"]:
            self.assertRaises(ValueError, hooks.send, name, {})

    def test_unknown_backend(self) -> None:
        """A send naming an unknown backend raises ValueError naming it."""
        hooks = self.hooks()
        with self.assertRaises(ValueError) as caught:
            hooks.send("order.created", {}, options=SendOptions(backend="celery"))
        self.assertIn("'celery'", str(caught.exception))

    def test_disabled_backend(self) -> None:
        """With the ``disabled`` backend, sends succeed and deliver nothing."""
        hooks = self.hooks(settings=Settings(backend="disabled"))
        self.subscribe(hooks, "order.created")
        result = self.send(hooks, "order.created")
        self.assertEqual(result.deliveries, ())
        self.assertEqual(self.all_deliveries(hooks), [])

    def test_in_process_handlers_before_webhooks(self) -> None:
        """In-process handlers see webhook events (``name``, ``kind='webhook'``) in the
        ``before`` phase, before the webhook handler has made any delivery, and in
        ``after`` once it has."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        seen: list[tuple[str, str, int]] = []

        def before(event: WebhookEvent) -> None:
            seen.append(("before", event.name, len(self.all_deliveries(hooks))))

        def after(event: WebhookEvent) -> None:
            seen.append(("after", event.name, len(self.all_deliveries(hooks))))

        def other(event: WebhookEvent) -> None:
            seen.append(("other", event.name, 0))

        dispatcher = hooks.dispatcher
        dispatcher.add_event_handler(
            before, "before", use_weakref=False, name="order.created", kind="webhook"
        )
        dispatcher.add_event_handler(after, "after", use_weakref=False, kind="webhook")
        dispatcher.add_event_handler(other, "before", use_weakref=False, name="user.created")
        self.send(hooks, "order.created", {"id": 1})
        self.assertEqual(seen, [("before", "order.created", 0), ("after", "order.created", 1)])

    def test_failing_in_process_handler(self) -> None:
        """An in-process handler that fails is logged; the webhooks still go out."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")

        def broken(event: WebhookEvent) -> None:
            raise KeyError("handler bug")

        hooks.dispatcher.add_event_handler(broken, "before", use_weakref=False)
        self.assertEqual(len(self.send(hooks, "order.created").deliveries), 1)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_drain(self) -> None:
        """drain fires at once when nothing is unfinished, else once every delivery has
        ended, delivered or dead."""
        hooks = self.hooks()
        self.assertIsNone(self.successResultOf(hooks.drain()))
        self.subscribe(hooks, "order.created", URL)
        self.subscribe(hooks, "order.created", OTHER_URL)
        self.sender.queue(URL, HOLD)
        self.sender.queue(OTHER_URL, ERROR, ERROR)
        self.send(hooks, "order.created")
        drained = hooks.drain()
        self.assertEqual(hooks.unfinished, 2)
        self.sender.finish()
        self.assertNoResult(drained)
        self.clock.advance(10.0)
        self.assertIsNone(self.successResultOf(drained))
        self.assertEqual(hooks.unfinished, 0)


class StaticSubscriberTests(AppTestCase):
    """THORN_SUBSCRIBERS shapes."""

    def test_every_shape(self) -> None:
        """Static subscribers given as a URL, a dict (with and without a secret), a
        Subscriber, and a list of these are all reached, with stable ids and the default
        secret where none was given."""
        own = Subscriber(event="order.*", url="https://own.example.com/", secret="own")
        hooks = self.hooks(
            static_subscribers={
                "order.created": "https://url.example.com/",
                "order.*": [
                    {"url": "https://dict.example.com/", "content_type": FORM},
                    {"url": "https://secret.example.com/", "hmac_secret": "given"},
                    own,
                ],
            }
        )
        listed = {s.url: s for s in self.successResultOf(hooks.static_subscribers())}
        self.assertEqual(
            listed["https://url.example.com/"].id,
            static_id("order.created", "https://url.example.com/"),
        )
        self.assertEqual(listed["https://url.example.com/"].secret, "default-secret")
        self.assertEqual(listed["https://dict.example.com/"].secret, "default-secret")
        self.assertEqual(listed["https://dict.example.com/"].content_type, FORM)
        self.assertEqual(listed["https://secret.example.com/"].secret, "given")
        self.assertIs(listed["https://own.example.com/"], own)
        result = self.send(hooks, "order.created", {"a": "b"})
        self.assertEqual(
            {d.subscriber.url for d in result.deliveries},
            set(listed),
        )
        for delivery in result.deliveries:
            self.assertFalse(delivery.refresh_subscriber)
        self.assertEqual(
            {d.subscriber.url for d in self.send(hooks, "order.paid").deliveries},
            set(listed) - {"https://url.example.com/"},
        )
        self.assertEqual([d.status for d in self.all_deliveries(hooks)], [DELIVERED] * 7)

    def test_callable(self) -> None:
        """A callable static subscriber is called at each matching send with the event
        name and ``sender=``, and what it returns is delivered to."""
        calls: list[tuple[str, object]] = []

        def produce(event: str, sender: object = None) -> list[object]:
            calls.append((event, sender))
            return ["https://called.example.com/", {"url": "https://called2.example.com/"}]

        hooks = self.hooks(static_subscribers={"order.*": produce})
        owner = Model(5)
        result = self.send(hooks, "order.created", sender=owner)
        self.assertEqual(calls, [("order.created", owner)])
        self.assertEqual(
            sorted(d.subscriber.url for d in result.deliveries),
            ["https://called.example.com/", "https://called2.example.com/"],
        )
        self.assertEqual({d.subscriber.secret for d in result.deliveries}, {"default-secret"})
        self.send(hooks, "user.created")
        self.assertEqual(len(calls), 1)

    def test_callable_owner_rule(self) -> None:
        """Subscribers a callable returns follow the owner rule too."""
        hooks = self.hooks(
            static_subscribers={
                "order.*": lambda event, sender=None: [
                    {"url": "https://owned.example.com/", "user": "9"},
                    "https://shared.example.com/",
                ]
            }
        )
        result = self.send(hooks, "order.created", sender=Model(1))
        self.assertEqual(
            [d.subscriber.url for d in result.deliveries], ["https://shared.example.com/"]
        )

    def test_random_default_secret(self) -> None:
        """Without default_secret, a random ``whsec_`` one is made and used."""
        hooks = Hooks(self.clock, sender=self.sender, static_subscribers={"*": URL})
        self.assertTrue(hooks.default_secret.startswith("whsec_"))
        (subscriber,) = self.successResultOf(hooks.static_subscribers())
        self.assertEqual(subscriber.secret, hooks.default_secret)
        other = Hooks(self.clock, sender=self.sender)
        self.assertNotEqual(other.default_secret, hooks.default_secret)

    def test_random_default_secrets_are_valid_signing_keys(self) -> None:
        """
        The random default secret is a well-formed ``whsec_`` secret that decodes to 32
        bytes and signs, every time (URL-safe base64 would be refused by standard_key
        whenever it held a '-' or '_').
        """
        for _ in range(200):
            secret = Hooks(self.clock, sender=self.sender).default_secret
            self.assertEqual(len(standard_key(secret)), 32)
            sign_standard(secret, "msg_1", 1700000000, b"{}")

    def test_bad_static_subscriber(self) -> None:
        """A static subscriber of an unknown shape is refused at construction, naming the
        event."""
        with self.assertRaises(ValueError) as caught:
            Hooks(self.clock, sender=self.sender, static_subscribers={"order.created": 42})
        self.assertIn("'order.created'", str(caught.exception))

    def test_static_and_stored_once(self) -> None:
        """A subscriber found both in the store and statically (same id) gets one
        delivery."""
        shared = Subscriber(event="order.created", url=URL, secret="x")
        hooks = self.hooks(static_subscribers={"order.created": shared})
        self.successResultOf(hooks.subscribers.add(shared))
        result = self.send(hooks, "order.created")
        self.assertEqual([d.subscriber.id for d in result.deliveries], [shared.id])


class EventTests(AppTestCase):
    """Thorn's Event, sent through an application."""

    def tearDown(self) -> None:
        set_default_app(None)

    def test_options_map_into_delivery(self) -> None:
        """timeout, retry_max/retry_delay and allow_keepalive end up on the delivery."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        event = Event(
            "order.created",
            timeout=3.0,
            retry_max=2,
            retry_delay=5.0,
            allow_keepalive=False,
            app=hooks,
        )
        (delivery,) = self.successResultOf(event.send({"a": 1})).deliveries
        self.assertEqual(delivery.timeout, 3.0)
        self.assertEqual(delivery.retry.delays, (5.0, 5.0))
        self.assertEqual(delivery.retry.jitter, ONE_RETRY.jitter)
        self.assertFalse(delivery.allow_keepalive)
        (default,) = self.successResultOf(Event("order.created", app=hooks).send({})).deliveries
        self.assertEqual(default.timeout, 10.0)
        self.assertEqual(default.retry, ONE_RETRY)
        self.assertTrue(default.allow_keepalive)

    def test_send_timeout_overrides_event(self) -> None:
        """send(timeout=...) overrides the event's timeout."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        event = Event("order.created", timeout=3.0, app=hooks)
        (delivery,) = self.successResultOf(event.send({}, timeout=7.0)).deliveries
        self.assertEqual(delivery.timeout, 7.0)

    def test_retry_schedule_followed(self) -> None:
        """retry_max/retry_delay drive the retries: attempts come retry_delay apart and the
        delivery is dead after retry_max retries."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        self.sender.queue(URL, *[ERROR] * 3)
        event = Event("order.created", retry_max=2, retry_delay=5.0, app=hooks)
        (delivery,) = self.successResultOf(event.send({})).deliveries
        self.clock.advance(5.0)
        self.assertEqual(len(self.sender.calls), 2)
        self.clock.advance(5.0)
        self.assertEqual(len(self.sender.calls), 3)
        stored = self.stored(hooks, delivery.id)
        self.assertEqual((stored.status, stored.attempts), (DEAD, 3))

    def test_retry_false(self) -> None:
        """retry=False: one failed attempt and the delivery is dead."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        self.sender.queue(URL, ERROR)
        event = Event("order.created", retry=False, app=hooks)
        (delivery,) = self.successResultOf(event.send({})).deliveries
        stored = self.stored(hooks, delivery.id)
        self.assertEqual((stored.status, stored.attempts), (DEAD, 1))
        self.clock.advance(1e6)
        self.assertEqual(len(self.sender.calls), 1)

    def test_request_data(self) -> None:
        """request_data is merged into mapping payloads (winning on clashes) and leaves
        other payloads alone."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        event = Event("order.created", request_data={"site": "eu", "id": 0}, app=hooks)
        (delivery,) = self.successResultOf(event.send({"id": 1, "x": 2})).deliveries
        self.assertEqual(delivery.body, encode_json({"id": 0, "x": 2, "site": "eu"}))
        (listed,) = self.successResultOf(event.send([1])).deliveries
        self.assertEqual(listed.body, b"[1]")

    def test_disabled_dispatcher(self) -> None:
        """dispatcher='disabled' sends nothing for that event."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        result = self.successResultOf(
            Event("order.created", dispatcher="disabled", app=hooks).send({})
        )
        self.assertEqual(result.deliveries, ())
        self.assertEqual(self.sender.calls, [])

    def test_extra_subscribers(self) -> None:
        """subscribers= adds per-event subscribers (URL, dict, callable), used as given
        (not looked up again), beside the stored ones."""
        hooks = self.hooks()
        stored = self.subscribe(hooks, "order.created")
        calls: list[tuple[str, object]] = []

        def produce(event: str, sender: object = None) -> str:
            calls.append((event, sender))
            return "https://callable.example.com/"

        event = Event(
            "order.created",
            subscribers=[
                "https://extra.example.com/",
                {"url": "https://dict.example.com/"},
                produce,
            ],
            app=hooks,
        )
        result = self.successResultOf(event.send({}, sender="me"))
        urls = {d.subscriber.url: d for d in result.deliveries}
        self.assertEqual(
            set(urls),
            {
                URL,
                "https://extra.example.com/",
                "https://dict.example.com/",
                "https://callable.example.com/",
            },
        )
        self.assertEqual(calls, [("order.created", "me")])
        self.assertTrue(urls[URL].refresh_subscriber)
        self.assertEqual(urls[URL].subscriber.id, stored.id)
        self.assertFalse(urls["https://extra.example.com/"].refresh_subscriber)
        self.assertEqual([d.status for d in self.all_deliveries(hooks)], [DELIVERED] * 4)

    def test_single_extra_subscriber(self) -> None:
        """subscribers= may be a single URL."""
        hooks = self.hooks()
        result = self.successResultOf(
            Event("order.created", subscribers=OTHER_URL, app=hooks).send({})
        )
        self.assertEqual([d.subscriber.url for d in result.deliveries], [OTHER_URL])

    def test_unknown_argument(self) -> None:
        """An argument Thorn's Event does not have raises TypeError naming it."""
        with self.assertRaises(TypeError) as caught:
            Event("order.created", retries=3)  # type: ignore[call-arg]
        self.assertIn("retries", str(caught.exception))

    def test_invalid_arguments(self) -> None:
        """Invalid names and arguments raise ValueError when the Event is made."""
        for kwargs in [
            {"name": ""},
            {"name": "order..created"},
            {"name": "order.*"},
            {"name": "order.created", "timeout": 0},
            {"name": "order.created", "dispatcher": "celery"},
            {"name": "order.created", "retry_max": -1},
            {"name": "order.created", "request_data": [("a", 1)]},
        ]:
            self.assertRaises(ValueError, Event, **kwargs)

    def test_default_app(self) -> None:
        """An Event without app= uses the default application, read at send time."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        event = Event("order.created")
        set_default_app(hooks)
        self.assertIs(get_default_app(), hooks)
        self.assertEqual(len(self.successResultOf(event.send({})).deliveries), 1)
        set_default_app(None)
        self.assertRaises(NoApplication, get_default_app)

    def test_no_application(self) -> None:
        """Sending an Event with no application raises NoApplication, whose message names
        the two ways out, and the function it names exists."""
        set_default_app(None)
        with self.assertRaises(NoApplication) as caught:
            Event("order.created").send({})
        message = str(caught.exception)
        self.assertIn("Event(name, app=hooks)", message)
        self.assertIn("set_default_app(hooks)", message)
        dotted = message.split("call ")[1].split("(")[0]
        module, _, name = dotted.rpartition(".")
        self.assertIs(getattr(importlib.import_module(module), name), set_default_app)

    def test_hooks_event(self) -> None:
        """Hooks.event makes an Event bound to the application."""
        hooks = self.hooks()
        event = hooks.event("order.created", timeout=2.0)
        self.assertIs(event.app, hooks)
        self.assertEqual(event.timeout, 2.0)

    def test_recipient_validators_policy(self) -> None:
        """An event's recipient_validators become the policy handed to an HTTPSender for its
        attempts, keeping the application's allow-list; other events pass none."""
        reactor = MemoryReactorClock()
        sender = RecordingHTTPSender(reactor)
        settings = Settings(policy=RecipientPolicy(allowed_networks=["10.0.0.0/8"]))
        hooks = Hooks(reactor, sender=sender, settings=settings)
        hooks.startService()
        self.addCleanup(self.stop, hooks)
        self.successResultOf(hooks.subscribe("order.created", URL))
        validators = [ensure_protocol("https")]
        self.successResultOf(
            Event("order.created", recipient_validators=validators, app=hooks).send({})
        )
        self.successResultOf(Event("order.created", app=hooks).send({}))
        policy, none = sender.policies
        assert policy is not None
        self.assertEqual(policy.validators, tuple(validators))
        self.assertEqual(policy.allowed_networks, settings.policy.allowed_networks)
        self.assertIsNone(none)


class CallbackTests(AppTestCase):
    """Thorn's on_success, on_error and on_timeout."""

    def setUp(self) -> None:
        super().setUp()
        self.calls: list[tuple[str, Request, BaseException | None]] = []

    def on_success(self, request: Request) -> None:
        self.calls.append(("success", request, None))

    def on_error(self, request: Request, exc: BaseException) -> None:
        self.calls.append(("error", request, exc))

    def on_timeout(self, request: Request, exc: BaseException) -> None:
        self.calls.append(("timeout", request, exc))

    def send_with_callbacks(self, hooks: Hooks, **kwargs: Any) -> SendResult:
        """Send ``order.created`` with the three callbacks."""
        kwargs.setdefault("on_success", self.on_success)
        kwargs.setdefault("on_error", self.on_error)
        kwargs.setdefault("on_timeout", self.on_timeout)
        event = Event("order.created", app=hooks)
        return self.successResultOf(event.send({"id": 1}, sender="me", **kwargs))

    def test_success(self) -> None:
        """on_success is called with a Request whose id, event, url, status code, data and
        sender are those of the attempt."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        (delivery,) = self.send_with_callbacks(hooks).deliveries
        ((kind, request, exc),) = self.calls
        self.assertEqual(kind, "success")
        self.assertIsNone(exc)
        self.assertEqual(request.id, delivery.id)
        self.assertEqual(request.event, "order.created")
        self.assertEqual(request.url, URL)
        self.assertEqual(request.status_code, 200)
        self.assertEqual(request.data, {"id": 1})
        self.assertEqual(request.sender, "me")
        self.assertEqual(request.attempt.number, 1)

    def test_error_per_attempt(self) -> None:
        """on_error is called after each failed attempt (with an exception carrying the
        error), then on_success after the retry that succeeds."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        self.sender.queue(URL, ERROR)
        self.send_with_callbacks(hooks)
        ((kind, request, exc),) = self.calls
        self.assertEqual((kind, request.status_code), ("error", 500))
        assert exc is not None
        self.assertIn("500 Internal Server Error", str(exc))
        self.clock.advance(10.0)
        self.assertEqual([c[0] for c in self.calls], ["error", "success"])
        self.assertEqual(self.calls[1][1].attempt.number, 2)
        self.assertEqual(self.calls[0][1].id, self.calls[1][1].id)

    def test_error_gets_attempt_exception(self) -> None:
        """When the attempt carries its exception, on_error gets that exception."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        boom = ConnectionRefusedError("refused")
        self.sender.queue(URL, Outcome.error(ErrorKind.CONNECTION, "refused", boom))
        self.send_with_callbacks(hooks)
        self.assertIs(self.calls[0][2], boom)
        self.assertIsNone(self.calls[0][1].status_code)

    def test_timeout(self) -> None:
        """A timed-out attempt calls on_timeout, not on_error."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        self.sender.queue(URL, TIMEOUT)
        self.send_with_callbacks(hooks)
        ((kind, request, exc),) = self.calls
        self.assertEqual(kind, "timeout")
        self.assertIsNone(request.status_code)
        self.assertIsNotNone(exc)

    def test_timeout_without_on_timeout(self) -> None:
        """Without on_timeout, a timed-out attempt calls on_error."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        self.sender.queue(URL, TIMEOUT)
        self.send_with_callbacks(hooks, on_timeout=None)
        self.assertEqual([c[0] for c in self.calls], ["error"])

    def test_each_subscriber(self) -> None:
        """Callbacks are called for the attempts of every delivery of the send."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created", URL)
        self.subscribe(hooks, "order.*", OTHER_URL)
        self.send_with_callbacks(hooks)
        self.assertEqual(sorted(c[1].url for c in self.calls), sorted([URL, OTHER_URL]))

    def test_failing_callback_logged(self) -> None:
        """A callback that raises is logged, not raised; the delivery ends as it would."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")

        def broken(request: Request) -> None:
            raise ZeroDivisionError("callback bug")

        (delivery,) = self.send_with_callbacks(hooks, on_success=broken).deliveries
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(self.stored(hooks, delivery.id).status, DELIVERED)
        self.assertEqual(hooks.unfinished, 0)


class FailureEventTests(AppTestCase):
    """410 Gone, dead deliveries and operational events."""

    def test_gone(self) -> None:
        """A 410 Gone deactivates the subscriber in the store and kills the delivery; the
        operational events webhook.endpoint.disabled and webhook.delivery.dead are fired;
        later sends don't reach the subscriber; no operational event becomes a webhook."""
        hooks = self.hooks()
        gone = self.subscribe(hooks, "order.created", URL)
        catch_all = self.subscribe(hooks, "*", OTHER_URL)
        disabled = self.operational(hooks, "webhook.endpoint.disabled")
        dead = self.operational(hooks, "webhook.delivery.dead")
        failed = self.operational(hooks, "webhook.delivery.failed")
        self.sender.queue(URL, GONE)
        result = self.send(hooks, "order.created")
        to_gone = next(d for d in result.deliveries if d.subscriber.id == gone.id)
        self.assertFalse(self.successResultOf(hooks.subscribers.get(gone.id)).active)
        self.assertEqual(self.stored(hooks, to_gone.id).status, DEAD)
        (event,) = disabled
        self.assertIsInstance(event, OperationalEvent)
        self.assertEqual(event.name, "webhook.endpoint.disabled")
        self.assertEqual(event.delivery.id, to_gone.id)
        self.assertEqual(event.attempt.status_code, 410)
        self.assertIn("410", event.reason)
        self.assertEqual([e.delivery.id for e in dead], [to_gone.id])
        self.assertEqual([e.delivery.id for e in failed], [to_gone.id])
        self.assertEqual(dead[0].reason, "410 Gone")
        # Operational events never become webhooks, even for a '*' subscriber.
        self.assertEqual(len(self.all_deliveries(hooks)), 2)
        self.assertEqual(self.sender.urls(), [URL, OTHER_URL])
        later = self.send(hooks, "order.created")
        self.assertEqual([d.subscriber.id for d in later.deliveries], [catch_all.id])

    def test_gone_static(self) -> None:
        """A 410 from a static subscriber deactivates it among the static subscribers."""
        hooks = self.hooks(static_subscribers={"order.created": URL})
        disabled = self.operational(hooks, "webhook.endpoint.disabled")
        self.sender.queue(URL, GONE)
        self.send(hooks, "order.created")
        (subscriber,) = self.successResultOf(hooks.static_subscribers())
        self.assertFalse(subscriber.active)
        self.assertEqual(len(disabled), 1)
        self.assertEqual(self.send(hooks, "order.created").deliveries, ())

    def test_gone_per_event_subscriber(self) -> None:
        """A 410 from a subscriber given with the event kills the delivery without an error
        logged and without webhook.endpoint.disabled: there is no stored subscription."""
        hooks = self.hooks()
        disabled = self.operational(hooks, "webhook.endpoint.disabled")
        dead = self.operational(hooks, "webhook.delivery.dead")
        self.sender.queue(URL, GONE)
        event = Event("order.created", subscribers=URL, app=hooks)
        (delivery,) = self.successResultOf(event.send({})).deliveries
        self.assertEqual(self.stored(hooks, delivery.id).status, DEAD)
        self.assertEqual(disabled, [])
        self.assertEqual([e.delivery.id for e in dead], [delivery.id])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_failed_per_attempt(self) -> None:
        """webhook.delivery.failed is fired for each failed attempt, and
        webhook.delivery.dead once, after the last."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        failed = self.operational(hooks, "webhook.delivery.failed")
        dead = self.operational(hooks, "webhook.delivery.dead")
        self.sender.queue(URL, ERROR, ERROR)
        (delivery,) = self.send(hooks, "order.created").deliveries
        self.assertEqual([e.attempt.number for e in failed], [1])
        self.assertEqual(dead, [])
        self.clock.advance(10.0)
        self.assertEqual([e.attempt.number for e in failed], [1, 2])
        self.assertEqual([e.reason for e in failed], ["500 Internal Server Error"] * 2)
        self.assertEqual([e.delivery.id for e in dead], [delivery.id])

    def test_success_fires_nothing(self) -> None:
        """A delivered attempt fires no operational event."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        seen = self.operational(hooks, None)
        self.send(hooks, "order.created")
        self.assertEqual(seen, [])

    def test_unsubscribe_before_retry(self) -> None:
        """A subscriber removed before a retry ends the delivery dead with ErrorKind
        SUBSCRIBER at that retry, without an HTTP attempt."""
        hooks = self.hooks()
        subscriber = self.subscribe(hooks, "order.created")
        self.sender.queue(URL, ERROR)
        (delivery,) = self.send(hooks, "order.created").deliveries
        self.successResultOf(hooks.unsubscribe(subscriber.id))
        self.clock.advance(10.0)
        self.assertEqual(len(self.sender.calls), 1)
        stored = self.stored(hooks, delivery.id)
        self.assertEqual((stored.status, stored.attempts), (DEAD, 2))
        last = self.successResultOf(hooks.deliveries.attempts(delivery.id))[-1]
        self.assertEqual(last.error_kind, ErrorKind.SUBSCRIBER)
        self.assertIn(subscriber.id, last.error_message or "")
        self.assertIn("removed", last.error_message or "")

    def test_deactivated_before_retry(self) -> None:
        """A subscriber deactivated before a retry ends the delivery dead too."""
        hooks = self.hooks()
        subscriber = self.subscribe(hooks, "order.created")
        self.sender.queue(URL, ERROR)
        (delivery,) = self.send(hooks, "order.created").deliveries
        self.successResultOf(hooks.subscribers.deactivate(subscriber.id))
        self.clock.advance(10.0)
        last = self.successResultOf(hooks.deliveries.attempts(delivery.id))[-1]
        self.assertEqual(last.error_kind, ErrorKind.SUBSCRIBER)
        self.assertIn("deactivated", last.error_message or "")

    def test_updated_subscriber_used_at_retry(self) -> None:
        """A stored subscriber is looked up again at each attempt: a retry goes to its new
        URL."""
        hooks = self.hooks()
        subscriber = self.subscribe(hooks, "order.created")
        self.sender.queue(URL, ERROR)
        self.send(hooks, "order.created")
        moved = attrs.evolve(subscriber, url=OTHER_URL)
        self.successResultOf(hooks.subscribers.update(moved))
        self.clock.advance(10.0)
        self.assertEqual(self.sender.urls(), [URL, OTHER_URL])


class ConfigurationTests(AppTestCase):
    """Settings and constructor checks."""

    def test_lease_not_longer_than_timeout(self) -> None:
        """A lease not longer than the timeout is refused, naming both."""
        for lease in (10.0, 5.0):
            with self.assertRaises(ValueError) as caught:
                Settings(timeout=10.0, lease=lease)
            self.assertIn("lease", str(caught.exception))
            self.assertIn("timeout", str(caught.exception))

    def test_bad_settings(self) -> None:
        """An unknown backend and non-positive numbers are refused with ValueError."""
        for kwargs in [
            {"backend": "celery"},
            {"timeout": 0.0},
            {"max_concurrency": 0},
            {"max_per_host": True},
            {"batch": 0},
        ]:
            self.assertRaises(ValueError, Settings, **kwargs)

    def test_phase_not_in_dispatcher(self) -> None:
        """A phase the dispatcher lacks is refused, naming the phases it has."""
        with self.assertRaises(ValueError) as caught:
            self.hooks(start=False, settings=Settings(phase="meanwhile"))
        self.assertIn("'meanwhile'", str(caught.exception))
        self.assertIn("'during'", str(caught.exception))

    def test_own_dispatcher_and_phase(self) -> None:
        """A dispatcher with the keywords and other phases works with a matching phase."""
        dispatcher = EventDispatcher((*KEYWORDS, "extra"), phases=("pre", "main"))
        hooks = self.hooks(dispatcher=dispatcher, settings=Settings(phase="main"))
        self.subscribe(hooks, "order.created")
        self.assertEqual(len(self.send(hooks, "order.created").deliveries), 1)

    def test_dispatcher_without_keywords(self) -> None:
        """A dispatcher lacking the keywords the application fires with is refused,
        naming the missing ones."""
        with self.assertRaises(ValueError) as caught:
            self.hooks(start=False, dispatcher=EventDispatcher(["name"]))
        self.assertIn("'kind'", str(caught.exception))
        self.assertIn("'owner'", str(caught.exception))

    def test_subscribe_invalid_url(self) -> None:
        """subscribe() with an invalid URL raises ValueError at once; nothing is stored."""
        hooks = self.hooks()
        for url in ["not a url", "ftp://example.com/", "https://", ""]:
            self.assertRaises(ValueError, hooks.subscribe, "order.created", url)
        self.assertEqual(self.successResultOf(hooks.subscribers.list()), [])

    def test_subscribe_refused_url(self) -> None:
        """subscribe() with a URL the default policy refuses (a loopback address) raises
        SecurityError at once; nothing is stored."""
        hooks = self.hooks()
        with self.assertRaises(SecurityError) as caught:
            hooks.subscribe("order.created", "http://127.0.0.1/")
        self.assertIn("127.0.0.1", str(caught.exception))
        self.assertEqual(self.successResultOf(hooks.subscribers.list()), [])

    def test_subscribe_invalid_pattern(self) -> None:
        """subscribe() with an invalid pattern raises ValueError at once."""
        hooks = self.hooks()
        self.assertRaises(ValueError, hooks.subscribe, "order..created", URL)


class BufferTests(AppTestCase):
    """buffer_events."""

    def test_held_until_exit(self) -> None:
        """Sends inside buffer_events make no deliveries until the block exits; then each
        send's Deferred fires with its SendResult."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.*")
        with hooks.buffer_events() as buffer:
            first = hooks.send("order.created", {"n": 1})
            second = hooks.send("order.paid", {"n": 2})
            self.assertNoResult(first)
            self.assertNoResult(second)
            self.assertEqual(buffer.pending, 2)
            self.assertEqual(self.all_deliveries(hooks), [])
            self.assertEqual(self.sender.calls, [])
        one, two = self.successResultOf(first), self.successResultOf(second)
        self.assertEqual(one.event.name, "order.created")
        self.assertEqual(two.event.name, "order.paid")
        self.assertEqual(len(one.deliveries), 1)
        self.assertEqual(one.deliveries[0].body, b'{"n":1}')
        self.assertEqual(len(self.sender.calls), 2)
        self.assertEqual(buffer.pending, 0)

    def test_nested(self) -> None:
        """Thorn's example: nested contexts delegate to the outermost; A, B and C are all
        dispatched, in order, when the outer block exits."""
        hooks = self.hooks()
        self.subscribe(hooks, "article.created")
        with hooks.buffer_events() as outer:
            hooks.send("article.created", {"name": "A"})
            with hooks.buffer_events() as inner:
                self.assertFalse(inner.outermost)
                hooks.send("article.created", {"name": "B"})
            self.assertTrue(outer.outermost)
            self.assertEqual(self.sender.calls, [])
            hooks.send("article.created", {"name": "C"})
            self.assertEqual(outer.pending, 3)
        bodies = [delivery.body for delivery, _ in self.sender.calls]
        self.assertEqual(bodies, [b'{"name":"A"}', b'{"name":"B"}', b'{"name":"C"}'])

    def test_flush_all_contexts(self) -> None:
        """flush() in an inner context flushes the events of every context; later sends
        are held again."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        with hooks.buffer_events():
            hooks.send("order.created", {"n": 1})
            with hooks.buffer_events() as inner:
                hooks.send("order.created", {"n": 2})
                inner.flush()
                self.assertEqual(len(self.sender.calls), 2)
                held = hooks.send("order.created", {"n": 3})
                self.assertNoResult(held)
            self.assertEqual(len(self.sender.calls), 2)
        self.successResultOf(held)
        self.assertEqual(len(self.sender.calls), 3)

    def test_flush_returns_results(self) -> None:
        """flush() returns a Deferred firing the SendResult of every flushed send, in
        order, and each send's own Deferred fires with the same result."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        with hooks.buffer_events() as buffer:
            first = hooks.send("order.created", {"n": 1})
            second = hooks.send("order.created", {"n": 2})
            flushed = buffer.flush()
            assert isinstance(flushed, Deferred)
            results = self.successResultOf(flushed)
        self.assertEqual(results, [self.successResultOf(first), self.successResultOf(second)])
        self.assertTrue(all(isinstance(r, SendResult) for r in results))

    def test_flush_empty(self) -> None:
        """Flushing an empty buffer gives an empty list."""
        hooks = self.hooks()
        with hooks.buffer_events() as buffer:
            flushed = buffer.flush()
            assert isinstance(flushed, Deferred)
            self.assertEqual(self.successResultOf(flushed), [])

    def test_maybe_flush_freq(self) -> None:
        """maybe_flush flushes once flush_freq sends are held, and not before."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        with hooks.buffer_events(flush_freq=2) as buffer:
            hooks.send("order.created", {"n": 1})
            self.assertIsNone(buffer.maybe_flush())
            self.assertEqual(self.sender.calls, [])
            hooks.send("order.created", {"n": 2})
            self.assertIsNotNone(buffer.maybe_flush())
            self.assertEqual(len(self.sender.calls), 2)
            hooks.send("order.created", {"n": 3})
            self.assertIsNone(buffer.maybe_flush())
        self.assertEqual(len(self.sender.calls), 3)

    def test_maybe_flush_timeout(self) -> None:
        """maybe_flush flushes once flush_timeout seconds of the reactor's clock have
        passed since the block was entered (or the last flush)."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        with hooks.buffer_events(flush_timeout=5.0) as buffer:
            hooks.send("order.created", {"n": 1})
            self.clock.advance(4.9)
            self.assertIsNone(buffer.maybe_flush())
            self.clock.advance(0.1)
            self.assertIsNotNone(buffer.maybe_flush())
            self.assertEqual(len(self.sender.calls), 1)
            hooks.send("order.created", {"n": 2})
            self.clock.advance(4.0)
            self.assertIsNone(buffer.maybe_flush())
        self.assertEqual(len(self.sender.calls), 2)

    def test_bad_buffer_arguments(self) -> None:
        """flush_freq below 1 and a non-positive flush_timeout are refused."""
        hooks = self.hooks()
        self.assertRaises(ValueError, hooks.buffer_events, flush_freq=0)
        self.assertRaises(ValueError, hooks.buffer_events, flush_timeout=0.0)

    def test_unencodable_in_buffer(self) -> None:
        """An unencodable send inside a buffer raises EncodingError at once and holds
        nothing."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        with hooks.buffer_events() as buffer:
            self.assertRaises(EncodingError, hooks.send, "order.created", {1j})
            self.assertEqual(buffer.pending, 0)
            ok = hooks.send("order.created", {"n": 1})
        self.assertEqual(len(self.successResultOf(ok).deliveries), 1)

    def test_flushed_on_exception(self) -> None:
        """As in Thorn, the buffer is flushed when the block exits with an exception too."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        with self.assertRaises(KeyError), hooks.buffer_events():
            held = hooks.send("order.created", {"n": 1})
            raise KeyError("in the block")
        self.assertEqual(len(self.successResultOf(held).deliveries), 1)

    def test_flush_when_not_running(self) -> None:
        """Sends held while the application is not running fail with HooksNotRunning at
        the flush, each on its own Deferred and in flush()'s list."""
        hooks = self.hooks(start=False)
        with hooks.buffer_events() as buffer:
            held = hooks.send("order.created", {"n": 1})
            flushed = buffer.flush()
            assert isinstance(flushed, Deferred)
            (result,) = self.successResultOf(flushed)
        self.assertIsInstance(result, Failure)
        result.trap(HooksNotRunning)
        self.failureResultOf(held, HooksNotRunning)


#: Ten retries, one second apart, no jitter.
MANY_RETRIES = RetryPolicy(delays=(1.0,) * 10, jitter=0.0)


class CountingDeliveryStore(MemoryDeliveryStore):
    """A memory delivery store noting the deliveries of each record call."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[list[str]] = []

    def record(self, updates: Sequence[DeliveryUpdate]) -> Deferred[None]:
        self.records.append([u.delivery_id for u in updates])
        return super().record(updates)


class EndpointLimitTests(AppTestCase):
    """Per-endpoint limits, end to end."""

    def test_max_concurrency(self) -> None:
        """A subscriber's max_concurrency caps the attempts under way to it: the others
        are held back (still pending, no attempt counted) and go as slots free up; all
        end delivered with one attempt each."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created", max_concurrency=2)
        self.sender.queue(URL, *[HOLD] * 5)
        ids = [self.send(hooks, "order.created").deliveries[0].id for _ in range(5)]
        self.assertEqual(len(self.sender.held), 2)
        self.assertEqual([self.stored(hooks, i).status for i in ids[2:]], [PENDING] * 3)
        self.assertEqual([self.stored(hooks, i).attempts for i in ids[2:]], [0] * 3)
        most = 2
        while self.sender.held or hooks.unfinished:
            if self.sender.held:
                self.sender.finish()
            self.clock.advance(hooks.settings.busy_retry)
            most = max(most, len(self.sender.held))
        self.assertEqual(most, 2)
        self.assertEqual(len(self.sender.calls), 5)
        self.assertEqual([self.stored(hooks, i).status for i in ids], [DELIVERED] * 5)
        self.assertEqual([self.stored(hooks, i).attempts for i in ids], [1] * 5)
        self.assertEqual(hooks.endpoint_health.in_use(self.sender.calls[0][1].id), 0)

    def test_rate_limit(self) -> None:
        """A subscriber's rate_limit spaces its attempts: two per second with a burst of
        two, the rest one token apart."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created", rate_limit=2.0)
        for _ in range(6):
            self.send(hooks, "order.created")
        self.clock.pump([0.25] * 20)
        started = [d.attempts for d, _ in self.sender.calls]
        self.assertEqual(started, [0] * 6)
        times = [
            a.started_at
            for d in self.all_deliveries(hooks)
            for a in self.successResultOf(hooks.deliveries.attempts(d.id))
        ]
        self.assertEqual(sorted(times), [1000.0, 1000.0, 1000.5, 1001.0, 1001.5, 1002.0])
        self.assertEqual(hooks.unfinished, 0)

    def test_unlimited_endpoint_unaffected(self) -> None:
        """Limits of one subscriber do not hold back another's deliveries."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created", URL, rate_limit=1.0)
        self.subscribe(hooks, "order.created", OTHER_URL)
        for _ in range(3):
            self.send(hooks, "order.created")
        self.assertEqual(self.sender.urls().count(OTHER_URL), 3)
        self.assertEqual(self.sender.urls().count(URL), 1)


class CircuitBreakerTests(AppTestCase):
    """The circuit breaker, end to end."""

    def settings(self, **kwargs: Any) -> Settings:
        """Settings with a short streak, many retries and outcomes written at once."""
        kwargs.setdefault("retry", MANY_RETRIES)
        return Settings(circuit_failures=2, circuit_cooldown=30.0, record_delay=0.0, **kwargs)

    def test_open_circuit_holds_then_recovers(self) -> None:
        """After circuit_failures failures in a row the endpoint's deliveries are held
        back, not failed (webhook.endpoint.opened is fired); after the cool-down one probe
        goes, and its success fires webhook.endpoint.recovered and lets the rest go."""
        hooks = self.hooks(settings=self.settings())
        subscriber = self.subscribe(hooks, "order.created")
        opened = self.operational(hooks, "webhook.endpoint.opened")
        recovered = self.operational(hooks, "webhook.endpoint.recovered")
        failed = self.operational(hooks, "webhook.delivery.failed")
        self.sender.queue(URL, ERROR, ERROR, HOLD)
        (first,) = self.send(hooks, "order.created").deliveries
        self.clock.advance(1.0)
        (event,) = opened
        self.assertEqual(event.delivery.id, first.id)
        assert event.health is not None
        self.assertEqual((event.health.circuit, event.health.subscriber_id), (OPEN, subscriber.id))
        (second,) = self.send(hooks, "order.created").deliveries
        self.clock.advance(29.0)  # the cool-down ends at 1031
        self.assertEqual(len(self.sender.calls), 2)
        self.assertEqual(self.stored(hooks, second.id).status, PENDING)
        self.assertEqual(self.stored(hooks, second.id).attempts, 0)
        self.assertEqual(len(failed), 2)
        self.clock.advance(1.0)
        self.assertEqual(len(self.sender.calls), 3)  # one probe
        self.clock.advance(5.0)
        self.assertEqual(len(self.sender.calls), 3)  # the other is held while it is out
        self.assertEqual(recovered, [])
        self.sender.finish()
        (event,) = recovered
        self.assertIn("closed", event.reason)
        self.clock.advance(hooks.settings.busy_retry)
        self.assertEqual(len(self.sender.calls), 4)
        self.assertEqual(
            {self.stored(hooks, first.id).status, self.stored(hooks, second.id).status},
            {DELIVERED},
        )
        self.assertEqual(len(failed), 2)

    def test_health_store(self) -> None:
        """An open circuit stored in the health store is honoured after a restart, and the
        health is saved when the application stops."""
        subscriber = Subscriber(event="order.created", url=URL)
        store = MemoryHealthStore(
            [
                EndpointHealth(
                    subscriber.id, 5, 990.0, 999.0, OPEN, opened_at=999.0, updated_at=999.0
                )
            ]
        )
        hooks = self.hooks(settings=self.settings(), health=store)
        self.successResultOf(hooks.subscribers.add(subscriber))
        (delivery,) = self.send(hooks, "order.created").deliveries
        self.assertEqual(self.sender.calls, [])
        self.clock.advance(30.0)
        self.assertEqual(len(self.sender.calls), 1)
        self.assertEqual(self.stored(hooks, delivery.id).status, DELIVERED)
        self.successResultOf(hooks.stopService())
        self.assertEqual(
            store.records[subscriber.id], EndpointHealth(subscriber.id, updated_at=1030.0)
        )
        self.assertGreaterEqual(len(store.saves), 1)


class AutoDisableTests(AppTestCase):
    """Automatic disabling after sustained failure."""

    def test_disabled_after_sustained_failure(self) -> None:
        """disable_failures failures spanning disable_period deactivate the subscriber
        and fire webhook.endpoint.disabled; its pending deliveries then end dead with
        ErrorKind.SUBSCRIBER, and later sends no longer reach it."""
        settings = Settings(
            retry=RetryPolicy(delays=(10.0,) * 5, jitter=0.0),
            circuit_failures=100,
            disable_failures=3,
            disable_period=20.0,
            record_delay=0.0,
        )
        hooks = self.hooks(settings=settings)
        subscriber = self.subscribe(hooks, "order.created")
        disabled = self.operational(hooks, "webhook.endpoint.disabled")
        dead = self.operational(hooks, "webhook.delivery.dead")
        self.sender.queue(URL, *[ERROR] * 10)
        (first,) = self.send(hooks, "order.created").deliveries
        self.clock.advance(5.0)
        (second,) = self.send(hooks, "order.created").deliveries
        self.clock.advance(5.0)  # 1010: failures 3 and 4, spanning 10 s
        self.assertEqual(disabled, [])
        self.clock.advance(10.0)  # 1020: the streak spans 20 s
        (event,) = disabled
        self.assertIn("the subscription is deactivated", event.reason)
        assert event.health is not None
        self.assertEqual(event.health.disabled_since, 1020.0)
        self.assertFalse(self.successResultOf(hooks.subscribers.get(subscriber.id)).active)
        calls = len(self.sender.calls)
        self.clock.advance(20.0)
        self.assertEqual(len(self.sender.calls), calls)
        for delivery in (first, second):
            self.assertEqual(self.stored(hooks, delivery.id).status, DEAD)
            last = self.successResultOf(hooks.deliveries.attempts(delivery.id))[-1]
            self.assertEqual(last.error_kind, ErrorKind.SUBSCRIBER)
        self.assertEqual({e.delivery.id for e in dead}, {first.id, second.id})
        self.assertEqual(self.send(hooks, "order.created").deliveries, ())


class IdempotentSendTests(AppTestCase):
    """Sends with an explicit event id."""

    def test_same_event_id_twice(self) -> None:
        """A second send with the same event_id is a duplicate: no deliveries, no
        attempt, nothing unfinished."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        self.sender.queue(URL, HOLD)
        first = self.send(hooks, "order.created", event_id="evt-1")
        self.assertFalse(first.duplicate)
        self.assertEqual(len(first.deliveries), 1)
        second = self.send(hooks, "order.created", event_id="evt-1")
        self.assertTrue(second.duplicate)
        self.assertEqual(second.deliveries, ())
        self.assertEqual(second.event.id, "evt-1")
        self.assertEqual(len(self.sender.calls), 1)
        self.assertEqual(hooks.unfinished, 1)
        self.assertEqual(len(self.all_deliveries(hooks)), 1)
        self.assertFalse(self.send(hooks, "order.created", event_id="evt-2").duplicate)

    def test_without_event_id(self) -> None:
        """Without an event_id every send delivers, even with the same data."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        results = [self.send(hooks, "order.created", {"n": 1}) for _ in range(2)]
        self.assertEqual([r.duplicate for r in results], [False, False])
        self.assertEqual(len(self.sender.calls), 2)

    def test_remembered_without_subscribers(self) -> None:
        """An event published when nobody subscribed is remembered too: sending its id
        again after a subscription delivers nothing."""
        hooks = self.hooks()
        self.assertFalse(self.send(hooks, "order.created", event_id="evt-1").duplicate)
        self.subscribe(hooks, "order.created")
        self.assertTrue(self.send(hooks, "order.created", event_id="evt-1").duplicate)
        self.assertEqual(self.sender.calls, [])

    def test_duplicate_in_buffer(self) -> None:
        """Held sends keep their idempotency: the second of two sends of one id in a
        buffer is a duplicate."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.created")
        with hooks.buffer_events():
            first = hooks.send("order.created", {}, event_id="evt-1")
            second = hooks.send("order.created", {}, event_id="evt-1")
        self.assertFalse(self.successResultOf(first).duplicate)
        self.assertTrue(self.successResultOf(second).duplicate)
        self.assertEqual(len(self.sender.calls), 1)


class HealthSettingsTests(AppTestCase):
    """The new settings and outcome batching through the application."""

    def test_bad_health_settings(self) -> None:
        """Thresholds below one, durations out of range and non-numbers are refused with
        a ValueError naming the setting."""
        for kwargs in [
            {"circuit_failures": 0},
            {"circuit_cooldown": 0.0},
            {"circuit_cooldown": "30"},
            {"disable_failures": 0},
            {"disable_period": -1.0},
            {"record_delay": -0.01},
            {"record_delay": True},
            {"busy_retry": 0.0},
            {"health_save_delay": -1.0},
        ]:
            with self.assertRaises(ValueError) as caught:
                Settings(**kwargs)
            self.assertIn(next(iter(kwargs)), str(caught.exception))

    def test_defaults(self) -> None:
        """The documented defaults."""
        settings = Settings()
        self.assertEqual(
            (
                settings.circuit_failures,
                settings.circuit_cooldown,
                settings.disable_failures,
                settings.disable_period,
                settings.record_delay,
            ),
            (5, 30.0, 50, 86_400.0, 0.01),
        )

    def test_outcomes_recorded_in_one_batch(self) -> None:
        """With the default record_delay the outcomes of one send's deliveries are
        written with one record call, and only then announced."""
        store = CountingDeliveryStore()
        hooks = self.hooks(settings=Settings(retry=ONE_RETRY), deliveries=store)
        for url in (URL, OTHER_URL, FORM_URL):
            self.subscribe(hooks, "order.created", url)
        result = self.send(hooks, "order.created")
        self.assertEqual(store.records, [])
        self.assertEqual(hooks.unfinished, 3)
        self.clock.advance(0.01)
        self.assertEqual([sorted(r) for r in store.records], [sorted(result.delivery_ids)])
        self.assertEqual(hooks.unfinished, 0)


class ReplayTests(AppTestCase):
    """retry, recover and reactivate: dead deliveries attempted again, with their ids."""

    def dead(self, hooks: Hooks, url: str = URL) -> Delivery:
        """A delivery that died after its two attempts (500, 500)."""
        self.sender.queue(url, *[Outcome(status_code=500, error_kind="status")] * 2)
        sent = self.send(hooks, "order.created").deliveries
        (delivery,) = [d for d in sent if d.subscriber.url == url]
        self.clock.advance(10.0)
        self.assertEqual(self.stored(hooks, delivery.id).status, DEAD)
        return delivery

    def test_retry_attempts_a_dead_delivery_again(self) -> None:
        """retry makes a dead delivery attempted again now, with the same id; the attempt
        number continues, and drain waits for it."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.*")
        delivery = self.dead(hooks)
        revived = self.successResultOf(hooks.retry(delivery.id))
        self.assertEqual(revived.id, delivery.id)
        self.assertEqual(self.stored(hooks, delivery.id).status, DELIVERED)
        attempted = [d for d, _ in self.sender.calls]
        self.assertEqual([d.id for d in attempted], [delivery.id] * 3)
        self.assertEqual(attempted[-1].attempts, 2)
        self.successResultOf(hooks.drain())

    def test_retry_errors(self) -> None:
        """retry fails with KeyError for an unknown id and ValueError for a delivery that
        is not dead (here: delivered)."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.*")
        (delivery,) = self.send(hooks, "order.created").deliveries
        self.failureResultOf(hooks.retry("no-such-id"), KeyError)
        failure = self.failureResultOf(hooks.retry(delivery.id), ValueError)
        self.assertIn("delivered", str(failure.value))

    def test_recover_since(self) -> None:
        """recover revives the dead deliveries of one subscriber made at or after since,
        and no others."""
        hooks = self.hooks()
        subscriber = self.subscribe(hooks, "order.*")
        other = self.subscribe(hooks, "order.*", "https://other.example/hook")
        self.sender.queue(
            "https://other.example/hook", *[Outcome(status_code=500, error_kind="status")] * 2
        )
        old = self.dead(hooks)
        since = self.clock.seconds()
        self.sender.queue(
            "https://other.example/hook", *[Outcome(status_code=500, error_kind="status")] * 2
        )
        new = self.dead(hooks)
        self.assertEqual(self.successResultOf(hooks.recover(subscriber.id, since)), 1)
        self.assertEqual(self.stored(hooks, new.id).status, DELIVERED)
        self.assertEqual(self.stored(hooks, old.id).status, DEAD)
        dead_for_other = self.successResultOf(hooks.deliveries.list(DEAD, other.id))
        self.assertEqual(len(dead_for_other), 2)
        self.assertEqual(self.successResultOf(hooks.recover(subscriber.id, since)), 0)

    def test_reactivate_after_gone(self) -> None:
        """A 410 deactivates; reactivate makes the subscriber receive again and resets its
        endpoint's health; the dead delivery can then be recovered."""
        hooks = self.hooks()
        subscriber = self.subscribe(hooks, "order.*")
        self.sender.queue(URL, Outcome(status_code=410, error_kind="gone"))
        (gone,) = self.send(hooks, "order.created").deliveries
        self.assertFalse(self.successResultOf(hooks.subscribers.get(subscriber.id)).active)
        self.assertEqual(self.send(hooks, "order.created").deliveries, ())
        back = self.successResultOf(hooks.reactivate(subscriber.id))
        self.assertTrue(back.active)
        self.assertEqual(len(self.send(hooks, "order.created").deliveries), 1)
        self.assertEqual(self.successResultOf(hooks.recover(subscriber.id, 0.0)), 1)
        self.assertEqual(self.stored(hooks, gone.id).status, DELIVERED)

    def test_reactivate_unknown(self) -> None:
        """reactivate fails with SubscriberNotFound (a KeyError) for an unknown id."""
        hooks = self.hooks()
        self.failureResultOf(hooks.reactivate(str(uuid.uuid4())), KeyError)


class RetentionTests(AppTestCase):
    """prune: delivered deliveries and idempotency keys are deleted after their time."""

    def test_prune_by_settings(self) -> None:
        """prune deletes delivered deliveries older than keep_delivered and keys older
        than keep_keys, keeps dead ones and recent ones, and says how many."""
        settings = Settings(
            retry=RetryPolicy(delays=()), record_delay=0.0, keep_delivered=100.0, keep_keys=50.0
        )
        hooks = self.hooks(settings=settings)
        self.subscribe(hooks, "order.*")
        (old,) = self.send(hooks, "order.created", event_id="event-1").deliveries
        self.sender.queue(URL, Outcome(status_code=500, error_kind="status"))
        (dead,) = self.send(hooks, "order.created").deliveries
        self.clock.advance(200.0)
        (recent,) = self.send(hooks, "order.created").deliveries
        self.assertEqual(self.successResultOf(hooks.prune()), (1, 1))
        self.failureResultOf(hooks.deliveries.get(old.id), KeyError)
        self.assertEqual(self.stored(hooks, dead.id).status, DEAD)
        self.assertEqual(self.stored(hooks, recent.id).status, DELIVERED)
        again = self.send(hooks, "order.created", event_id="event-1")
        self.assertFalse(again.duplicate)

    def test_runs_periodically(self) -> None:
        """The running application prunes every prune_interval seconds, and stops doing
        so when stopped."""
        settings = Settings(
            record_delay=0.0, keep_delivered=10.0, keep_keys=10.0, prune_interval=60.0
        )
        hooks = self.hooks(settings=settings)
        self.subscribe(hooks, "order.*")
        (delivery,) = self.send(hooks, "order.created").deliveries
        self.clock.advance(59.0)
        self.assertEqual(self.stored(hooks, delivery.id).status, DELIVERED)
        self.clock.advance(1.0)
        self.failureResultOf(hooks.deliveries.get(delivery.id), KeyError)
        hooks.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_keep_delivered_none_keeps_them(self) -> None:
        """keep_delivered=None prunes no delivery (keys are still pruned)."""
        hooks = self.hooks(settings=Settings(record_delay=0.0, keep_delivered=None))
        self.subscribe(hooks, "order.*")
        (delivery,) = self.send(hooks, "order.created").deliveries
        self.clock.advance(10 * 86400.0)
        self.assertEqual(self.successResultOf(hooks.prune())[0], 0)
        self.assertEqual(self.stored(hooks, delivery.id).status, DELIVERED)

    def test_settings_validated(self) -> None:
        """Retention settings must be positive; the message names the setting."""
        for name in ("keep_delivered", "keep_keys", "prune_interval"):
            with self.assertRaises(ValueError) as caught:
                Settings(**{name: 0})
            self.assertIn(name, str(caught.exception))


class DrainTests(AppTestCase):
    """drain waits for this application's own deliveries only."""

    def test_other_runs_deliveries_are_not_counted(self) -> None:
        """
        A delivery left in a shared store by an earlier run, ending while this
        application's own delivery still waits for its retry, does not fire drain early.
        """
        store = MemoryDeliveryStore()
        earlier = self.hooks(deliveries=store)
        self.subscribe(earlier, "order.*")
        self.sender.queue(URL, Outcome(status_code=500, error_kind="status"))
        (leftover,) = self.send(earlier, "order.created").deliveries
        earlier.stopService()
        later = self.hooks(deliveries=store, subscribers=earlier.subscribers)
        # Own first attempt fails; then the leftover's retry succeeds while own's retry
        # is held open.
        self.sender.queue(URL, Outcome(status_code=500, error_kind="status"), OK, HOLD)
        (own,) = self.send(later, "order.created").deliveries
        drained = later.drain()
        self.assertEqual(later.unfinished, 1)
        self.clock.advance(10.0)
        self.assertEqual(self.stored(later, leftover.id).status, DELIVERED)
        self.assertNoResult(drained)
        self.sender.finish()
        self.assertEqual(self.stored(later, own.id).status, DELIVERED)
        self.successResultOf(drained)

    def test_waits_for_retried_delivery(self) -> None:
        """A delivery revived by retry is waited for."""
        hooks = self.hooks(settings=Settings(retry=RetryPolicy(delays=()), record_delay=0.0))
        self.subscribe(hooks, "order.*")
        self.sender.queue(URL, Outcome(status_code=500, error_kind="status"), HOLD)
        (delivery,) = self.send(hooks, "order.created").deliveries
        self.successResultOf(hooks.drain())
        self.successResultOf(hooks.retry(delivery.id))
        drained = hooks.drain()
        self.assertNoResult(drained)
        self.sender.finish()
        self.successResultOf(drained)


class PerSendTimeoutTests(AppTestCase):
    """A per-send timeout must leave the lease longer than the attempt."""

    def test_timeout_not_shorter_than_lease_refused(self) -> None:
        """Event(timeout=...) at or over the lease is a ValueError at send, naming both."""
        hooks = self.hooks()
        event = Event("order.created", app=hooks, timeout=60.0)
        with self.assertRaises(ValueError) as caught:
            event.send({})
        self.assertIn("shorter than the lease (60 s)", str(caught.exception))
        Event("order.created", app=hooks, timeout=59.0).send({})


class StaleViewStore(MemorySubscriberStore):
    """A subscriber store whose in-memory view has not seen a subscriber yet (another
    process made it), while the store itself has it."""

    def find(self, subscriber_id: str) -> Subscriber | None:
        return None


class StaleViewTests(AppTestCase):
    """A subscriber unknown to this process's view is looked up in the store."""

    def test_subscriber_missing_from_view_is_asked_for(self) -> None:
        """find() misses, get() has it: the delivery is attempted, not ended as removed."""
        store = StaleViewStore()
        hooks = self.hooks(subscribers=store)
        self.subscribe(hooks, "order.*")
        (delivery,) = self.send(hooks, "order.created").deliveries
        self.assertEqual(self.stored(hooks, delivery.id).status, DELIVERED)
        self.assertEqual(len(self.sender.calls), 1)

    def test_subscriber_gone_from_store_ends_delivery(self) -> None:
        """find() misses and the store does not have it either: dead, as removed."""
        store = StaleViewStore()
        hooks = self.hooks(subscribers=store)
        subscriber = self.subscribe(hooks, "order.*")
        self.sender.queue(URL, HOLD)
        (first,) = self.send(hooks, "order.created").deliveries
        self.sender.queue(URL, Outcome(status_code=500, error_kind="status"))
        self.successResultOf(hooks.unsubscribe(subscriber.id))
        self.sender.finish(Outcome(status_code=500, error_kind="status"))
        self.clock.advance(10.0)
        stored = self.stored(hooks, first.id)
        self.assertEqual(stored.status, DEAD)
        self.assertIn("was removed", stored.last_error or "")


class HostSlotTests(AppTestCase):
    """max_per_host is applied by the application, bounded by each delivery's lease."""

    def test_waits_for_a_host_slot(self) -> None:
        """With max_per_host=2, a third delivery to the host waits (no attempt) until a
        slot frees, then is attempted without being given back."""
        hooks = self.hooks(settings=Settings(record_delay=0.0, max_per_host=2))
        self.subscribe(hooks, "order.*")
        self.sender.queue(URL, HOLD, HOLD, HOLD)
        sent = [self.send(hooks, "order.created").deliveries[0] for _ in range(3)]
        self.assertEqual(len(self.sender.calls), 2)
        self.sender.finish()
        self.assertEqual(len(self.sender.calls), 3)
        self.assertEqual(self.sender.calls[2][0].id, sent[2].id)
        self.sender.finish()
        self.sender.finish()
        self.assertEqual({self.stored(hooks, d.id).status for d in sent}, {DELIVERED})

    def test_given_back_before_its_lease_is_spent(self) -> None:
        """
        A delivery that waits for a host slot longer than its lease can cover (lease -
        timeout - margin) is given back to the store unattempted, with no attempt
        counted, so that no other process claims it while this one still holds it; it is
        attempted once a slot is free.
        """
        settings = Settings(
            record_delay=0.0, max_per_host=1, timeout=5.0, lease=10.0, busy_retry=1.0
        )
        hooks = self.hooks(settings=settings)
        self.subscribe(hooks, "order.*")
        self.sender.queue(URL, HOLD)
        first = self.send(hooks, "order.created").deliveries[0]
        waiting = self.send(hooks, "order.created").deliveries[0]
        self.assertEqual(len(self.sender.calls), 1)
        self.clock.advance(4.0 - 0.01)  # lease 10 - timeout 5 - margin 1: gives up at 4 s
        self.assertEqual(self.stored(hooks, waiting.id).status, IN_FLIGHT)
        self.clock.advance(0.01)
        held = self.stored(hooks, waiting.id)
        self.assertEqual((held.status, held.attempts), (PENDING, 0))
        self.assertEqual(len(self.sender.calls), 1)
        self.sender.finish()
        self.assertEqual(self.stored(hooks, first.id).status, DELIVERED)
        self.clock.advance(1.0)
        self.assertEqual(self.stored(hooks, waiting.id).status, DELIVERED)
        self.assertEqual(len(self.sender.calls), 2)


class ObserveUpdatesTests(AppTestCase):
    """observe_updates: every recorded outcome, successes included."""

    def test_observers_see_every_update_until_stopped(self) -> None:
        """An observer is called with each delivery and its update (a success included);
        after stop() it is not called; one that raises is logged and does not disturb the
        delivery or the other observers."""
        hooks = self.hooks()
        self.subscribe(hooks, "order.*")
        seen: list[str] = []

        def broken(delivery: Delivery, update: DeliveryUpdate) -> None:
            raise RuntimeError("observer bug")

        hooks.observe_updates(broken)
        stop = hooks.observe_updates(lambda delivery, update: seen.append(update.status))
        (delivery,) = self.send(hooks, "order.created").deliveries
        self.assertEqual(seen, [DELIVERED])
        self.assertEqual(self.stored(hooks, delivery.id).status, DELIVERED)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        stop()
        stop()
        self.send(hooks, "order.created")
        self.assertEqual(seen, [DELIVERED])
        self.flushLoggedErrors(RuntimeError)
