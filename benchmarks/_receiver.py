"""
A minimal, fast HTTP/1.1 receiver for the delivery benchmark, run in a process of its own.

``benchmarks/delivery.py`` starts it (``python benchmarks/_receiver.py``) when no ``--url``
is given. It listens on ``127.0.0.1`` (port 0 unless ``--port`` is given), prints one JSON
line ``{"port": N}`` on standard output, then answers every request, whatever its method
and path, with ``200 OK`` and a two-byte body, keeping the connection open unless the
request asks for ``Connection: close``. Request bodies with a ``Content-Length`` or in
chunks are read and thrown away. It exits when its standard input closes (so it never
outlives the benchmark) or on SIGTERM.

It is a raw :class:`~twisted.internet.protocol.Protocol` rather than ``twisted.web`` so
that its per-request cost is small: the benchmark measures the sender, and on a small
machine the receiver shares the CPU with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTCP
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.stdio import StandardIO
from twisted.internet.task import react
from twisted.python.failure import Failure

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
CLOSING_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 2\r\n"
    b"Connection: close\r\n"
    b"\r\n"
    b"ok"
)
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
#: The most header bytes accepted before the connection is dropped.
MAX_HEADER = 64 * 1024


class Answering(Protocol):
    """Reads pipelined HTTP/1.1 requests and answers each with ``200 ok``."""

    def connectionMade(self) -> None:
        self._buffer = b""

    def dataReceived(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        answers: list[bytes] = []
        close = False
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEADER:
                    answers.append(BAD_REQUEST)
                    close = True
                break
            head = buffer[:end].lower()
            rest = end + 4
            length = 0
            chunked = False
            closing = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value
                elif name == b"connection":
                    closing = b"close" in value
            if chunked:
                consumed = _chunked_end(buffer, rest)
                if consumed is None:
                    break
                rest = consumed
            elif len(buffer) - rest < length:
                break
            else:
                rest += length
            buffer = buffer[rest:]
            if closing:
                answers.append(CLOSING_RESPONSE)
                close = True
                break
            answers.append(RESPONSE)
        self._buffer = buffer
        if answers:
            assert self.transport is not None
            self.transport.writeSequence(answers)
            if close:
                self.transport.loseConnection()


def _chunked_end(buffer: bytes, start: int) -> int | None:
    """Where a chunked body starting at ``start`` ends, or ``None`` if it is incomplete."""
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(buffer[position:line_end].split(b";")[0], 16)
        position = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", position - 2)
            return None if trailer_end < 0 else trailer_end + 4
        if len(buffer) < position + size + 2:
            return None
        position += size + 2


class _StopOnClose(Protocol):
    """Standard input: its end stops the receiver."""

    def __init__(self, done: Deferred[None]) -> None:
        self._done = done

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self._done.called:
            self._done.callback(None)


async def serve(reactor: IReactorTCP, port: int) -> None:
    """Listen, announce the port, and serve until standard input closes."""
    factory = ServerFactory()
    factory.protocol = Answering
    listening = reactor.listenTCP(port, factory, backlog=1024, interface="127.0.0.1")
    address = listening.getHost()
    assert isinstance(address, IPv4Address)
    sys.stdout.write(json.dumps({"port": address.port}) + "\n")
    sys.stdout.flush()
    done: Deferred[None] = Deferred()
    StandardIO(_StopOnClose(done), reactor=reactor)  # type: ignore[no-untyped-call]
    await done
    stopped = listening.stopListening()
    if stopped is not None:
        await stopped


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv`` and serve."""
    parser = argparse.ArgumentParser(description="A fast local HTTP receiver that answers 200.")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any free one)")
    args = parser.parse_args(argv)
    port: int = args.port

    def run(reactor: IReactorTCP) -> Deferred[None]:
        return Deferred.fromCoroutine(serve(reactor, port))

    react(run)


if __name__ == "__main__":
    main()
