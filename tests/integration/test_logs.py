"""
Tests of what delivery logs say: recipient URLs reduced to origin and path
(:func:`~twisted_hooks.webhooks.logs.loggable_url`) at every log site, no secret of a
subscriber in any log event, no "Starting factory"/"Stopping factory" lines for webhook
connections (:class:`~twisted_hooks.webhooks.logs.QuietConnectionPool`), and exactly one
line per recorded outcome.

The unit tests run on a ``Clock`` with fakes (:class:`twisted_hooks.testing.FakeSender`,
``StubTreq``, a ``MemoryReactorClock`` with a table resolver) and capture
``twisted.logger`` events with ``capturedLogs``. :class:`RealConnectionTests` delivers
over real sockets on ``127.0.0.1``, where Twisted's connection factories would log.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IAddress, IHostnameResolver, IResolutionReceiver
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import URI, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Request
from zope.interface import implementer

from tests.integration.test_integration_webhooks import IntegrationTestCase, local_policy
from tests.unit.test_app import ERROR, GONE, OK
from tests.unit.test_sender import make_delivery
from twisted_hooks.testing import FakeSender, Outcome
from twisted_hooks.webhooks.app import Hooks, OperationalEvent, Settings
from twisted_hooks.webhooks.delivery import DEAD, DELIVERED, Attempt, ErrorKind
from twisted_hooks.webhooks.events import SendOptions
from twisted_hooks.webhooks.logs import UNPARSABLE_URL, QuietConnectionPool, loggable_url
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.safe_agent import SafeEndpointFactory, safe_agent
from twisted_hooks.webhooks.sender import HTTPSender
from twisted_hooks.webhooks.subscribers import Subscriber

#: Secrets a recipient URL may carry; none of them may reach a log.
PASSWORD = "pw-Zq81xLr"
QUERY_KEY = "key-Hn3vT0w"
FRAGMENT = "frag-Ua77pQ"
#: A subscriber's signing secret and a custom header's value; never logged either.
SIGNING_SECRET = "signing-Kd02mVe"
HEADER_VALUE = "Bearer hdr-Wm5sN2"
SECRETS = (PASSWORD, QUERY_KEY, FRAGMENT, SIGNING_SECRET, HEADER_VALUE)

#: A recipient URL with a password and a key in its query string (and a fragment).
SECRET_URL = f"https://alice:{PASSWORD}@hooks.example.com/in/orders?api_key={QUERY_KEY}#{FRAGMENT}"
#: What logs may show of it.
SHOWN_URL = "https://hooks.example.com/in/orders"
#: A URL the recipient policy accepts, with a key in its query string.
KEY_URL = f"https://hooks.example.com/in/orders?api_key={QUERY_KEY}#{FRAGMENT}"

ONE_RETRY = RetryPolicy(delays=(10.0,), jitter=0.0)


def leaks(events: Iterable[LogEvent]) -> list[str]:
    """The log events (formatted, and every field's representation) holding a secret."""
    found = []
    for event in events:
        text = formatEvent(event) + " " + repr(event)
        failure = event.get("log_failure")
        if failure is not None:
            text += failure.getTraceback()
        if any(secret in text for secret in SECRETS):
            found.append(text)
    return found


def about(events: Iterable[LogEvent], delivery_id: str) -> list[LogEvent]:
    """The events that name ``delivery_id``, in a field or in their text."""
    return [
        event
        for event in events
        if event.get("delivery_id") == delivery_id or delivery_id in formatEvent(event)
    ]


def factory_lines(events: Iterable[LogEvent]) -> list[str]:
    """The formatted events that speak of a factory (Twisted's start/stop lines)."""
    return [formatEvent(e) for e in events if "factory" in formatEvent(e).lower()]


# -- loggable_url ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (SECRET_URL, SHOWN_URL),
        ("https://hooks.example.com/in", "https://hooks.example.com/in"),
        ("http://hooks.example.com:8080/a/b?x=1", "http://hooks.example.com:8080/a/b"),
        (f"http://user:{PASSWORD}@127.0.0.1:9000/", "http://127.0.0.1:9000/"),
        (f"http://{PASSWORD}@h.example/p", "http://h.example/p"),
        (f"http://a:b@c@h.example/p?k={QUERY_KEY}", "http://h.example/p"),
        (f"http://[::1]:8443/x?t={QUERY_KEY}", "http://[::1]:8443/x"),
        ("https://h.example", "https://h.example"),
        (f"https://h.example?k={QUERY_KEY}", "https://h.example"),
        (f"https://h.example/p;params?k={QUERY_KEY}", "https://h.example/p;params"),
        (f"/relative/path?k={QUERY_KEY}", "/relative/path"),
        (f"  https://h.example/p?k={QUERY_KEY}  ", "https://h.example/p"),
    ],
)
def test_loggable_url_keeps_origin_and_path(url: str, shown: str) -> None:
    """loggable_url keeps scheme, host, port and path, and drops the user information,
    the query string and the fragment."""
    assert loggable_url(url) == shown


def test_loggable_url_docstring_example() -> None:
    """The example of loggable_url's docstring holds."""
    assert (
        loggable_url("https://user:pw@hooks.example.com:8443/in/?api_key=s3cret#frag")
        == "https://hooks.example.com:8443/in/"
    )


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:pass#{PASSWORD}@h.example/",  # the fragment starts inside the password
        f"http://user:pa?{PASSWORD}@h.example/",  # the query starts inside the password
        f"http://user:{PASSWORD}@[::1/x",  # a bracket left open
        f"http://h.example:port{QUERY_KEY}/",  # a port that is not a number
    ],
)
def test_loggable_url_unparsable_shows_nothing(url: str) -> None:
    """A URL that does not split into the parts it seems to have gives the fixed
    placeholder: no piece of it, password included, is logged."""
    assert loggable_url(url) == UNPARSABLE_URL


def test_loggable_url_bytes() -> None:
    """URLs given as bytes (as Twisted's agent holds them) are reduced the same way."""
    assert loggable_url(SECRET_URL.encode("utf-8")) == SHOWN_URL


def test_subscriber_repr_hides_secrets() -> None:
    """A subscriber's representation (which reaches logs inside events and tracebacks)
    shows the URL's origin and path and no secret: not the signing secret, nor previous
    secrets, nor custom header values."""
    subscriber = Subscriber(
        event="order.*",
        url=SECRET_URL,
        secret=SIGNING_SECRET,
        previous_secrets=[SIGNING_SECRET + "-old"],
        headers={"Authorization": HEADER_VALUE},
    )
    text = repr(subscriber)
    assert f"url={SHOWN_URL!r}" in text
    assert "Authorization" in text
    for secret in SECRETS:
        assert secret not in text, secret


# -- the quiet connection pool ---------------------------------------------------------------


class QuietPoolTests(SynchronousTestCase):
    """Webhook connections are opened by factories that log nothing."""

    def start_and_stop(self, pool: HTTPConnectionPool) -> list[LogEvent]:
        """The log events of one connection factory of ``pool`` starting and stopping."""
        factory = pool._factory(lambda protocol: None, "endpoint")
        with capturedLogs() as events:
            factory.doStart()
            factory.doStop()
        return list(events)

    def test_stock_pool_factory_is_noisy(self) -> None:
        """Twisted's own pool logs "Starting factory" and "Stopping factory" for each
        connection (what the quiet pool is for)."""
        lines = factory_lines(self.start_and_stop(HTTPConnectionPool(Clock())))
        self.assertEqual(len(lines), 2, lines)

    def test_quiet_pool_factory_logs_nothing(self) -> None:
        """QuietConnectionPool's connection factories start and stop without a log event."""
        self.assertEqual(self.start_and_stop(QuietConnectionPool(Clock())), [])

    def test_sender_uses_quiet_pools(self) -> None:
        """HTTPSender's own pools, kept-alive and not, are QuietConnectionPools."""
        sender = HTTPSender(MemoryReactorClock())
        sender._client(sender.policy, True)
        sender._client(sender.policy, False)
        self.assertEqual(len(sender._pools), 2)
        for pool in sender._pools:
            self.assertIsInstance(pool, QuietConnectionPool)

    def test_safe_agent_default_pool_is_quiet(self) -> None:
        """safe_agent() without a pool uses a non-persistent QuietConnectionPool; a pool
        given is used as is."""
        agent: Any = safe_agent(MemoryReactorClock())
        self.assertIsInstance(agent._pool, QuietConnectionPool)
        self.assertFalse(agent._pool.persistent)
        given = HTTPConnectionPool(MemoryReactorClock())
        self.assertIs(safe_agent(MemoryReactorClock(), pool=given)._pool, given)  # type: ignore[attr-defined]


# -- one line per outcome --------------------------------------------------------------------


class OutcomeLogTests(SynchronousTestCase):
    """Each recorded outcome is one log line, with stable fields and origin-and-path URLs."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000.0)
        self.sender = FakeSender(self.clock)

    def hooks(self, **settings: Any) -> Hooks:
        settings.setdefault("retry", ONE_RETRY)
        settings.setdefault("record_delay", 0.0)
        hooks = Hooks(
            self.clock,
            settings=Settings(**settings),
            sender=self.sender,
            rng=random.Random(0),
            default_secret="default-secret",
        )
        hooks.startService()
        self.addCleanup(lambda: hooks.stopService() if hooks.running else None)
        return hooks

    def subscribe(self, hooks: Hooks, url: str = SECRET_URL, **fields: Any) -> Subscriber:
        """Store a subscriber of ``order.*`` at ``url`` (straight into the store, as a
        URL with credentials stored before they were refused would be found there)."""
        fields.setdefault("secret", SIGNING_SECRET)
        fields.setdefault("headers", {"Authorization": HEADER_VALUE})
        subscriber = Subscriber(event="order.*", url=url, **fields)
        return self.successResultOf(hooks.subscribers.add(subscriber))

    def send(self, hooks: Hooks) -> str:
        """Send order.created; the id of its one delivery."""
        result = self.successResultOf(hooks.send("order.created", {"n": 1}))
        [delivery] = result.deliveries
        return delivery.id

    def test_success_is_one_info_line(self) -> None:
        """A successful delivery logs exactly one line about it, at info level:
        "delivered EVENT ID to ORIGIN/PATH in N ms", with the stable fields; no secret."""
        hooks = self.hooks()
        self.subscribe(hooks)
        self.sender.queue(SECRET_URL, Outcome(duration=0.01))
        with capturedLogs() as events:
            delivery_id = self.send(hooks)
            self.assertEqual(
                self.successResultOf(hooks.deliveries.get(delivery_id)).status, DELIVERED
            )
        [line] = about(events, delivery_id)
        self.assertEqual(line["log_level"], LogLevel.info)
        self.assertEqual(
            formatEvent(line), f"delivered order.created {delivery_id} to {SHOWN_URL} in 10 ms"
        )
        self.assertEqual(
            {key: line[key] for key in ("delivery_id", "event", "url", "attempt", "elapsed")},
            {
                "delivery_id": delivery_id,
                "event": "order.created",
                "url": SHOWN_URL,
                "attempt": 1,
                "elapsed": 10.0,
            },
        )
        self.assertEqual((line["status_code"], line["error_kind"]), (200, None))
        self.assertEqual(leaks(events), [])

    def test_failure_then_dead_one_warn_line_each(self) -> None:
        """A failed attempt with a retry left logs one warn line ("failed ... (REASON),
        retry at TIME", the time in UTC); the last failed attempt logs one warn line
        ("dead ... after N attempt(s) (REASON)") and no "failed" line besides. No secret
        reaches either."""
        hooks = self.hooks()
        self.subscribe(hooks)
        self.sender.queue(SECRET_URL, ERROR, ERROR)
        with capturedLogs() as events:
            delivery_id = self.send(hooks)
        [failed] = about(events, delivery_id)
        self.assertEqual(failed["log_level"], LogLevel.warn)
        self.assertEqual(
            formatEvent(failed),
            f"failed order.created {delivery_id} to {SHOWN_URL} on attempt 1 "
            "(500 Internal Server Error), retry at 2023-11-14T22:13:30Z",
        )
        self.assertEqual(failed["retry_at"], "2023-11-14T22:13:30Z")
        self.assertEqual((failed["status_code"], failed["error_kind"]), (500, ErrorKind.STATUS))
        self.assertEqual(failed["reason"], "500 Internal Server Error")
        with capturedLogs() as later:
            self.clock.advance(10)
        self.assertEqual(self.successResultOf(hooks.deliveries.get(delivery_id)).status, DEAD)
        [dead] = about(later, delivery_id)
        self.assertEqual(dead["log_level"], LogLevel.warn)
        self.assertEqual(
            formatEvent(dead),
            f"dead order.created {delivery_id} to {SHOWN_URL} after 2 attempt(s) "
            "(500 Internal Server Error)",
        )
        self.assertEqual(dead["attempt"], 2)
        self.assertEqual(leaks(list(events) + list(later)), [])

    def test_permanent_failure_is_one_dead_line(self) -> None:
        """A failure that ends the delivery at once (410 Gone) logs one "dead" line for the
        delivery, though retries were left; the deactivation that follows names the
        subscriber, never the secrets."""
        hooks = self.hooks()
        self.subscribe(hooks)
        self.sender.queue(SECRET_URL, GONE)
        with capturedLogs() as events:
            delivery_id = self.send(hooks)
        lines = about(events, delivery_id)
        self.assertEqual([formatEvent(e).split()[0] for e in lines], ["dead"], lines)
        self.assertEqual(lines[0]["error_kind"], ErrorKind.GONE)
        self.assertEqual(leaks(events), [])

    def test_endpoint_events_show_origin_and_path(self) -> None:
        """The circuit's log lines (opened, then recovered) and the disabling of an
        endpoint name it by origin and path; no secret is logged."""
        hooks = self.hooks(
            retry=RetryPolicy(delays=(), jitter=0.0),
            circuit_failures=1,
            circuit_cooldown=5.0,
            disable_failures=2,
            disable_period=0.0,
        )
        subscriber = self.subscribe(hooks)
        self.sender.queue(SECRET_URL, ERROR, OK, ERROR, ERROR)
        with capturedLogs() as events:
            self.send(hooks)  # fails: the circuit opens
            self.clock.advance(5)
            self.send(hooks)  # the probe succeeds: recovered
            self.send(hooks)  # fails: opens again
            self.clock.advance(5)
            self.send(hooks)  # fails: disabled (2 in a row, any period)
            self.clock.advance(5)
        endpoint = [formatEvent(e) for e in events if e.get("subscriber_id") == subscriber.id]
        self.assertTrue(any("circuit opened" in line for line in endpoint), endpoint)
        self.assertTrue(any("answered again" in line for line in endpoint), endpoint)
        self.assertTrue(any("in a row over" in line for line in endpoint), endpoint)
        for line in endpoint:
            self.assertIn(f"endpoint {subscriber.id} at {SHOWN_URL}: ", line)
        self.assertFalse(self.successResultOf(hooks.subscribers.get(subscriber.id)).active)
        self.assertEqual(leaks(events), [])

    def test_gone_for_unstored_subscriber_shows_origin_and_path(self) -> None:
        """A 410 from a subscriber given with the event (not stored) logs that there is
        nothing to deactivate, naming the URL by origin and path only."""
        hooks = self.hooks()
        self.sender.queue(SECRET_URL, GONE)
        given = Subscriber(
            event="order.*",
            url=SECRET_URL,
            secret=SIGNING_SECRET,
            headers={"Authorization": HEADER_VALUE},
        )
        with capturedLogs() as events:
            hooks.send("order.created", {"n": 1}, options=SendOptions(subscribers=(given,)))
        [line] = [
            formatEvent(e) for e in events if "no subscription to deactivate" in formatEvent(e)
        ]
        self.assertIn(f"at {SHOWN_URL} answered 410 Gone", line)
        self.assertEqual(leaks(events), [])

    def test_failing_operational_handler_logs_no_secret(self) -> None:
        """A handler of operational events that raises is logged by the dispatcher with the
        event's representation: it holds the delivery and its subscriber, and still no
        secret."""
        hooks = self.hooks()
        self.subscribe(hooks)
        self.sender.queue(SECRET_URL, ERROR)

        def broken(event: OperationalEvent) -> None:
            raise RuntimeError("broken handler")

        hooks.dispatcher.add_event_handler(
            broken, "after", use_weakref=False, kind="operational", name=None
        )
        with capturedLogs() as events:
            self.send(hooks)
        failures = [e for e in events if "broken" in formatEvent(e)]
        self.assertTrue(failures, [formatEvent(e) for e in events])
        self.assertIn(SHOWN_URL, repr(failures[0]))
        self.assertEqual(leaks(events), [])
        self.flushLoggedErrors(RuntimeError)


# -- the sender and the safe agent -----------------------------------------------------------


class Redirect(Resource):
    """Answers 301 to a location that repeats the recipient's query string."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        request.setResponseCode(301)
        request.setHeader(
            b"location", f"https://hooks.example.com/new?api_key={QUERY_KEY}".encode()
        )
        return b""


class Raising:
    """A treq-like client whose requests fail with an unexpected error."""

    def post(self, url: str, **kwargs: Any) -> Deferred[Any]:
        return fail(RuntimeError("unexpected"))


def attempt_once(sender: HTTPSender, url: str = SECRET_URL) -> Deferred[Attempt]:
    subscriber = Subscriber(
        event="order.*", url=url, secret=SIGNING_SECRET, headers={"Authorization": HEADER_VALUE}
    )
    return sender.attempt(make_delivery(subscriber), subscriber)


@implementer(IHostnameResolver)
class TableResolver:
    """Resolves names from a table, at once."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Sequence[type[IAddress]] | None = None,
        transportSemantics: str = "TCP",
    ) -> Any:
        resolutionReceiver.resolutionBegan(None)  # type: ignore[arg-type]
        for host in self.table.get(hostName, ()):
            resolutionReceiver.addressResolved(IPv4Address("TCP", host, portNumber))
        resolutionReceiver.resolutionComplete()
        return None


class SenderLogTests(SynchronousTestCase):
    """The sender's and the safe agent's log lines and messages hold no secret."""

    def test_redirect_location_shows_origin_and_path(self) -> None:
        """A redirect's location, which often repeats the query string with its keys, is
        named by origin and path in the attempt's message (which is logged)."""
        clock = Clock()
        sender = HTTPSender(clock, client=StubTreq(Redirect()))  # type: ignore[arg-type]
        attempt = self.successResultOf(attempt_once(sender))
        self.assertEqual(attempt.error_kind, ErrorKind.REDIRECT)
        self.assertEqual(
            attempt.error_message, "301 redirect to 'https://hooks.example.com/new' not followed"
        )

    def test_unexpected_error_log_shows_origin_and_path(self) -> None:
        """An unexpected error of the HTTP client is logged with the URL's origin and path."""
        sender = HTTPSender(Clock(), client=Raising())  # type: ignore[arg-type]
        with capturedLogs() as events:
            attempt = self.successResultOf(attempt_once(sender))
        self.assertEqual(attempt.error_kind, ErrorKind.INTERNAL)
        [logged] = [e for e in events if e.get("log_failure") is not None]
        self.assertEqual(logged["url"], SHOWN_URL)
        self.assertEqual(leaks(events), [])
        self.flushLoggedErrors(RuntimeError)

    def test_refused_recipient_log_shows_no_secret(self) -> None:
        """A host resolving to an internal address is refused at connection time; the log
        line and the attempt's message name the origin only."""
        reactor = MemoryReactorClock()
        reactor.installNameResolver(TableResolver({"hooks.example.com": ["10.1.2.3"]}))
        sender = HTTPSender(reactor)
        with capturedLogs() as events:
            attempt = self.successResultOf(attempt_once(sender, KEY_URL))
        self.assertEqual(attempt.error_kind, ErrorKind.SECURITY)
        refused = [e for e in events if "refused recipient" in formatEvent(e)]
        self.assertEqual(len(refused), 1, [formatEvent(e) for e in events])
        self.assertEqual(refused[0]["recipient"], "https://hooks.example.com:443")
        self.assertNotIn(QUERY_KEY, attempt.error_message or "")
        self.assertEqual(leaks(events), [])

    def test_stored_url_with_password_refused_without_it(self) -> None:
        """A stored URL with a password (from before such URLs were refused) is refused
        when the attempt connects; neither the attempt's message (which is logged) nor
        any log event holds the password or the query-string key."""
        reactor = MemoryReactorClock()
        reactor.installNameResolver(TableResolver({"hooks.example.com": ["93.184.215.14"]}))
        sender = HTTPSender(reactor)
        with capturedLogs() as events:
            attempt = self.successResultOf(attempt_once(sender, SECRET_URL))
        self.assertEqual(attempt.error_kind, ErrorKind.SECURITY)
        for secret in SECRETS:
            self.assertNotIn(secret, attempt.error_message or "")
        self.assertEqual(leaks(events), [])

    def test_connection_failure_log_shows_no_secret(self) -> None:
        """A vetted address refusing the connection is logged with the origin and the
        address, no secret, and no factory line."""
        reactor = MemoryReactorClock()
        reactor.installNameResolver(TableResolver({"hooks.example.com": ["93.184.215.14"]}))
        factory = SafeEndpointFactory(reactor=reactor)
        url = f"http://hooks.example.com/in?api_key={QUERY_KEY}".encode()
        with capturedLogs() as events:
            connecting = factory.endpointForURI(URI.fromBytes(url)).connect(
                Factory.forProtocol(Protocol)
            )
            reactor.tcpClients[0][2].clientConnectionFailed(
                reactor.connectors[0], Failure(ConnectionRefusedError())
            )
        self.failureResultOf(connecting, ConnectionRefusedError)
        [line] = [formatEvent(e) for e in events]
        self.assertTrue(
            line.startswith("could not connect to http://hooks.example.com:80 at 93.184.215.14"),
            line,
        )
        self.assertEqual(leaks(events), [])


# -- real connections ------------------------------------------------------------------------


class RealConnectionTests(IntegrationTestCase):
    """Deliveries over real sockets on 127.0.0.1: what the logs say of them."""

    def secret_url(self, base: str, path: str, password: bool = False) -> str:
        """``base + path`` with a query-string key, and a password if asked."""
        scheme, rest = base.split("://", 1)
        credentials = f"alice:{PASSWORD}@" if password else ""
        return f"{scheme}://{credentials}{rest}{path}?api_key={QUERY_KEY}#{FRAGMENT}"

    async def test_one_success_one_line_no_factory(self) -> None:
        """One successful delivery over a real connection logs exactly one line about it
        ("delivered ..." at info, origin and path only) and no "factory" line at all
        (Twisted's pool would log two, hundreds of characters each)."""
        _, base, _ = await self.receiver((204, {}, b""))
        hooks = self.hooks(policy=local_policy())
        url = self.secret_url(base, "/ok")
        await hooks.subscribe("order.*", url, secret=SIGNING_SECRET)
        with capturedLogs() as events:
            result = await hooks.send("order.created", {"n": 1})
            await self.settle(hooks)
            await hooks.sender.close()  # type: ignore[attr-defined]
        [delivery] = result.deliveries
        lines = about(events, delivery.id)
        self.assertEqual(len(lines), 1, [formatEvent(e) for e in events])
        self.assertEqual(lines[0]["log_level"], LogLevel.info)
        self.assertTrue(
            formatEvent(lines[0]).startswith(
                f"delivered order.created {delivery.id} to {base}/ok in "
            ),
            formatEvent(lines[0]),
        )
        self.assertEqual(factory_lines(events), [])
        self.assertEqual(leaks(events), [])

    async def test_failed_and_dead_one_line_each(self) -> None:
        """A receiver answering 500: the first attempt logs one "failed" line, the last
        one "dead" line, both at warn, with origin and path only, and no factory line."""
        _, base, _ = await self.receiver((500, {}, b"no"))
        hooks = self.hooks(policy=local_policy(), retry=RetryPolicy(delays=(0.05,), jitter=0.0))
        await hooks.subscribe("order.*", self.secret_url(base, "/fail"), secret=SIGNING_SECRET)
        with capturedLogs() as events:
            result = await hooks.send("order.created", {"n": 1})
            await self.settle(hooks)
            await hooks.sender.close()  # type: ignore[attr-defined]
        [delivery] = result.deliveries
        lines = about(events, delivery.id)
        self.assertEqual(
            [(formatEvent(e).split()[0], e["log_level"]) for e in lines],
            [("failed", LogLevel.warn), ("dead", LogLevel.warn)],
            [formatEvent(e) for e in events],
        )
        for line in lines:
            self.assertIn(f" to {base}/fail ", formatEvent(line))
        self.assertEqual(factory_lines(events), [])
        self.assertEqual(leaks(events), [])

    async def test_stored_url_with_password_is_dead_without_it_in_logs(self) -> None:
        """A subscriber stored with a password in its URL (from before such URLs were
        refused) is refused when its delivery connects: one "dead" line, at warn, naming
        the origin and path; the password and the key appear in no log event."""
        receiver, base, _ = await self.receiver((204, {}, b""))
        hooks = self.hooks(policy=local_policy())
        stored = Subscriber(
            event="order.*", url=self.secret_url(base, "/pw", password=True), secret=SIGNING_SECRET
        )
        await hooks.subscribers.add(stored)
        with capturedLogs() as events:
            result = await hooks.send("order.created", {"n": 1})
            await self.settle(hooks)
        [delivery] = result.deliveries
        lines = about(events, delivery.id)
        self.assertEqual(len(lines), 1, [formatEvent(e) for e in events])
        self.assertEqual(lines[0]["error_kind"], ErrorKind.SECURITY)
        self.assertTrue(
            formatEvent(lines[0]).startswith(f"dead order.created {delivery.id} to {base}/pw "),
            formatEvent(lines[0]),
        )
        self.assertEqual(receiver.requests, [])
        self.assertEqual(leaks(events), [])
