"""
The Django cases share one process: Django configured with ``tests.django_project`` and,
once a webhook is sent in process, the reactor running in crochet's thread.

This directory is not collected by the main test session (see ``tests/conftest.py``);
``tests/test_django.py`` runs it in a subprocess.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django_project.settings"

import django

django.setup()

from django.core.management import call_command  # noqa: E402

call_command("migrate", run_syncdb=True, verbosity=0)

from twisted_hooks import sync  # noqa: E402

sync.setup()

#: The longest any wait of these tests lasts.
DEADLINE = 20.0


def pytest_configure(config: pytest.Config) -> None:
    # crochet 2.1 still calls Event.isSet(); that is crochet's business, not ours.
    config.addinivalue_line(
        "filterwarnings", "ignore:isSet\\(\\) is deprecated:DeprecationWarning:crochet"
    )


def wait_for(condition: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll ``condition`` until it returns something true; fail after ``deadline``."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {deadline:g} s waiting for {what}")


class Receiver:
    """A webhook receiver on 127.0.0.1 recording each POST (header names in lower
    case, raw body); answers 200, or ``status`` when set."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.received.append(
                        ({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def messages(self) -> list[Any]:
        """The decoded bodies received so far."""
        with self.lock:
            return [json.loads(body) for _, body in self.received]

    def events(self) -> list[str]:
        """The ``event`` of each message received so far."""
        return [message["event"] for message in self.messages()]

    def wait(self, count: int) -> list[Any]:
        """Wait until ``count`` messages arrived; return them."""
        wait_for(lambda: len(self.received) >= count, f"{count} webhook(s)")
        return self.messages()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver, closed after the test."""
    receiver = Receiver()
    yield receiver
    receiver.close()
