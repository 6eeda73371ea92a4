"""
Tests for :mod:`twisted_hooks.webhooks.sender`: one signed POST per attempt, bounded in time
and size, every outcome classified into an :class:`~twisted_hooks.webhooks.delivery.Attempt`.

Most tests inject a :class:`treq.testing.StubTreq` around a ``twisted.web`` resource
(``stub.flush()`` moves the bytes) and give the sender a :class:`~twisted.internet.task.Clock`
as its reactor, which drives the deadline. Failures no resource can express go through a
fake ``IAgent`` under a real :class:`treq.client.HTTPClient`; the sender's own client is
exercised over a :class:`~twisted.internet.testing.MemoryReactorClock` and
:mod:`twisted.test.iosim`.
"""

from __future__ import annotations

import email.utils
import gzip
import time
from collections.abc import Callable, Iterable
from typing import Any

from standardwebhooks.webhooks import Webhook
from treq.client import HTTPClient
from treq.testing import StubTreq
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone, ResponseNeverReceived
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IBodyProducer, IResponse
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer
from zope.interface.verify import verifyObject

from twisted_hooks._version import __version__
from twisted_hooks.interfaces import IWebhookSender
from twisted_hooks.webhooks._settings import Settings
from twisted_hooks.webhooks.delivery import Attempt, Delivery, ErrorKind
from twisted_hooks.webhooks.encoding import FORM
from twisted_hooks.webhooks.safe_agent import RecipientLookupError
from twisted_hooks.webhooks.sender import (
    EXCERPT_SIZE,
    USER_AGENT,
    HTTPSender,
    _IdentityEncoding,
    delivery_headers,
    read_capped,
)
from twisted_hooks.webhooks.signing import (
    NoMatchingSignature,
    generate_secret,
    sign,
    verify_standard,
)
from twisted_hooks.webhooks.subscribers import Subscriber
from twisted_hooks.webhooks.validators import RecipientPolicy, SecurityError

#: The clock's time when a test starts (whole seconds since the epoch).
NOW = 1_700_000_000
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
BODY = b'{"order":42,"total":"9.99"}'
URL = "http://hooks.example.com/receive"


def make_subscriber(**kwargs: Any) -> Subscriber:
    kwargs.setdefault("event", "order.created")
    kwargs.setdefault("url", URL)
    kwargs.setdefault("secret", SECRET)
    return Subscriber(**kwargs)


def make_delivery(subscriber: Subscriber, **kwargs: Any) -> Delivery:
    fields: dict[str, Any] = {
        "id": "msg_2b7a5d4e",
        "event": "order.created",
        "event_id": "evt_1",
        "subscriber": subscriber,
        "body": BODY,
        "created_at": float(NOW),
        "next_attempt_at": float(NOW),
    }
    fields.update(kwargs)
    return Delivery(**fields)


def wire_headers(request: Request) -> dict[str, str]:
    """A request's headers, lower-cased names to their (single) text values."""
    return {
        name.decode("latin-1").lower(): values[0].decode("latin-1")
        for name, values in request.requestHeaders.getAllRawHeaders()
    }


class Recorder(Resource):
    """Answers every request at once with a fixed response and records what came in."""

    isLeaf = True

    def __init__(
        self,
        code: int = 200,
        body: bytes = b"",
        headers: Iterable[tuple[bytes, bytes]] = (),
        phrase: bytes | None = None,
    ) -> None:
        super().__init__()
        self.code = code
        self.body = body
        self.headers = tuple(headers)
        self.phrase = phrase
        self.requests: list[Request] = []
        self.bodies: list[bytes] = []

    def render(self, request: Request) -> bytes:
        self.requests.append(request)
        self.bodies.append(request.content.read())
        request.setResponseCode(self.code, self.phrase)
        for name, value in self.headers:
            request.setHeader(name, value)
        return self.body


class Holding(Resource):
    """
    Keeps every request open (``NOT_DONE_YET``) after writing ``first`` (if anything), so
    the test decides when and how each one ends.
    """

    isLeaf = True

    def __init__(self, code: int = 200, length: int | None = None, first: bytes = b"") -> None:
        super().__init__()
        self.code = code
        self.length = length
        self.first = first
        self.requests: list[Request] = []
        self.ended: list[Any] = []

    def render(self, request: Request) -> object:
        self.requests.append(request)
        request.notifyFinish().addBoth(self.ended.append)
        request.setResponseCode(self.code)
        if self.length is not None:
            request.setHeader(b"content-length", b"%d" % (self.length,))
        if self.first:
            request.write(self.first)
        return NOT_DONE_YET

    def finish(self, index: int, body: bytes = b"ok") -> None:
        request = self.requests[index]
        request.write(body)
        request.finish()

    def open(self) -> list[Request]:
        return [r for r in self.requests if not r.finished]

    def drain(self, stub: StubTreq) -> None:
        """Finish every open request, and those they let start, until none is left."""
        while self.open():
            for request in self.open():
                request.write(b"ok")
                request.finish()
            stub.flush()

    def hosts(self) -> list[str]:
        return [wire_headers(r)["host"] for r in self.requests]


def harness(resource: Resource, **kwargs: Any) -> tuple[HTTPSender, StubTreq, Clock]:
    clock = Clock()
    clock.advance(NOW)
    stub = StubTreq(resource)
    return HTTPSender(clock, client=stub, **kwargs), stub, clock  # type: ignore[arg-type]


@implementer(IResponse)
class FakeResponse:
    """An ``IResponse`` whose body the test feeds through :attr:`protocol`."""

    def __init__(
        self,
        code: int = 200,
        headers: dict[bytes, list[bytes]] | None = None,
        length: int | object = UNKNOWN_LENGTH,
        phrase: bytes = b"OK",
    ) -> None:
        self.version = (b"HTTP", 1, 1)
        self.code = code
        self.phrase = phrase
        self.headers = Headers(headers or {})
        self.length = length
        self.request = None
        self.previousResponse = None
        self.transport = FakeTransport()
        self.protocol: Any = None

    def deliverBody(self, protocol: Any) -> None:
        self.protocol = protocol
        protocol.makeConnection(self.transport)

    def setPreviousResponse(self, response: IResponse) -> None:
        self.previousResponse = response  # type: ignore[assignment]


class FakeTransport:
    """Records whether the body reader dropped the connection."""

    def __init__(self) -> None:
        self.aborted = False
        self.lost = False

    def abortConnection(self) -> None:
        self.aborted = True

    def loseConnection(self) -> None:
        self.lost = True


class NoAbortTransport:
    """A transport without ``abortConnection``."""

    def __init__(self) -> None:
        self.lost = False

    def loseConnection(self) -> None:
        self.lost = True


class ProxyTransport:
    """Like Twisted's ``TransportProxyProducer``: the real transport is ``_producer``."""

    def __init__(self, producer: FakeTransport) -> None:
        self._producer = producer
        self.lost = False

    def loseConnection(self) -> None:
        self.lost = True


@implementer(IAgent)
class FakeAgent:
    """An ``IAgent`` whose answer each test chooses; it records every request."""

    def __init__(self, answer: Callable[[], Deferred[IResponse]]) -> None:
        self.answer = answer
        self.requests: list[tuple[bytes, bytes, Headers | None, IBodyProducer | None]] = []

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        self.requests.append((method, uri, headers, bodyProducer))
        return self.answer()


def agent_harness(
    answer: Callable[[], Deferred[IResponse]],
) -> tuple[HTTPSender, FakeAgent, Clock]:
    clock = Clock()
    clock.advance(NOW)
    agent = FakeAgent(answer)
    sender = HTTPSender(clock, client=HTTPClient(agent))  # type: ignore[arg-type]
    return sender, agent, clock


class HTTPSenderInterfaceTests(SynchronousTestCase):
    def test_provides_IWebhookSender(self) -> None:
        """HTTPSender provides IWebhookSender, with or without an injected client."""
        self.assertTrue(verifyObject(IWebhookSender, harness(Recorder())[0]))
        self.assertTrue(verifyObject(IWebhookSender, HTTPSender(MemoryReactorClock())))

    def test_limits_are_checked(self) -> None:
        """Caps below one attempt, or a negative body cap, are refused with a message."""
        clock = Clock()
        for kwargs in ({"max_concurrency": 0}, {"max_per_host": 0}):
            with self.assertRaises(ValueError) as raised:
                HTTPSender(clock, **kwargs)  # type: ignore[arg-type]
            self.assertIn("at least 1", str(raised.exception))
        with self.assertRaises(ValueError) as raised:
            HTTPSender(clock, max_response_body=-1)  # type: ignore[arg-type]
        self.assertIn("max_response_body", str(raised.exception))

    def test_same_rules_as_settings(self) -> None:
        """max_concurrency, max_per_host and max_response_body are refused by the rules
        of the Settings fields of the same names, with the same messages (a body cap of
        0 is refused, as Settings refuses it)."""
        clock = Clock()
        cases: list[tuple[str, object]] = [
            ("max_concurrency", 100_001),
            ("max_per_host", 10_001),
            ("max_per_host", "16"),
            ("max_response_body", 0),
            ("max_response_body", 64 * 1024 * 1024 + 1),
        ]
        for name, value in cases:
            with self.assertRaises(ValueError) as by_settings:
                Settings(**{name: value})  # type: ignore[arg-type]
            with self.assertRaises(ValueError) as by_sender:
                HTTPSender(clock, **{name: value})  # type: ignore[arg-type]
            self.assertEqual(str(by_sender.exception), str(by_settings.exception))
            self.assertIn(f"{name} must be", str(by_sender.exception))

    def test_close_without_connections(self) -> None:
        """close() fires at once when no pool was ever made."""
        sender = harness(Recorder())[0]
        self.assertIsNone(self.successResultOf(sender.close()))


class DeliveryHeadersTests(SynchronousTestCase):
    def test_every_header(self) -> None:
        """delivery_headers gives the Hook-* set, the Standard Webhooks trio, User-Agent and
        Content-Type, signed for the timestamp given."""
        subscriber = make_subscriber()
        delivery = make_delivery(subscriber)
        headers = delivery_headers(delivery, subscriber, NOW)
        self.assertEqual(
            set(headers),
            {
                "Hook-Event",
                "Hook-Delivery",
                "Hook-HMAC",
                "Hook-Subscription",
                "User-Agent",
                "Content-Type",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
            },
        )
        self.assertEqual(headers["Hook-Event"], "order.created")
        self.assertEqual(headers["Hook-Delivery"], delivery.id)
        self.assertEqual(headers["Hook-Subscription"], subscriber.id)
        self.assertEqual(headers["Hook-HMAC"], sign("sha256", SECRET, BODY))
        self.assertEqual(headers["User-Agent"], USER_AGENT)
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(headers["webhook-id"], delivery.id)
        self.assertEqual(headers["webhook-timestamp"], str(NOW))
        verify_standard(SECRET, headers, BODY, now=NOW)

    def test_digest_and_content_type_follow_the_subscriber(self) -> None:
        """Hook-HMAC uses the subscriber's digest; Content-Type is its content type."""
        subscriber = make_subscriber(digest="sha512", content_type=FORM)
        headers = delivery_headers(make_delivery(subscriber), subscriber, NOW)
        self.assertEqual(headers["Hook-HMAC"], sign("sha512", SECRET, BODY))
        self.assertEqual(headers["Content-Type"], FORM)

    def test_user_agent(self) -> None:
        """The default User-Agent starts with twisted_hooks/<version>; another may be given."""
        self.assertTrue(USER_AGENT.startswith(f"twisted_hooks/{__version__} "))
        subscriber = make_subscriber()
        headers = delivery_headers(make_delivery(subscriber), subscriber, NOW, "probe/1")
        self.assertEqual(headers["User-Agent"], "probe/1")

    def test_custom_headers(self) -> None:
        """The subscriber's custom headers are sent alongside the engine's."""
        subscriber = make_subscriber(headers={"X-Tenant": "acme", "Authorization": "Bearer t"})
        headers = delivery_headers(make_delivery(subscriber), subscriber, NOW)
        self.assertEqual(headers["X-Tenant"], "acme")
        self.assertEqual(headers["Authorization"], "Bearer t")
        self.assertEqual(headers["Hook-Event"], "order.created")

    def test_previous_secrets(self) -> None:
        """During a rotation webhook-signature has one v1 entry per secret, so a receiver
        holding only the old secret verifies; Hook-HMAC uses the current secret alone."""
        subscriber = make_subscriber(previous_secrets=[OLD_SECRET])
        headers = delivery_headers(make_delivery(subscriber), subscriber, NOW)
        entries = headers["webhook-signature"].split(" ")
        self.assertEqual(len(entries), 2)
        self.assertTrue(all(entry.startswith("v1,") for entry in entries))
        verify_standard(OLD_SECRET, headers, BODY, now=NOW)
        verify_standard(SECRET, headers, BODY, now=NOW)
        self.assertEqual(headers["Hook-HMAC"], sign("sha256", SECRET, BODY))

    def test_timestamp_is_signed(self) -> None:
        """Another timestamp gives another signature, and the old one no longer verifies."""
        subscriber = make_subscriber()
        delivery = make_delivery(subscriber)
        first = delivery_headers(delivery, subscriber, NOW)
        later = delivery_headers(delivery, subscriber, NOW + 60)
        self.assertNotEqual(first["webhook-signature"], later["webhook-signature"])
        forged = dict(first, **{"webhook-timestamp": later["webhook-timestamp"]})
        self.assertRaises(NoMatchingSignature, verify_standard, SECRET, forged, BODY, NOW + 60)


class ReadCappedTests(SynchronousTestCase):
    def test_empty_body(self) -> None:
        """A response of length 0 gives an empty, complete body without reading."""
        response = FakeResponse(length=0)
        self.assertEqual(self.successResultOf(read_capped(response, 10)), (b"", False))
        self.assertIsNone(response.protocol)

    def test_whole_body(self) -> None:
        """A body within the limit, in chunks, is returned whole and not truncated."""
        response = FakeResponse()
        d = read_capped(response, 10)
        response.protocol.dataReceived(b"hello")
        response.protocol.dataReceived(b"world")
        self.assertNoResult(d)
        response.protocol.connectionLost(Failure(ResponseDone()))
        self.assertEqual(self.successResultOf(d), (b"helloworld", False))
        self.assertFalse(response.transport.aborted)

    def test_potential_data_loss_is_an_end(self) -> None:
        """A body ended by the connection closing (PotentialDataLoss) counts as complete."""
        response = FakeResponse()
        d = read_capped(response, 100)
        response.protocol.dataReceived(b"abc")
        response.protocol.connectionLost(Failure(PotentialDataLoss()))
        self.assertEqual(self.successResultOf(d), (b"abc", False))

    def test_only_the_excerpt_is_kept(self) -> None:
        """Of a body larger than 4 KiB but within the limit, the first 4 KiB are kept."""
        response = FakeResponse()
        d = read_capped(response, 100_000)
        body = bytes(range(256)) * 40
        for start in range(0, len(body), 1000):
            response.protocol.dataReceived(body[start : start + 1000])
        response.protocol.connectionLost(Failure(ResponseDone()))
        self.assertEqual(self.successResultOf(d), (body[:EXCERPT_SIZE], False))

    def test_over_the_limit(self) -> None:
        """The chunk that takes the body over the limit aborts the connection and fires
        ``(kept, True)``; later data and the connection loss are ignored."""
        response = FakeResponse()
        d = read_capped(response, 10)
        response.protocol.dataReceived(b"12345678")
        self.assertNoResult(d)
        response.protocol.dataReceived(b"9abc")
        self.assertEqual(self.successResultOf(d), (b"123456789abc", True))
        self.assertTrue(response.transport.aborted)
        response.protocol.dataReceived(b"more")
        response.protocol.connectionLost(Failure(ConnectionLost()))

    def test_exactly_the_limit(self) -> None:
        """A body of exactly the limit is not truncated."""
        response = FakeResponse()
        d = read_capped(response, 4)
        response.protocol.dataReceived(b"1234")
        response.protocol.connectionLost(Failure(ResponseDone()))
        self.assertEqual(self.successResultOf(d), (b"1234", False))
        self.assertFalse(response.transport.aborted)

    def test_zero_limit(self) -> None:
        """With a limit of 0, any byte of body drops the connection."""
        response = FakeResponse()
        d = read_capped(response, 0)
        response.protocol.dataReceived(b"x")
        self.assertEqual(self.successResultOf(d), (b"x", True))
        self.assertTrue(response.transport.aborted)

    def test_broken_connection(self) -> None:
        """A connection lost mid-body fails the read with that reason."""
        response = FakeResponse()
        d = read_capped(response, 100)
        response.protocol.dataReceived(b"abc")
        response.protocol.connectionLost(Failure(ConnectionLost("reset")))
        self.failureResultOf(d, ConnectionLost)

    def test_cancel_aborts(self) -> None:
        """Cancelling the read aborts the connection and fails with CancelledError."""
        response = FakeResponse()
        d = read_capped(response, 100)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(response.transport.aborted)
        response.protocol.connectionLost(Failure(ConnectionLost()))

    def test_abort_through_the_transport_proxy(self) -> None:
        """Behind a transport proxy (as Twisted's HTTP client gives, without
        abortConnection), the connection is dropped through the proxy's public
        loseConnection, which Twisted passes on; the proxy's private attributes are not
        reached into."""
        response = FakeResponse()
        real = FakeTransport()
        proxy = ProxyTransport(real)
        response.transport = proxy  # type: ignore[assignment]
        d = read_capped(response, 1)
        response.protocol.dataReceived(b"xx")
        self.assertEqual(self.successResultOf(d), (b"xx", True))
        self.assertTrue(proxy.lost)
        self.assertFalse(real.aborted)

    def test_abort_without_abortConnection(self) -> None:
        """A transport without abortConnection is closed with loseConnection."""
        response = FakeResponse()
        response.transport = NoAbortTransport()  # type: ignore[assignment]
        d = read_capped(response, 1)
        response.protocol.dataReceived(b"xx")
        self.assertEqual(self.successResultOf(d), (b"xx", True))
        self.assertTrue(response.transport.lost)


class StatusClassificationTests(SynchronousTestCase):
    def run_attempt(self, resource: Resource, **kwargs: Any) -> Attempt:
        sender, stub, _clock = harness(resource, **kwargs)
        subscriber = make_subscriber()
        d = sender.attempt(make_delivery(subscriber), subscriber)
        stub.flush()
        return self.successResultOf(d)

    def test_2xx_delivered(self) -> None:
        """Every 2xx is delivered: no error, its status code, its body and timing kept."""
        for code in (200, 201, 202, 204, 299):
            body = b"" if code == 204 else b"thanks"
            attempt = self.run_attempt(Recorder(code, body))
            self.assertTrue(attempt.succeeded, code)
            self.assertEqual(
                (attempt.status_code, attempt.error_kind, attempt.error_message),
                (code, None, None),
            )
            self.assertEqual(attempt.response_body, body)
            self.assertEqual(attempt.delivery_id, "msg_2b7a5d4e")
            self.assertEqual(attempt.number, 1)
            self.assertEqual(attempt.started_at, NOW)
            self.assertEqual(attempt.duration, 0)
            self.assertIsNone(attempt.retry_after)

    def test_first_4_kib_kept(self) -> None:
        """Of a long 2xx body only the first 4 KiB go into the attempt."""
        body = b"0123456789abcdef" * 1024
        attempt = self.run_attempt(Recorder(200, body))
        self.assertTrue(attempt.succeeded)
        self.assertEqual(attempt.response_body, body[:EXCERPT_SIZE])

    def test_number_and_duration(self) -> None:
        """The attempt number follows the delivery's attempts; the duration is clock time
        from the start to the end of the body."""
        resource = Holding()
        sender, stub, clock = harness(resource)
        subscriber = make_subscriber()
        d = sender.attempt(make_delivery(subscriber, attempts=3), subscriber)
        stub.flush()
        clock.advance(2.5)
        resource.finish(0)
        stub.flush()
        attempt = self.successResultOf(d)
        self.assertEqual((attempt.number, attempt.started_at), (4, NOW))
        self.assertEqual(attempt.duration, 2.5)

    def test_redirect_not_followed(self) -> None:
        """A 3xx is a REDIRECT failure naming the location, and the location is never
        requested."""
        for code in (301, 302, 303, 307, 308):
            root = Resource()
            target = Recorder(200, b"landed")
            root.putChild(
                b"receive",
                Recorder(code, headers=[(b"location", b"http://hooks.example.com/target")]),
            )
            root.putChild(b"target", target)
            attempt = self.run_attempt(root)
            self.assertEqual(attempt.status_code, code)
            self.assertEqual(attempt.error_kind, ErrorKind.REDIRECT)
            self.assertEqual(
                attempt.error_message,
                f"{code} redirect to 'http://hooks.example.com/target' not followed",
            )
            self.assertEqual(target.requests, [])
            self.assertFalse(attempt.succeeded)

    def test_redirect_without_location(self) -> None:
        """A 3xx without Location is still a REDIRECT failure."""
        attempt = self.run_attempt(Recorder(300))
        self.assertEqual(attempt.error_kind, ErrorKind.REDIRECT)
        self.assertEqual(attempt.error_message, "300 redirect not followed")

    def test_gone(self) -> None:
        """410 is GONE, with a message saying the subscription is deactivated."""
        attempt = self.run_attempt(Recorder(410, b"unsubscribed"))
        self.assertEqual(attempt.status_code, 410)
        self.assertEqual(attempt.error_kind, ErrorKind.GONE)
        self.assertIn("410 Gone", attempt.error_message or "")
        self.assertEqual(attempt.response_body, b"unsubscribed")

    def test_other_statuses(self) -> None:
        """Other 4xx and 5xx are STATUS failures whose message is the code and phrase,
        keeping the body excerpt; no Retry-After is read."""
        cases = [
            (400, b"Bad Request"),
            (401, b"Unauthorized"),
            (404, b"Not Found"),
            (500, b"Internal Server Error"),
            (502, b"Bad Gateway"),
        ]
        for code, phrase in cases:
            attempt = self.run_attempt(Recorder(code, b"nope", [(b"retry-after", b"30")]))
            self.assertEqual(attempt.status_code, code)
            self.assertEqual(attempt.error_kind, ErrorKind.STATUS)
            self.assertEqual(attempt.error_message, f"{code} {phrase.decode()}")
            self.assertEqual(attempt.response_body, b"nope")
            self.assertIsNone(attempt.retry_after)

    def test_custom_phrase(self) -> None:
        """The server's own reason phrase goes into the message."""
        attempt = self.run_attempt(Recorder(418, phrase=b"Short and stout"))
        self.assertEqual(attempt.error_message, "418 Short and stout")

    def test_retry_after_seconds(self) -> None:
        """429 and 503 read a Retry-After in seconds."""
        for code in (429, 503):
            attempt = self.run_attempt(Recorder(code, headers=[(b"retry-after", b"120")]))
            self.assertEqual(attempt.error_kind, ErrorKind.STATUS)
            self.assertEqual(attempt.retry_after, 120.0)

    def test_retry_after_date(self) -> None:
        """429 and 503 read a Retry-After HTTP date against the sender's clock."""
        when = email.utils.formatdate(NOW + 90, usegmt=True).encode("ascii")
        for code in (429, 503):
            attempt = self.run_attempt(Recorder(code, headers=[(b"retry-after", when)]))
            self.assertEqual(attempt.retry_after, 90.0)

    def test_retry_after_absent_or_unreadable(self) -> None:
        """429 without Retry-After, or with an unreadable one, has retry_after None."""
        self.assertIsNone(self.run_attempt(Recorder(429)).retry_after)
        attempt = self.run_attempt(Recorder(429, headers=[(b"retry-after", b"soon")]))
        self.assertIsNone(attempt.retry_after)
        self.assertTrue((attempt.error_message or "").startswith("429 "))

    def test_retry_after_odd_bytes(self) -> None:
        """A Retry-After of non-ASCII digit bytes (b"\\xb2" is "²" in latin-1) is
        unreadable, not a crash: the attempt still fires, with retry_after None."""
        for value in (b"\xb2", b"1\xb9", b"\xff\xfe"):
            attempt = self.run_attempt(Recorder(503, headers=[(b"retry-after", value)]))
            self.assertEqual(attempt.error_kind, ErrorKind.STATUS)
            self.assertIsNone(attempt.retry_after)

    def test_oversized_2xx_stays_delivered(self) -> None:
        """A 2xx whose body is over max_response_body is still delivered."""
        attempt = self.run_attempt(Recorder(200, b"x" * 100), max_response_body=10)
        self.assertTrue(attempt.succeeded)
        self.assertEqual(attempt.status_code, 200)

    def test_oversized_failure_says_so(self) -> None:
        """A failure whose body is over max_response_body is classified by its status and
        the message mentions the dropped body."""
        attempt = self.run_attempt(Recorder(500, b"x" * 100), max_response_body=10)
        self.assertEqual(attempt.error_kind, ErrorKind.STATUS)
        self.assertEqual(
            attempt.error_message,
            "500 Internal Server Error (body over 10 bytes, connection dropped)",
        )
        attempt = self.run_attempt(Recorder(410, b"x" * 100), max_response_body=10)
        self.assertEqual(attempt.error_kind, ErrorKind.GONE)
        self.assertIn("connection dropped", attempt.error_message or "")

    def test_oversized_body_drops_the_connection(self) -> None:
        """A body that keeps coming past max_response_body is not read to its end: the
        attempt finishes and the connection is dropped."""
        resource = Holding(200, first=b"12345678")
        sender, stub, _clock = harness(resource, max_response_body=10)
        subscriber = make_subscriber()
        d = sender.attempt(make_delivery(subscriber), subscriber)
        stub.flush()
        self.assertNoResult(d)
        resource.requests[0].write(b"9abcdef")
        stub.flush()
        attempt = self.successResultOf(d)
        self.assertTrue(attempt.succeeded)
        self.assertEqual(attempt.response_body, b"123456789abcdef")
        stub.flush()
        self.assertEqual(len(resource.ended), 1)
        self.assertIsInstance(resource.ended[0], Failure)


class RequestTests(SynchronousTestCase):
    def send(
        self, subscriber: Subscriber, clock_at: float = NOW, **kwargs: Any
    ) -> tuple[Recorder, Attempt]:
        resource = Recorder(200)
        sender, stub, clock = harness(resource)
        clock.advance(clock_at - clock.seconds())
        d = sender.attempt(make_delivery(subscriber, **kwargs), subscriber)
        stub.flush()
        return resource, self.successResultOf(d)

    def test_request_line_and_body(self) -> None:
        """The attempt POSTs the delivery's body, unchanged, to the subscriber's URL."""
        resource, attempt = self.send(make_subscriber())
        self.assertTrue(attempt.succeeded)
        [request] = resource.requests
        self.assertEqual(request.method, b"POST")
        self.assertEqual(request.uri, b"/receive")
        self.assertEqual(resource.bodies, [BODY])
        self.assertEqual(wire_headers(request)["host"], "hooks.example.com")

    def test_ipv6_literal_recipient(self) -> None:
        """A URL whose host is an IPv6 address is sent (treq's own URL handling would fail
        on the address's colons): path, query and body intact, ``Host`` in brackets."""
        for url, host in (
            ("http://[::1]:8080/receive?x=1", "[::1]:8080"),
            ("http://[2606:4700:4700::1111]/receive?x=1", "[2606:4700:4700::1111]"),
        ):
            resource, attempt = self.send(make_subscriber(url=url))
            self.assertTrue(attempt.succeeded, attempt.error_message)
            [request] = resource.requests
            self.assertEqual(request.uri, b"/receive?x=1")
            self.assertEqual(wire_headers(request)["host"], host)
            self.assertEqual(resource.bodies, [BODY])

    def test_headers_on_the_wire(self) -> None:
        """Every engine header reaches the receiver with the values of this attempt."""
        subscriber = make_subscriber(digest="sha1")
        resource, _attempt = self.send(subscriber)
        headers = wire_headers(resource.requests[0])
        self.assertEqual(headers["hook-event"], "order.created")
        self.assertEqual(headers["hook-delivery"], "msg_2b7a5d4e")
        self.assertEqual(headers["hook-hmac"], sign("sha1", SECRET, BODY))
        self.assertEqual(headers["hook-subscription"], subscriber.id)
        self.assertTrue(headers["user-agent"].startswith(f"twisted_hooks/{__version__}"))
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(headers["webhook-id"], "msg_2b7a5d4e")
        self.assertEqual(headers["webhook-timestamp"], str(NOW))
        verify_standard(SECRET, headers, resource.bodies[0], now=NOW)

    def test_form_content_type(self) -> None:
        """A form subscriber's deliveries go out with the form content type."""
        resource, _ = self.send(make_subscriber(content_type=FORM), body=b"order=42")
        self.assertEqual(
            wire_headers(resource.requests[0])["content-type"],
            "application/x-www-form-urlencoded",
        )
        self.assertEqual(resource.bodies, [b"order=42"])

    def test_standardwebhooks_package_verifies(self) -> None:
        """The standardwebhooks package verifies what was sent (its tolerance is checked
        against the real time, so the clock starts there)."""
        now = int(time.time())
        secret = generate_secret()
        resource, _ = self.send(make_subscriber(secret=secret), clock_at=now)
        headers = wire_headers(resource.requests[0])
        self.assertEqual(
            Webhook(secret).verify(resource.bodies[0], headers),
            {
                "order": 42,
                "total": "9.99",
            },
        )

    def test_rotation_on_the_wire(self) -> None:
        """With a previous secret, a receiver holding only the old secret verifies, with
        our verifier and with the standardwebhooks package."""
        now = int(time.time())
        resource, _ = self.send(make_subscriber(previous_secrets=[OLD_SECRET]), clock_at=now)
        headers = wire_headers(resource.requests[0])
        self.assertEqual(len(headers["webhook-signature"].split(" ")), 2)
        verify_standard(OLD_SECRET, headers, resource.bodies[0], now=now)
        Webhook(OLD_SECRET).verify(resource.bodies[0], headers)

    def test_custom_headers_on_the_wire(self) -> None:
        """The subscriber's custom headers reach the receiver."""
        resource, _ = self.send(make_subscriber(headers={"X-Tenant": "acme"}))
        self.assertEqual(wire_headers(resource.requests[0])["x-tenant"], "acme")

    def test_timestamp_taken_at_each_attempt(self) -> None:
        """Two attempts of one delivery, the clock advanced between them, carry the same
        webhook-id and Hook-Delivery but different timestamps, each signature valid for
        its own."""
        resource = Recorder(500)
        sender, stub, clock = harness(resource)
        subscriber = make_subscriber()
        delivery = make_delivery(subscriber)
        first = sender.attempt(delivery, subscriber)
        stub.flush()
        self.assertEqual(self.successResultOf(first).number, 1)
        clock.advance(300)
        second = sender.attempt(make_delivery(subscriber, attempts=1), subscriber)
        stub.flush()
        attempt = self.successResultOf(second)
        self.assertEqual((attempt.number, attempt.started_at), (2, NOW + 300))
        one, two = (wire_headers(r) for r in resource.requests)
        self.assertEqual(one["webhook-id"], two["webhook-id"])
        self.assertEqual(one["hook-delivery"], two["hook-delivery"])
        self.assertEqual(one["webhook-timestamp"], str(NOW))
        self.assertEqual(two["webhook-timestamp"], str(NOW + 300))
        self.assertNotEqual(one["webhook-signature"], two["webhook-signature"])
        verify_standard(SECRET, one, BODY, now=NOW)
        verify_standard(SECRET, two, BODY, now=NOW + 300)

    def test_bad_secret_is_internal(self) -> None:
        """A secret that cannot sign (malformed whsec_) gives an INTERNAL attempt saying
        why, and nothing is sent."""
        resource, attempt = self.send(make_subscriber(secret="whsec_!!not-base64!!"))
        self.assertEqual(attempt.error_kind, ErrorKind.INTERNAL)
        self.assertIn("whsec_", attempt.error_message or "")
        self.assertIsNone(attempt.status_code)
        self.assertEqual(resource.requests, [])


class DeadlineTests(SynchronousTestCase):
    def test_stalled_body(self) -> None:
        """Headers and part of the body, then nothing: at the deadline the attempt is a
        TIMEOUT naming the timeout, and the connection is dropped."""
        resource = Holding(200, length=100, first=b"partial")
        sender, stub, clock = harness(resource)
        subscriber = make_subscriber()
        d = sender.attempt(make_delivery(subscriber, timeout=7.5), subscriber)
        stub.flush()
        clock.advance(7.4)
        self.assertNoResult(d)
        clock.advance(0.1)
        attempt = self.successResultOf(d)
        self.assertEqual(attempt.error_kind, ErrorKind.TIMEOUT)
        self.assertEqual(attempt.error_message, "no complete answer within 7.5 s")
        self.assertIsNone(attempt.status_code)
        self.assertEqual(attempt.duration, 7.5)
        stub.flush()
        self.assertEqual(len(resource.ended), 1)
        self.assertIsInstance(resource.ended[0], Failure)

    def test_stall_before_headers(self) -> None:
        """A server that never answers gives a TIMEOUT at the deadline, not a connection
        error."""
        resource = Holding(200)  # nothing is written, so no headers are sent
        sender, stub, clock = harness(resource)
        subscriber = make_subscriber()
        d = sender.attempt(make_delivery(subscriber, timeout=10), subscriber)
        stub.flush()
        self.assertEqual(len(resource.requests), 1)
        clock.advance(10)
        attempt = self.successResultOf(d)
        self.assertEqual(attempt.error_kind, ErrorKind.TIMEOUT)
        self.assertEqual(attempt.error_message, "no complete answer within 10 s")

    def test_agent_never_answers(self) -> None:
        """An agent whose response never comes gives a TIMEOUT at the deadline."""
        sender, _agent, clock = agent_harness(Deferred)
        subscriber = make_subscriber()
        d = sender.attempt(make_delivery(subscriber, timeout=3), subscriber)
        clock.advance(3)
        self.assertEqual(self.successResultOf(d).error_kind, ErrorKind.TIMEOUT)

    def test_stalled_body_aborts_the_transport(self) -> None:
        """A body that never ends is cut at the deadline by aborting its transport."""
        response = FakeResponse(200)
        sender, _agent, clock = agent_harness(lambda: succeed(response))
        subscriber = make_subscriber()
        d = sender.attempt(make_delivery(subscriber, timeout=5), subscriber)
        response.protocol.dataReceived(b"some")
        clock.advance(4.9)
        self.assertNoResult(d)
        self.assertFalse(response.transport.aborted)
        clock.advance(0.1)
        attempt = self.successResultOf(d)
        self.assertEqual(attempt.error_kind, ErrorKind.TIMEOUT)
        self.assertIn("5 s", attempt.error_message or "")
        self.assertTrue(response.transport.aborted)

    def test_one_deadline_for_headers_and_body(self) -> None:
        """Time spent waiting for the headers counts against the body's deadline."""
        answer: Deferred[IResponse] = Deferred()
        response = FakeResponse(200)
        sender, _agent, clock = agent_harness(lambda: answer)
        subscriber = make_subscriber()
        d = sender.attempt(make_delivery(subscriber, timeout=10), subscriber)
        clock.advance(8)
        answer.callback(response)
        clock.advance(2)
        self.assertEqual(self.successResultOf(d).error_kind, ErrorKind.TIMEOUT)
        self.assertTrue(response.transport.aborted)

    def test_no_timer_left(self) -> None:
        """A completed attempt leaves no delayed call behind."""
        sender, stub, clock = harness(Recorder(200))
        subscriber = make_subscriber()
        d = sender.attempt(make_delivery(subscriber), subscriber)
        stub.flush()
        self.successResultOf(d)
        self.assertEqual(clock.getDelayedCalls(), [])


class FailureClassificationTests(SynchronousTestCase):
    def failing(self, error: Exception) -> Attempt:
        sender, agent, _clock = agent_harness(lambda: fail(error))
        subscriber = make_subscriber()
        attempt = self.successResultOf(sender.attempt(make_delivery(subscriber), subscriber))
        self.assertEqual(len(agent.requests), 1)
        self.assertIsNone(attempt.status_code)
        self.assertFalse(attempt.succeeded)
        return attempt

    def test_connection_refused(self) -> None:
        """A refused connection is a CONNECTION failure naming the error."""
        attempt = self.failing(ConnectionRefusedError("hooks.example.com"))
        self.assertEqual(attempt.error_kind, ErrorKind.CONNECTION)
        self.assertIn("ConnectionRefusedError", attempt.error_message or "")
        self.assertIsInstance(attempt.exception, ConnectionRefusedError)

    def test_connecting_cancelled_is_a_timeout(self) -> None:
        """A deadline that passes while connecting (Twisted's ConnectingCancelledError) is a
        TIMEOUT, not an internal error, and nothing is logged as unexpected."""
        from twisted.internet.address import IPv4Address
        from twisted.internet.error import ConnectingCancelledError

        error = ConnectingCancelledError(IPv4Address("TCP", "192.0.2.1", 443))
        attempt = self.failing(error)
        self.assertEqual(attempt.error_kind, ErrorKind.TIMEOUT)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_response_never_received(self) -> None:
        """A connection lost before the response (ResponseNeverReceived) is a CONNECTION
        failure whose message names the inner reason."""
        attempt = self.failing(ResponseNeverReceived([Failure(ConnectionLost("reset"))]))
        self.assertEqual(attempt.error_kind, ErrorKind.CONNECTION)
        self.assertIn("ConnectionLost", attempt.error_message or "")
        self.assertIn("reset", attempt.error_message or "")

    def test_connection_done(self) -> None:
        """A connection closed under the request is a CONNECTION failure."""
        attempt = self.failing(ConnectionDone())
        self.assertEqual(attempt.error_kind, ErrorKind.CONNECTION)

    def test_security_error(self) -> None:
        """A recipient refused by the validators is a SECURITY failure with its message."""
        error = SecurityError(
            "Refused recipient http://hooks.example.com:80: internal",
            recipient="http://hooks.example.com:80",
            rule="block_internal_ips",
            address="10.0.0.1",
        )
        attempt = self.failing(error)
        self.assertEqual(attempt.error_kind, ErrorKind.SECURITY)
        self.assertEqual(attempt.error_message, str(error))
        self.assertIs(attempt.exception, error)

    def test_wrapped_security_error(self) -> None:
        """A SecurityError wrapped in ResponseNeverReceived is still SECURITY."""
        error = SecurityError("refused", recipient="http://x:80", rule="ensure_port")
        attempt = self.failing(ResponseNeverReceived([Failure(error)]))
        self.assertEqual(attempt.error_kind, ErrorKind.SECURITY)
        self.assertIs(attempt.exception, error)

    def test_recipient_lookup_error(self) -> None:
        """A host name that resolves to nothing is a DNS failure."""
        attempt = self.failing(RecipientLookupError("hooks.example.com resolved to nothing"))
        self.assertEqual(attempt.error_kind, ErrorKind.DNS)
        self.assertIn("resolved to nothing", attempt.error_message or "")

    def test_dns_lookup_error(self) -> None:
        """Twisted's own DNSLookupError is a DNS failure too."""
        self.assertEqual(self.failing(DNSLookupError("nx")).error_kind, ErrorKind.DNS)

    def test_body_cut_short(self) -> None:
        """A connection that closes before the announced body length is a CONNECTION
        failure, not a success."""
        resource = Holding(200, length=100, first=b"partial")
        sender, stub, _clock = harness(resource)
        subscriber = make_subscriber()
        d = sender.attempt(make_delivery(subscriber), subscriber)
        stub.flush()
        resource.requests[0].channel.transport.loseConnection()
        stub.flush()
        attempt = self.successResultOf(d)
        self.assertEqual(attempt.error_kind, ErrorKind.CONNECTION)

    def test_unexpected_error(self) -> None:
        """Anything else is an INTERNAL failure naming the error, and it is logged."""
        attempt = self.failing(RuntimeError("boom"))
        self.assertEqual(attempt.error_kind, ErrorKind.INTERNAL)
        self.assertEqual(attempt.error_message, "RuntimeError: boom")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class IdentityEncodingTests(SynchronousTestCase):
    def test_asks_for_identity(self) -> None:
        """Accept-Encoding: identity replaces whatever was asked for."""
        agent = FakeAgent(lambda: succeed(FakeResponse()))
        headers = Headers({b"accept-encoding": [b"gzip"]})
        self.successResultOf(_IdentityEncoding(agent).request(b"POST", b"http://x/", headers))
        sent = agent.requests[0][2]
        assert sent is not None
        self.assertEqual(sent.getRawHeaders(b"accept-encoding"), [b"identity"])

    def test_without_headers(self) -> None:
        """A request without headers goes through unchanged."""
        agent = FakeAgent(lambda: succeed(FakeResponse()))
        self.successResultOf(_IdentityEncoding(agent).request(b"POST", b"http://x/"))
        self.assertIsNone(agent.requests[0][2])

    def test_strips_content_encoding(self) -> None:
        """A Content-Encoding the server sends anyway is removed from the response."""
        response = FakeResponse(headers={b"content-encoding": [b"gzip"]})
        agent = FakeAgent(lambda: succeed(response))
        result = self.successResultOf(_IdentityEncoding(agent).request(b"POST", b"http://x/"))
        self.assertIs(result, response)
        self.assertFalse(result.headers.hasHeader(b"content-encoding"))

    def test_compressed_body_read_raw(self) -> None:
        """Under treq's gzip decoder, a gzip body is read raw (and so bounded), not
        decompressed."""
        compressed = gzip.compress(b"a" * 100_000)
        response = FakeResponse(headers={b"content-encoding": [b"gzip"]})
        agent = FakeAgent(lambda: succeed(response))
        clock = Clock()
        clock.advance(NOW)
        client = HTTPClient(_IdentityEncoding(agent))  # type: ignore[arg-type]
        sender = HTTPSender(clock, client=client, max_response_body=1000)  # type: ignore[arg-type]
        subscriber = make_subscriber()
        d = sender.attempt(make_delivery(subscriber), subscriber)
        response.protocol.dataReceived(compressed)
        response.protocol.connectionLost(Failure(ResponseDone()))
        attempt = self.successResultOf(d)
        self.assertEqual(attempt.response_body, compressed[:EXCERPT_SIZE])

    def test_failure_passes_through(self) -> None:
        """A failed request fails the same way through the wrapper."""
        agent = FakeAgent(lambda: fail(ConnectionRefusedError()))
        d = _IdentityEncoding(agent).request(b"POST", b"http://x/", Headers())
        self.failureResultOf(d, ConnectionRefusedError)


class Cookies(Resource):
    """Sets a cookie and answers with a gzip body; records each request's headers."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[dict[str, str]] = []

    def render_POST(self, request: Request) -> bytes:
        self.headers.append(wire_headers(request))
        request.addCookie(b"session", b"abc", path=b"/")
        request.setHeader(b"content-encoding", b"gzip")
        return gzip.compress(b"hello")


class OwnClientTests(SynchronousTestCase):
    """The sender's own client, over a memory reactor and in-memory connections."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(NOW)
        self.sender = HTTPSender(self.reactor)

    def serve(self, resource: Resource) -> None:
        """Connect the last connection the client asked for to ``resource``."""
        factory = self.reactor.tcpClients.pop()[2]
        server = Site(resource, reactor=self.reactor).buildProtocol(None)
        client = factory.buildProtocol(None)
        iosim.connect(
            server,
            iosim.FakeTransport(server, isServer=True),
            client,
            iosim.FakeTransport(client, isServer=False),
        ).flush()

    def test_internal_address_refused(self) -> None:
        """With the default policy, a loopback recipient is a SECURITY failure and no
        connection is attempted."""
        subscriber = make_subscriber(url="http://127.0.0.1/receive")
        d = self.sender.attempt(make_delivery(subscriber), subscriber)
        attempt = self.successResultOf(d)
        self.assertEqual(attempt.error_kind, ErrorKind.SECURITY)
        self.assertIn("127.0.0.1", attempt.error_message or "")
        self.assertEqual(self.reactor.tcpClients, [])

    def test_port_refused(self) -> None:
        """With the default policy, a port other than 80/443 is a SECURITY failure."""
        subscriber = make_subscriber(url="http://93.184.216.34:8080/receive")
        attempt = self.successResultOf(self.sender.attempt(make_delivery(subscriber), subscriber))
        self.assertEqual(attempt.error_kind, ErrorKind.SECURITY)
        self.assertIn("8080", attempt.error_message or "")

    def test_ipv6_literal_delivered(self) -> None:
        """An IPv6 literal recipient in an allowed network, on any port, is connected to
        at that address (no IDNA failure on the way) and delivered, ``Host`` in brackets."""
        sender = HTTPSender(self.reactor, RecipientPolicy(allowed_networks=["::1/128"]))
        subscriber = make_subscriber(url="http://[::1]:8080/receive")
        d = sender.attempt(make_delivery(subscriber), subscriber)
        [(host, port, _, _, _)] = self.reactor.tcpClients
        self.assertEqual((host, port), ("::1", 8080))
        resource = Recorder(204)
        self.serve(resource)
        attempt = self.successResultOf(d)
        self.assertTrue(attempt.succeeded, attempt.error_message)
        self.assertEqual(wire_headers(resource.requests[0])["host"], "[::1]:8080")
        self.assertEqual(resource.bodies, [BODY])

    def test_ipv6_literal_refused(self) -> None:
        """An IPv6 literal the policy refuses is a SECURITY failure naming the address,
        not an internal error; nothing is connected."""
        subscriber = make_subscriber(url="http://[::1]:8080/receive")
        attempt = self.successResultOf(self.sender.attempt(make_delivery(subscriber), subscriber))
        self.assertEqual(attempt.error_kind, ErrorKind.SECURITY)
        self.assertIn("the address ::1 is internal", attempt.error_message or "")
        self.assertEqual(self.reactor.tcpClients, [])

    def test_identity_and_no_cookies(self) -> None:
        """The own client asks for identity encoding, reads a gzip body raw, and neither
        keeps nor sends cookies."""
        resource = Cookies()
        subscriber = make_subscriber(url="http://93.184.216.34/receive")
        for _ in range(2):
            delivery = make_delivery(subscriber, allow_keepalive=False)
            d = self.sender.attempt(delivery, subscriber)
            self.serve(resource)
            attempt = self.successResultOf(d)
            self.assertTrue(attempt.succeeded)
            self.assertEqual(attempt.response_body, gzip.compress(b"hello"))
        self.assertEqual(len(resource.headers), 2)
        for headers in resource.headers:
            self.assertEqual(headers["accept-encoding"], "identity")
            self.assertNotIn("cookie", headers)
        self.assertIsNone(self.successResultOf(self.sender.close()))


class ConcurrencyTests(SynchronousTestCase):
    """The sender only sends: it caps nothing (the application's EndpointGate does)."""

    def start(self, sender: HTTPSender, urls: list[str]) -> list[Deferred[Attempt]]:
        results = []
        for number, url in enumerate(urls):
            subscriber = make_subscriber(url=url)
            results.append(
                sender.attempt(make_delivery(subscriber, id=f"msg_{number}"), subscriber)
            )
        return results

    def test_every_attempt_starts_at_once(self) -> None:
        """With max_per_host=1 and max_concurrency=1, three attempts to one host are all
        outstanding at once: the sender holds none back, and each ends on its own."""
        resource = Holding()
        sender, stub, _clock = harness(resource, max_per_host=1, max_concurrency=1)
        results = self.start(sender, [URL] * 3)
        stub.flush()
        self.assertEqual(len(resource.requests), 3)
        self.assertEqual(
            [wire_headers(r)["webhook-id"] for r in resource.requests],
            ["msg_0", "msg_1", "msg_2"],
        )
        resource.finish(1)
        stub.flush()
        self.assertTrue(self.successResultOf(results[1]).succeeded)
        self.assertNoResult(results[0])
        resource.drain(stub)
        for result in (results[0], results[2]):
            self.assertTrue(self.successResultOf(result).succeeded)

    def test_failures_end_alone(self) -> None:
        """A timed-out attempt ends with its own deadline; the others are untouched."""
        resource = Holding()
        sender, stub, clock = harness(resource, max_per_host=1, max_concurrency=1)
        first = self.start(sender, [URL])
        clock.advance(5)
        second = self.start(sender, [URL])
        stub.flush()
        self.assertEqual(len(resource.requests), 2)
        clock.advance(5)
        self.assertEqual(self.successResultOf(first[0]).error_kind, ErrorKind.TIMEOUT)
        self.assertNoResult(second[0])
        resource.finish(1)
        stub.flush()
        self.assertTrue(self.successResultOf(second[0]).succeeded)

    def test_pool_keeps_max_per_host_connections(self) -> None:
        """The sender's own pool keeps max_per_host idle connections per host and never
        retries a POST itself."""
        sender = HTTPSender(MemoryReactorClock(), max_per_host=7)
        subscriber = make_subscriber()
        sender.attempt(make_delivery(subscriber), subscriber)
        (pool,) = sender._pools
        self.assertEqual(pool.maxPersistentPerHost, 7)
        self.assertFalse(pool.retryAutomatically)
