"""
Receivers that answer in HTTP/1.0 (Python's ``http.server`` among them) close the
connection after each answer unless they send ``Connection: keep-alive``. The sender must
not keep such a connection for its next attempt: if it did, the next delivery to that
receiver would be written on a connection the receiver has closed, and fail
(``ConnectionDone``) with a retry seconds later, whenever the receiver's close had not
reached the sender yet. That race made ``doc/examples/webhooks_blocking.py`` fail under
load.

The receiver here makes the race certain: it answers a first request on a connection in
HTTP/1.0 and keeps the connection open, as a slow close would, then closes it without an
answer if a second request comes on it.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import TestCase

from tests._service import Service, wait_for
from twisted_hooks.webhooks import Hooks


class LazyCloser(socketserver.ThreadingTCPServer):
    """A receiver on 127.0.0.1 answering ``status_line`` (and ``headers``) to the first
    request of each connection; a second request on the same connection is counted in
    ``reused`` and, unless ``serves_again``, answered by closing the connection."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, status_line: bytes, headers: bytes = b"", serves_again: bool = False):
        self.status_line = status_line
        self.headers = headers
        self.serves_again = serves_again
        self.connections = 0
        self.answered = 0
        self.reused = 0
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks"

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        for connection in self.open:
            connection.close()


class _Handler(socketserver.BaseRequestHandler):
    server: LazyCloser

    def _read_request(self, buffer: bytes) -> bytes | None:
        """Read one request (headers and Content-Length body); return what follows it,
        or None when the client closed the connection first."""
        while b"\r\n\r\n" not in buffer:
            chunk = self.request.recv(65536)
            if not chunk:
                return None
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = self.request.recv(65536)
            if not chunk:
                return None
            rest += chunk
        return rest[length:]

    def handle(self) -> None:
        server = self.server
        with server.lock:
            server.connections += 1
            server.open.append(self.request)
        self.request.settimeout(30)
        buffer: bytes | None = b""
        first = True
        while True:
            buffer = self._read_request(buffer or b"")
            if buffer is None:
                return  # the client closed the connection: what a well-behaved client does
            if not first:
                with server.lock:
                    server.reused += 1
                if not server.serves_again:
                    self.request.close()  # the close the client should have expected
                    return
            first = False
            self.request.sendall(server.status_line + b"\r\n" + server.headers + b"\r\n")
            with server.lock:
                server.answered += 1


class SenderConnectionReuse(TestCase):
    """Deliveries from a Hooks application, on the real reactor, to LazyCloser receivers."""

    timeout = 60

    def serve(self, server: LazyCloser) -> LazyCloser:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.close)
        return server

    async def deliver_three(self, server: LazyCloser) -> list[int]:
        """Send three events, one after the other, each once the previous one has ended;
        the number of attempts each delivery took."""
        hooks = Hooks(reactor, allowed_networks=["127.0.0.0/8"])
        hooks.startService()
        self.addCleanup(hooks.stopService)
        await hooks.subscribe("order.*", server.url)
        attempts = []
        for number in range(3):
            result = await hooks.send("order.paid", {"order": number})
            done: Deferred[None] = hooks.drain()
            # A failed first attempt is retried after about 5 s: one is enough to tell.
            done.addTimeout(3, reactor)
            with contextlib.suppress(defer.TimeoutError):
                await done
            [delivery_id] = result.delivery_ids
            delivery = await hooks.deliveries.get(delivery_id)
            attempts.append(delivery.attempts if delivery.status == "delivered" else -1)
        return attempts

    def test_http10_answer_closes_the_connection(self) -> Deferred[None]:
        """After an HTTP/1.0 answer without ``Connection: keep-alive``, the sender closes
        the connection: each delivery gets a connection of its own and is delivered at
        its first attempt, never written on a connection the receiver has closed."""
        server = self.serve(LazyCloser(b"HTTP/1.0 204 No Content"))

        async def check() -> None:
            attempts = await self.deliver_three(server)
            self.assertEqual(attempts, [1, 1, 1])
            self.assertEqual((server.connections, server.reused), (3, 0))

        return ensureDeferred(check())

    def test_http10_keep_alive_connection_is_reused(self) -> Deferred[None]:
        """An HTTP/1.0 answer with ``Connection: keep-alive`` keeps the connection for the
        next attempt, as an HTTP/1.1 answer does: both are reused."""

        async def check() -> None:
            for status_line, headers in (
                (b"HTTP/1.0 204 No Content", b"Connection: keep-alive\r\n"),
                (b"HTTP/1.1 204 No Content", b""),
            ):
                server = self.serve(LazyCloser(status_line, headers, serves_again=True))
                attempts = await self.deliver_three(server)
                self.assertEqual(attempts, [1, 1, 1])
                self.assertEqual((server.connections, server.reused), (1, 2))

        return ensureDeferred(check())


def test_service_delivers_to_http10_receiver_on_fresh_connections(tmp_path: Path) -> None:
    """The real ``twist hooks`` delivering three events, one after the other, to an
    HTTP/1.0 receiver that leaves its connections open after answering: each event is
    delivered on a connection of its own, none written on a connection the receiver
    would have closed."""
    server = LazyCloser(b"HTTP/1.0 204 No Content")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    service = Service(tmp_path)
    try:
        service.start()
        token = service.token("alice")
        status, _, hook = service.request(
            "POST", "/hooks/", token, {"event": "order.*", "url": server.url}
        )
        assert status == 201, hook
        for number in range(3):
            status, _, published = service.request(
                "POST", "/events/", token, {"event": "order.paid", "data": {"n": number}}
            )
            assert status == 202, published

            def delivered(count: int = number + 1) -> bool:
                _, _, log = service.request("GET", "/deliveries/?status=delivered", token)
                return len(log) == count

            wait_for(delivered, f"delivery {number}")
        assert (server.answered, server.reused, server.connections) == (3, 0, 3)
    finally:
        service.kill()
        server.close()
