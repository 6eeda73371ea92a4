"""
End-to-end tests of attempt admission through the real service: ``twist hooks`` in a child
process on a temporary SQLite file, a receiver on 127.0.0.1 that holds each request until
the test lets it answer, and the engine's concurrency caps seen from the receiver's side.

The receiver counts the requests it holds at once and keeps the peak. The test waits
until the cap is reached, then lets one request answer at a time, each time waiting for
the cap to be reached again while deliveries remain: a cap not applied shows as a peak
above it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests._service import Service, wait_for

#: Long attempts and leases, so that held requests neither time out nor outlive a lease.
CONFIG = """\
[hooks]
timeout = 20
lease = 40
poll_interval = 0.2
max_per_host = {max_per_host}

[retry]
schedule = 1, 1, 1
jitter = 0

[validators]
ports =
allowed_networks = 127.0.0.0/8
"""


class HoldingReceiver:
    """A receiver on 127.0.0.1 that holds every POST until :meth:`release` lets one go,
    counting the requests held at once (:attr:`open`) and the most ever held
    (:attr:`peak`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open = 0
        self.peak = 0
        self.answered = 0
        self._go = threading.Semaphore(0)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.open += 1
                    receiver.peak = max(receiver.peak, receiver.open)
                released = receiver._go.acquire(timeout=60)
                with receiver.lock:
                    receiver.open -= 1
                    receiver.answered += 1
                try:
                    self.send_response(204 if released else 503)
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def held(self) -> int:
        with self.lock:
            return self.open

    def release(self) -> None:
        """Let one held request answer 204."""
        self._go.release()

    def close(self) -> None:
        for _ in range(100):
            self._go.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[HoldingReceiver]:
    receiver = HoldingReceiver()
    yield receiver
    receiver.close()


def start_service(tmp_path: Path, max_per_host: int) -> Service:
    service = Service(tmp_path, config=CONFIG.format(max_per_host=max_per_host))
    service.start()
    return service


def publish_and_release(
    service: Service, receiver: HoldingReceiver, token: str, count: int, cap: int
) -> None:
    """Publish ``count`` events, then answer them one at a time, waiting each time for
    the receiver to hold ``cap`` requests again while enough remain."""
    for number in range(count):
        status, _, published = service.request(
            "POST", "/events/", token, {"event": "job.done", "data": {"n": number}}
        )
        assert status == 202, published
        assert published["deliveries"] == 1
    for left in range(count, 0, -1):
        wait_for(
            lambda left=left: receiver.held() == min(cap, left),  # type: ignore[misc]
            f"{min(cap, left)} request(s) held at the receiver",
        )
        receiver.release()

    def all_delivered() -> bool:
        _, _, log = service.request("GET", "/deliveries/?status=delivered", token)
        return len(log) == count

    wait_for(all_delivered, f"{count} deliveries recorded as delivered")


def test_max_per_host_caps_attempts_to_one_host(tmp_path: Path, receiver: HoldingReceiver) -> None:
    """With ``[hooks] max_per_host = 2``, six deliveries to one receiver are attempted two
    at a time: the receiver never holds more than two requests, every delivery ends
    delivered, and none was answered with the receiver's give-up 503."""
    service = start_service(tmp_path, max_per_host=2)
    try:
        token = service.token("alice")
        status, _, hook = service.request(
            "POST", "/hooks/", token, {"event": "job.*", "url": receiver.url}
        )
        assert status == 201, hook
        publish_and_release(service, receiver, token, count=6, cap=2)
        assert receiver.peak == 2
        assert receiver.answered == 6
    finally:
        service.kill()


def test_subscriber_max_concurrency_caps_its_attempts(
    tmp_path: Path, receiver: HoldingReceiver
) -> None:
    """A subscription made with ``max_concurrency: 1`` is attempted one delivery at a
    time even though the host's cap (16) would allow more; all four end delivered."""
    service = start_service(tmp_path, max_per_host=16)
    try:
        token = service.token("alice")
        status, _, hook = service.request(
            "POST",
            "/hooks/",
            token,
            {"event": "job.*", "url": receiver.url, "max_concurrency": 1},
        )
        assert status == 201, hook
        publish_and_release(service, receiver, token, count=4, cap=1)
        assert receiver.peak == 1
        assert receiver.answered == 4
    finally:
        service.kill()
