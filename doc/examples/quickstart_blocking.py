"""
Webhooks from blocking code (a script, a Django or Flask view):
``python quickstart_blocking.py``.

It has no Twisted code of its own. Its receiver is a standard-library HTTP server in a
thread, which checks each request's Standard Webhooks signature.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from twisted_hooks import sync
from twisted_hooks.webhooks import generate_secret, verify_standard
from twisted_hooks.webhooks.signing import SignatureError

SECRET = generate_secret()  # whsec_... : shared by the sender and the receiver
received: list[str] = []


class Receiver(BaseHTTPRequestHandler):
    """The subscriber's side: verify, then answer 204."""

    def do_POST(self) -> None:
        # The raw bytes, exactly as sent: verify these, not JSON decoded and encoded again.
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            verify_standard(SECRET, dict(self.headers), body)
        except SignatureError as error:
            self.send_response(401)
            received.append(f"refused: {error}")
        else:
            self.send_response(204)
            received.append(f"{self.headers['Hook-Event']} {body.decode()}")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the output short


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    sync.setup()  # once, early: runs the reactor in a thread of its own

    # Webhooks to internal addresses such as 127.0.0.1 are refused unless their network is
    # allowed (then on any port): allow this machine's, for the example only.
    hooks = sync.BlockingHooks.create(allowed_networks=["127.0.0.0/8"], timeout=10.0)

    subscriber = hooks.subscribe("user.*", f"http://127.0.0.1:{port}/hooks", secret=SECRET)
    print(f"subscribed to {subscriber.event}")

    result = hooks.send("user.created", {"username": "susan"})
    print(f"accepted {len(result.deliveries)} delivery")

    hooks.drain()  # blocks until every accepted delivery is delivered or dead
    hooks.stop()
    server.shutdown()
    for line in received:
        print(f"receiver: {line}")


if __name__ == "__main__":
    main()
