"""
The wire format of a delivery, byte for byte: a golden record of the request one delivery
makes, for a JSON subscriber and a form-encoded one, through a started
:class:`~twisted_hooks.webhooks.app.Hooks` and its real
:class:`~twisted_hooks.webhooks.sender.HTTPSender`, to a real ``twisted.web`` server on
127.0.0.1.

Every header line is pinned as it crosses the wire (name spelling, order and value), and
the body's exact bytes. The values that differ from one delivery to the next are pinned
by their format instead: ``Hook-Delivery`` and ``webhook-id`` are the delivery's id,
``webhook-timestamp`` is the attempt's time in decimal digits, and both signatures are
recomputed here, with the standard library, from a fixed secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.trial.unittest import TestCase
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from twisted_hooks.webhooks.app import Hooks
from twisted_hooks.webhooks.delivery import DELIVERED
from twisted_hooks.webhooks.encoding import FORM, JSON
from twisted_hooks.webhooks.sender import USER_AGENT

#: The fixed secret both subscribers sign with (Standard Webhooks form).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#: The event's data: nested values, a non-ASCII string, a number with decimals.
DATA = {"order": 42, "total": "9.99", "who": "Zoë", "items": [1, 2], "note": None}

JSON_BODY = b'{"order":42,"total":"9.99","who":"Zo\xc3\xab","items":[1,2],"note":null}'
FORM_BODY = b"order=42&total=9.99&who=Zo%C3%AB&items=1&items=2&note="


#: The subscriber's id, then the method, path, raw header lines and body of a request.
_Seen = tuple[str, bytes, bytes, list[bytes], bytes]


class _Captured:
    """What the server saw of each request: raw header lines, method, path, body."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.requests: list[tuple[bytes, bytes, list[bytes], bytes]] = []
        self.waiters: list[Deferred[None]] = []


class _Channel(HTTPChannel):
    """An HTTP channel that keeps each header line exactly as it was received."""

    captured: _Captured

    def headerReceived(self, line: bytes) -> bool:
        self.captured.lines.append(line)
        return super().headerReceived(line)


class _Receiver(Resource):
    isLeaf = True

    def __init__(self, captured: _Captured) -> None:
        super().__init__()
        self.captured = captured

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        lines, self.captured.lines = self.captured.lines, []
        self.captured.requests.append((request.method, request.uri, lines, request.content.read()))
        waiters, self.captured.waiters = self.captured.waiters, []
        for waiter in waiters:
            waiter.callback(None)
        request.setResponseCode(204)
        return b""


def _hook_hmac(digest: str, body: bytes) -> str:
    mac = hmac.new(SECRET.encode("utf-8"), body, getattr(hashlib, digest))
    return base64.b64encode(mac.digest()).decode("ascii")


def _standard(msg_id: str, timestamp: str, body: bytes) -> str:
    key = base64.b64decode(SECRET[len("whsec_") :])
    content = msg_id.encode("utf-8") + b"." + timestamp.encode("ascii") + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


class GoldenDelivery(TestCase):
    """One delivery per content type, compared with the recorded wire format."""

    def setUp(self) -> None:
        self.captured = _Captured()
        site = Site(_Receiver(self.captured))
        captured = self.captured

        class Channel(_Channel):
            pass

        Channel.captured = captured
        site.protocol = Channel
        self.port: IListeningPort = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(self.port.stopListening)
        self.hooks = Hooks(reactor, allowed_networks=["127.0.0.0/8"])
        self.hooks.startService()
        self.addCleanup(self.hooks.stopService)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port.getHost().port}/receive/here?tenant=7"

    async def _deliver(self, content_type: str, digest: str) -> tuple[str, _Seen]:
        subscriber = await self.hooks.subscribe(
            "order.created",
            self.url,
            secret=SECRET,
            digest=digest,
            content_type=content_type,
            headers=(("X-Tenant", "seven"),),
        )
        arrived: Deferred[None] = Deferred()
        self.captured.waiters.append(arrived)
        result = await self.hooks.send("order.created", DATA, event_id="evt-golden-1")
        (delivery,) = result.deliveries
        await arrived
        await self.hooks.drain()
        stored = await self.hooks.deliveries.get(delivery.id)
        self.assertEqual(stored.status, DELIVERED)
        (request,) = self.captured.requests
        return delivery.id, (subscriber.id, *request)

    def _check(
        self,
        delivery_id: str,
        seen: _Seen,
        content_type: str,
        digest: str,
        body: bytes,
    ) -> None:
        subscriber_id, method, path, lines, received = seen
        self.assertEqual(method, b"POST")
        self.assertEqual(path, b"/receive/here?tenant=7")
        self.assertEqual(received, body)
        text = [line.decode("latin-1") for line in lines]
        stamp = [line for line in text if line.startswith("Webhook-Timestamp: ")]
        self.assertEqual(len(stamp), 1, text)
        timestamp = stamp[0].split(": ", 1)[1]
        self.assertRegex(timestamp, re.compile(r"\A[0-9]{10}\Z"))
        port = self.port.getHost().port
        self.assertEqual(
            text,
            [
                f"Content-Length: {len(body)}",
                "X-Tenant: seven",
                f"Hook-Hmac: {_hook_hmac(digest, body)}",
                f"Webhook-Id: {delivery_id}",
                f"Webhook-Timestamp: {timestamp}",
                f"Webhook-Signature: {_standard(delivery_id, timestamp, body)}",
                "Hook-Event: order.created",
                f"Hook-Delivery: {delivery_id}",
                f"Hook-Subscription: {subscriber_id}",
                f"User-Agent: {USER_AGENT}",
                f"Content-Type: {content_type}",
                "Accept-Encoding: identity",
                f"Host: 127.0.0.1:{port}",
            ],
        )

    def test_json_delivery(self) -> Deferred[None]:
        """A JSON subscriber's delivery: POST to its path and query, every header line
        as recorded (custom header, both signature schemes over the exact body, the event,
        delivery and subscription ids, User-Agent, Content-Type), the exact JSON bytes."""

        async def run() -> None:
            delivery_id, seen = await self._deliver(JSON, "sha256")
            self._check(delivery_id, seen, JSON, "sha256", JSON_BODY)

        return ensureDeferred(run())

    def test_form_delivery(self) -> Deferred[None]:
        """A form-encoded subscriber's delivery (sha512 Hook-HMAC): the same header lines
        with its content type and digest, and the exact form-encoded bytes."""

        async def run() -> None:
            delivery_id, seen = await self._deliver(FORM, "sha512")
            self._check(delivery_id, seen, FORM, "sha512", FORM_BODY)

        return ensureDeferred(run())
