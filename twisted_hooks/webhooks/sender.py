"""
The HTTP side of a delivery: one signed POST, bounded in time and size, classified.

:class:`HTTPSender` makes every attempt through one :class:`treq.client.HTTPClient` on our
own connection pool, whose connections are opened by
:class:`~twisted_hooks.webhooks.safe_agent.SafeEndpointFactory` (the recipient validators
run on every address the host resolves to, and the connection goes to a vetted address).

- It only sends: every attempt it is given starts at once. How many run at once, in all,
  per host and per endpoint, is decided before it is called, by the application's
  :class:`~twisted_hooks.webhooks.EndpointGate` (a sender used on its own caps nothing).
  The pool keeps ``max_per_host`` idle connections per host, for 50 seconds.
- One deadline covers connecting, sending, the response headers and the body.
- The body is read up to ``max_response_body`` bytes (the first 4 KiB are kept for the
  attempt record); past that the connection is aborted. Content encodings are not
  decoded (``Accept-Encoding: identity``), so a small compressed body cannot expand.
- Redirects are not followed; cookies are neither stored nor sent.
- Both header sets are signed at each attempt: Thorn's ``Hook-*`` headers and the
  Standard Webhooks ``webhook-*`` trio.

An attempt never fails: every outcome, errors included, is an
:class:`~twisted_hooks.webhooks.delivery.Attempt`.
"""

from __future__ import annotations

import functools
import platform
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import attrs
from hyperlink import EncodedURL
from treq.client import HTTPClient
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    TimeoutError,
    succeed,
)
from twisted.internet.error import (
    ConnectError,
    ConnectingCancelledError,
    ConnectionClosed,
    DNSLookupError,
)
from twisted.internet.interfaces import IConsumer, IReactorTCP, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer

import twisted
from twisted_hooks._fields import check_field
from twisted_hooks._version import __version__
from twisted_hooks.interfaces import IPolicySender
from twisted_hooks.webhooks._settings import Settings
from twisted_hooks.webhooks.delivery import Attempt, Delivery, ErrorKind
from twisted_hooks.webhooks.logs import QuietConnectionPool, loggable_url
from twisted_hooks.webhooks.retry import parse_retry_after
from twisted_hooks.webhooks.safe_agent import RecipientLookupError, safe_agent
from twisted_hooks.webhooks.signing import signature_headers
from twisted_hooks.webhooks.subscribers import Subscriber
from twisted_hooks.webhooks.validators import RecipientPolicy, SecurityError

__all__ = ["EXCERPT_SIZE", "USER_AGENT", "HTTPSender", "delivery_headers", "origin_of"]

#: How much of a response body an attempt keeps.
EXCERPT_SIZE = 4096

#: The ``User-Agent`` of every delivery.
USER_AGENT = (
    f"twisted_hooks/{__version__} (+https://github.com/twisted-hooks/twisted_hooks) "
    f"Twisted/{twisted.__version__} Python/{platform.python_version()}"
)

_log = Logger(namespace="twisted_hooks.webhooks.sender")


def delivery_headers(
    delivery: Delivery, subscriber: Subscriber, timestamp: int, user_agent: str = USER_AGENT
) -> dict[str, str]:
    """
    Every header of one attempt, signed for ``timestamp`` (whole seconds since the epoch).

    ``Hook-Event``, ``Hook-Delivery``, ``Hook-HMAC``, ``Hook-Subscription``, ``User-Agent``,
    ``Content-Type``, ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``, and the
    subscriber's custom headers.
    """
    headers = dict(subscriber.headers)
    headers.update(
        signature_headers(
            secrets=subscriber.signing_secrets,
            digest_method=subscriber.digest,
            msg_id=delivery.id,
            timestamp=timestamp,
            body=delivery.body,
        )
    )
    headers["Hook-Event"] = delivery.event
    headers["Hook-Delivery"] = delivery.id
    headers["Hook-Subscription"] = subscriber.id
    headers["User-Agent"] = user_agent
    headers["Content-Type"] = subscriber.content_type
    return headers


@implementer(IBodyProducer)
class _BytesProducer:
    """Writes a body held in memory in one go (treq's default goes through a cooperator)."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


def _body_producer(data: Any) -> IBodyProducer:
    if isinstance(data, bytes):
        return _BytesProducer(data)
    raise TypeError(f"delivery bodies are bytes, got {type(data).__name__}")


@implementer(IAgent)
class _IdentityEncoding:
    """
    Sits below treq's gzip decoder: asks for no content encoding, and hides any the
    server sends anyway, so response bodies are only ever read raw and bounded.
    """

    def __init__(self, agent: IAgent) -> None:
        self._agent = agent

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        if headers is not None:
            headers.setRawHeaders(b"accept-encoding", [b"identity"])
        d = self._agent.request(method, uri, headers, bodyProducer)

        def raw(response: IResponse) -> IResponse:
            response.headers.removeHeader(b"content-encoding")
            return response

        return d.addCallback(raw)


class _CappedBody(Protocol):
    """Reads a response body up to a limit, keeping its first bytes."""

    def __init__(self, finished: Deferred[tuple[bytes, bool]], limit: int) -> None:
        self._finished = finished
        self._limit = limit
        self._kept: list[bytes] = []
        self._kept_size = 0
        self._total = 0
        self._done = False

    def dataReceived(self, data: bytes) -> None:
        if self._done:
            return
        self._total += len(data)
        if self._kept_size < EXCERPT_SIZE:
            piece = data[: EXCERPT_SIZE - self._kept_size]
            self._kept.append(piece)
            self._kept_size += len(piece)
        if self._total > self._limit:
            self._done = True
            self.abort()
            self._finished.callback((b"".join(self._kept), True))

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        if self._done:
            return
        self._done = True
        if reason.check(ResponseDone, PotentialDataLoss):
            self._finished.callback((b"".join(self._kept), False))
        else:
            self._finished.errback(reason)

    def abort(self) -> None:
        """Drop the connection now (used on cancellation and for oversized bodies).

        The body's transport is Twisted's response body transport, whose
        ``loseConnection`` is documented to abort the connection (a body cut short
        leaves it unusable); a transport that offers ``abortConnection`` itself is aborted
        with it."""
        transport = self.transport
        if transport is None:
            return
        abort = getattr(transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            transport.loseConnection()


def read_capped(response: IResponse, limit: int) -> Deferred[tuple[bytes, bool]]:
    """
    Read ``response``'s body, at most ``limit`` bytes.

    :return: a Deferred firing ``(first 4 KiB, truncated)``; cancelling it drops the
        connection.
    """
    if response.length == 0:
        return succeed((b"", False))
    protocol: _CappedBody

    def cancel(d: Deferred[tuple[bytes, bool]]) -> None:
        protocol._done = True
        protocol.abort()

    finished: Deferred[tuple[bytes, bool]] = Deferred(cancel)
    protocol = _CappedBody(finished, limit)
    response.deliverBody(protocol)  # type: ignore[no-untyped-call]
    return finished


@functools.lru_cache(maxsize=4096)
def origin_of(url: str) -> tuple[str, str, int]:
    """
    The ``(scheme, host, port)`` of ``url``, the unit of the per-host concurrency cap
    (the port defaulting to 80 or 443).
    """
    parts = urlsplit(url)
    scheme = parts.scheme
    return scheme, (parts.hostname or ""), parts.port or (443 if scheme == "https" else 80)


class _IPv6LiteralURL(EncodedURL):
    """
    A URL whose host is an IPv6 address, which :meth:`to_uri` leaves as it is: hyperlink's
    would IDNA-encode it, and fail on its colons (treq calls it on every request URL).
    """

    def to_uri(self) -> EncodedURL:
        address = self.host
        placeholder: EncodedURL = EncodedURL.to_uri(self.replace(host="ipv6.invalid"))
        return placeholder.replace(host=address)


def _request_url(url: str) -> str | EncodedURL:
    """
    ``url`` as the sender gives it to treq: as it is, except that a URL whose host is an
    IPv6 address (``http://[::1]:8080/``) becomes a :class:`hyperlink.URL` that treq can
    send (treq's own handling of the text fails on the address's colons).
    """
    if "[" not in url:
        return url
    try:
        parsed = _IPv6LiteralURL.from_text(url)
    except ValueError:
        return url
    return parsed if ":" in parsed.host else url


def _describe_failure(failure: Failure) -> str:
    reasons = getattr(failure.value, "reasons", None)
    if reasons:
        return "; ".join(_describe_failure(reason) for reason in reasons)
    message = failure.getErrorMessage()
    name = type(failure.value).__name__
    return f"{name}: {message}" if message and message != name else name


def _inner(failure: Failure) -> list[Failure]:
    """The failure and the failures it wraps (``ResponseNeverReceived`` and friends)."""
    found = [failure]
    for reason in getattr(failure.value, "reasons", None) or ():
        if isinstance(reason, Failure):
            found.extend(_inner(reason))
    return found


class _DeliveryPool(QuietConnectionPool):
    """
    The sender's connection pool, which keeps only connections the receiver promised to
    keep open.

    Twisted's pool keeps a connection after any answer without ``Connection: close``. An
    HTTP/1.0 answer without ``Connection: keep-alive`` ends its connection, though (RFC
    9112, section 9.3): Python's ``http.server`` answers so, and closes. Kept, such a
    connection would carry the next attempt to that receiver while the receiver's close
    is on its way, and the attempt would fail (``ConnectionDone``) and wait for its retry.
    """

    def _putConnection(self, key: Any, connection: Any) -> None:
        # Called by the connection when its answer has ended, before its parser goes.
        parser: Any = getattr(connection, "_parser", None)
        response = getattr(parser, "response", None)
        if response is not None and not _answer_keeps_connection(
            response.version, parser.connHeaders
        ):
            connection.transport.loseConnection()
            return
        super()._putConnection(key, connection)  # type: ignore[no-untyped-call]


def _answer_keeps_connection(version: tuple[bytes, int, int], headers: Headers) -> bool:
    """Whether an answer of this HTTP ``version`` and these connection ``headers`` leaves
    its connection open for another request."""
    options = {
        option.strip().lower()
        for value in headers.getRawHeaders(b"connection", [])
        for option in value.split(b",")
    }
    if b"close" in options:
        return False
    return version[1:] >= (1, 1) or b"keep-alive" in options


@attrs.frozen
class _Ending:
    """Makes the :class:`Attempt` of one delivery's attempt, timed from ``started``."""

    clock: IReactorTime
    delivery: Delivery
    started: float

    def __call__(
        self,
        *,
        status_code: int | None = None,
        error_kind: str | None = None,
        error_message: str | None = None,
        response_body: bytes = b"",
        retry_after: float | None = None,
        exception: BaseException | None = None,
    ) -> Attempt:
        return Attempt(
            delivery_id=self.delivery.id,
            number=self.delivery.attempts + 1,
            started_at=self.started,
            duration=self.clock.seconds() - self.started,
            status_code=status_code,
            error_kind=error_kind,
            error_message=error_message,
            response_body=response_body,
            retry_after=retry_after,
            exception=exception,
        )


@implementer(IPolicySender)
class HTTPSender:
    """
    Makes the HTTP attempts of deliveries.

    It only sends: each :meth:`attempt` starts at once. Concurrency is admitted before,
    in one place, by the application's :class:`~twisted_hooks.webhooks.EndpointGate`
    (``Settings.max_concurrency``, ``max_per_host``, each subscriber's limits); a sender
    used on its own caps nothing, and its caller decides how many attempts it starts.

    :param reactor: the reactor (TCP, time and name resolution).
    :param policy: the recipient policy of deliveries that don't carry their own;
        Thorn's defaults (no internal addresses, http/https on ports 80/443) if ``None``.
    :param max_concurrency: at least 1; kept for compatibility (the gate caps attempts
        in all, not the sender).
    :param max_per_host: how many idle connections the pool keeps per (scheme, host,
        port): the per-host concurrency the caller admits.
    :param max_response_body: response bytes read before the connection is dropped.
    :param idle_timeout: seconds an idle kept-alive connection stays open.
    :param tls_policy: the ``IPolicyForHTTPS``; certificates are verified for the host
        name against the system's trust roots by default.
    :param user_agent: the ``User-Agent`` header.
    :param client: an HTTP client with treq's ``post`` (a :class:`treq.client.HTTPClient`
        or :class:`treq.testing.StubTreq`) to use instead of the sender's own; tests pass
        a ``StubTreq``. The recipient policy is then the client's business.
    :raise ValueError: for ``max_concurrency``, ``max_per_host`` or
        ``max_response_body`` outside the range of the
        :class:`~twisted_hooks.webhooks.Settings` field of the same name, with the
        message ``Settings`` gives.
    """

    def __init__(
        self,
        reactor: IReactorTCP,
        policy: RecipientPolicy | None = None,
        *,
        max_concurrency: int = 256,
        max_per_host: int = 16,
        max_response_body: int = 64 * 1024,
        idle_timeout: float = 50.0,
        tls_policy: IPolicyForHTTPS | None = None,
        user_agent: str = USER_AGENT,
        client: Any = None,
    ) -> None:
        for name, value in [
            ("max_concurrency", max_concurrency),
            ("max_per_host", max_per_host),
            ("max_response_body", max_response_body),
        ]:
            check_field(Settings, name, value)
        self._reactor = reactor
        self._clock: IReactorTime = reactor  # type: ignore[assignment]
        self.policy = policy if policy is not None else RecipientPolicy()
        self.max_concurrency = max_concurrency
        self.max_per_host = max_per_host
        self.max_response_body = max_response_body
        self.user_agent = user_agent
        self._idle_timeout = idle_timeout
        self._tls_policy = tls_policy
        self._clients: dict[tuple[RecipientPolicy, bool], HTTPClient] = {}
        self._pools: list[HTTPConnectionPool] = []
        self._injected = client

    def _client(self, policy: RecipientPolicy, keepalive: bool) -> HTTPClient:
        if self._injected is not None:
            return self._injected  # type: ignore[no-any-return]
        client = self._clients.get((policy, keepalive))
        if client is None:
            pool = _DeliveryPool(self._clock, persistent=keepalive)
            pool.maxPersistentPerHost = self.max_per_host
            pool.cachedConnectionTimeout = int(self._idle_timeout)
            pool.retryAutomatically = False
            self._pools.append(pool)
            agent = _IdentityEncoding(
                safe_agent(self._reactor, policy, pool=pool, tls_policy=self._tls_policy)
            )
            jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
            client = HTTPClient(agent, cookiejar=jar, data_to_body_producer=_body_producer)  # type: ignore[arg-type]
            self._clients[(policy, keepalive)] = client
        return client

    def attempt(
        self, delivery: Delivery, subscriber: Subscriber, policy: RecipientPolicy | None = None
    ) -> Deferred[Attempt]:
        """
        POST ``delivery`` to ``subscriber``, signed now, and classify the outcome.

        :param policy: the recipient policy of this delivery; the sender's if ``None``.
        :return: a Deferred that always fires an :class:`Attempt`.
        """
        return self._post(delivery, subscriber, policy or self.policy)

    def _post(
        self, delivery: Delivery, subscriber: Subscriber, policy: RecipientPolicy
    ) -> Deferred[Attempt]:
        started = self._clock.seconds()
        done = _Ending(self._clock, delivery, started)
        try:
            headers = delivery_headers(delivery, subscriber, int(started), self.user_agent)
        except ValueError as error:
            return succeed(
                done(error_kind=ErrorKind.INTERNAL, error_message=str(error), exception=error)
            )
        client = self._client(policy, delivery.allow_keepalive)
        treq_headers: Any = headers
        treq_reactor: Any = self._reactor
        # One deadline covers connecting, sending, the headers and the body: ours, set on
        # the whole exchange below. treq's own ``timeout=`` would only arm a second timer
        # for a part of the same deadline, at every attempt.
        request = client.post(
            _request_url(subscriber.url),
            data=delivery.body,
            headers=treq_headers,
            allow_redirects=False,
            unbuffered=True,
            reactor=treq_reactor,
        )
        answer: list[IResponse] = []
        whole: Deferred[tuple[bytes, bool]] = request.addCallback(self._read, answer)
        whole.addTimeout(delivery.timeout, self._clock)
        return whole.addCallbacks(
            self._answered,
            self._failed,
            callbackArgs=(answer, done),
            errbackArgs=(done, delivery, subscriber),
        )

    def _read(self, response: IResponse, answer: list[IResponse]) -> Deferred[tuple[bytes, bool]]:
        answer.append(response)
        return read_capped(response, self.max_response_body)

    def _answered(
        self, read: tuple[bytes, bool], answer: list[IResponse], done: _Ending
    ) -> Attempt:
        excerpt, truncated = read
        return self._classify(answer[0], excerpt, truncated, done)

    def _classify(
        self, response: IResponse, excerpt: bytes, truncated: bool, done: _Ending
    ) -> Attempt:
        code = response.code
        if 200 <= code < 300:
            return done(status_code=code, response_body=excerpt)
        if 300 <= code < 400:
            location = response.headers.getRawHeaders(b"location", [b""])[0].decode("latin-1")
            # The location often repeats the recipient's query string (its keys too).
            message = (
                f"{code} redirect to {loggable_url(location)!r} not followed"
                if location
                else (f"{code} redirect not followed")
            )
            kind = ErrorKind.REDIRECT
        elif code == 410:
            kind = ErrorKind.GONE
            message = "410 Gone: the subscription is deactivated"
        else:
            kind = ErrorKind.STATUS
            message = f"{code} {response.phrase.decode('latin-1', 'replace')}".strip()
        retry_after = None
        if code in (429, 503):
            value = response.headers.getRawHeaders(b"retry-after", [None])[0]
            retry_after = parse_retry_after(
                value.decode("latin-1") if value is not None else None, self._clock.seconds()
            )
        if truncated:
            message += f" (body over {self.max_response_body} bytes, connection dropped)"
        return done(
            status_code=code,
            error_kind=kind,
            error_message=message,
            response_body=excerpt,
            retry_after=retry_after,
        )

    def _failed(
        self, failure: Failure, done: _Ending, delivery: Delivery, subscriber: Subscriber
    ) -> Attempt:
        inner = _inner(failure)
        for candidate in inner:
            if candidate.check(SecurityError):
                return done(
                    error_kind=ErrorKind.SECURITY,
                    error_message=candidate.getErrorMessage(),
                    exception=candidate.value,
                )
        # A deadline that passes before the response arrives cancels the request inside
        # the HTTP client, which reports ResponseNeverReceived([CancelledError]).
        # A deadline that passes while connecting cancels the connection attempt, which
        # Twisted reports as ConnectingCancelledError: a timeout too.
        if any(
            candidate.check(TimeoutError, CancelledError, ConnectingCancelledError)
            for candidate in inner
        ):
            return done(
                error_kind=ErrorKind.TIMEOUT,
                error_message=f"no complete answer within {delivery.timeout:g} s",
                exception=failure.value,
            )
        for candidate in inner:
            if candidate.check(RecipientLookupError, DNSLookupError):
                return done(
                    error_kind=ErrorKind.DNS,
                    error_message=_describe_failure(candidate),
                    exception=candidate.value,
                )
        if failure.check(ConnectError, ConnectionClosed) or hasattr(failure.value, "reasons"):
            return done(
                error_kind=ErrorKind.CONNECTION,
                error_message=_describe_failure(failure),
                exception=failure.value,
            )
        _log.failure(
            "unexpected error delivering {delivery_id} to {url}",
            failure,
            delivery_id=delivery.id,
            url=loggable_url(subscriber.url),
        )
        return done(
            error_kind=ErrorKind.INTERNAL,
            error_message=_describe_failure(failure),
            exception=failure.value,
        )

    def close(self) -> Deferred[None]:
        """Close every idle kept-alive connection."""
        pools, self._pools = self._pools, []
        self._clients.clear()
        closing = [pool.closeCachedConnections() for pool in pools]
        return DeferredList(closing, consumeErrors=True).addCallback(lambda _: None)
