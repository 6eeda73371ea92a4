"""
Tests for :class:`twisted_hooks.sync.BlockingHooks`: webhooks from synchronous code, with
the reactor in crochet's thread and a real HTTP receiver on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.web import resource, server

from twisted_hooks.sync import BlockingHooks, ReactorThreadError, blocking_call
from twisted_hooks.webhooks.app import HooksNotRunning, Settings
from twisted_hooks.webhooks.encoding import EncodingError
from twisted_hooks.webhooks.events import SendResult
from twisted_hooks.webhooks.signing import verify_standard
from twisted_hooks.webhooks.validators import RecipientPolicy, block_internal_ips, ensure_protocol


class Receiver(resource.Resource):
    """Records each POST's headers and body; answers 200."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    def render_POST(self, request: server.Request) -> bytes:
        headers = {
            name.decode().lower(): values[0].decode()
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        with self.lock:
            self.requests.append((headers, request.content.read()))
        return b"ok"


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    site = Receiver()

    def listen() -> object:
        return reactor.listenTCP(0, server.Site(site), interface="127.0.0.1")

    port = blocking_call(listen)
    yield site, f"http://127.0.0.1:{port.getHost().port}/hook"  # type: ignore[attr-defined]
    blocking_call(port.stopListening)  # type: ignore[attr-defined]


@pytest.fixture
def hooks() -> Iterator[BlockingHooks]:
    policy = RecipientPolicy(
        validators=(ensure_protocol("http"), block_internal_ips()),
        allowed_networks=["127.0.0.0/8"],
    )
    facade = BlockingHooks.create(timeout=10.0, settings=Settings(policy=policy))
    yield facade
    facade.stop()


def test_send_delivers_signed_webhook(
    hooks: BlockingHooks, receiver: tuple[Receiver, str]
) -> None:
    """
    A blocking subscribe and send deliver one signed POST to a real receiver; send returns
    the SendResult once the delivery is accepted, and drain waits for it to arrive.
    """
    site, url = receiver
    subscriber = hooks.subscribe("order.*", url)
    result = hooks.send("order.created", {"id": 7})
    assert isinstance(result, SendResult)
    assert len(result.deliveries) == 1
    hooks.drain()
    assert len(site.requests) == 1
    headers, body = site.requests[0]
    assert json.loads(body) == {"id": 7}
    assert headers["hook-delivery"] == result.deliveries[0].id
    verify_standard(subscriber.secret, headers, body)


def test_buffer_events_holds_until_the_outermost_block_exits(
    hooks: BlockingHooks, receiver: tuple[Receiver, str]
) -> None:
    """
    Thorn's nesting in synchronous code: sends inside buffer_events are held (send returns
    None), an inner block's exit flushes nothing, and the outermost exit publishes A, B
    and C.
    """
    site, url = receiver
    hooks.subscribe("article.*", url)
    with hooks.buffer_events():
        assert hooks.send("article.created", {"name": "A"}) is None
        with hooks.buffer_events():
            hooks.send("article.created", {"name": "B"})
        hooks.drain()
        assert site.requests == []
        hooks.send("article.created", {"name": "C"})
    hooks.drain()
    assert sorted(json.loads(body)["name"] for _, body in site.requests) == ["A", "B", "C"]


def test_buffer_flush_returns_results_and_is_per_thread(
    hooks: BlockingHooks, receiver: tuple[Receiver, str]
) -> None:
    """
    flush() publishes what this thread held and returns one SendResult per send; another
    thread's sends are not held by this thread's buffer.
    """
    site, url = receiver
    hooks.subscribe("article.*", url)
    other: list[object] = []
    with hooks.buffer_events() as buffer:
        hooks.send("article.created", {"name": "A"})
        worker = threading.Thread(
            target=lambda: other.append(hooks.send("article.created", {"name": "other"}))
        )
        worker.start()
        worker.join(10)
        assert isinstance(other[0], SendResult)
        results = buffer.flush()
        assert isinstance(results, list)
        assert [type(r) for r in results] == [SendResult]
        assert buffer.pending == 0
    hooks.drain()
    assert len(site.requests) == 2


def test_each_send_is_encoded_once_buffered_or_not(
    hooks: BlockingHooks, receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A blocking send, held in a buffer or not, is validated and encoded once: the event is
    built when it is sent and the flush publishes it as built (Hooks.send_event); the
    receiver gets the bytes of that one encoding.
    """
    from twisted_hooks.webhooks import _publisher, encoding

    site, url = receiver
    hooks.subscribe("article.*", url)
    encoded: list[tuple[object, bytes]] = []
    real = encoding.encode_body
    lock = threading.Lock()

    def counting(data: object, content_type: str) -> bytes:
        body = real(data, content_type)
        with lock:
            encoded.append((data, body))
        return body

    # Every name the engine encodes a send's data through.
    monkeypatch.setattr(encoding, "encode_body", counting)
    monkeypatch.setattr(_publisher, "encode_body", counting)
    held = {"name": "held"}
    direct = {"name": "direct"}
    with hooks.buffer_events():
        assert hooks.send("article.created", held) is None
        assert [data for data, _ in encoded] == [held]
    hooks.send("article.created", direct)
    hooks.drain()
    assert [data for data, _ in encoded] == [held, direct]
    assert sorted(body for _, body in site.requests) == sorted(body for _, body in encoded)


def test_unencodable_data_raises_at_once_even_when_buffered(hooks: BlockingHooks) -> None:
    """Data that cannot be encoded raises EncodingError at the send, buffered or not."""
    with pytest.raises(EncodingError, match="not JSON serializable"):
        hooks.send("order.created", {"when": object()})
    with hooks.buffer_events() as buffer, pytest.raises(EncodingError):
        hooks.send("order.created", {"when": object()})
    assert buffer.pending == 0


def test_send_to_stopped_application_raises(hooks: BlockingHooks) -> None:
    """A send after stop() raises HooksNotRunning in the caller's thread."""
    hooks.stop()
    with pytest.raises(HooksNotRunning, match="not running"):
        hooks.send("order.created", {})
    hooks.start()


def test_reactor_thread_call_is_refused(hooks: BlockingHooks) -> None:
    """Calling the facade from the reactor thread raises instead of hanging."""

    def from_reactor() -> Deferred[None]:
        with pytest.raises(ReactorThreadError):
            hooks.send("order.created", {})
        d: Deferred[None] = Deferred()
        d.callback(None)
        return d

    blocking_call(from_reactor)


def test_wraps_only_hooks() -> None:
    """BlockingHooks refuses anything but a Hooks application."""
    with pytest.raises(TypeError, match="wraps a Hooks application"):
        BlockingHooks(object())  # type: ignore[arg-type]
