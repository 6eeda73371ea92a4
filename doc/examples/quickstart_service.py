"""
A client of the twisted_hooks service: ``python quickstart_service.py``.

With the service running (``twist hooks``) and an API token in the environment variable
``TWISTED_HOOKS_TOKEN``, it starts a receiver on 127.0.0.1, subscribes it through the HTTP
API, publishes one event and waits for its delivery. The service's address is
``TWISTED_HOOKS_URL`` (``http://127.0.0.1:8000/`` when unset). It uses only the standard
library, and :func:`twisted_hooks.webhooks.verify_standard` to check the signature.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from twisted_hooks.webhooks import verify_standard

SERVICE = os.environ.get("TWISTED_HOOKS_URL", "http://127.0.0.1:8000/")
arrived: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()


class Receiver(BaseHTTPRequestHandler):
    """The subscriber's side: note each delivery (headers and raw body), answer 204."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        arrived.put((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the output short


def api(method: str, path: str, token: str, body: object) -> tuple[int, Any]:
    """One request to the service's API: its status and its JSON answer."""
    request = urllib.request.Request(
        SERVICE.rstrip("/") + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:  # 4xx: the answer says what was wrong
        sys.exit(f"{method} {path}: {error.code} {error.read().decode()}")
    except urllib.error.URLError as error:
        sys.exit(f"cannot reach the service at {SERVICE} ({error.reason}): is it running?")


def main() -> None:
    if not SERVICE.startswith(("http://", "https://")):
        sys.exit(f"TWISTED_HOOKS_URL={SERVICE!r}: expected the service's http:// address")
    token = os.environ.get("TWISTED_HOOKS_TOKEN")
    if not token:
        sys.exit("set TWISTED_HOOKS_TOKEN to a token made with 'twisted-hooks token create'")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hooks"

    status, hook = api("POST", "/hooks/", token, {"event": "order.*", "url": url})
    print(f"POST /hooks/: {status}, subscribed to {hook['event']}")

    event = {"event": "order.paid", "data": {"order": 42, "total": "19.90"}}
    status, published = api("POST", "/events/", token, event)
    print(f"POST /events/: {status}, {published['deliveries']} delivery")

    try:
        headers, body = arrived.get(timeout=30)
    except queue.Empty:
        sys.exit("no delivery within 30 s: the service's log says why")
    verify_standard(hook["hmac_secret"], headers, body)  # raises if it does not verify
    print(f"receiver: {headers['Hook-Event']} {body.decode()} (signature valid)")
    server.shutdown()


if __name__ == "__main__":
    main()
