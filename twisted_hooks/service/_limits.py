"""
The API's listener: a :class:`~twisted.web.server.Site` that refuses a request at the
protocol level, while its body is still in the client's hands.

twisted.web reads a request's whole body, into a temporary file past about 100 kB, before
any resource sees the request; a limit checked by the resource comes too late to spare the
disk. :class:`LimitedSite` applies the limits as the request arrives, in this order:

1. a ``Content-Length`` above the limit is answered ``413 too_large`` as soon as the
   headers end, before any byte of the body is read;
2. a request with a body, for a path that needs a token
   (:func:`~twisted_hooks.service.api.needs_token`), waits for its token to be checked
   (:func:`~twisted_hooks.service.api.authenticate`) with the connection paused (nothing
   more is read from it); no valid token is answered 401, as the API answers it;
3. a body without a length (chunked) is cut off with ``413 too_large`` as soon as it
   passes the limit.

Bodies are held in memory (they are at most the limit long), never in temporary files.
``Expect: 100-continue`` is answered ``100 Continue`` only once a request is let through.
A refused request is answered with the API's JSON error and ``Connection: close``; the
connection is then half closed, and whatever the client still sends is read and thrown
away for :data:`LINGER` seconds at most (so that a client still sending sees the answer
rather than a reset connection), then dropped.

:class:`~twisted_hooks.service.api.HooksAPI` checks the body's size and the token again:
this listener is the first line of defence, not the only one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from io import BytesIO
from typing import Any, cast

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES, HTTPChannel, datetimeToString
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from twisted_hooks._fields import check_field, field
from twisted_hooks.interfaces import ITokenStore
from twisted_hooks.service._access import authenticate, needs_token
from twisted_hooks.service._errors import APIError, too_large
from twisted_hooks.service.config import ServiceConfig
from twisted_hooks.store.tokens import Token

__all__ = ["LINGER", "LimitedChannel", "LimitedRequest", "LimitedSite"]

_log = Logger(namespace="twisted_hooks.service.api")

#: Seconds a refused connection is kept open, reading and discarding, before it is dropped.
LINGER = 2.0


@attrs.frozen
class _SiteRules:
    """The rules of :class:`LimitedSite`'s arguments that no settings class holds."""

    linger: float = field(
        LINGER,
        minimum=0.0,
        maximum=3600.0,
        unit="seconds",
        help="seconds a refused connection is read from before it is dropped",
    )


_INTERNAL = APIError(500, "internal", "an internal error; it was logged")


class LimitedSite(Site):
    """
    A :class:`~twisted.web.server.Site` whose connections refuse, before reading them,
    bodies over ``max_request_body`` bytes and bodies sent without a valid token.

    :param resource: the root resource (the API's).
    :param tokens: the store whose tokens admit requests.
    :param max_request_body: the largest request body read, in bytes.
    :param reactor: the reactor (its clock); the global one if ``None``.
    :param observe: called with the method and the status of every refused request (the
        API's request counter), or ``None``.
    :param needs_token: whether a request target needs a token;
        :func:`twisted_hooks.service.api.needs_token` by default.
    :param linger: seconds a refused connection is read from, and the bytes thrown away,
        before it is dropped.
    :raise ValueError: for a ``max_request_body`` outside the range of
        :class:`~twisted_hooks.service.config.ServiceConfig`'s field (from 1 byte to
        64 MiB), or a ``linger`` outside 0 to 3600 seconds.
    """

    def __init__(
        self,
        resource: IResource,
        tokens: ITokenStore,
        max_request_body: int,
        reactor: IReactorTime | None = None,
        observe: Callable[[bytes, int], None] | None = None,
        needs_token: Callable[[bytes], bool] = needs_token,
        linger: float = LINGER,
    ) -> None:
        check_field(ServiceConfig, "max_request_body", max_request_body)
        check_field(_SiteRules, "linger", linger)
        super().__init__(resource, requestFactory=LimitedRequest, reactor=reactor)  # type: ignore[no-untyped-call]
        self.tokens = tokens
        self.max_request_body = max_request_body
        self.observe = observe
        self.needs_token = needs_token
        self.linger = linger

    def protocol(self) -> LimitedChannel:  # type: ignore[override]
        """A new connection: a :class:`LimitedChannel` (HTTP/1.x only)."""
        return LimitedChannel()


class LimitedRequest(Request):
    """
    A :class:`~twisted.web.server.Request` that holds its body in memory and has its
    channel refuse it once the body passes the site's limit.
    """

    _body_length = 0

    def gotLength(self, length: int | None) -> None:
        """Hold the body in memory, whatever its announced length (the channel refused
        any above the limit already)."""
        self.content = BytesIO()
        self._body_length = 0

    def handleContentChunk(self, data: bytes) -> None:
        """Keep ``data``, unless the body is now over the limit: then refuse the request."""
        channel = cast(LimitedChannel, self.channel)
        if channel.refused:
            return
        self._body_length += len(data)
        limit = channel.site.max_request_body
        if self._body_length > limit:
            channel.refuse(too_large(limit))
            return
        content: Any = self.content
        content.write(data)


class LimitedChannel(HTTPChannel):
    """
    The HTTP/1.x protocol of a :class:`LimitedSite`: it checks each request's length and
    token when its headers end, before reading its body.

    :ivar refused: whether the request being read was refused (the connection is closing).
    """

    site: LimitedSite
    refused = False
    _checking: Deferred[Token] | None = None
    _held: list[bytes]
    _expect_continue = False
    _linger: IDelayedCall | None = None
    _lost = False

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._held = []

    # -- the checks, when the headers end ----------------------------------------------------

    def allHeadersReceived(self) -> None:
        """Check the announced length and the token, then let the body in, or refuse."""
        # HTTPChannel.allHeadersReceived, but answering 100 Continue only to requests
        # let through.
        request = self.requests[-1]
        request.parseCookies()
        self.persistent = self.checkPersistence(request, self._version)  # type: ignore[no-untyped-call]
        request.gotLength(self.length)
        expect = request.requestHeaders.getRawHeaders(b"expect")
        self._expect_continue = bool(
            expect and expect[0].lower() == b"100-continue" and self._version == b"HTTP/1.1"
        )
        site = self.site
        if self.length is not None and self.length > site.max_request_body:
            self.refuse(too_large(site.max_request_body))
            return
        if self.length != 0 and site.needs_token(self._path):
            self._check(request.requestHeaders.getRawHeaders(b"authorization"))
            return
        self._continue()

    def _check(self, headers: list[bytes] | None) -> None:
        self._networkProducer.pauseProducing()
        header = headers[0] if headers else None
        checking = Deferred.fromCoroutine(authenticate(self.site.tokens, header))
        self._checking = checking
        checking.addCallbacks(self._admitted, self._not_admitted)

    def _admitted(self, token: Token) -> None:
        self._checking = None
        if self._lost or self.refused:
            return
        if not self._waitingForTransport:
            self._networkProducer.resumeProducing()
        self._continue()
        held, self._held = b"".join(self._held), []
        if held:
            self.rawDataReceived(held)

    def _not_admitted(self, failure: Failure) -> None:
        self._checking = None
        if self._lost or self.refused:
            return
        if isinstance(failure.value, APIError):
            self.refuse(failure.value)
            return
        _log.failure(
            "checking the token of {method} {path} failed",
            failure,
            method=self._command.decode("ascii", "replace"),
            path=self._path.decode("ascii", "replace"),
        )
        self.refuse(_INTERNAL)

    def _continue(self) -> None:
        if self._expect_continue:
            self._expect_continue = False
            self._send100Continue()  # type: ignore[no-untyped-call]

    # -- refusing ----------------------------------------------------------------------------

    def refuse(self, error: APIError) -> None:
        """
        Answer the request being read with ``error`` (the API's JSON error body and
        headers, and ``Connection: close``), half close the connection, discard what the
        client still sends, and drop the connection after the site's ``linger`` seconds.
        """
        if self.refused or self._lost:
            return
        self.refused = True
        self.persistent = False
        self._held = []
        method = getattr(self, "_command", b"")
        body = json.dumps(error.body(), separators=(",", ":")).encode("ascii")
        reason: bytes = RESPONSES.get(error.status, b"Error")
        head = [
            b"HTTP/1.1 %d %s" % (error.status, reason),
            b"Date: " + datetimeToString(),  # type: ignore[no-untyped-call]
            b"Content-Type: application/json; charset=utf-8",
            b"Content-Length: %d" % len(body),
            b"Connection: close",
        ]
        head += [f"{name}: {value}".encode("ascii") for name, value in error.headers]
        transport: Any = self.transport
        transport.write(b"\r\n".join(head) + b"\r\n\r\n")
        if method.upper() != b"HEAD":
            transport.write(body)
        half_close = getattr(transport, "loseWriteConnection", None)
        if half_close is not None:
            half_close()
        self.setTimeout(None)  # type: ignore[no-untyped-call]
        self._linger = self.callLater(self.site.linger, self._drop)  # type: ignore[no-untyped-call]
        if not self._waitingForTransport:
            self._networkProducer.resumeProducing()  # read, to throw away
        if self.site.observe is not None:
            self.site.observe(method, error.status)

    def _drop(self) -> None:
        self._linger = None
        transport: Any = self.transport
        transport.abortConnection()

    # -- HTTPChannel, kept from reading a refused or held body -------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Throw ``data`` away once the request is refused; else parse it."""
        if self.refused:
            return
        super().dataReceived(data)  # type: ignore[no-untyped-call]

    def rawDataReceived(self, data: bytes) -> None:
        """Hold body bytes while the token is checked, throw them away once refused."""
        if self.refused:
            return
        if self._checking is not None:
            self._held.append(data)
            return
        super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        """Hand the request to the site, unless it was refused."""
        if not self.refused:
            super().allContentReceived()  # type: ignore[no-untyped-call]

    def _respondToBadRequestAndDisconnect(self) -> None:
        if not self.refused:
            super()._respondToBadRequestAndDisconnect()  # type: ignore[no-untyped-call]

    def resumeProducing(self) -> None:
        """Resume, but keep reading paused while a token is checked."""
        super().resumeProducing()  # type: ignore[no-untyped-call]
        if self._checking is not None:
            self._networkProducer.pauseProducing()

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Forget the refused request's timer; a token still being checked is ignored."""
        self._lost = True
        self._held = []
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._linger = None
        super().connectionLost(reason)  # type: ignore[no-untyped-call]
