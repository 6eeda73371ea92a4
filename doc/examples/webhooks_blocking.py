"""
The webhooks guide's synchronous program: ``python doc/examples/webhooks_blocking.py``.

A plain script, with no Twisted code of its own, that publishes webhooks through
:class:`twisted_hooks.sync.BlockingHooks`. Its receiver is a standard-library HTTP server in
a thread of its own, which verifies the Standard Webhooks signature with
:func:`twisted_hooks.webhooks.verify_standard`.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from twisted_hooks import sync
from twisted_hooks.webhooks import verify_standard
from twisted_hooks.webhooks.signing import SignatureError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
received: list[str] = []


class Receiver(BaseHTTPRequestHandler):
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
            received.append(f"{self.headers['Hook-Event']} {json.loads(body)}")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the output short


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    sync.setup()  # once, early: runs the reactor in a thread of its own
    # 127.0.0.1 is internal: allow its network (on any port), here only.
    hooks = sync.BlockingHooks.create(allowed_networks=["127.0.0.0/8"], timeout=5.0)

    subscriber = hooks.subscribe("user.*", f"http://127.0.0.1:{port}/", secret=SECRET)
    print(f"subscribed {subscriber.url.split(':')[0]} receiver to {subscriber.event}")

    result = hooks.send("user.created", {"username": "susan"})
    print(f"user.created: {len(result.deliveries)} delivery accepted")

    with hooks.buffer_events() as buffer:  # Thorn's buffering, for this thread
        print(f"held: {hooks.send('user.changed', {'username': 'susan', 'admin': True})}")
        hooks.send("user.removed", {"username": "bob"})
        print(f"pending in the buffer: {buffer.pending}")
        results = buffer.flush()
        print(f"flushed: {[r.event.name for r in results]}")

    hooks.drain()  # wait until every delivery is delivered or dead
    hooks.stop()
    server.shutdown()
    for line in sorted(received):
        print(f"receiver: {line}")


if __name__ == "__main__":
    main()
