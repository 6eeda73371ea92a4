"""
Tests for :mod:`twisted_hooks.testing`, the fakes shipped for users' tests (and used by
this suite): each fake provides its interface, answers and records as documented, fails
with a message that says what was wrong, and agrees with the real thing it stands in for
(the real :class:`~twisted_hooks.webhooks.HTTPSender` through ``StubTreq``, and the real
``twist hooks`` service sending to a :class:`RecordingReceiver` on 127.0.0.1).
"""

from __future__ import annotations

import datetime
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.application.service import IService
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import IResource
from twisted.web.server import Site
from zope.interface.verify import verifyObject

import twisted_hooks.testing
from twisted_hooks.interfaces import (
    IDeliveryStore,
    IHealthStore,
    ISubscriberStore,
    ITokenStore,
    IWebhookSender,
)
from twisted_hooks.testing import (
    EXAMPLE_SUBSCRIBER,
    HOLD,
    FakeSender,
    HooksHarness,
    MemoryDeliveryStore,
    MemoryHealthStore,
    MemoryStore,
    MemorySubscriberStore,
    Outcome,
    RecordedRequest,
    RecordingReceiver,
    Reply,
    SenderCall,
    make_delivery,
    result_of,
)
from twisted_hooks.webhooks import ErrorKind, Settings
from twisted_hooks.webhooks.delivery import DEAD, DELIVERED, PENDING, RETRYING
from twisted_hooks.webhooks.encoding import FORM
from twisted_hooks.webhooks.health import EndpointHealth
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.sender import HTTPSender, delivery_headers
from twisted_hooks.webhooks.signing import SignatureError
from twisted_hooks.webhooks.subscribers import Subscriber

ROOT = Path(__file__).resolve().parents[2]
URL = "https://example.com/hook"
OTHER_URL = "https://other.example.com/hook"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#: One retry, 5 s after the first failure, without jitter.
ONE_RETRY = RetryPolicy(delays=(5.0,), jitter=0.0)
NOW = 1_700_000_000.0


def subscriber(**fields: Any) -> Subscriber:
    """A subscriber of ``order.*`` at URL, signing with SECRET."""
    fields.setdefault("event", "order.*")
    fields.setdefault("url", URL)
    fields.setdefault("secret", SECRET)
    return Subscriber(**fields)


def sender_at(now: float = NOW, **kwargs: Any) -> FakeSender:
    """A FakeSender on a Clock at ``now``."""
    clock = Clock()
    clock.advance(now)
    return FakeSender(clock, **kwargs)


class InterfaceTests(SynchronousTestCase):
    """Every fake provides the interface it stands in for."""

    def test_fake_sender(self) -> None:
        """FakeSender provides IWebhookSender."""
        self.assertTrue(verifyObject(IWebhookSender, FakeSender()))

    def test_health_store(self) -> None:
        """MemoryHealthStore provides IHealthStore."""
        self.assertTrue(verifyObject(IHealthStore, MemoryHealthStore()))

    def test_memory_stores(self) -> None:
        """The memory stores named again here provide their interfaces: deliveries,
        subscribers, and MemoryStore every role (health and tokens too)."""
        self.assertTrue(verifyObject(IDeliveryStore, MemoryDeliveryStore()))
        self.assertTrue(verifyObject(ISubscriberStore, MemorySubscriberStore()))
        store = MemoryStore()
        self.assertTrue(verifyObject(IHealthStore, store))
        self.assertTrue(verifyObject(ITokenStore, store))

    def test_receiver(self) -> None:
        """RecordingReceiver is a twisted.web IResource."""
        self.assertTrue(verifyObject(IResource, RecordingReceiver()))

    def test_harness(self) -> None:
        """The harness's application is an IService, and its default sender a
        FakeSender providing IWebhookSender."""
        harness = HooksHarness()
        self.addCleanup(harness.stop)
        self.assertTrue(verifyObject(IService, harness.hooks))
        self.assertIsInstance(harness.sender, FakeSender)
        self.assertTrue(verifyObject(IWebhookSender, harness.sender))

    def test_public_names(self) -> None:
        """Every name of __all__ exists and has a docstring of its own (or, for the
        constants, a documented value)."""
        for name in twisted_hooks.testing.__all__:
            value = getattr(twisted_hooks.testing, name)
            if name in ("HOLD", "Answer", "EXAMPLE_SUBSCRIBER"):
                continue
            self.assertTrue((value.__doc__ or "").strip(), name)


class OutcomeTests(SynchronousTestCase):
    """Outcome: the answers a FakeSender gives, classified as the real sender does."""

    def test_default_is_a_success(self) -> None:
        """Outcome() is a 200 without error."""
        self.assertEqual(Outcome(), Outcome(status_code=200))
        self.assertIsNone(Outcome().error_kind)

    def test_status_classification(self) -> None:
        """2xx succeeds, 3xx is a redirect not followed, 410 is gone, other codes are
        status failures with their reason phrase."""
        self.assertEqual(Outcome.status(204), Outcome(status_code=204))
        self.assertEqual(
            (Outcome.status(302).error_kind, Outcome.status(302).error_message),
            (ErrorKind.REDIRECT, "302 redirect not followed"),
        )
        self.assertEqual(Outcome.status(410).error_kind, ErrorKind.GONE)
        self.assertEqual(
            (Outcome.status(500).error_kind, Outcome.status(500).error_message),
            (ErrorKind.STATUS, "500 Internal Server Error"),
        )
        self.assertEqual(Outcome.status(599).error_message, "599")

    def test_status_body_and_retry_after(self) -> None:
        """The body is kept up to 4 KiB, as the real sender keeps it; a 429 or 503
        carries its retry_after."""
        self.assertEqual(len(Outcome.status(200, b"x" * 10_000).response_body), 4096)
        self.assertEqual(Outcome.status(429, retry_after=30).retry_after, 30)
        self.assertEqual(Outcome.status(503, retry_after=1).retry_after, 1)

    def test_status_refusals(self) -> None:
        """A code outside 100-599 and a retry_after on another code than 429/503 are
        refused, naming the problem."""
        for code in (99, 600, True, "200"):
            with self.assertRaises(ValueError) as raised:
                Outcome.status(code)  # type: ignore[arg-type]
            self.assertIn("100 to 599", str(raised.exception))
        with self.assertRaises(ValueError) as raised:
            Outcome.status(500, retry_after=5)
        self.assertIn("429 or 503", str(raised.exception))

    def test_error(self) -> None:
        """error() makes a failure without an answer; a kind that needs an answer is
        refused, pointing at status()."""
        timeout = Outcome.error(ErrorKind.TIMEOUT)
        self.assertEqual((timeout.status_code, timeout.error_kind), (None, ErrorKind.TIMEOUT))
        self.assertFalse(timeout.reached_receiver)
        boom = ConnectionRefusedError("no")
        refused = Outcome.error(ErrorKind.CONNECTION, "refused", boom)
        self.assertEqual(refused.error_message, "refused")
        self.assertIs(refused.exception, boom)
        for kind in (ErrorKind.STATUS, ErrorKind.GONE, ErrorKind.SUBSCRIBER, "nope"):
            with self.assertRaises(ValueError) as raised:
                Outcome.error(kind)
            self.assertIn("Outcome.status", str(raised.exception))

    def test_fields_checked(self) -> None:
        """A bad status code or error kind, or no status and no kind, is refused."""
        with self.assertRaises(ValueError) as raised:
            Outcome(status_code=1000)
        self.assertIn("status_code", str(raised.exception))
        with self.assertRaises(ValueError) as raised:
            Outcome(error_kind="bad")
        self.assertIn("error_kind", str(raised.exception))
        with self.assertRaises(ValueError) as raised:
            Outcome(status_code=None)
        self.assertIn("error_kind", str(raised.exception))

    def test_from_reply(self) -> None:
        """A receiver's reply is classified with its Retry-After read as the real sender
        reads it: seconds, or an HTTP date; ignored on other codes."""
        self.assertEqual(
            Outcome.from_reply(Reply(429, headers={"Retry-After": "30"}), NOW).retry_after, 30
        )
        date = "Tue, 14 Nov 2023 22:14:20 GMT"  # NOW + 60 s
        self.assertEqual(
            Outcome.from_reply(Reply(503, headers={"retry-after": date}), NOW).retry_after, 60
        )
        self.assertIsNone(
            Outcome.from_reply(Reply(500, headers={"Retry-After": "30"}), NOW).retry_after
        )


class FakeSenderTests(SynchronousTestCase):
    """FakeSender: notes, answers, holds and records attempts."""

    def test_answers_200_by_default(self) -> None:
        """With nothing set, an attempt is a 200, numbered after the delivery's attempts
        and started at the clock's time; the call is noted."""
        sender = sender_at()
        to = subscriber()
        delivery = make_delivery("d1", subscriber=to, attempts=2)
        attempt = self.successResultOf(sender.attempt(delivery, to))
        self.assertEqual(
            (attempt.delivery_id, attempt.number, attempt.started_at, attempt.status_code),
            ("d1", 3, NOW, 200),
        )
        self.assertTrue(attempt.succeeded)
        self.assertEqual(sender.calls, [SenderCall(delivery, to)])
        self.assertEqual(sender.attempts, [attempt])
        self.assertEqual(sender.urls(), [URL])

    def test_precedence(self) -> None:
        """Queued answers come first, in order; then the URL's answer; then respond;
        then the default; then the receiver's reply."""
        sender = sender_at(default=201)
        to = subscriber()
        other = subscriber(url=OTHER_URL)
        third = subscriber(url="https://third.example.com/")
        sender.queue(URL, 500, Outcome.error(ErrorKind.TIMEOUT))
        sender.answer(URL, 202)
        sender.respond = lambda delivery, sub: 203 if sub.url == OTHER_URL else None
        sender.receiver.answer(third.url, 204)

        def code(sub: Subscriber) -> int | None:
            d = make_delivery(subscriber=sub)
            return self.successResultOf(sender.attempt(d, sub)).status_code

        self.assertEqual([code(to), code(to), code(to), code(to)], [500, None, 202, 202])
        self.assertEqual(code(other), 203)
        self.assertEqual(code(third), 201)
        sender.default = None
        self.assertEqual(code(third), 204)

    def test_hold_and_finish(self) -> None:
        """HOLD leaves the attempt under way; finish() ends the oldest held one with the
        answer given (or the default), with the time held as its duration."""
        sender = sender_at()
        to = subscriber()
        sender.queue(URL, HOLD, HOLD)
        first = sender.attempt(make_delivery("a", subscriber=to), to)
        second = sender.attempt(make_delivery("b", subscriber=to), to)
        self.assertNoResult(first)
        self.assertEqual([h.delivery.id for h in sender.held], ["a", "b"])
        assert isinstance(sender.clock, Clock)
        sender.clock.advance(2.5)
        ended = sender.finish(500)
        self.assertIs(self.successResultOf(first), ended)
        self.assertEqual((ended.status_code, ended.duration), (500, 2.5))
        self.assertNoResult(second)
        sender.finish()
        self.assertEqual(self.successResultOf(second).status_code, 200)
        self.assertEqual(sender.held, [])

    def test_finish_errors(self) -> None:
        """finish() with nothing held fails saying how to hold; HOLD is not an ending."""
        sender = sender_at()
        with self.assertRaises(AssertionError) as raised:
            sender.finish()
        self.assertIn("no attempt is held", str(raised.exception))
        to = subscriber()
        sender.queue(URL, HOLD)
        sender.attempt(make_delivery(subscriber=to), to)
        with self.assertRaises(ValueError):
            sender.finish(HOLD)  # type: ignore[arg-type]

    def test_bad_answers(self) -> None:
        """Answers that are not a status code, an Outcome or HOLD are refused at once,
        and so are status codes outside 100-599."""
        sender = sender_at()
        for bad in ("200", 2.0, None, True):
            with self.assertRaises(TypeError) as raised:
                sender.queue(URL, bad)  # type: ignore[arg-type]
            self.assertIn("status code, an Outcome or HOLD", str(raised.exception))
        with self.assertRaises(ValueError):
            sender.answer(URL, 42)
        with self.assertRaises(TypeError):
            FakeSender(default="ok")  # type: ignore[arg-type]

    def test_records_answered_requests_signed(self) -> None:
        """Each answered attempt is recorded in the receiver with the headers the real
        sender makes (delivery_headers at the attempt's time) and the body; both
        signatures verify with the subscriber's secret."""
        sender = sender_at()
        to = subscriber()
        delivery = make_delivery("d1", subscriber=to, event="order.paid", data={"n": 1})
        self.successResultOf(sender.attempt(delivery, to))
        (request,) = sender.receiver.requests
        expected = {k.lower(): v for k, v in delivery_headers(delivery, to, int(NOW)).items()}
        self.assertEqual(dict(request.headers), expected)
        self.assertEqual((request.url, request.body, request.received_at), (URL, b'{"n":1}', NOW))
        self.assertEqual((request.event, request.delivery_id), ("order.paid", "d1"))
        request.verify(SECRET)

    def test_unanswered_not_recorded(self) -> None:
        """An attempt that got no answer (timeout, refused connection) never reached
        the receiver: it is not recorded there, and its message is the real sender's."""
        sender = sender_at()
        to = subscriber()
        sender.queue(URL, Outcome.error(ErrorKind.TIMEOUT), Outcome.error(ErrorKind.CONNECTION))
        delivery = make_delivery(subscriber=to, timeout=7.0)
        timeout = self.successResultOf(sender.attempt(delivery, to))
        self.assertEqual(timeout.error_message, "no complete answer within 7 s")
        refused = self.successResultOf(sender.attempt(delivery, to))
        self.assertEqual(refused.error_kind, ErrorKind.CONNECTION)
        self.assertEqual(sender.receiver.requests, [])

    def test_receiver_answers(self) -> None:
        """Without an answer of its own, the sender asks the receiver: a 503 reply with
        Retry-After becomes a failed attempt with retry_after and the reply's body."""
        sender = sender_at()
        to = subscriber()
        sender.receiver.answer(URL, Reply(503, b"busy", {"Retry-After": "120"}))
        attempt = self.successResultOf(sender.attempt(make_delivery(subscriber=to), to))
        self.assertEqual(
            (attempt.status_code, attempt.error_kind, attempt.retry_after, attempt.response_body),
            (503, ErrorKind.STATUS, 120.0, b"busy"),
        )
        self.assertEqual(len(sender.receiver.requests), 1)

    def test_unsignable_secret_is_internal(self) -> None:
        """A subscriber whose whsec_ secret is malformed cannot sign: as with the real
        sender, the attempt is an internal error naming the problem, and nothing is
        recorded."""
        sender = sender_at()
        to = subscriber(secret="whsec_!!!")
        attempt = self.successResultOf(sender.attempt(make_delivery(subscriber=to), to))
        self.assertEqual(attempt.error_kind, ErrorKind.INTERNAL)
        self.assertIn("whsec_", attempt.error_message or "")
        self.assertEqual(sender.receiver.requests, [])

    def test_exception_carried(self) -> None:
        """An outcome's exception reaches the attempt (for on_error callbacks)."""
        sender = sender_at()
        to = subscriber()
        boom = ConnectionRefusedError("refused")
        sender.queue(URL, Outcome.error(ErrorKind.CONNECTION, "refused", boom))
        attempt = self.successResultOf(sender.attempt(make_delivery(subscriber=to), to))
        self.assertIs(attempt.exception, boom)

    def test_close_counted(self) -> None:
        """close() fires at once and is counted."""
        sender = FakeSender()
        self.assertIsNone(self.successResultOf(sender.close()))
        self.assertEqual(sender.closed, 1)

    def test_agrees_with_the_real_sender(self) -> None:
        """For each status code, the FakeSender's attempt (answered by the receiver) and
        the real HTTPSender's (through StubTreq to the same receiver) have the same
        status, error kind, message and retry_after."""
        for code in (200, 201, 204, 301, 302, 400, 404, 410, 429, 500, 503):
            receiver = RecordingReceiver()
            receiver.answer(URL, Reply(code, b"", {"Retry-After": "30"}))
            clock = Clock()
            clock.advance(NOW)
            to = subscriber()
            delivery = make_delivery(subscriber=to)
            real = self.successResultOf(receiver.http_sender(clock).attempt(delivery, to))
            fake = self.successResultOf(FakeSender(clock, receiver=receiver).attempt(delivery, to))
            self.assertEqual(
                (fake.status_code, fake.error_kind, fake.error_message, fake.retry_after),
                (real.status_code, real.error_kind, real.error_message, real.retry_after),
                code,
            )
            first, second = receiver.requests
            self.assertEqual(
                dict(second.headers),
                {k: v for k, v in first.headers.items() if k in second.headers},
                code,
            )


class RecordedRequestTests(SynchronousTestCase):
    """RecordedRequest: a request as its receiver saw it."""

    def request(self, to: Subscriber | None = None, **fields: Any) -> RecordedRequest:
        """A request made by a FakeSender for a delivery to ``to``."""
        sender = sender_at()
        to = to or subscriber()
        self.successResultOf(sender.attempt(make_delivery("d1", subscriber=to, **fields), to))
        return sender.receiver.requests[0]

    def test_headers(self) -> None:
        """Header names are lower case, looked up in any case; the shortcuts read them;
        a header given twice is joined."""
        request = self.request(event="order.paid")
        self.assertEqual(request.header("Hook-Event"), "order.paid")
        self.assertEqual(request.header("HOOK-DELIVERY"), request.delivery_id)
        self.assertEqual(request.subscription_id, request.header("hook-subscription"))
        self.assertEqual(request.content_type, "application/json")
        self.assertIsNone(request.header("x-missing"))
        joined = RecordedRequest(URL, [("X-A", "1"), ("x-a", "2")], b"")
        self.assertEqual(joined.headers, {"x-a": "1, 2"})

    def test_json_and_data(self) -> None:
        """json parses the body; data is the JSON, or for a form body a dict with a list
        for a repeated field."""
        request = self.request(data={"order": 42})
        self.assertEqual((request.json, request.data), ({"order": 42}, {"order": 42}))
        form = self.request(subscriber(content_type=FORM), data={"a": 1, "tags": ["x", "y"]})
        self.assertEqual(form.data, {"a": "1", "tags": ["x", "y"]})

    def test_json_error(self) -> None:
        """A body that is not JSON: a ValueError naming the URL, the content type and
        the start of the body."""
        request = RecordedRequest(URL, {"Content-Type": "text/plain"}, b"hello")
        raised = self.assertRaises(ValueError, lambda: request.json)
        message = str(raised)
        for part in (URL, "text/plain", "'hello'"):
            self.assertIn(part, message)

    def test_verify(self) -> None:
        """verify passes with the secret (or a rotation's secrets including it) and
        raises SignatureError with another secret, a changed body or no Hook-HMAC."""
        request = self.request()
        request.verify(SECRET)
        request.verify(["whsec_" + "A" * 32, SECRET])
        with self.assertRaises(SignatureError):
            request.verify("whsec_" + "A" * 32)
        changed = RecordedRequest(request.url, request.headers, b"{}!", request.received_at)
        with self.assertRaises(SignatureError):
            changed.verify(SECRET)
        headers = {k: v for k, v in request.headers.items() if k != "hook-hmac"}
        missing = RecordedRequest(request.url, headers, request.body, request.received_at)
        with self.assertRaises(SignatureError) as raised:
            missing.verify(SECRET)
        self.assertIn("Hook-HMAC", str(raised.exception))

    def test_verify_digest(self) -> None:
        """Hook-HMAC is checked with the subscriber's digest: sha512 verifies with
        digest_method="sha512" and not with the default."""
        request = self.request(subscriber(digest="sha512"))
        request.verify(SECRET, "sha512")
        with self.assertRaises(SignatureError) as raised:
            request.verify(SECRET)
        self.assertIn("Hook-HMAC", str(raised.exception))


class RecordingReceiverTests(SynchronousTestCase):
    """RecordingReceiver: records, answers, asserts."""

    def post(
        self, receiver: RecordingReceiver, url: str = URL, body: bytes = b"{}", **headers: str
    ) -> Any:
        """POST through StubTreq; the response."""
        stub = StubTreq(receiver)
        return self.successResultOf(stub.post(url, data=body, headers=headers or None))

    def test_over_http(self) -> None:
        """A POST is recorded with its URL, lower-case headers, body and the clock's
        time, and answered 200."""
        clock = Clock()
        clock.advance(NOW)
        receiver = RecordingReceiver(clock)
        response = self.post(receiver, body=b'{"a":1}', **{"Hook-Event": "a.b"})
        self.assertEqual(response.code, 200)
        (request,) = receiver.requests
        self.assertEqual((request.url, request.body, request.event), (URL, b'{"a":1}', "a.b"))
        self.assertEqual((request.method, request.received_at), ("POST", NOW))

    def test_other_methods(self) -> None:
        """A GET is answered 405 and not recorded."""
        receiver = RecordingReceiver()
        response = self.successResultOf(StubTreq(receiver).get(URL))
        self.assertEqual(response.code, 405)
        self.assertEqual(receiver.requests, [])

    def test_answers(self) -> None:
        """answer() sets a URL's reply (code, body, headers), whatever the letter case
        and default port; respond answers the other URLs; else 200."""
        receiver = RecordingReceiver()
        receiver.answer("HTTPS://Example.COM:443/hook", Reply(429, b"slow", {"Retry-After": "9"}))
        receiver.respond = lambda request: 500 if "other" in request.url else None
        response = self.post(receiver)
        self.assertEqual(response.code, 429)
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["9"])
        self.assertEqual(self.successResultOf(response.content()), b"slow")
        self.assertEqual(self.post(receiver, OTHER_URL).code, 500)
        self.assertEqual(self.post(receiver, "https://third.example/").code, 200)

    def test_bad_replies(self) -> None:
        """A reply's code outside 100-599 and an answer that is no code or Reply are
        refused, naming what is wanted."""
        with self.assertRaises(ValueError) as raised:
            Reply(600)
        self.assertIn("100 to 599", str(raised.exception))
        with self.assertRaises(TypeError) as raised_type:
            RecordingReceiver().answer(URL, "ok")  # type: ignore[arg-type]
        self.assertIn("status code or a Reply", str(raised_type.exception))

    def receiver_with(self, *requests: tuple[str, str, bytes]) -> RecordingReceiver:
        """A receiver holding requests (event, url, JSON body)."""
        receiver = RecordingReceiver()
        for number, (event, url, body) in enumerate(requests):
            receiver.receive(
                RecordedRequest(
                    url,
                    {
                        "Hook-Event": event,
                        "Hook-Delivery": f"d{number}",
                        "Content-Type": "application/json",
                    },
                    body,
                )
            )
        return receiver

    def test_sent(self) -> None:
        """sent() filters by event and URL (compared without default port or case)."""
        receiver = self.receiver_with(("a", URL, b"1"), ("b", URL, b"2"), ("a", OTHER_URL, b"3"))
        self.assertEqual([r.body for r in receiver.sent("a")], [b"1", b"3"])
        self.assertEqual(
            [r.body for r in receiver.sent(url="https://EXAMPLE.com:443/hook")], [b"1", b"2"]
        )
        self.assertEqual([r.body for r in receiver.sent("a", OTHER_URL)], [b"3"])
        self.assertEqual(len(receiver.sent()), 3)

    def test_assert_sent(self) -> None:
        """assert_sent returns the first matching request; data is compared as decoded,
        after the engine's own encoding (Decimal as its string, key order free)."""
        receiver = self.receiver_with(
            ("order.paid", URL, b'{"total":"9.99","order":42}'),
            ("order.paid", URL, b'{"total":"1.00","order":43}'),
        )
        found = receiver.assert_sent("order.paid")
        self.assertEqual(found.delivery_id, "d0")
        found = receiver.assert_sent(
            "order.paid", url=URL, data={"order": 43, "total": Decimal("1.00")}
        )
        self.assertEqual(found.delivery_id, "d1")
        receiver.assert_sent("order.paid", count=2)

    def test_assert_sent_datetime(self) -> None:
        """A datetime in the expected data compares as the engine encodes it."""
        moment = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
        receiver = self.receiver_with(("a", URL, b'{"at":"2024-05-01T12:00:00Z"}'))
        receiver.assert_sent("a", data={"at": moment})

    def test_assert_sent_failures(self) -> None:
        """When nothing matches, the AssertionError says what was wanted and lists what
        was recorded; with a count, it says how many matched; with nothing recorded at
        all, it says so."""
        receiver = self.receiver_with(("order.paid", URL, b'{"order":42}'))
        with self.assertRaises(AssertionError) as raised:
            receiver.assert_sent("order.paid", url=OTHER_URL, data={"order": 1})
        message = str(raised.exception)
        self.assertIn(
            f"no request of 'order.paid' to {OTHER_URL} with data {{'order': 1}}", message
        )
        self.assertIn(f'order.paid to {URL} (delivery d0): {{"order":42}}', message)
        with self.assertRaises(AssertionError) as raised:
            receiver.assert_sent("order.paid", count=2)
        self.assertIn("expected 2 request(s) of 'order.paid', got 1", str(raised.exception))
        with self.assertRaises(AssertionError) as raised:
            RecordingReceiver().assert_sent("order.paid")
        self.assertIn("no request was recorded at all", str(raised.exception))

    def test_assert_sent_data_not_json(self) -> None:
        """A request whose body is not JSON never matches expected data."""
        receiver = self.receiver_with(("a", URL, b"not json"))
        with self.assertRaises(AssertionError):
            receiver.assert_sent("a", data="not json")
        receiver.assert_sent("a")

    def test_assert_not_sent_and_clear(self) -> None:
        """assert_not_sent passes when nothing matches and lists what does otherwise;
        clear() forgets the requests."""
        receiver = self.receiver_with(("a", URL, b"1"))
        receiver.assert_not_sent("b")
        receiver.assert_not_sent("a", OTHER_URL)
        with self.assertRaises(AssertionError) as raised:
            receiver.assert_not_sent()
        self.assertIn("expected no any request, got 1", str(raised.exception))
        with self.assertRaises(AssertionError) as raised:
            receiver.assert_not_sent("a", URL)
        self.assertIn(f"expected no 'a' to {URL}, got 1", str(raised.exception))
        receiver.clear()
        receiver.assert_not_sent()

    def test_http_sender(self) -> None:
        """http_sender() is the real HTTPSender, sending to the receiver in memory: its
        request is recorded signed, and the receiver's reply classified."""
        clock = Clock()
        clock.advance(NOW)
        receiver = RecordingReceiver(clock)
        receiver.answer(URL, 410)
        sender = receiver.http_sender(clock)
        self.assertIsInstance(sender, HTTPSender)
        to = subscriber()
        attempt = self.successResultOf(sender.attempt(make_delivery("d1", subscriber=to), to))
        self.assertEqual(attempt.error_kind, ErrorKind.GONE)
        (request,) = receiver.requests
        self.assertEqual((request.url, request.delivery_id), (URL, "d1"))
        request.verify(SECRET)


class MakeDeliveryTests(SynchronousTestCase):
    """make_delivery: one factory of deliveries for tests."""

    def test_defaults(self) -> None:
        """A pending delivery of order.created to EXAMPLE_SUBSCRIBER, body {}, at 0,
        with a new UUID for an id."""
        delivery = make_delivery()
        self.assertEqual(
            (delivery.event, delivery.subscriber, delivery.body, delivery.status),
            ("order.created", EXAMPLE_SUBSCRIBER, b"{}", PENDING),
        )
        self.assertEqual((delivery.created_at, delivery.next_attempt_at), (0.0, 0.0))
        self.assertEqual(len(delivery.id), 36)
        self.assertNotEqual(make_delivery().id, delivery.id)

    def test_fields(self) -> None:
        """Id, due time and any Delivery field are taken; data is encoded for the
        subscriber's content type."""
        to = subscriber(content_type=FORM)
        delivery = make_delivery("d", 5.0, subscriber=to, data={"a": 1}, attempts=3)
        self.assertEqual(
            (delivery.id, delivery.next_attempt_at, delivery.body, delivery.attempts),
            ("d", 5.0, b"a=1", 3),
        )

    def test_data_and_body(self) -> None:
        """Both data and body: refused, naming both."""
        with self.assertRaises(ValueError) as raised:
            make_delivery(data={}, body=b"{}")
        self.assertIn("data", str(raised.exception))
        self.assertIn("body", str(raised.exception))


class MemoryHealthStoreTests(SynchronousTestCase):
    """MemoryHealthStore: health records in a dict, with failures on demand."""

    def record(self, subscriber_id: str = "s", failures: int = 1) -> EndpointHealth:
        """A health record."""
        return EndpointHealth(subscriber_id=subscriber_id, consecutive_failures=failures)

    def test_load_and_save(self) -> None:
        """Saved records are loaded back, by subscriber id; each save is noted."""
        store = MemoryHealthStore([self.record("a")])
        self.assertIsNone(self.successResultOf(store.save_health([self.record("a", 2)])))
        loaded = self.successResultOf(store.load_health())
        self.assertEqual([(r.subscriber_id, r.consecutive_failures) for r in loaded], [("a", 2)])
        self.assertEqual(store.saves, [[self.record("a", 2)]])

    def test_failures(self) -> None:
        """fail_load fails loads; fail_saves fails that many saves, storing nothing;
        both with a ConnectionError saying why."""
        store = MemoryHealthStore()
        store.fail_load = True
        self.assertIn("fail_load", str(self.failureResultOf(store.load_health()).value))
        store.fail_saves = 1
        failure = self.failureResultOf(store.save_health([self.record()]), ConnectionError)
        self.assertIn("fail_saves", str(failure.value))
        self.assertEqual(store.records, {})
        self.successResultOf(store.save_health([self.record()]))
        self.assertEqual(list(store.records), ["s"])

    def test_hold(self) -> None:
        """hold_saves stores the records but leaves the save's Deferred for the test."""
        store = MemoryHealthStore()
        store.hold_saves = True
        saved = store.save_health([self.record()])
        self.assertNoResult(saved)
        self.assertEqual(list(store.records), ["s"])
        store.held.pop().callback(None)
        self.successResultOf(saved)


class ResultOfTests(SynchronousTestCase):
    """result_of: a fired Deferred's result, synchronously."""

    def test_value(self) -> None:
        """A fired Deferred gives its value."""
        self.assertEqual(result_of(succeed(3)), 3)

    def test_failure(self) -> None:
        """A failed Deferred raises its exception."""
        with self.assertRaises(KeyError):
            result_of(fail(KeyError("x")))

    def test_unfired(self) -> None:
        """An unfired Deferred is an AssertionError naming the operation."""
        with self.assertRaises(AssertionError) as raised:
            result_of(Deferred(), "saving")
        self.assertIn("saving has not finished", str(raised.exception))


class HooksHarnessTests(SynchronousTestCase):
    """HooksHarness: the application on a Clock, driven synchronously."""

    def harness(self, **kwargs: Any) -> HooksHarness:
        """A harness (stopped at cleanup), one retry 5 s after a failure by default."""
        kwargs.setdefault("settings", Settings(retry=ONE_RETRY))
        harness = HooksHarness(**kwargs)
        self.addCleanup(harness.stop)
        return harness

    def test_send_and_flush(self) -> None:
        """A sent event is delivered by flush(), and the receiver saw it, signed."""
        harness = self.harness()
        harness.subscribe("order.*", URL, secret=SECRET)
        result = harness.send("order.paid", {"order": 42})
        self.assertEqual(len(result.deliveries), 1)
        harness.flush()
        self.assertEqual([d.status for d in harness.deliveries()], [DELIVERED])
        self.assertEqual(harness.delivered()[0].id, result.deliveries[0].id)
        harness.receiver.assert_sent("order.paid", url=URL, data={"order": 42}).verify(SECRET)

    def test_retry_at_its_time(self) -> None:
        """A failure is retried at its scheduled time (5 s later, exactly): advance()
        stops at each timer rather than jumping to the end."""
        harness = self.harness()
        harness.subscribe("order.*", URL)
        assert isinstance(harness.sender, FakeSender)
        harness.sender.queue(URL, 500)
        (delivery,) = harness.send("order.paid", {}).deliveries
        start = harness.clock.seconds()
        harness.advance(3600.0)
        first, second = harness.attempts(delivery.id)
        self.assertEqual(first.status_code, 500)
        self.assertAlmostEqual(second.started_at - first.started_at, 5.0, places=6)
        self.assertEqual(harness.clock.seconds(), start + 3600.0)
        self.assertEqual(harness.delivered()[0].id, delivery.id)

    def test_flush_until_dead(self) -> None:
        """flush() runs the whole retry schedule: a receiver that always fails leaves
        the delivery dead after its last attempt, a day later by the clock."""
        harness = self.harness(settings=Settings())
        harness.subscribe("order.*", URL)
        harness.receiver.answer(URL, 500)
        harness.send("order.paid", {})
        start = harness.clock.seconds()
        harness.flush()
        (dead,) = harness.dead()
        self.assertEqual(dead.attempts, 8)
        self.assertGreater(harness.clock.seconds() - start, 20 * 3600)
        self.assertEqual(len(harness.receiver.sent("order.paid")), 8)

    def test_flush_stops_at_a_held_attempt(self) -> None:
        """An attempt held by the FakeSender stops flush() with an AssertionError naming
        the delivery and finish(); once finished, flush() ends it."""
        harness = self.harness()
        harness.subscribe("order.*", URL)
        assert isinstance(harness.sender, FakeSender)
        harness.sender.queue(URL, HOLD)
        (delivery,) = harness.send("order.paid", {}).deliveries
        with self.assertRaises(AssertionError) as raised:
            harness.flush()
        message = str(raised.exception)
        self.assertIn("sender.finish()", message)
        self.assertIn(delivery.id, message)
        harness.sender.finish()
        harness.flush()
        self.assertEqual(harness.delivered()[0].id, delivery.id)

    def test_flush_nothing_scheduled(self) -> None:
        """Deliveries in the store of an application that is not started: flush() says
        nothing is scheduled and asks whether it is started."""
        harness = self.harness(start=False)
        result_of(harness.hooks.deliveries.enqueue([make_delivery("d1")]))
        with self.assertRaises(AssertionError) as raised:
            harness.flush()
        self.assertIn("is the application started?", str(raised.exception))
        self.assertIn("d1", str(raised.exception))

    def test_flush_gives_up(self) -> None:
        """After max_steps timers, flush() gives up, naming what is unfinished."""
        harness = self.harness()
        harness.subscribe("order.*", URL)
        harness.receiver.answer(URL, 500)
        harness.send("order.paid", {})
        with self.assertRaises(AssertionError) as raised:
            harness.flush(max_steps=1)
        self.assertIn("gave up after 1 timers", str(raised.exception))
        self.assertEqual([d.status for d in harness.unfinished()], [RETRYING])

    def test_flush_with_nothing_to_do(self) -> None:
        """flush() with no delivery returns at once, without moving the clock."""
        harness = self.harness()
        before = harness.clock.seconds()
        harness.flush()
        self.assertEqual(harness.clock.seconds(), before)

    def test_advance_refusals(self) -> None:
        """advance() refuses negative, infinite and NaN durations."""
        harness = self.harness()
        for bad in (-1.0, float("inf"), float("nan")):
            with self.assertRaises(ValueError) as raised:
                harness.advance(bad)
            self.assertIn("advance()", str(raised.exception))

    def test_sender_or_http(self) -> None:
        """A sender and http=True together are refused."""
        with self.assertRaises(ValueError) as raised:
            HooksHarness(sender=FakeSender(), http=True)
        self.assertIn("not both", str(raised.exception))

    def test_http_mode(self) -> None:
        """With http=True the real HTTPSender sends to the receiver in memory: a 410
        from the receiver deactivates the subscription, as with a real endpoint."""
        harness = self.harness(http=True)
        self.assertIsInstance(harness.sender, HTTPSender)
        hook = harness.subscribe("order.*", URL, secret=SECRET)
        harness.receiver.answer(URL, 410)
        harness.send("order.paid", {"order": 1})
        harness.flush()
        self.assertEqual([d.status for d in harness.deliveries()], [DEAD])
        self.assertFalse(result_of(harness.hooks.subscribers.get(hook.id)).active)
        harness.receiver.assert_sent("order.paid", url=URL, data={"order": 1}).verify(SECRET)

    def test_send_errors_raised(self) -> None:
        """A send refused at once raises its error; a subscribe too."""
        harness = self.harness()
        with self.assertRaises(ValueError):
            harness.send("", {})
        with self.assertRaises(ValueError):
            harness.subscribe("order.*", "ftp://example.com/")

    def test_stop(self) -> None:
        """stop() stops the application; again, it does nothing; with an attempt held,
        it says what the application waits for."""
        harness = HooksHarness()
        harness.stop()
        self.assertFalse(harness.hooks.running)
        harness.stop()
        held = HooksHarness()
        held.subscribe("order.*", URL)
        assert isinstance(held.sender, FakeSender)
        held.sender.default = HOLD
        held.send("order.paid", {})
        held.advance(0.1)
        with self.assertRaises(AssertionError) as raised:
            held.stop()
        self.assertIn("stopping the application has not finished", str(raised.exception))
        held.sender.finish(200)


# -- the documentation's example -------------------------------------------------------------

EXAMPLE = ROOT / "doc" / "examples" / "testing_webhooks.py"


def printed_block(page: str, index: int) -> str:
    """The ``index``-th literal block that follows "It prints::" in ``doc/<page>.rst``."""
    text = (ROOT / "doc" / f"{page}.rst").read_text(encoding="utf-8")
    blocks = re.findall(r"It prints::\n\n((?:   .*\n|\n)+)", text)
    assert len(blocks) > index, f"doc/{page}.rst has no 'It prints::' block number {index}"
    lines = [line[3:] for line in blocks[index].rstrip().splitlines()]
    return "\n".join(lines) + "\n"


class ExampleTests(SynchronousTestCase):
    """The testing guide's example runs, as a program and as a test module."""

    def test_program_prints_what_the_page_says(self) -> None:
        """doc/examples/testing_webhooks.py, run as a program, passes its tests and
        prints what doc/testing.rst says."""
        result = subprocess.run(
            [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(result.stdout, printed_block("testing", 0))

    def test_its_tests_can_fail(self) -> None:
        """The example's tests fail when the code under test stops sending: they test
        something."""
        spec = importlib.util.spec_from_file_location("testing_webhooks", EXAMPLE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.Shop.pay = lambda self, order_id, total: None
        import unittest

        suite = unittest.defaultTestLoader.loadTestsFromTestCase(module.OrderWebhookTests)
        outcome = unittest.TestResult()
        suite.run(outcome)
        self.assertGreater(suite.countTestCases(), 2)
        self.assertFalse(outcome.wasSuccessful())
        self.assertGreaterEqual(len(outcome.failures) + len(outcome.errors), 2)


# -- through the real service ----------------------------------------------------------------


class RealServiceTests(TestCase):
    """The real ``twist hooks`` (a child process on a temporary SQLite file) delivers to
    a RecordingReceiver served on 127.0.0.1 by the real reactor."""

    timeout = 120

    async def test_receiver_records_what_the_service_sends(self) -> None:
        """A delivery from the service is recorded with its URL, event, delivery id and
        data; assert_sent finds it, verify() accepts its signatures with the secret the
        API gave, and it carries every header a FakeSender records, with the same
        event, content type and user agent product."""
        from twisted.internet import reactor

        from tests._service import Service

        receiver = RecordingReceiver()
        port = reactor.listenTCP(0, Site(receiver), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}/hooks"
        directory = Path(tempfile.mkdtemp(prefix="twisted-hooks-testing-"))
        self.addCleanup(shutil.rmtree, directory, True)
        service = Service(directory)
        self.addCleanup(service.kill)
        service.start()
        token = service.token("alice")
        status, _, hook = service.request(
            "POST", "/hooks/", token, {"event": "order.*", "url": url}
        )
        self.assertEqual(status, 201, hook)
        status, _, published = service.request(
            "POST", "/events/", token, {"event": "order.paid", "data": {"order": 42}}
        )
        self.assertEqual(status, 202, published)

        deadline = time.monotonic() + 30
        while not receiver.requests:
            self.assertLess(time.monotonic(), deadline, "no delivery within 30 s")
            await deferLater(reactor, 0.05, lambda: None)

        request = receiver.assert_sent("order.paid", url=url, data={"order": 42}, count=1)
        self.assertEqual(request.subscription_id, hook["id"])
        self.assertEqual(request.delivery_id, request.header("webhook-id"))
        request.verify(hook["hmac_secret"])

        to = Subscriber(event="order.*", url=url, secret=hook["hmac_secret"], id=hook["id"])
        fake = sender_at(time.time())
        delivery = make_delivery(request.delivery_id, subscriber=to, event="order.paid")
        self.successResultOf(fake.attempt(delivery, to))
        (recorded,) = fake.receiver.requests
        self.assertLessEqual(set(recorded.headers), set(request.headers))
        for name in ("hook-event", "hook-delivery", "hook-subscription", "content-type"):
            self.assertEqual(recorded.headers[name], request.headers[name], name)
        self.assertEqual(
            recorded.headers["user-agent"].split()[0], request.headers["user-agent"].split()[0]
        )
