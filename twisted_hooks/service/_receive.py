"""
``twisted-hooks receive``: a webhook receiver for development, on ``127.0.0.1``.

It prints every delivery it receives (the event, the delivery id and the attempt number
as counted here, both signatures checked, the body as indented JSON) and answers with the
status chosen, so that a developer can watch a subscription work, and watch the service
retry when the status is not a ``2xx``. ``Hook-HMAC`` and the Standard Webhooks ``v1``
signature are checked with :func:`~twisted_hooks.webhooks.signing.verify` and
:func:`~twisted_hooks.webhooks.signing.verify_standard` and a secret; Standard Webhooks'
asymmetric ``v1a`` signatures (Ed25519) with
:func:`~twisted_hooks.webhooks.signing.verify_ed25519` and a ``whpk_`` public key.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, TextIO
from urllib.parse import parse_qsl

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from twisted_hooks.service._arguments import CommandError, UsageError
from twisted_hooks.webhooks.signing import (
    DEFAULT_TOLERANCE,
    SignatureError,
    TimestampOutOfTolerance,
    load_public_key,
    standard_key,
    verify,
    verify_ed25519,
    verify_standard,
)

__all__ = [
    "Checks",
    "ReceiverResource",
    "run_receiver",
    "tolerance_hint",
]

_NOT_CHECKED = "not checked: no --secret given"


def tolerance_hint(error: SignatureError) -> str:
    """
    For a timestamp too old or too new, how to accept it anyway with ``--tolerance``
    (an old delivery saved to a file, say); ``""`` for any other error.
    """
    if not isinstance(error, TimestampOutOfTolerance):
        return ""
    wider = math.ceil(abs(error.age)) + 60
    return f"; to accept it, widen the window with --tolerance {wider}"


@attrs.frozen
class Checks:
    """
    What the receiver verifies each delivery with.

    :ivar secret: the subscription's secret (``Hook-HMAC`` and ``v1``), or ``None``.
    :ivar public_key: the sender's Ed25519 public key (``v1a``), or ``None``.
    :ivar digest: the ``Hook-HMAC`` digest.
    :ivar tolerance: seconds ``webhook-timestamp`` may be off.
    """

    secret: str | None = None
    public_key: Ed25519PublicKey | None = None
    digest: str = "sha256"
    tolerance: float = DEFAULT_TOLERANCE

    def verdicts(self, headers: Mapping[str, str], body: bytes, now: float) -> list[str]:
        """
        One line per signature: its header, and ``valid``, ``invalid: WHY`` or ``not
        checked: WHY``.
        """
        lines: list[str] = []
        if self.secret is None:
            lines.append(f"Hook-HMAC: {_NOT_CHECKED}")
            if self.public_key is None:
                lines.append(f"webhook-signature: {_NOT_CHECKED}")
        else:
            lines.append(f"Hook-HMAC: {self._thorn(headers, body)}")
            lines.append(f"webhook-signature (v1): {self._standard(headers, body, now)}")
        if self.public_key is not None:
            lines.append(f"webhook-signature (v1a): {self._asymmetric(headers, body, now)}")
        return lines

    def _thorn(self, headers: Mapping[str, str], body: bytes) -> str:
        assert self.secret is not None
        given = _lookup(headers, "Hook-HMAC")
        if given is None:
            return "invalid: the Hook-HMAC header is missing"
        if verify(given, self.digest, self.secret, body):
            return f"valid ({self.digest})"
        return f"invalid: it does not match the body with this secret and digest {self.digest}"

    def _standard(self, headers: Mapping[str, str], body: bytes, now: float) -> str:
        assert self.secret is not None
        try:
            verify_standard(self.secret, headers, body, now=now, tolerance=self.tolerance)
        except SignatureError as error:
            return f"invalid: {error}"
        except ValueError as error:  # a malformed whsec_ secret
            return f"not checked: {error}"
        return "valid"

    def _asymmetric(self, headers: Mapping[str, str], body: bytes, now: float) -> str:
        assert self.public_key is not None
        try:
            verify_ed25519(self.public_key, headers, body, now=now, tolerance=self.tolerance)
        except SignatureError as error:
            return f"invalid: {error}"
        return "valid"


def _lookup(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _body_text(body: bytes, content_type: str) -> str:
    """The body for people: indented JSON, form fields one a line, or the text."""
    text = body.decode("utf-8", errors="replace")
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        fields = parse_qsl(text, keep_blank_values=True)
        if fields:
            return "\n".join(f"{name} = {value}" for name, value in fields)
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


class ReceiverResource(Resource):
    """
    The receiver: every ``POST`` (to any path) is printed to ``out`` and answered with
    ``status`` and an empty body; other methods are answered ``405``.

    :param out: where deliveries are printed (flushed after each one).
    :param checks: what signatures are verified with.
    :param status: the status every delivery is answered with.
    :param clock: the time, for ``webhook-timestamp`` and the time printed.
    """

    isLeaf = True

    def __init__(self, out: TextIO, checks: Checks, status: int, clock: IReactorTime) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._out = out
        self._checks = checks
        self._status = status
        self._clock = clock
        self._attempts: Counter[str] = Counter()

    def render(self, request: Request) -> bytes:
        """Print the request and answer it."""
        method = (request.method or b"").decode("ascii", errors="replace")
        path = (request.uri or b"/").decode("utf-8", errors="replace")
        now = self._clock.seconds()
        when = time.strftime("%H:%M:%S", time.localtime(now))
        if method != "POST":
            self._print(f"{when} {method} {path}: not a delivery (only POST is); answered 405")
            request.setResponseCode(405)
            request.setHeader(b"Allow", b"POST")  # type: ignore[no-untyped-call]
            return b""
        assert request.content is not None
        body = request.content.read()
        headers = {
            name.decode("latin-1"): values[-1].decode("latin-1")
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        event = _lookup(headers, "Hook-Event") or "(no Hook-Event header)"
        delivery = _lookup(headers, "Hook-Delivery") or _lookup(headers, "webhook-id")
        lines = [f"{when} POST {path}  {event}"]
        if delivery is not None:
            self._attempts[delivery] += 1
            lines.append(f"  delivery {delivery} (attempt {self._attempts[delivery]} here)")
        lines.extend(f"  {line}" for line in self._checks.verdicts(headers, body, now))
        content_type = _lookup(headers, "Content-Type") or ""
        lines.append(_indent(_body_text(body, content_type)) if body else "    (empty body)")
        lines.append(f"  answered {self._status} {_reason(self._status)}\n")
        self._print("\n".join(lines))
        request.setResponseCode(self._status)
        return b""

    def _print(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def run_receiver(args: argparse.Namespace, out: TextIO) -> None:
    """
    ``twisted-hooks receive``: listen on 127.0.0.1 with a :class:`ReceiverResource`, on
    the global reactor, until Ctrl-C or SIGTERM.

    :param args: the parsed arguments: ``port``, ``secret``, ``public_key``, ``status``,
        ``digest``, ``tolerance``.
    :param out: where the deliveries are printed.
    :raise UsageError: for a bad port, status, tolerance, secret or public key.
    :raise CommandError: when the port cannot be listened on.
    """
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0 to 65535, not {args.port}")
    if not 200 <= args.status <= 599:
        raise UsageError(f"--status must be an HTTP status from 200 to 599, not {args.status}")
    if not args.tolerance >= 0:
        raise UsageError(f"--tolerance must be seconds >= 0, not {args.tolerance}")
    public_key = None
    if args.public_key is not None:
        try:
            public_key = load_public_key(args.public_key)
        except ValueError as error:
            raise UsageError(f"--public-key: {error}") from None
    if args.secret is not None:
        try:
            standard_key(args.secret)
        except ValueError as error:
            raise UsageError(f"--secret: {error}") from None
    checks = Checks(args.secret, public_key, args.digest, args.tolerance)

    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor
    site = Site(ReceiverResource(out, checks, args.status, reactor))  # type: ignore[no-untyped-call]
    site.noisy = False
    try:
        port = reactor.listenTCP(args.port, site, interface="127.0.0.1")
    except CannotListenError as error:
        raise CommandError(
            f"cannot listen on 127.0.0.1:{args.port}: {error.socketError or error}; choose "
            "another port with --port (0: any free port)"
        ) from None
    checking = "not checking signatures (no --secret)"
    if args.secret is not None or public_key is not None:
        checking = "checking signatures"
    out.write(
        f"listening on http://127.0.0.1:{port.getHost().port}/, answering {args.status} "
        f"{_reason(args.status)}, {checking}; Ctrl-C stops\n"
    )
    out.flush()
    reactor.run()
