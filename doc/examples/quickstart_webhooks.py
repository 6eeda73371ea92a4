"""
Webhooks from Twisted code: ``python quickstart_webhooks.py``.

It starts a receiver on 127.0.0.1 that checks each request's Standard Webhooks signature,
subscribes it to ``order.*``, sends one event and waits until it is delivered.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from twisted_hooks.webhooks import Hooks, generate_secret, verify_standard
from twisted_hooks.webhooks.signing import SignatureError

SECRET = generate_secret()  # whsec_... : shared by the sender and the receiver


class Receiver(Resource):
    """The subscriber's side: a twisted.web resource that verifies, then answers 204."""

    isLeaf = True

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        body = request.content.read()  # the raw bytes, exactly as sent: verify these
        headers = {
            name.decode("latin-1"): values[0].decode("latin-1")
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        try:
            verify_standard(SECRET, headers, body)
        except SignatureError as error:
            request.setResponseCode(401)
            return str(error).encode("utf-8")
        print(f"receiver: {headers['Hook-Event']} {body.decode()} (signature valid)")
        request.setResponseCode(204)
        return b""


async def main(reactor: Any) -> None:
    listening = reactor.listenTCP(0, Site(Receiver()), interface="127.0.0.1")
    port = listening.getHost().port

    # Webhooks to internal addresses such as 127.0.0.1 are refused unless their network is
    # allowed (then on any port): allow this machine's, for the example only.
    hooks = Hooks(reactor, allowed_networks=["127.0.0.0/8"])
    hooks.startService()

    subscriber = await hooks.subscribe("order.*", f"http://127.0.0.1:{port}/hooks", secret=SECRET)
    print(f"subscribed to {subscriber.event}")

    result = await hooks.send("order.paid", {"order": 42, "total": "19.90"})
    print(f"accepted {len(result.deliveries)} delivery")

    await hooks.drain()  # until every accepted delivery is delivered or dead
    delivery = await hooks.deliveries.get(result.delivery_ids[0])
    print(f"{delivery.status} after {delivery.attempts} attempt")

    await hooks.stopService()
    await listening.stopListening()


def run(reactor: Any) -> Deferred[None]:
    return Deferred.fromCoroutine(main(reactor))


if __name__ == "__main__":
    task.react(run)
