"""
Integration tests of webhook delivery on the real reactor: :class:`Hooks` POSTs to real
``twisted.web`` (or raw TCP) receivers listening on ``127.0.0.1``, port 0, through its own
:class:`~twisted_hooks.webhooks.sender.HTTPSender` (real pool, real safe agent, real
sockets). The unit suites use ``StubTreq`` and a ``Clock``; these pin what only real HTTP
shows: headers and signatures as a receiver sees them, exactly-once delivery under load,
retries, redirects, deadlines over a stalled body, connection-time recipient checks and
connection reuse.

Every test stops its application and waits for every connection, client and server side,
to close before the listening port is closed, so trial's reactor-cleanliness check passes.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl

import attrs
from standardwebhooks.webhooks import Webhook
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

import twisted_hooks
from twisted_hooks.webhooks.app import Hooks, Settings
from twisted_hooks.webhooks.delivery import DEAD, DELIVERED, ErrorKind
from twisted_hooks.webhooks.encoding import FORM, JSON
from twisted_hooks.webhooks.events import Event
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.signing import generate_secret, verify, verify_standard
from twisted_hooks.webhooks.subscribers import Subscriber
from twisted_hooks.webhooks.validators import (
    RecipientPolicy,
    SecurityError,
    block_internal_ips,
    ensure_protocol,
)

#: No retry: a failed attempt makes the delivery dead at once, so ``drain()`` fires.
NO_RETRY = RetryPolicy(delays=())


def local_policy() -> RecipientPolicy:
    """Internal addresses blocked except 127.0.0.0/8; any port (receivers use port 0)."""
    return RecipientPolicy(
        validators=(ensure_protocol("http", "https"), block_internal_ips()),
        allowed_networks=["127.0.0.0/8"],
    )


@attrs.frozen
class Received:
    """One request as the receiver saw it; header names in lower case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


#: What the receiver answers: (status, extra headers, body).
Answer = tuple[int, dict[str, str], bytes]


class Receiver(Resource):
    """
    Records every request (any method, any path) and answers from a script, then with the
    default answer.
    """

    isLeaf = True

    def __init__(self, default: Answer = (200, {}, b"ok")) -> None:
        super().__init__()
        self.requests: list[Received] = []
        self.script: list[Answer] = []
        self.default = default

    def render(self, request: Request) -> bytes:
        headers = {
            name.decode("latin-1").lower(): values[0].decode("latin-1")
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        assert request.content is not None
        self.requests.append(
            Received(
                method=(request.method or b"").decode("ascii"),
                path=(request.path or b"").decode("ascii"),
                headers=headers,
                body=request.content.read(),
            )
        )
        code, extra, body = self.script.pop(0) if self.script else self.default
        request.setResponseCode(code)
        for name, value in extra.items():
            request.setHeader(name, value)
        return body


class QuietSite(Site):
    """A ``Site`` that writes no access log line per request."""

    def log(self, request: Request) -> None:
        pass


class ConnectionCounter(WrappingFactory):
    """
    Wraps a server factory to count the TCP connections it accepted and to wait until
    every one of them has closed.
    """

    def __init__(self, wrapped: Factory) -> None:
        super().__init__(wrapped)
        self.opened = 0
        self._waiters: list[Deferred[None]] = []

    def registerProtocol(self, p: ProtocolWrapper) -> None:
        self.opened += 1
        super().registerProtocol(p)

    def unregisterProtocol(self, p: ProtocolWrapper) -> None:
        super().unregisterProtocol(p)
        if not self.protocols:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def all_closed(self) -> Deferred[None]:
        """Fires once no accepted connection is open."""
        if not self.protocols:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        return waiter


class Stalling(Protocol):
    """
    Answers the first request with headers and part of a promised body, then says nothing
    more; notes when the connection is lost.
    """

    factory: StallingFactory

    def connectionMade(self) -> None:
        self._buffer = b""
        self._answered = False

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        if not self._answered and b"\r\n\r\n" in self._buffer:
            self._answered = True
            self.factory.requests += 1
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Content-Length: 1000\r\n\r\n" + b"x" * 10
            )

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        self.factory.lost_at.append(time.monotonic())
        waiters, self.factory.waiters = self.factory.waiters, []
        for waiter in waiters:
            waiter.callback(None)


class StallingFactory(Factory):
    protocol = Stalling

    def __init__(self) -> None:
        self.requests = 0
        self.lost_at: list[float] = []
        self.waiters: list[Deferred[None]] = []

    def lost(self) -> Deferred[None]:
        """Fires once a connection has been lost (at once if one already was)."""
        if self.lost_at:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self.waiters.append(waiter)
        return waiter


def header_problems(received: Received, subscriber: Subscriber, event: str) -> list[str]:
    """
    Everything wrong with the headers and signatures of one delivery request as a receiver
    checks them; an empty list when all is right.
    """
    problems = []
    headers = received.headers
    body = received.body
    if received.method != "POST":
        problems.append(f"method {received.method}")
    if headers.get("hook-event") != event:
        problems.append(f"Hook-Event {headers.get('hook-event')!r}")
    if headers.get("hook-subscription") != subscriber.id:
        problems.append("Hook-Subscription")
    if headers.get("webhook-id") != headers.get("hook-delivery") or not headers.get("webhook-id"):
        problems.append("webhook-id is not Hook-Delivery")
    if headers.get("content-type") != subscriber.content_type:
        problems.append(f"Content-Type {headers.get('content-type')!r}")
    agent = headers.get("user-agent", "")
    if not agent.startswith(f"twisted_hooks/{twisted_hooks.__version__} "):
        problems.append(f"User-Agent {agent!r}")
    if not verify(headers.get("hook-hmac", ""), subscriber.digest, subscriber.secret, body):
        problems.append("Hook-HMAC")
    for secret in subscriber.signing_secrets:
        try:
            verify_standard(secret, headers, body)
        except Exception as error:
            problems.append(f"verify_standard: {error}")
        key: str | bytes = secret if secret.startswith("whsec_") else secret.encode("utf-8")
        try:
            Webhook(key).verify(body, headers, json_parse=False)
        except Exception as error:
            problems.append(f"standardwebhooks: {error!r}")
    return problems


def decode(received: Received) -> dict[str, Any]:
    """The body as the receiver reads it (JSON, or form fields as strings)."""
    if received.headers.get("content-type") == FORM:
        return dict(parse_qsl(received.body.decode("ascii"), strict_parsing=True))
    decoded: dict[str, Any] = json.loads(received.body)
    return decoded


class IntegrationTestCase(TestCase):
    """Starts receivers and applications on the real reactor, and cleans them up."""

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor

    async def listen(self, factory: Factory) -> tuple[IListeningPort, ConnectionCounter]:
        """Listen on 127.0.0.1, port 0; closed (after its connections) at cleanup."""
        counter = ConnectionCounter(factory)
        tcp: IReactorTCP = self.reactor
        port = await TCP4ServerEndpoint(tcp, 0, interface="127.0.0.1").listen(counter)
        self.addCleanup(port.stopListening)
        self.addCleanup(self.closed_in_time, counter)
        return port, counter

    async def closed_in_time(self, counter: ConnectionCounter) -> None:
        closed = counter.all_closed()
        clock: IReactorTime = self.reactor
        closed.addTimeout(5, clock)
        await closed

    async def receiver(
        self, default: Answer = (200, {}, b"ok")
    ) -> tuple[Receiver, str, ConnectionCounter]:
        """A recording receiver; returns it, its base URL (no trailing slash), its counter."""
        resource = Receiver(default)
        port, counter = await self.listen(QuietSite(resource))
        return resource, f"http://127.0.0.1:{port.getHost().port}", counter  # type: ignore[attr-defined]

    def hooks(self, **settings: Any) -> Hooks:
        """A started application whose policy allows 127.0.0.0/8; stopped at cleanup."""
        settings.setdefault("policy", local_policy())
        hooks = Hooks(self.reactor, settings=Settings(**settings))
        hooks.startService()
        self.addCleanup(hooks.stopService)
        return hooks

    async def settle(self, hooks: Hooks) -> None:
        """Wait for every delivery to end, within a deadline."""
        drained = hooks.drain()
        drained.addTimeout(30, self.reactor)
        await drained


class ExactlyOnceTests(IntegrationTestCase):
    EVENTS = 1000

    async def test_thousand_events_to_three_subscribers(self) -> None:
        """
        1,000 events to 3 subscribers (sha256 JSON, sha512 with a rotated secret, sha1
        form-encoded with a plain-text secret) arrive as exactly 3,000 requests: each
        delivery once, to the subscriber it was made for, every event to every subscriber
        once, with the right Hook-* headers, both signature schemes verifying (ours and
        the standardwebhooks package), our User-Agent, the right Content-Type, webhook-id
        equal to Hook-Delivery, and bodies that decode to the data sent.
        """
        receiver, base, _ = await self.receiver()
        hooks = self.hooks()
        subscribers = [
            await hooks.subscribe("order.*", f"{base}/json"),
            await hooks.subscribe(
                "order.created",
                f"{base}/sha512",
                digest="sha512",
                previous_secrets=(generate_secret(),),
            ),
            await hooks.subscribe(
                "*.created",
                f"{base}/form",
                digest="sha1",
                content_type=FORM,
                secret="plain text secret, used as UTF-8",
            ),
        ]
        by_id = {subscriber.id: subscriber for subscriber in subscribers}

        def data(n: int) -> dict[str, Any]:
            return {"n": n, "label": f"order {n} & co", "paid": "yes"}

        results = await gatherResults(
            [hooks.send("order.created", data(n)) for n in range(self.EVENTS)]
        )
        made = {}
        for n, result in enumerate(results):
            self.assertEqual(len(result.deliveries), 3)
            for delivery in result.deliveries:
                made[delivery.id] = (delivery.subscriber.id, n)
        self.assertEqual(len(made), 3 * self.EVENTS)
        await self.settle(hooks)

        requests = receiver.requests
        self.assertEqual(len(requests), 3 * self.EVENTS)
        counts = Counter(r.headers.get("hook-delivery") for r in requests)
        self.assertEqual(set(counts), set(made))
        self.assertEqual(set(counts.values()), {1})
        reached: Counter[tuple[str, int]] = Counter()
        problems: list[tuple[str, list[str]]] = []
        for received in requests:
            subscriber_id, n = made[received.headers["hook-delivery"]]
            self.assertEqual(received.headers["hook-subscription"], subscriber_id)
            subscriber = by_id[subscriber_id]
            self.assertEqual(received.path, "/" + subscriber.url.rsplit("/", 1)[1])
            found = header_problems(received, subscriber, "order.created")
            if found:
                problems.append((received.headers["hook-delivery"], found))
            body = decode(received)
            expected = data(n)
            if subscriber.content_type == FORM:
                expected = {key: str(value) for key, value in expected.items()}
            self.assertEqual(body, expected)
            reached[(subscriber_id, n)] += 1
        self.assertEqual(problems[:5], [])
        self.assertEqual(len(reached), 3 * self.EVENTS)
        self.assertEqual(set(reached.values()), {1})
        self.assertEqual(
            Counter(r.headers["content-type"] for r in requests),
            {JSON: 2 * self.EVENTS, FORM: self.EVENTS},
        )
        self.assertEqual(hooks.unfinished, 0)
        for delivery_id in list(made)[:: self.EVENTS // 10]:
            delivery = await hooks.deliveries.get(delivery_id)
            self.assertEqual((delivery.status, delivery.attempts), (DELIVERED, 1))


class FailureTests(IntegrationTestCase):
    async def test_retries_until_success(self) -> None:
        """
        A receiver answering 500 twice and then 200 gets three attempts of the one
        delivery, retried on the fast schedule, with the same Hook-Delivery and
        webhook-id each time and each attempt signed for its own timestamp; the delivery
        ends delivered on attempt 3.
        """
        receiver, base, _ = await self.receiver()
        receiver.script = [(500, {}, b"no"), (500, {}, b"still no")]
        hooks = self.hooks(retry=RetryPolicy(delays=(0.05, 0.05), jitter=0))
        subscriber = await hooks.subscribe("thing.done", f"{base}/hook")
        result = await hooks.send("thing.done", {"n": 1})
        await self.settle(hooks)

        self.assertEqual(len(receiver.requests), 3)
        delivery_id = result.deliveries[0].id
        for received in receiver.requests:
            self.assertEqual(received.headers["hook-delivery"], delivery_id)
            self.assertEqual(received.headers["webhook-id"], delivery_id)
            self.assertEqual(header_problems(received, subscriber, "thing.done"), [])
            self.assertEqual(json.loads(received.body), {"n": 1})
        delivery = await hooks.deliveries.get(delivery_id)
        self.assertEqual((delivery.status, delivery.attempts), (DELIVERED, 3))
        attempts = await hooks.deliveries.attempts(delivery_id)
        self.assertEqual([a.status_code for a in attempts], [500, 500, 200])
        self.assertEqual([a.number for a in attempts], [1, 2, 3])
        self.assertEqual(
            [a.error_kind for a in attempts], [ErrorKind.STATUS, ErrorKind.STATUS, None]
        )
        gaps = [b.started_at - a.started_at for a, b in itertools.pairwise(attempts)]
        self.assertTrue(all(gap >= 0.05 for gap in gaps), gaps)

    async def test_gone_deactivates(self) -> None:
        """
        A 410 answer makes the delivery dead after one attempt (no retry) and deactivates
        the subscription, so a later event reaches nobody.
        """
        receiver, base, _ = await self.receiver(default=(410, {}, b"gone"))
        hooks = self.hooks(retry=RetryPolicy(delays=(0.05,), jitter=0))
        subscriber = await hooks.subscribe("thing.*", f"{base}/hook")
        result = await hooks.send("thing.done", {"n": 1})
        await self.settle(hooks)

        self.assertEqual(len(receiver.requests), 1)
        delivery = await hooks.deliveries.get(result.deliveries[0].id)
        self.assertEqual((delivery.status, delivery.attempts), (DEAD, 1))
        attempts = await hooks.deliveries.attempts(delivery.id)
        self.assertEqual(attempts[0].error_kind, ErrorKind.GONE)
        stored = await hooks.subscribers.get(subscriber.id)
        self.assertFalse(stored.active)
        later = await hooks.send("thing.done", {"n": 2})
        self.assertEqual(later.deliveries, ())
        await self.settle(hooks)
        self.assertEqual(len(receiver.requests), 1)

    async def test_redirect_not_followed(self) -> None:
        """
        A 302 answer is a failed attempt of kind ``redirect`` naming the Location; the
        Location is never requested.
        """
        receiver, base, _ = await self.receiver()
        receiver.script = [(302, {"Location": f"{base}/elsewhere"}, b"")]
        hooks = self.hooks(retry=NO_RETRY)
        await hooks.subscribe("thing.done", f"{base}/hook")
        result = await hooks.send("thing.done", {"n": 1})
        await self.settle(hooks)
        # Leave a follow-up request, if one were (wrongly) made, time to arrive.
        await deferLater(self.reactor, 0.1, lambda: None)

        self.assertEqual([r.path for r in receiver.requests], ["/hook"])
        delivery = await hooks.deliveries.get(result.deliveries[0].id)
        self.assertEqual(delivery.status, DEAD)
        attempts = await hooks.deliveries.attempts(delivery.id)
        self.assertEqual(
            (attempts[0].status_code, attempts[0].error_kind), (302, ErrorKind.REDIRECT)
        )
        self.assertIn("/elsewhere", attempts[0].error_message or "")

    async def test_stalled_body_times_out(self) -> None:
        """
        A receiver that sends the headers and part of the body, then stalls, makes the
        attempt fail as a timeout within the one deadline (headers and body together),
        and the connection is dropped.
        """
        factory = StallingFactory()
        port, _ = await self.listen(factory)
        url = f"http://127.0.0.1:{port.getHost().port}/hook"  # type: ignore[attr-defined]
        hooks = self.hooks(timeout=0.5, lease=5, retry=NO_RETRY)
        await hooks.subscribe("thing.done", url)
        started = time.monotonic()
        result = await hooks.send("thing.done", {"n": 1})
        await self.settle(hooks)
        ended = time.monotonic()

        self.assertEqual(factory.requests, 1)
        self.assertGreaterEqual(ended - started, 0.45)
        self.assertLess(ended - started, 2.0)
        attempts = await hooks.deliveries.attempts(result.deliveries[0].id)
        self.assertEqual(attempts[0].error_kind, ErrorKind.TIMEOUT)
        self.assertIsNone(attempts[0].status_code)
        lost = factory.lost()
        lost.addTimeout(2, self.reactor)
        await lost
        self.assertLess(factory.lost_at[0] - started, 2.0)

    async def test_default_policy_refuses_loopback(self) -> None:
        """
        With the default recipient policy (no allow-list), a subscriber at 127.0.0.1 is
        refused at connection time with ``ErrorKind.SECURITY``: nothing reaches the
        receiver and the delivery is dead after one attempt, though retries were left.
        ``subscribe`` refuses the same URL at once, and ``localhost`` too (it names the
        loopback addresses); stored by another path, both are refused at connection time.
        """
        receiver, base, counter = await self.receiver()
        hooks = Hooks(self.reactor, settings=Settings(retry=RetryPolicy(delays=(0.05,))))
        hooks.startService()
        self.addCleanup(hooks.stopService)
        with self.assertRaises(SecurityError):
            hooks.subscribe("thing.done", f"{base}/hook")
        # Stored by another path (an older policy, a direct store write): the
        # connection-time check still refuses it.
        await hooks.subscribers.add(Subscriber(event="thing.done", url=f"{base}/hook"))
        with self.assertRaises(SecurityError):
            hooks.subscribe("thing.done", "http://localhost/hook")
        await hooks.subscribers.add(Subscriber(event="thing.done", url="http://localhost/hook"))
        result = await hooks.send("thing.done", {"n": 1})
        self.assertEqual(len(result.deliveries), 2)
        await self.settle(hooks)

        self.assertEqual(receiver.requests, [])
        self.assertEqual(counter.opened, 0)
        for made in result.deliveries:
            delivery = await hooks.deliveries.get(made.id)
            self.assertEqual((delivery.status, delivery.attempts), (DEAD, 1))
            attempts = await hooks.deliveries.attempts(made.id)
            self.assertEqual(attempts[0].error_kind, ErrorKind.SECURITY)
            self.assertIn("127.0.0.1", attempts[0].error_message or "")
            self.assertIsInstance(attempts[0].exception, SecurityError)


class KeepAliveTests(IntegrationTestCase):
    REQUESTS = 20

    async def test_connections_are_reused(self) -> None:
        """
        With keep-alive (the default), deliveries made one after the other reuse a pooled
        connection: the receiver accepts fewer connections than it gets requests.
        """
        receiver, base, counter = await self.receiver()
        hooks = self.hooks()
        await hooks.subscribe("thing.done", f"{base}/hook")
        for n in range(self.REQUESTS):
            await hooks.send("thing.done", {"n": n})
            await self.settle(hooks)
        self.assertEqual(len(receiver.requests), self.REQUESTS)
        self.assertLess(counter.opened, self.REQUESTS)
        self.assertLessEqual(counter.opened, 2)

    async def test_concurrent_deliveries_reuse_connections(self) -> None:
        """
        Deliveries sent together, with at most 4 to the host at once, use no more
        connections than that cap.
        """
        receiver, base, counter = await self.receiver()
        hooks = self.hooks(max_per_host=4)
        await hooks.subscribe("thing.done", f"{base}/hook")
        await gatherResults([hooks.send("thing.done", {"n": n}) for n in range(self.REQUESTS * 5)])
        await self.settle(hooks)
        self.assertEqual(len(receiver.requests), self.REQUESTS * 5)
        self.assertLessEqual(counter.opened, 4)

    async def test_no_keepalive_one_connection_per_request(self) -> None:
        """
        An event with ``allow_keepalive=False`` closes the connection after each attempt:
        one connection per request.
        """
        receiver, base, counter = await self.receiver()
        hooks = self.hooks()
        await hooks.subscribe("thing.done", f"{base}/hook")
        event = Event("thing.done", app=hooks, allow_keepalive=False)
        for n in range(self.REQUESTS):
            await event.send({"n": n})
            await self.settle(hooks)
        self.assertEqual(len(receiver.requests), self.REQUESTS)
        self.assertEqual(counter.opened, self.REQUESTS)
        self.assertTrue(all(r.headers.get("connection") == "close" for r in receiver.requests))
