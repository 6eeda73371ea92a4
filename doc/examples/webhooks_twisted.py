"""
The webhooks guide's Twisted program: ``python doc/examples/webhooks_twisted.py``.

It starts a receiver on 127.0.0.1 (a twisted.web resource that verifies both signatures),
a :class:`~twisted_hooks.webhooks.Hooks` application allowed to deliver there, subscribes
the receiver, sends one event, and prints what each side saw. The receiver answers the
first attempt with ``503`` and the retry with ``200``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from twisted_hooks.webhooks import (
    Event,
    Hooks,
    verify,
    verify_standard,
)
from twisted_hooks.webhooks.signing import SignatureError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver(Resource):
    """The subscriber's side: verify, then answer 503 once and 200 afterwards."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        body = request.content.read()  # the raw bytes: verify them, not re-encoded JSON
        headers = {
            name.decode("latin-1"): values[0].decode("latin-1")
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        try:
            verify_standard(SECRET, headers, body)
        except SignatureError as error:
            request.setResponseCode(401)
            return str(error).encode("utf-8")
        thorn_ok = verify(headers["Hook-Hmac"], "sha256", SECRET, body)
        if not self.seen:
            print("receiver: headers", ", ".join(sorted(headers)))
            print(f"receiver: Accept-Encoding: {headers['Accept-Encoding']}")
        print(f"receiver: {headers['Hook-Event']} {body.decode()} (Hook-HMAC valid: {thorn_ok})")
        self.seen.append(headers["Hook-Delivery"])
        if len(self.seen) == 1:
            request.setResponseCode(503)
            request.setHeader("Retry-After", "0")
            return b"busy, try again"
        return b"thanks"


async def main(reactor: Any) -> None:
    receiver = Receiver()
    listening = reactor.listenTCP(0, Site(receiver), interface="127.0.0.1")
    port = listening.getHost().port

    # Thorn's validators refuse 127.0.0.1: allow the loopback network (on any port), here only.
    hooks = Hooks(reactor, allowed_networks=["127.0.0.0/8"])
    hooks.startService()

    def failed(event: Any) -> None:
        print(f"operational: {event.name} ({event.reason})")

    await hooks.dispatcher.add_event_handler(
        failed, "after", use_weakref=False, kind="operational"
    )

    subscriber = await hooks.subscribe("order.*", f"http://127.0.0.1:{port}/hooks", secret=SECRET)
    print(f"subscribed to {subscriber.event}")

    order_paid = Event("order.paid", app=hooks, retry_max=3, retry_delay=0.1)
    result = await order_paid.send(
        {"order": 42, "total": "19.90"},
        on_success=lambda request: print(f"on_success: attempt {request.attempt.number}"),
        on_error=lambda request, error: print(
            f"on_error: attempt {request.attempt.number}: {error}"
        ),
    )
    print(f"accepted {len(result.deliveries)} delivery")

    await hooks.drain()  # until every accepted delivery is delivered or dead
    [delivery_id] = result.delivery_ids
    delivery = await hooks.deliveries.get(delivery_id)
    print(f"{delivery.status} after {delivery.attempts} attempts")
    print(f"same Hook-Delivery on both attempts: {receiver.seen == [delivery_id] * 2}")

    await hooks.stopService()
    await listening.stopListening()


def run(reactor: Any) -> Deferred[None]:
    return Deferred.fromCoroutine(main(reactor))


if __name__ == "__main__":
    task.react(run)
