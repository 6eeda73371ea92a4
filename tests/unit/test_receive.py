"""
``twisted-hooks receive`` in process: the receiver resource
(:mod:`twisted_hooks.service._receive`) driven through ``treq.testing.StubTreq`` with a
``Clock``. Standard Webhooks ``v1a`` (Ed25519) verification itself is tested with the
other verifications in tests/unit/test_signing.py; the real command, receiving from the real
service, in tests/integration/test_service_cli_e2e.py.
"""

from __future__ import annotations

import io

import pytest
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests._ed25519 import key_pair, v1a_headers
from twisted_hooks.service._receive import Checks, ReceiverResource
from twisted_hooks.service.cli import main
from twisted_hooks.webhooks.delivery import Delivery
from twisted_hooks.webhooks.sender import delivery_headers
from twisted_hooks.webhooks.signing import generate_secret, load_public_key
from twisted_hooks.webhooks.subscribers import Subscriber

NOW = 1_700_000_000


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
