"""
Tests of the engine's fast paths: the same results as the general code they stand in
for (reading an already-fired Deferred, copying a delivery with a few fields changed,
signing from cached HMAC keys, making ids).
"""

from __future__ import annotations

import functools
import uuid

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from twisted_hooks._deferreds import NOT_YET, fired_value
from twisted_hooks.store import _memory_deliveries as delivery_module
from twisted_hooks.testing import make_delivery
from twisted_hooks.webhooks import _publisher
from twisted_hooks.webhooks.delivery import IN_FLIGHT, Delivery
from twisted_hooks.webhooks.signing import (
    DIGEST_METHODS,
    InvalidSecret,
    generate_secret,
    signature_headers,
    standard_signature,
    thorn_signature,
)


class FiredValueTests(SynchronousTestCase):
    """:func:`fired_value` takes only a success that is there now."""

    def test_success(self) -> None:
        """A Deferred that fired a value gives that value."""
        self.assertEqual(fired_value(succeed(3)), 3)

    def test_none_is_a_value(self) -> None:
        """``None`` fired is a value, not "not yet"."""
        self.assertIsNone(fired_value(succeed(None)))

    def test_after_callbacks(self) -> None:
        """The value is the one left by the callbacks already run."""
        d: Deferred[int] = Deferred()
        d.addCallback(lambda n: n + 1)
        d.callback(1)
        self.assertEqual(fired_value(d), 2)

    def test_unfired(self) -> None:
        """A Deferred that has not fired gives NOT_YET."""
        self.assertIs(fired_value(Deferred()), NOT_YET)

    def test_failure_is_left_to_errbacks(self) -> None:
        """A failure is not taken: NOT_YET, and the failure is still there to handle."""
        d = fail(ValueError("no"))
        self.assertIs(fired_value(d), NOT_YET)
        self.failureResultOf(d, ValueError)

    def test_paused(self) -> None:
        """A paused Deferred gives NOT_YET (its callbacks have not all run)."""
        d = succeed(1)
        d.pause()
        self.assertIs(fired_value(d), NOT_YET)
        d.unpause()
        self.assertEqual(fired_value(d), 1)

    def test_chained(self) -> None:
        """A Deferred waiting on another Deferred gives NOT_YET."""
        inner: Deferred[int] = Deferred()
        outer = succeed(None)
        outer.addCallback(lambda _: inner)
        self.assertIs(fired_value(outer), NOT_YET)
        inner.callback(5)
        self.assertEqual(fired_value(outer), 5)


class ReplacedTests(SynchronousTestCase):
    """The memory store's copy of a delivery with fields changed is attrs.evolve's."""

    def test_same_as_evolve(self) -> None:
        """Every field not named keeps its value; the named ones take theirs."""
        original = attrs.evolve(
            make_delivery(), attempts=2, last_error="boom", claim_token=4, timeout=3.0
        )
        changed = delivery_module._replaced(
            original,
            {delivery_module._STATUS: IN_FLIGHT, delivery_module._LEASE: 99.0},
        )
        self.assertEqual(changed, attrs.evolve(original, status=IN_FLIGHT, lease_expires_at=99.0))

    def test_field_order(self) -> None:
        """The positions used are those of Delivery's fields, every one an init
        parameter under its own name (what a positional call relies on)."""
        fields = attrs.fields(Delivery)
        self.assertEqual(delivery_module._FIELDS, tuple(field.name for field in fields))
        self.assertTrue(all(field.init and field.alias == field.name for field in fields))


class SignatureHeadersTests(SynchronousTestCase):
    """:func:`signature_headers`, which signs from cached keyed HMAC objects, gives the
    bytes of the one-shot functions it stands for."""

    BODY = b'{"id": 1, "total": "9.99"}'

    def test_same_as_one_shot_functions(self) -> None:
        """Every digest, one secret or a rotation, plain and ``whsec_`` secrets, twice in
        a row (the second from the cache): the values of thorn_signature and
        standard_signature."""
        rotations = [
            ("s3cret",),
            (generate_secret(), "old-secret", generate_secret()),
        ]
        for digest in sorted(DIGEST_METHODS):
            for secrets in rotations:
                for _ in range(2):
                    headers = signature_headers(
                        secrets=secrets,
                        digest_method=digest.upper(),
                        msg_id="msg_1",
                        timestamp=1_700_000_000,
                        body=self.BODY,
                    )
                    self.assertEqual(
                        headers,
                        {
                            "Hook-HMAC": thorn_signature(digest, secrets[0], self.BODY),
                            "webhook-id": "msg_1",
                            "webhook-timestamp": "1700000000",
                            "webhook-signature": standard_signature(
                                secrets, "msg_1", 1_700_000_000, self.BODY
                            ),
                        },
                    )

    def test_errors(self) -> None:
        """Bad input is still refused, each error naming what was wrong, and a refused
        secret is refused again (errors are not cached)."""
        sign = functools.partial(
            signature_headers, msg_id="m", timestamp=1, body=self.BODY, digest_method="sha256"
        )
        with self.assertRaisesRegex(ValueError, "at least one secret"):
            sign(secrets=())
        with self.assertRaisesRegex(ValueError, "unknown HMAC digest method 'md5'"):
            signature_headers(
                secrets="s", digest_method="md5", msg_id="m", timestamp=1, body=self.BODY
            )
        with self.assertRaisesRegex(ValueError, "timestamp must be whole seconds"):
            signature_headers(
                secrets="s", digest_method="sha1", msg_id="m", timestamp=-1, body=self.BODY
            )
        for _ in range(2):
            with self.assertRaises(InvalidSecret):
                sign(secrets="whsec_!!!")


class NewIdTests(SynchronousTestCase):
    """Event and delivery ids are random version 4 UUIDs in canonical form."""

    def test_canonical_version_4(self) -> None:
        """Each id reads back as a version 4, RFC 4122 variant UUID whose canonical form
        is the id itself, and ids do not repeat."""
        ids = [_publisher._new_id() for _ in range(2000)]
        for each in ids:
            parsed = uuid.UUID(each)
            self.assertEqual((parsed.version, parsed.variant), (4, uuid.RFC_4122))
            self.assertEqual(str(parsed), each)
        self.assertEqual(len(set(ids)), len(ids))

    def test_variant_digits(self) -> None:
        """The variant digit takes all four values its two random bits allow."""
        digits = {_publisher._new_id()[19] for _ in range(2000)}
        self.assertEqual(digits, set("89ab"))
