"""
The receiving end of webhooks in a test: :class:`RecordingReceiver` and the
:class:`RecordedRequest` values it keeps.
"""

from __future__ import annotations

import http
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import Resource
from twisted.web.server import Request

from twisted_hooks.webhooks.encoding import FORM, JSON, encode_body
from twisted_hooks.webhooks.sender import HTTPSender
from twisted_hooks.webhooks.signing import (
    SignatureError,
    verify,
    verify_standard,
)

__all__ = ["RecordedRequest", "RecordingReceiver", "Reply"]


class _Unset:
    """The type of :data:`_UNSET`: an argument that was not given (``None`` is data)."""

    def __repr__(self) -> str:
        return "<not given>"


_UNSET = _Unset()

#: How much of a body an assertion message shows.
_SHOWN = 200


def _lower_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    lowered: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        lowered[key] = f"{lowered[key]}, {value}" if key in lowered else value
    return lowered


def normal_url(url: str) -> str:
    """
    ``url`` as requests are compared: scheme and host in lower case, the default port
    (80 for http, 443 for https) left out, an empty path as ``/``.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{host}{path}{query}"


def _phrase(code: int) -> str:
    """The standard reason phrase of ``code`` (empty for a code without one)."""
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return ""


def _shown(body: bytes) -> str:
    text = body[:_SHOWN].decode("utf-8", "replace")
    return text + ("..." if len(body) > _SHOWN else "")


@attrs.frozen
class RecordedRequest:
    """
    One webhook request as its receiver saw it.

    :ivar url: the URL it was sent to.
    :ivar headers: its headers, names in lower case (``hook-event``, ``webhook-id``, ...);
        a header given twice has its values joined by ``", "``.
    :ivar body: the body, exactly as sent.
    :ivar received_at: when it was received, seconds since the epoch (the fake sender's
        clock, or the receiver's).
    :ivar method: the HTTP method: ``"POST"``.
    """

    url: str
    headers: Mapping[str, str] = attrs.field(converter=_lower_headers, hash=False)
    body: bytes
    received_at: float = 0.0
    method: str = "POST"

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (in any letter case), or ``None``."""
        return self.headers.get(name.lower())

    @property
    def event(self) -> str | None:
        """The event name (``Hook-Event``)."""
        return self.header("hook-event")

    @property
    def delivery_id(self) -> str | None:
        """The delivery's id (``Hook-Delivery``, the same as ``webhook-id``), stable
        across the attempts of one delivery."""
        return self.header("hook-delivery")

    @property
    def subscription_id(self) -> str | None:
        """The subscriber's id (``Hook-Subscription``)."""
        return self.header("hook-subscription")

    @property
    def content_type(self) -> str:
        """The media type of the body, without parameters (``application/json``)."""
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()

    @property
    def json(self) -> Any:
        """
        The body parsed as JSON.

        :raise ValueError: when the body is not JSON, saying what it is.
        """
        try:
            return json.loads(self.body)
        except ValueError as error:
            raise ValueError(
                f"the body of the request to {self.url} is not JSON "
                f"(Content-Type {self.content_type or 'missing'}): {error}; "
                f"it starts {_shown(self.body)!r}"
            ) from None

    @property
    def data(self) -> Any:
        """
        The payload: the JSON body parsed, or for a form-encoded body
        (``application/x-www-form-urlencoded``) a dict of each field's text, a list of
        texts for a field given more than once.
        """
        if self.content_type == FORM:
            return _form_fields(self.body)
        return self.json

    def verify(self, secret: str | Sequence[str], digest_method: str = "sha256") -> None:
        """
        Check both signatures with the subscriber's ``secret`` (or, during a rotation, a
        sequence of secrets): ``webhook-signature`` (Standard Webhooks, with the
        timestamp compared to :attr:`received_at`) and ``Hook-HMAC`` (Thorn's scheme,
        with ``digest_method``, the subscriber's ``digest``).

        :raise twisted_hooks.webhooks.signing.SignatureError: naming the signature that
            does not match, or the header that is missing.
        """
        verify_standard(secret, self.headers, self.body, now=self.received_at)
        secrets = [secret] if isinstance(secret, str) else list(secret)
        given = self.header("hook-hmac")
        if not given:
            raise SignatureError("missing Hook-HMAC header")
        if not any(verify(given, digest_method, key, self.body) for key in secrets):
            raise SignatureError(
                f"Hook-HMAC does not match the body with this secret and {digest_method}"
            )

    def describe(self) -> str:
        """One line for people: the event, URL, delivery id and the start of the body."""
        return (
            f"{self.event or '(no Hook-Event)'} to {self.url} "
            f"(delivery {self.delivery_id or '?'}): {_shown(self.body)}"
        )


def _form_fields(body: bytes) -> dict[str, str | list[str]]:
    fields: dict[str, str | list[str]] = {}
    for key, value in parse_qsl(body.decode("ascii", "replace"), keep_blank_values=True):
        known = fields.get(key)
        if known is None:
            fields[key] = value
        elif isinstance(known, list):
            known.append(value)
        else:
            fields[key] = [known, value]
    return fields


def _normal_data(data: object, content_type: str) -> Any:
    """``data`` as a receiver of ``content_type`` reads it back: encoded with the
    delivery engine's own encoder, then decoded."""
    body = encode_body(data, FORM if content_type == FORM else JSON)
    if content_type == FORM:
        return _form_fields(body)
    return json.loads(body)


@attrs.frozen
class Reply:
    """
    What a :class:`RecordingReceiver` answers a request with.

    :ivar code: the HTTP status.
    :ivar body: the response body.
    :ivar headers: response headers (``{"Retry-After": "30"}`` with a 429 or 503).
    """

    code: int = attrs.field(default=200)
    body: bytes = b""
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=dict, hash=False)

    @code.validator
    def _check_code(self, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
            raise ValueError(f"a reply's code is an HTTP status from 100 to 599, got {value!r}")


def as_reply(answer: int | Reply) -> Reply:
    """A :class:`Reply` from a status code or a reply."""
    if isinstance(answer, Reply):
        return answer
    if isinstance(answer, int) and not isinstance(answer, bool):
        return Reply(answer)
    raise TypeError(f"a receiver answers with a status code or a Reply, got {answer!r}")


class RecordingReceiver(Resource):
    """
    A webhook receiver that records every request and answers as told (``200`` unless
    told otherwise), so that a test can assert what was sent without a socket.

    It is fed in either of two ways:

    - by a :class:`~twisted_hooks.testing.FakeSender` (the :class:`HooksHarness
      <twisted_hooks.testing.HooksHarness>` does this), which records each attempt it
      makes here, with the headers and signatures the real sender would send;
    - over HTTP: it is a :class:`twisted.web.resource.Resource` (every path ends here),
      which :meth:`http_sender` puts behind the real
      :class:`~twisted_hooks.webhooks.sender.HTTPSender` through
      :class:`treq.testing.StubTreq` (in memory), and which can also be served on a port.

    :param clock: stamps requests received over HTTP (:attr:`RecordedRequest.received_at`);
        :func:`time.time` if ``None``.

    :ivar requests: every :class:`RecordedRequest`, oldest first.
    :ivar respond: ``None``, or a callable given each :class:`RecordedRequest` that
        returns the reply (a status code or a :class:`Reply`), or ``None`` for the
        default; consulted for URLs without an :meth:`answer`.
    """

    isLeaf = True

    def __init__(self, clock: IReactorTime | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.requests: list[RecordedRequest] = []
        self.respond: Callable[[RecordedRequest], int | Reply | None] | None = None
        self._answers: dict[str, Reply] = {}
        self._clock = clock

    def __repr__(self) -> str:
        return f"<RecordingReceiver with {len(self.requests)} request(s)>"

    # -- answering ---------------------------------------------------------------------------

    def answer(self, url: str, reply: int | Reply) -> None:
        """
        Answer every request to ``url`` with ``reply`` (a status code or a :class:`Reply`)
        from now on.

        :raise TypeError: for a reply that is neither.
        :raise ValueError: for a status outside 100-599.
        """
        self._answers[normal_url(url)] = as_reply(reply)

    def reply_for(self, request: RecordedRequest) -> Reply:
        """The reply ``request`` gets: its URL's :meth:`answer`, else what :attr:`respond`
        returns, else ``200``."""
        reply = self._answers.get(normal_url(request.url))
        if reply is not None:
            return reply
        if self.respond is not None:
            chosen = self.respond(request)
            if chosen is not None:
                return as_reply(chosen)
        return Reply()

    def receive(self, request: RecordedRequest) -> Reply:
        """Record ``request`` and return the reply it gets (see :meth:`reply_for`)."""
        self.requests.append(request)
        return self.reply_for(request)

    def render(self, request: Request) -> bytes:
        """Answer a POST (:meth:`render_POST`); any other method is a 405, not recorded."""
        if request.method != b"POST":
            request.setResponseCode(405)
            request.setHeader(b"allow", b"POST")  # type: ignore[no-untyped-call]
            return b""
        return self.render_POST(request)

    def render_POST(self, request: Request) -> bytes:
        """Record a request received over HTTP and answer it."""
        host = request.getHeader(b"host") or b""
        scheme = "https" if request.isSecure() else "http"  # type: ignore[no-untyped-call]
        path = request.uri.decode("latin-1")
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, values in request.requestHeaders.getAllRawHeaders()
            for value in values
        ]
        assert request.content is not None
        now = self._clock.seconds() if self._clock is not None else time.time()
        recorded = RecordedRequest(
            url=f"{scheme}://{host.decode('latin-1')}{path}",
            headers=headers,
            body=request.content.read(),
            received_at=now,
            method=request.method.decode("latin-1"),
        )
        reply = self.receive(recorded)
        # The reason phrase servers send (Twisted's table lacks some, such as 429's).
        request.setResponseCode(reply.code, _phrase(reply.code).encode("ascii") or None)
        for name, value in reply.headers.items():
            request.setHeader(name, value)  # type: ignore[no-untyped-call]
        return reply.body

    def http_sender(self, clock: IReactorTime, **kwargs: Any) -> HTTPSender:
        """
        The real :class:`~twisted_hooks.webhooks.sender.HTTPSender`, sending to this
        receiver in memory (through :class:`treq.testing.StubTreq`) whatever the URL:
        give it to :class:`~twisted_hooks.webhooks.Hooks` as ``sender`` to check what the
        real sender sends and how it reads the replies.

        :param clock: the application's clock (a :class:`~twisted.internet.task.Clock`).
        :param kwargs: other :class:`~twisted_hooks.webhooks.sender.HTTPSender` arguments.
        """
        from treq.testing import StubTreq

        stub = StubTreq(self)  # type: ignore[no-untyped-call]
        return HTTPSender(clock, client=stub, **kwargs)  # type: ignore[arg-type]

    # -- asserting ---------------------------------------------------------------------------

    def sent(self, event: str | None = None, url: str | None = None) -> list[RecordedRequest]:
        """The requests of ``event`` to ``url`` (either left out: any), oldest first."""
        wanted_url = None if url is None else normal_url(url)
        return [
            request
            for request in self.requests
            if (event is None or request.event == event)
            and (wanted_url is None or normal_url(request.url) == wanted_url)
        ]

    def assert_sent(
        self,
        event: str,
        url: str | None = None,
        data: object = _UNSET,
        count: int | None = None,
    ) -> RecordedRequest:
        """
        Assert that ``event`` was sent (to ``url``, with the payload ``data``, when they
        are given) and return the first such request.

        ``data`` is compared as the receiver reads it: encoded by the delivery engine's
        encoder for the request's content type, then decoded (so ``Decimal("9.99")``
        matches the JSON string ``"9.99"``, and key order does not matter).

        :param count: when given, exactly this many requests must match (each attempt
            of a delivery is a request).
        :raise AssertionError: saying what was wanted and listing what was recorded.
        """
        candidates = self.sent(event, url)
        matching = [r for r in candidates if data is _UNSET or _same_data(r, data)]
        if matching and (count is None or len(matching) == count):
            return matching[0]
        wanted = f"{event!r}"
        if url is not None:
            wanted += f" to {url}"
        if data is not _UNSET:
            wanted += f" with data {data!r}"
        if count is not None and matching:
            raise AssertionError(
                f"expected {count} request(s) of {wanted}, got {len(matching)}:\n"
                + self._listing(matching)
            )
        raise AssertionError(f"no request of {wanted} was recorded; " + self._recorded())

    def assert_not_sent(self, event: str | None = None, url: str | None = None) -> None:
        """
        Assert that no request of ``event`` to ``url`` was recorded (either left out:
        any; both left out: no request at all).

        :raise AssertionError: listing the requests that match.
        """
        found = self.sent(event, url)
        if found:
            what = "any request" if event is None else repr(event)
            if url is not None:
                what += f" to {url}"
            raise AssertionError(f"expected no {what}, got {len(found)}:\n" + self._listing(found))

    def clear(self) -> None:
        """Forget the requests recorded so far (the answers stay)."""
        self.requests.clear()

    def _recorded(self) -> str:
        if not self.requests:
            return "no request was recorded at all"
        return f"{len(self.requests)} request(s) were:\n" + self._listing(self.requests)

    @staticmethod
    def _listing(requests: Sequence[RecordedRequest]) -> str:
        return "\n".join(f"  {request.describe()}" for request in requests)


def _same_data(request: RecordedRequest, data: object) -> bool:
    try:
        received = request.data
    except ValueError:
        return False
    try:
        expected = _normal_data(data, request.content_type)
    except (TypeError, ValueError):
        expected = data
    same: bool = received == expected
    return same
