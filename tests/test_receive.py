"""
``twisted-hooks receive`` in process: Standard Webhooks ``v1a`` (Ed25519) verification,
and the receiver resource (:mod:`twisted_hooks.service._receive`) driven through
``treq.testing.StubTreq`` with a ``Clock``. The real command, receiving from the real
service, is tested in tests/test_service_cli_e2e.py.
"""

from __future__ import annotations

import base64
import io

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_hooks.service._receive import (
    Checks,
    ReceiverResource,
    load_public_key,
    verify_v1a,
)
from twisted_hooks.service.cli import main
from twisted_hooks.webhooks.delivery import Delivery
from twisted_hooks.webhooks.sender import delivery_headers
from twisted_hooks.webhooks.signing import (
    InvalidTimestamp,
    MissingSignatureHeader,
    NoMatchingSignature,
    TimestampOutOfTolerance,
    generate_secret,
)
from twisted_hooks.webhooks.subscribers import Subscriber

NOW = 1_700_000_000


def key_pair() -> tuple[Ed25519PrivateKey, str]:
    """A new Ed25519 private key and its public key as ``whpk_`` text."""
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, "whpk_" + base64.b64encode(raw).decode("ascii")


def v1a_headers(
    private: Ed25519PrivateKey, body: bytes, msg_id: str = "msg_1", timestamp: int = NOW
) -> dict[str, str]:
    """Headers signed as Standard Webhooks' asymmetric scheme signs them."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(private.sign(content)).decode("ascii")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,AAAA v1a,{signature}",
    }


# -- v1a -------------------------------------------------------------------------------------


def test_v1a_valid() -> None:
    """A request signed with the private key verifies with the ``whpk_`` public key, as
    text or as a loaded key, in any header letter case."""
    private, public = key_pair()
    body = b'{"order": 42}'
    headers = v1a_headers(private, body)
    verify_v1a(public, headers, body, now=NOW)
    verify_v1a(load_public_key(public), {k.upper(): v for k, v in headers.items()}, body, NOW)


def test_v1a_refused() -> None:
    """A changed body, another key, a changed id, or no v1a entry: no matching
    signature."""
    private, public = key_pair()
    _, other = key_pair()
    body = b'{"order": 42}'
    headers = v1a_headers(private, body)
    with pytest.raises(NoMatchingSignature, match="1 v1a entries checked"):
        verify_v1a(public, headers, body + b" ", now=NOW)
    with pytest.raises(NoMatchingSignature):
        verify_v1a(other, headers, body, now=NOW)
    with pytest.raises(NoMatchingSignature):
        verify_v1a(public, {**headers, "webhook-id": "msg_2"}, body, now=NOW)
    with pytest.raises(NoMatchingSignature, match="0 v1a entries checked"):
        verify_v1a(public, {**headers, "webhook-signature": "v1,AAAA"}, body, now=NOW)
    with pytest.raises(NoMatchingSignature):
        verify_v1a(public, {**headers, "webhook-signature": "v1a,not*base64"}, body, now=NOW)


def test_v1a_timestamp_and_headers() -> None:
    """The timestamp and the headers are checked as ``verify_standard`` checks them."""
    private, public = key_pair()
    body = b"{}"
    headers = v1a_headers(private, body, timestamp=NOW - 3600)
    with pytest.raises(TimestampOutOfTolerance, match="too old"):
        verify_v1a(public, headers, body, now=NOW)
    verify_v1a(public, headers, body, now=NOW, tolerance=3700)
    with pytest.raises(InvalidTimestamp):
        verify_v1a(public, {**headers, "webhook-timestamp": "soon"}, body, now=NOW)
    with pytest.raises(MissingSignatureHeader, match="webhook-id"):
        verify_v1a(public, {k: v for k, v in headers.items() if k != "webhook-id"}, body)
    with pytest.raises(ValueError, match="tolerance"):
        verify_v1a(public, headers, body, now=NOW, tolerance=-1)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("AAAA", "starts with 'whpk_'"),
        ("whpk_***", "not standard base64"),
        ("whpk_" + base64.b64encode(b"x" * 31).decode(), "decodes to 31 bytes"),
        ("whsec_" + base64.b64encode(b"x" * 32).decode(), "starts with 'whpk_'"),
    ],
)
def test_bad_public_keys(text: str, why: str) -> None:
    """A public key that is not ``whpk_`` and 32 bytes of base64 is refused, saying why."""
    with pytest.raises(ValueError, match=why.replace("(", r"\(")):
        load_public_key(text)


def test_public_key_without_padding() -> None:
    """The base64 padding of a public key may be left out."""
    private, public = key_pair()
    body = b"{}"
    verify_v1a(public.rstrip("="), v1a_headers(private, body), body, now=NOW)


# -- the receiver resource -------------------------------------------------------------------


def signed_delivery(secret: str, body: bytes, delivery_id: str = "d-1") -> dict[str, str]:
    """Every header the service's sender puts on an attempt."""
    subscriber = Subscriber(event="order.*", url="http://127.0.0.1:9000/", secret=secret)
    delivery = Delivery(
        id=delivery_id,
        event="order.paid",
        event_id="e1",
        subscriber=subscriber,
        body=body,
        created_at=NOW,
        next_attempt_at=NOW,
    )
    return delivery_headers(delivery, subscriber, NOW)


class ReceiverResourceTests(SynchronousTestCase):
    """The receiver answers every POST with the status chosen and prints what it got."""

    def receiver(self, checks: Checks, status: int = 204) -> tuple[StubTreq, io.StringIO]:
        out = io.StringIO()
        clock = Clock()
        clock.advance(NOW)
        return StubTreq(ReceiverResource(out, checks, status, clock)), out

    def post(self, treq: StubTreq, headers: dict[str, str], body: bytes, path: str = "/") -> int:
        response = self.successResultOf(
            treq.post(f"http://127.0.0.1:9000{path}", data=body, headers=headers)
        )
        treq.flush()
        return int(response.code)

    def test_valid_delivery_printed(self) -> None:
        """A real delivery is printed with its event, id, attempt 1, both signatures
        valid, and the body as indented JSON; it is answered 204."""
        secret = generate_secret()
        body = b'{"order":42,"total":"19.90"}'
        treq, out = self.receiver(Checks(secret=secret))
        assert self.post(treq, signed_delivery(secret, body), body, "/hooks") == 204
        printed = out.getvalue()
        assert "POST /hooks  order.paid" in printed
        assert "delivery d-1 (attempt 1 here)" in printed
        assert "Hook-HMAC: valid (sha256)" in printed
        assert "webhook-signature (v1): valid" in printed
        assert '      "order": 42,\n      "total": "19.90"\n' in printed
        assert "answered 204 No Content" in printed

    def test_attempts_counted_and_status_chosen(self) -> None:
        """Every attempt of one delivery is counted; the chosen status is answered."""
        secret = generate_secret()
        body = b"{}"
        treq, out = self.receiver(Checks(secret=secret), status=503)
        for _ in range(3):
            assert self.post(treq, signed_delivery(secret, body), body) == 503
        assert self.post(treq, signed_delivery(secret, body, "d-2"), body) == 503
        printed = out.getvalue()
        assert "delivery d-1 (attempt 3 here)" in printed
        assert "delivery d-2 (attempt 1 here)" in printed
        assert printed.count("answered 503 Service Unavailable") == 4

    def test_invalid_signatures_said(self) -> None:
        """Another secret, or a changed body: each signature says invalid and why."""
        secret = generate_secret()
        body = b'{"order":42}'
        treq, out = self.receiver(Checks(secret=generate_secret()))
        self.post(treq, signed_delivery(secret, body), body)
        printed = out.getvalue()
        assert "Hook-HMAC: invalid: it does not match the body" in printed
        assert "webhook-signature (v1): invalid: no v1 entry" in printed

    def test_not_checked_without_secret(self) -> None:
        """Without a secret, neither signature is checked, and the receiver says so."""
        body = b'{"a":1}'
        treq, out = self.receiver(Checks())
        self.post(treq, signed_delivery(generate_secret(), body), body)
        printed = out.getvalue()
        assert "Hook-HMAC: not checked: no --secret given" in printed
        assert "webhook-signature: not checked: no --secret given" in printed

    def test_v1a_checked_with_a_public_key(self) -> None:
        """With a public key, the v1a entries are checked; a request without them is
        invalid."""
        private, public = key_pair()
        body = b"{}"
        treq, out = self.receiver(Checks(public_key=load_public_key(public)))
        headers = v1a_headers(private, body, timestamp=NOW)
        self.post(treq, {**headers, "Hook-Event": "a.b"}, body)
        self.post(treq, signed_delivery(generate_secret(), body), body)
        printed = out.getvalue()
        assert "webhook-signature (v1a): valid" in printed
        assert "webhook-signature (v1a): invalid: no v1a entry" in printed

    def test_form_and_text_bodies(self) -> None:
        """A form-encoded body is shown a field a line; a body that is not JSON as text;
        an empty one says so."""
        treq, out = self.receiver(Checks())
        form = {"Content-Type": "application/x-www-form-urlencoded", "Hook-Event": "a"}
        self.post(treq, form, b"order=42&total=19.90")
        self.post(treq, {"Hook-Event": "b"}, b"plain words")
        self.post(treq, {"Hook-Event": "c"}, b"")
        printed = out.getvalue()
        assert "    order = 42\n    total = 19.90\n" in printed
        assert "    plain words\n" in printed
        assert "    (empty body)\n" in printed

    def test_other_methods(self) -> None:
        """A GET is not a delivery: 405, with ``Allow: POST``, and one line printed."""
        treq, out = self.receiver(Checks())
        response = self.successResultOf(treq.get("http://127.0.0.1:9000/"))
        assert response.code == 405
        assert response.headers.getRawHeaders("Allow") == ["POST"]
        assert "GET /: not a delivery" in out.getvalue()


# -- the command's arguments -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--port", "70000"], "--port must be 0 to 65535"),
        (["--status", "99"], "--status must be an HTTP status from 200 to 599"),
        (["--status", "700"], "--status must be an HTTP status"),
        (["--tolerance", "-1"], "expected a number in digits 0-9"),
        (["--public-key", "whpk_AAAA"], "--public-key: the public key after 'whpk_' decodes"),
        (["--secret", "whsec_***"], "--secret: "),
        (["--port", "http"], "expected a whole number in digits 0-9"),
    ],
)
def test_receive_bad_arguments(argv: list[str], error: str) -> None:
    """Bad arguments of ``receive`` are usage errors (exit 2) naming the option, found
    before anything listens."""
    err = io.StringIO()
    assert main(["receive", *argv], stdout=io.StringIO(), stderr=err, environ={}) == 2
    assert error in err.getvalue()
