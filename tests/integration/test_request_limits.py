"""
Tests of the API's listener (:mod:`twisted_hooks.service._limits`): request bodies over
``max_request_body`` and bodies sent without a valid token are refused at the protocol
level, before they are read, and never spooled to disk.

The first suite drives a :class:`~twisted_hooks.service._limits.LimitedChannel` over a
:class:`~twisted.internet.testing.StringTransport`, with the real API on a memory store and
a token store whose lookups the tests can hold; the second listens on a real port on
``127.0.0.1``; the last runs the real service (``twist hooks`` in a child process, with
``TMPDIR`` pointing at an empty directory) and uploads 100 MiB at it in several ways,
watching its peak memory and its temporary files.
"""

from __future__ import annotations

import json
import os
import select
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from io import BytesIO
from pathlib import Path

import pytest
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred, fail, gatherResults
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests._service import DEADLINE, Receiver, Service, run_failing, wait_for
from tests.integration.test_api import FakeSender
from twisted_hooks.interfaces import ITokenStore
from twisted_hooks.service._limits import LINGER, LimitedChannel, LimitedRequest, LimitedSite
from twisted_hooks.service.api import (
    PUBLIC_PATHS,
    HooksAPI,
    needs_token,
    openapi_document,
    routes,
)
from twisted_hooks.service.config import ServiceConfig
from twisted_hooks.service.tokens import create_token
from twisted_hooks.store import MemoryStore, Token
from twisted_hooks.webhooks.app import Hooks, Settings

LIMIT = 1024


@implementer(ITokenStore)
class HeldTokens:
    """A token store over another that counts lookups and, while ``hold`` is true, keeps
    them unanswered until :meth:`release`."""

    def __init__(self, tokens: ITokenStore) -> None:
        self._tokens = tokens
        self.hold = False
        self.lookups = 0
        self.failure: Exception | None = None
        self._held: list[tuple[str, Deferred[Token | None]]] = []

    def add_token(self, token: Token) -> Deferred[Token]:
        """Store through the wrapped store."""
        return self._tokens.add_token(token)

    def token_by_hash(self, token_hash: str) -> Deferred[Token | None]:
        """Count the lookup; fail with ``failure`` if set; hold it or answer it."""
        self.lookups += 1
        if self.failure is not None:
            return fail(self.failure)
        if not self.hold:
            return self._tokens.token_by_hash(token_hash)
        held: Deferred[Token | None] = Deferred()
        self._held.append((token_hash, held))
        return held

    def tokens(self) -> Deferred[Sequence[Token]]:
        """Every token of the wrapped store."""
        return self._tokens.tokens()

    def revoke_token(self, name: str, now: float) -> Deferred[Token]:
        """Revoke through the wrapped store."""
        return self._tokens.revoke_token(name, now)

    def release(self) -> None:
        """Answer every held lookup from the wrapped store."""
        held, self._held = self._held, []
        for token_hash, waiting in held:
            self._tokens.token_by_hash(token_hash).chainDeferred(waiting)


def parse_responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Every HTTP response in ``raw``: status, headers (names in lower case) and body."""
    found: list[tuple[int, dict[str, str], bytes]] = []
    while raw:
        head, separator, raw = raw.partition(b"\r\n\r\n")
        assert separator, f"an incomplete response: {head!r}"
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if status == 100:
            pass
        elif "content-length" in headers:
            length = int(headers["content-length"])
            body, raw = raw[:length], raw[length:]
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                size_line, _, raw = raw.partition(b"\r\n")
                size = int(size_line, 16)
                body, raw = body + raw[:size], raw[size + 2 :]
                if size == 0:
                    break
        else:
            body, raw = raw, b""
        found.append((status, headers, body))
    return found


def chunked(*pieces: bytes) -> bytes:
    """``pieces`` in the chunked transfer coding, without the last chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)


class ListenerTestCase(SynchronousTestCase):
    """The API over a :class:`LimitedSite` with a 1 KiB limit, driven over a
    :class:`StringTransport`; tokens for alice (publish, subscribe) and a revoked one."""

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.clock.advance(1_700_000_000)
        self.store = MemoryStore()
        self.hooks = Hooks(
            self.clock,
            settings=Settings(record_delay=0),
            subscribers=self.store.subscribers,
            deliveries=self.store.deliveries,
            health=self.store,
            sender=FakeSender(self.clock),
        )
        self.hooks.startService()
        self.addCleanup(self.stop)
        self.api = HooksAPI(self.hooks, self.store, self.clock, max_request_body=LIMIT)
        self.tokens = HeldTokens(self.store)
        self.site = LimitedSite(
            self.api.resource(),
            self.tokens,
            LIMIT,
            reactor=self.clock,
            observe=self.api.metrics.request,
        )
        self.alice = self.token("alice")
        self.revoked = self.token("gone")
        self.successResultOf(self.store.revoke_token("gone", self.clock.seconds()))
        self.tokens.lookups = 0

    def stop(self) -> None:
        self.clock.advance(1)
        self.successResultOf(self.hooks.stopService())

    def token(self, name: str) -> str:
        text, _ = self.successResultOf(
            create_token(self.store, name, "publish,subscribe", now=self.clock.seconds())
        )
        return text

    def connect(self) -> tuple[LimitedChannel, StringTransport]:
        channel = self.site.buildProtocol(None)
        assert isinstance(channel, LimitedChannel)
        transport = StringTransport()
        channel.makeConnection(transport)
        return channel, transport

    def head(
        self,
        method: str = "POST",
        path: str = "/events/",
        token: str | None = None,
        length: int | None = None,
        chunked: bool = False,
        *extra: str,
    ) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", "Host: api.test", "Content-Type: application/json"]
        if token is not None:
            lines.append(f"Authorization: Bearer {token}")
        if length is not None:
            lines.append(f"Content-Length: {length}")
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        lines.extend(extra)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")

    def assertRefused(self, transport: StringTransport, status: int, error: str) -> dict[str, str]:
        """The transport holds exactly one answer: this status, as the API's JSON error,
        with ``Connection: close``; return its headers."""
        answers = parse_responses(transport.value())
        self.assertEqual([answer[0] for answer in answers], [status], transport.value())
        _, headers, body = answers[0]
        self.assertEqual(json.loads(body)["error"], error)
        self.assertTrue(headers["content-type"].startswith("application/json"))
        self.assertEqual(headers["connection"], "close")
        return headers

    def assertUnread(self, channel: LimitedChannel) -> None:
        """No byte of the request's body reached the request."""
        request = channel.requests[-1]
        self.assertEqual(request.content.getvalue(), b"")

    def published(self) -> int:
        stats = self.successResultOf(self.store.deliveries.stats(self.clock.seconds()))
        return sum(stats.counts.values()) if hasattr(stats, "counts") else 0

    # -- Content-Length over the limit ------------------------------------------------------

    def test_content_length_over_the_limit_is_refused_before_the_body(self) -> None:
        """A Content-Length over the limit is answered 413 too_large as soon as the
        headers end, before any token lookup; the body sent afterwards is thrown away,
        never handed to the request; the connection is dropped after LINGER seconds."""
        channel, transport = self.connect()
        channel.dataReceived(self.head(token=self.alice, length=LIMIT + 1))
        headers = self.assertRefused(transport, 413, "too_large")
        self.assertEqual(
            int(headers["content-length"]), len(parse_responses(transport.value())[0][2])
        )
        self.assertIn(str(LIMIT), json.loads(parse_responses(transport.value())[0][2])["detail"])
        self.assertEqual(self.tokens.lookups, 0)
        answered = transport.value()
        channel.dataReceived(b"{" + b" " * (LIMIT - 1) + b"}")
        channel.dataReceived(b"GET /healthz HTTP/1.1\r\nHost: api.test\r\n\r\n")
        self.assertUnread(channel)
        self.assertEqual(transport.value(), answered)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(LINGER)
        self.assertTrue(transport.disconnected)

    def test_anonymous_content_length_over_the_limit_is_413(self) -> None:
        """Without a token too, a Content-Length over the limit is a 413 (the length is
        checked first, with no lookup)."""
        channel, transport = self.connect()
        channel.dataReceived(self.head(length=100 * 1024 * 1024) + b"x" * 5000)
        self.assertRefused(transport, 413, "too_large")
        self.assertUnread(channel)
        self.assertEqual(self.tokens.lookups, 0)

    def test_content_length_at_the_limit_is_read(self) -> None:
        """A body exactly at the limit is let through and reaches the API (which answers
        the JSON it finds)."""
        channel, transport = self.connect()
        body = json.dumps({"event": "a.b", "data": "x" * (LIMIT - 40)}).encode()
        body += b" " * (LIMIT - len(body))
        channel.dataReceived(self.head(token=self.alice, length=len(body)) + body)
        answers = parse_responses(transport.value())
        self.assertEqual([a[0] for a in answers], [202], transport.value())

    def test_expect_continue_is_not_answered_for_a_refused_request(self) -> None:
        """``Expect: 100-continue`` with a Content-Length over the limit gets the 413 and
        no 100 Continue."""
        channel, transport = self.connect()
        channel.dataReceived(
            self.head("POST", "/events/", self.alice, LIMIT * 10, False, "Expect: 100-continue")
        )
        self.assertNotIn(b"100 Continue", transport.value())
        self.assertRefused(transport, 413, "too_large")

    # -- chunked bodies ----------------------------------------------------------------------

    def test_chunked_body_is_cut_off_at_the_limit(self) -> None:
        """A chunked body is held in memory up to the limit; the chunk that passes it
        gets a 413 at once, is not kept, and nothing sent after it is read (not even the
        last chunk: the request never reaches the API)."""
        channel, transport = self.connect()
        channel.dataReceived(self.head(token=self.alice, chunked=True))
        channel.dataReceived(chunked(b"a" * 300, b"b" * 300, b"c" * 300))
        self.assertEqual(transport.value(), b"")
        request = channel.requests[-1]
        self.assertIsInstance(request.content, BytesIO)
        self.assertEqual(request.content.getvalue(), b"a" * 300 + b"b" * 300 + b"c" * 300)
        channel.dataReceived(chunked(b"d" * 300))
        self.assertRefused(transport, 413, "too_large")
        self.assertEqual(len(request.content.getvalue()), 900)
        channel.dataReceived(chunked(b"e" * 10_000) + b"0\r\n\r\n")
        self.assertEqual(len(request.content.getvalue()), 900)
        self.assertEqual(len(parse_responses(transport.value())), 1)

    def test_chunked_body_over_the_limit_in_one_piece(self) -> None:
        """Headers and a large chunked body arriving together, with a valid token: 413,
        and at most the limit is ever held."""
        channel, transport = self.connect()
        channel.dataReceived(
            self.head(token=self.alice, chunked=True) + chunked(b"z" * 100_000) + b"0\r\n\r\n"
        )
        self.assertRefused(transport, 413, "too_large")
        self.assertLessEqual(len(channel.requests[-1].content.getvalue()), LIMIT)

    def test_malformed_chunks_after_a_refusal_add_nothing(self) -> None:
        """Garbage after a refusal is thrown away: no second answer (no 400)."""
        channel, transport = self.connect()
        channel.dataReceived(self.head(token=self.alice, chunked=True) + chunked(b"z" * 2000))
        channel.dataReceived(b"not a chunk size\r\n\r\n")
        self.assertRefused(transport, 413, "too_large")

    def test_bodies_are_never_written_to_temporary_files(self) -> None:
        """``LimitedRequest.gotLength`` keeps the body in memory whatever the announced
        length (twisted.web would open a temporary file for these)."""
        channel, _ = self.connect()
        for length in (None, 0, 10, 100_000, 10**9):
            request = LimitedRequest(channel)
            request.gotLength(length)
            self.assertIsInstance(request.content, BytesIO, length)

    # -- tokens ------------------------------------------------------------------------------

    def test_anonymous_body_is_refused_without_a_lookup(self) -> None:
        """A POST /events/ with a large chunked body and no Authorization header is
        answered 401 unauthorized at once, with the API's WWW-Authenticate, no lookup,
        and no body byte read."""
        channel, transport = self.connect()
        channel.dataReceived(self.head(chunked=True) + chunked(b"x" * 200_000))
        headers = self.assertRefused(transport, 401, "unauthorized")
        self.assertEqual(headers["www-authenticate"], 'Bearer realm="twisted_hooks"')
        self.assertUnread(channel)
        self.assertEqual(self.tokens.lookups, 0)
        channel.dataReceived(chunked(b"x" * 200_000))
        self.assertUnread(channel)

    def test_anonymous_head_request_answer_has_no_body(self) -> None:
        """A refused HEAD request is answered with headers only."""
        channel, transport = self.connect()
        channel.dataReceived(self.head("HEAD", "/hooks/", None, 10) + b"x" * 10)
        status_line, _, rest = transport.value().partition(b"\r\n")
        self.assertEqual(status_line, b"HTTP/1.1 401 Unauthorized")
        self.assertTrue(rest.endswith(b"\r\n\r\n"), rest)

    def test_malformed_authorization_is_refused(self) -> None:
        """An Authorization header that is not ``Bearer TOKEN`` is a 401 unauthorized
        naming the expected form, before the body."""
        channel, transport = self.connect()
        channel.dataReceived(
            self.head("POST", "/events/", None, 10, False, "Authorization: Basic YTpi") + b"x" * 10
        )
        self.assertRefused(transport, 401, "unauthorized")
        body = json.loads(parse_responses(transport.value())[0][2])
        self.assertIn("Bearer TOKEN", body["detail"])
        self.assertUnread(channel)

    def test_invalid_token_is_refused_while_the_connection_is_paused(self) -> None:
        """With an unknown token, nothing more is read from the connection while the
        lookup runs (the transport is paused and the bytes already received are held,
        not given to the request); the answer is the API's 401 invalid_token; reading
        then resumes only to throw the rest away."""
        self.tokens.hold = True
        channel, transport = self.connect()
        channel.dataReceived(self.head(token="thk_not-a-token", length=500) + b"x" * 300)
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(transport.value(), b"")
        self.assertUnread(channel)
        channel.resumeProducing()  # the transport's write buffer drained: still paused
        self.assertEqual(transport.producerState, "paused")
        self.tokens.release()
        headers = self.assertRefused(transport, 401, "invalid_token")
        self.assertEqual(
            headers["www-authenticate"], 'Bearer realm="twisted_hooks", error="invalid_token"'
        )
        self.assertEqual(transport.producerState, "producing")
        channel.dataReceived(b"x" * 200)
        self.assertUnread(channel)

    def test_revoked_token_is_refused(self) -> None:
        """A revoked token is a 401 invalid_token before the body."""
        channel, transport = self.connect()
        channel.dataReceived(self.head(token=self.revoked, length=10) + b"x" * 10)
        self.assertRefused(transport, 401, "invalid_token")
        self.assertUnread(channel)

    def test_valid_token_and_small_body_work_as_before(self) -> None:
        """With a valid token the body waits for the lookup, then goes through: the event
        is published (202) exactly as without the listener."""
        self.tokens.hold = True
        channel, transport = self.connect()
        body = json.dumps({"event": "order.paid", "data": {"n": 1}}).encode()
        channel.dataReceived(self.head(token=self.alice, length=len(body)) + body)
        self.assertUnread(channel)
        self.assertEqual(transport.value(), b"")
        self.tokens.release()
        self.assertEqual(transport.producerState, "producing")
        answers = parse_responses(transport.value())
        self.assertEqual([a[0] for a in answers], [202], transport.value())
        self.assertEqual(
            sorted(json.loads(answers[0][2])), ["deliveries", "duplicate", "id", "skipped"]
        )
        self.assertFalse(channel.refused)

    def test_valid_token_with_a_chunked_body_and_a_pipelined_request(self) -> None:
        """A chunked body with a valid token, followed at once by another request on the
        same connection: both are answered, in order."""
        channel, transport = self.connect()
        body = json.dumps({"event": "order.paid", "data": 2}).encode()
        channel.dataReceived(
            self.head(token=self.alice, chunked=True)
            + chunked(body[:10], body[10:])
            + b"0\r\n\r\n"
            + b"GET /healthz HTTP/1.1\r\nHost: api.test\r\n\r\n"
        )
        self.clock.advance(0)
        self.assertEqual([a[0] for a in parse_responses(transport.value())], [202, 200])

    def test_expect_continue_is_answered_once_the_token_is_valid(self) -> None:
        """``Expect: 100-continue`` with a valid token: the 100 Continue is sent after
        the lookup, then the body is read and published."""
        self.tokens.hold = True
        channel, transport = self.connect()
        body = json.dumps({"event": "order.paid", "data": 3}).encode()
        channel.dataReceived(
            self.head("POST", "/events/", self.alice, len(body), False, "Expect: 100-continue")
        )
        self.assertEqual(transport.value(), b"")
        self.tokens.release()
        self.assertEqual(transport.value(), b"HTTP/1.1 100 Continue\r\n\r\n")
        channel.dataReceived(body)
        self.assertEqual([a[0] for a in parse_responses(transport.value())], [100, 202])

    def test_expect_continue_with_an_invalid_token(self) -> None:
        """``Expect: 100-continue`` with an unknown token: a 401 and no 100 Continue."""
        channel, transport = self.connect()
        channel.dataReceived(
            self.head("POST", "/events/", "thk_nope", 10, False, "Expect: 100-continue")
        )
        self.assertNotIn(b"100 Continue", transport.value())
        self.assertRefused(transport, 401, "invalid_token")

    def test_listener_and_api_give_the_same_401(self) -> None:
        """A bodiless request is left to the API (no lookup by the listener); its 401 has
        the same JSON body and WWW-Authenticate header as the listener's."""
        channel, transport = self.connect()
        channel.dataReceived(b"GET /hooks/ HTTP/1.1\r\nHost: api.test\r\n\r\n")
        self.assertEqual(self.tokens.lookups, 0)
        ((status, api_headers, api_body),) = parse_responses(transport.value())
        self.assertEqual(status, 401)
        other, refused = self.connect()
        other.dataReceived(self.head(length=2) + b"{}")
        listener_headers = self.assertRefused(refused, 401, "unauthorized")
        self.assertEqual(json.loads(parse_responses(refused.value())[0][2]), json.loads(api_body))
        self.assertEqual(listener_headers["www-authenticate"], api_headers["www-authenticate"])

    def test_public_paths_need_no_token(self) -> None:
        """A body sent to a public path is not held for a token (no lookup); the API
        answers it (405: those routes are GET only)."""
        channel, transport = self.connect()
        channel.dataReceived(self.head("POST", "/healthz?x=1", None, 2) + b"{}")
        self.assertEqual(self.tokens.lookups, 0)
        self.assertEqual([a[0] for a in parse_responses(transport.value())], [405])

    def test_token_lookup_failure_is_a_logged_500(self) -> None:
        """A token store that fails gets the request a 500 internal (the API's answer
        to a bug), the failure logged, and the body unread."""
        self.tokens.failure = ConnectionError("the database is unreachable")
        channel, transport = self.connect()
        channel.dataReceived(self.head(token=self.alice, length=10) + b"x" * 10)
        self.assertRefused(transport, 500, "internal")
        self.assertEqual(len(self.flushLoggedErrors(ConnectionError)), 1)
        self.assertUnread(channel)

    def test_connection_lost_while_checking(self) -> None:
        """A client gone while its token is looked up gets nothing written afterwards,
        and its held bytes are dropped."""
        self.tokens.hold = True
        channel, transport = self.connect()
        channel.dataReceived(self.head(token=self.alice, length=10) + b"x" * 5)
        channel.connectionLost(Failure(ConnectionDone()))
        self.tokens.release()
        self.assertEqual(transport.value(), b"")

    def test_refusals_are_counted_in_the_metrics(self) -> None:
        """Refused requests are counted in ``twisted_hooks_api_requests_total`` by
        method and status."""
        channel, _ = self.connect()
        channel.dataReceived(self.head(length=LIMIT + 1))
        other, _ = self.connect()
        other.dataReceived(self.head(length=1))
        text = self.api.metrics.render().decode()
        self.assertIn('twisted_hooks_api_requests_total{code="413",method="POST"} 1.0', text)
        self.assertIn('twisted_hooks_api_requests_total{code="401",method="POST"} 1.0', text)

    def test_bad_arguments(self) -> None:
        """A limit below 1 or a negative linger is refused, naming the argument."""
        with self.assertRaises(ValueError) as raised:
            LimitedSite(Resource(), self.tokens, 0)
        self.assertIn("max_request_body", str(raised.exception))
        with self.assertRaises(ValueError) as raised:
            LimitedSite(Resource(), self.tokens, 10, linger=-1)
        self.assertIn("linger", str(raised.exception))

    def test_same_rule_as_the_configuration(self) -> None:
        """max_request_body is refused by the rule of ServiceConfig's field, with the same
        message (below 1, above 64 MiB, not a whole number); linger by its own field's
        rule (not negative, at most an hour, a number)."""
        for value in (0, 64 * 1024 * 1024 + 1, 10.5, True):
            with self.assertRaises(ValueError) as by_config:
                ServiceConfig(max_request_body=value)  # type: ignore[arg-type]
            with self.assertRaises(ValueError) as by_site:
                LimitedSite(Resource(), self.tokens, value)  # type: ignore[arg-type]
            self.assertEqual(str(by_site.exception), str(by_config.exception))
            self.assertIn("max_request_body must be", str(by_site.exception))
        for linger, words in [
            (-1, "linger must be finite and not negative, got -1"),
            (3601.0, "linger must be at most 3600 seconds, got 3601.0"),
            ("2", "linger must be a number of seconds, got '2'"),
        ]:
            with self.assertRaises(ValueError) as raised:
                LimitedSite(Resource(), self.tokens, 10, linger=linger)  # type: ignore[arg-type]
            self.assertEqual(str(raised.exception), words)
        site = LimitedSite(Resource(), self.tokens, 64 * 1024 * 1024, linger=0)
        self.assertEqual((site.max_request_body, site.linger), (64 * 1024 * 1024, 0))

    def test_the_fake_token_store_provides_the_interface(self) -> None:
        """The test's token store provides ITokenStore."""
        verifyObject(ITokenStore, self.tokens)


class PublicPathsTests(SynchronousTestCase):
    """The paths served without a token have one source of truth."""

    def test_public_paths_are_those_the_openapi_document_leaves_open(self) -> None:
        """``PUBLIC_PATHS`` is exactly the set of routes the OpenAPI document marks as
        needing no security, and every one of them is served."""
        document = openapi_document()
        open_paths = {
            path
            for path, operations in document["paths"].items()
            for operation in operations.values()
            if isinstance(operation, dict) and operation.get("security") == []
        }
        self.assertEqual(PUBLIC_PATHS, open_paths)
        self.assertLessEqual(PUBLIC_PATHS, {path for _, path in routes()})

    def test_needs_token(self) -> None:
        """Every target but the public paths (with any query) needs a token, unknown and
        near-miss paths included."""
        for path in (b"/healthz", b"/metrics", b"/openapi.json", b"/healthz?verbose=1"):
            self.assertFalse(needs_token(path), path)
        for path in (b"/hooks/", b"/events/", b"/healthz/", b"//healthz", b"/nope", b"/\xff"):
            self.assertTrue(needs_token(path), path)


# -- a real port -----------------------------------------------------------------------------


def answered(received: bytes) -> bool:
    """Whether ``received`` holds the head of a final (not 100 Continue) answer."""
    while received.startswith(b"HTTP/1.1 100 ") and b"\r\n\r\n" in received:
        received = received.split(b"\r\n\r\n", 1)[1]
    return b"\r\n\r\n" in received


def upload(
    port: int,
    head: bytes,
    chunks: Iterator[bytes],
    deadline: float = 60.0,
    watch: Callable[[], None] | None = None,
) -> tuple[bytes, int, bool]:
    """
    Send ``head`` then ``chunks`` over a raw socket to 127.0.0.1:``port``, reading while
    sending, and stop sending once an answer arrives, as a careful client does. Return the
    bytes received, how many body bytes were sent, and whether the server closed the
    connection (end of file) before the deadline. ``watch`` is called every 16 chunks.
    """
    end = time.monotonic() + deadline
    received = b""
    sent = 0
    closed = False
    count = 0
    pending = b""
    sending = True
    with socket.create_connection(("127.0.0.1", port), timeout=deadline) as client:
        client.sendall(head)
        client.setblocking(False)
        while time.monotonic() < end:
            if sending and not pending:
                pending = next(chunks, b"")
                count += 1
                if watch is not None and count % 16 == 0:
                    watch()
                sending = bool(pending)
            readable, writable, _ = select.select(
                [client],
                [client] if sending else [],
                [],
                max(0.0, min(1.0, end - time.monotonic())),
            )
            if readable:
                try:
                    data = client.recv(65536)
                except ConnectionResetError:
                    break
                if not data:
                    closed = True
                    break
                received += data
                if answered(received):
                    sending = False
                    continue
            if writable and sending:
                try:
                    done = client.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    sending = False
                    continue
                sent += done
                pending = pending[done:]
    return received, sent, closed


def body_chunks(total: int, size: int = 65536, coding: bool = False) -> Iterator[bytes]:
    """``total`` bytes of body, ``size`` at a time, made as they are sent; in the chunked
    coding if ``coding``."""
    piece = b"x" * size
    left = total
    while left > 0:
        data = piece[: min(size, left)]
        left -= len(data)
        yield b"%x\r\n%s\r\n" % (len(data), data) if coding else data
    if coding:
        yield b"0\r\n\r\n"


class _TrackedChannel(LimitedChannel):
    """A channel that says when its connection is gone."""

    def __init__(self) -> None:
        super().__init__()
        self.lost: Deferred[None] = Deferred()

    def connectionLost(self, reason: Failure | None = None) -> None:
        super().connectionLost(reason)
        self.lost.callback(None)


class _TrackingSite(LimitedSite):
    """A :class:`LimitedSite` that keeps its channels."""

    channels: list[_TrackedChannel]

    def protocol(self) -> _TrackedChannel:
        channel = _TrackedChannel()
        self.channels.append(channel)
        return channel


class RealPortTests(TestCase):
    """A :class:`LimitedSite` listening on 127.0.0.1 with the real reactor, and a client
    on a raw socket in a thread; each test ends once the server saw its connections
    close."""

    def setUp(self) -> None:
        self.store = MemoryStore()
        self.site = _TrackingSite(Resource(), self.store, LIMIT, linger=0.5)
        self.site.channels = []
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(self.port.stopListening)
        self.addCleanup(self.closed)

    def closed(self) -> Deferred[object]:
        lost = gatherResults([channel.lost for channel in self.site.channels])
        return lost.addTimeout(DEADLINE, reactor)

    async def test_client_still_sending_reads_the_413_then_end_of_file(self) -> None:
        """A client streaming a body announced at 50 MiB gets the 413 while it sends,
        stops, and then sees the connection closed (the service half closes at once
        and drops the connection after ``linger``)."""
        port = self.port.getHost().port
        head = b"POST /events/ HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (
            50 * 1024 * 1024
        )
        received, _, closed = await threads.deferToThread(
            upload, port, head, body_chunks(50 * 1024 * 1024), 20.0
        )
        ((status, headers, body),) = parse_responses(received)
        self.assertEqual((status, json.loads(body)["error"]), (413, "too_large"))
        self.assertEqual(headers["connection"], "close")
        self.assertTrue(closed)

    async def test_anonymous_chunked_upload_gets_401_then_end_of_file(self) -> None:
        """An anonymous chunked upload to a path that needs a token gets the 401 at once
        and the connection is closed."""
        port = self.port.getHost().port
        head = b"POST /events/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        received, _, closed = await threads.deferToThread(
            upload, port, head, body_chunks(20 * 1024 * 1024, coding=True), 20.0
        )
        ((status, _, body),) = parse_responses(received)
        self.assertEqual((status, json.loads(body)["error"]), (401, "unauthorized"))
        self.assertTrue(closed)


# -- the real service ------------------------------------------------------------------------

#: What each upload of the end-to-end test sends.
UPLOAD = 100 * 1024 * 1024


def peak_rss_kib(pid: int) -> int:
    """The peak resident set size (VmHWM) of process ``pid``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def temporary_bytes(pid: int, directory: Path) -> int:
    """The bytes in files under ``directory`` that process ``pid`` holds open (deleted
    and anonymous temporary files included), plus those of the files it lists."""
    total = 0
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
            if target.startswith(str(directory)):
                total += os.stat(fd).st_size
        except OSError:
            continue  # closed meanwhile
    for path in directory.rglob("*"):
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total


@pytest.fixture
def tmpdir_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Service, Path]]:
    """The service in a child process whose TMPDIR is an empty directory of its own."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    service = Service(tmp_path)
    service.start()
    yield service, temporary
    service.kill()


def test_large_uploads_leave_memory_and_disk_flat(
    tmp_path: Path, tmpdir_service: tuple[Service, Path]
) -> None:
    """100 MiB streamed at the real service (limit 4 KiB) over raw sockets, anonymously
    and with a token, with a Content-Length, chunked, with ``Expect: 100-continue`` and
    with no length at all: each is answered (413 for a length over the limit or a chunked
    body past it with a token, 401 for an anonymous chunked body, 400/401 then a dropped
    connection for bytes with no length), the connection is closed, the process's peak
    memory grows by less than 20 MB, and it never holds a temporary file of 1 MB."""
    service, temporary = tmpdir_service
    assert service.process is not None
    pid = service.process.pid
    token = service.token("alice")
    port = int(service.base.rsplit(":", 1)[1].strip("/"))
    # Warm up: a publish through the API, so the baseline includes the code paths used.
    status, _, _ = service.request("POST", "/events/", token, {"event": "a.b", "data": 1})
    assert status == 202
    baseline = peak_rss_kib(pid)
    most_held = 0

    def watch() -> None:
        nonlocal most_held
        most_held = max(most_held, temporary_bytes(pid, temporary))

    def head(extra: str, authorized: bool) -> bytes:
        lines = ["POST /events/ HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
        if authorized:
            lines.append(f"Authorization: Bearer {token}")
        return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()

    cases = [
        ("length, anonymous", head(f"Content-Length: {UPLOAD}\r\n", False), False, 413),
        ("length, token", head(f"Content-Length: {UPLOAD}\r\n", True), False, 413),
        (
            "length, expect 100-continue",
            head(f"Content-Length: {UPLOAD}\r\nExpect: 100-continue\r\n", True),
            False,
            413,
        ),
        ("chunked, anonymous", head("Transfer-Encoding: chunked\r\n", False), True, 401),
        ("chunked, token", head("Transfer-Encoding: chunked\r\n", True), True, 413),
        # No length: the request has no body, and the bytes after it are taken for the next
        # request (the first 64 KiB go with the head, so the server sees a line too long).
        ("no length, anonymous", head("", False) + b"x" * 65536, False, 401),
        ("no length, token", head("", True) + b"x" * 65536, False, 400),
    ]
    began = time.monotonic()
    for name, request_head, coding, expected in cases:
        received, sent, closed = upload(
            port, request_head, body_chunks(UPLOAD, coding=coding), DEADLINE * 2, watch
        )
        watch()
        grown = peak_rss_kib(pid) - baseline
        assert grown < 20 * 1024, f"{name}: the peak RSS grew by {grown} KiB"
        assert most_held < 1024 * 1024, f"{name}: {most_held} bytes in temporary files"
        assert answered(received), (name, received[:500])
        assert received.split(b"\r\n", 1)[0].split(b" ")[1] == b"%d" % expected, (
            name,
            received[:500],
        )
        assert b"100 Continue" not in received, name
        assert closed, (name, sent)
        assert sent < UPLOAD // 4, f"{name}: the client could send {sent} bytes"
    assert time.monotonic() - began < 300
    # The service still works, and said nothing alarming.
    status, _, _ = service.request("POST", "/events/", token, {"event": "a.b", "data": 2})
    assert status == 202
    assert "Unhandled" not in service.log()
    assert "Traceback" not in service.log()


def test_service_takes_the_ends_of_the_configured_ranges(tmp_path: Path) -> None:
    """
    The real service starts with the largest values its configuration file allows for
    the settings its sender, scheduler, endpoint gate and listener check again (each by
    the rule of the same field), and delivers: no part refuses a value the configuration
    accepted. A value past one of those ends is refused at start, naming the key.
    """
    edges = """\
[hooks]
timeout = 3600
lease = 86400
poll_interval = 0.2
max_concurrency = 100000
max_per_host = 10000
max_response_body = 67108864
max_request_body = 67108864
shutdown_timeout = 1

[retry]
schedule = 1
jitter = 0

[validators]
ports =
allowed_networks = 127.0.0.0/8
"""
    receiver = Receiver()
    service = Service(tmp_path, config=edges)
    try:
        service.start()
        token = service.token("alice")
        status, _, hook = service.request(
            "POST", "/hooks/", token, {"event": "edge.*", "url": receiver.url}
        )
        assert status == 201, hook
        status, _, published = service.request(
            "POST", "/events/", token, {"event": "edge.reached", "data": {"n": 1}}
        )
        assert (status, published["deliveries"]) == (202, 1), published
        wait_for(lambda: receiver.bodies(), "the delivery")
        assert receiver.bodies() == [{"n": 1}]
    finally:
        service.kill()
        receiver.close()

    past = tmp_path / "past"
    past.mkdir()
    config = past / "hooks.ini"
    config.write_text(edges.replace("max_per_host = 10000", "max_per_host = 10001"))
    result = run_failing(
        ["--database", f"sqlite:{past / 'hooks.sqlite3'}", "--config", str(config)]
    )
    assert result.returncode != 0
    assert "max_per_host" in result.stdout + result.stderr
    assert "10001" in result.stdout + result.stderr
