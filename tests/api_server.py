"""
A helper script, not tests: serve the HTTP API on 127.0.0.1 (an ephemeral port) over a
memory store, delivering through twisted_hooks.testing's FakeSender (every attempt answered
200 at once), for the schemathesis test in ``tests/integration/test_api.py``. As a local
development service does, it lets subscribers reach ``127.0.0.0/8`` on any port
(schemathesis feeds the API's own URLs back as subscription URLs), so that only what the
OpenAPI document describes decides an answer.

It prints one JSON line, ``{"port": PORT, "token": TOKEN}`` (an admin token), then serves
until it is terminated.
"""

from __future__ import annotations

import json
import sys

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.web.server import Site

from twisted_hooks.service.api import HooksAPI
from twisted_hooks.service.tokens import create_token
from twisted_hooks.store import MemoryStore
from twisted_hooks.testing import FakeSender
from twisted_hooks.webhooks.app import Hooks, Settings
from twisted_hooks.webhooks.validators import RecipientPolicy


def main() -> None:
    """Serve the API; print the port and token."""
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    store = MemoryStore()
    hooks = Hooks(
        reactor,
        settings=Settings(policy=RecipientPolicy(allowed_networks=["127.0.0.0/8", "::1/128"])),
        subscribers=store.subscribers,
        deliveries=store.deliveries,
        health=store,
        sender=FakeSender(reactor),
    )
    hooks.startService()
    api = HooksAPI(hooks, store, reactor)

    def listening(port: object, text: str) -> None:
        print(json.dumps({"port": port.getHost().port, "token": text}), flush=True)  # type: ignore[attr-defined]

    def start(made: tuple[str, object]) -> Deferred[object]:
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        listened: Deferred[object] = endpoint.listen(Site(api.resource()))
        return listened.addCallback(listening, made[0])

    create_token(store, "fuzz", "admin").addCallback(start)
    reactor.run()


if __name__ == "__main__":
    main()
