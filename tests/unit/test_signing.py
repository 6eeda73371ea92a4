"""
Tests for :mod:`twisted_hooks.webhooks.signing`: Thorn's ``Hook-HMAC`` results, and
Standard Webhooks signatures checked against the ``standardwebhooks`` package.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests._ed25519 import key_pair, v1a_headers
from twisted_hooks.webhooks.signing import (
    DEFAULT_TOLERANCE,
    DIGEST_METHODS,
    InvalidSecret,
    InvalidTimestamp,
    MissingSignatureHeader,
    NoMatchingSignature,
    SignatureError,
    TimestampOutOfTolerance,
    generate_secret,
    load_public_key,
    sign,
    sign_standard,
    signature_headers,
    standard_key,
    standard_signature,
    thorn_signature,
    verify,
    verify_ed25519,
    verify_standard,
)

# -- Thorn's reference behaviour -------------------------------------------------------
#
# Thorn's thorn/utils/hmac.py (robinhood/thorn, the version with ``allowed_algorithms``,
# commit b8b3554f5299d4bd6c90716a655835166c4cdfba) restated as an oracle:
# - the digest name is lowercased and must be one of sha1, sha224, sha256, sha384, sha512
#   (otherwise an ``assert`` fails), and the hash is ``getattr(hashlib, name)``;
# - key and message: ``str`` is encoded with ``str.encode()`` (UTF-8), ``bytes`` kept;
# - ``sign`` returns ``base64.b64encode(hmac.new(key, message, hash).digest())``: bytes;
# - ``verify(digest, ...)`` is ``hmac.compare_digest`` of the signature and the digest,
#   both made bytes the same way.

THORN_ALLOWED = {"sha1", "sha224", "sha256", "sha384", "sha512"}


def _thorn_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def thorn_sign(digest_method: str, key: str | bytes, message: str | bytes) -> bytes:
    name = digest_method.lower()
    assert name in THORN_ALLOWED, name
    mac = hmac.new(_thorn_bytes(key), _thorn_bytes(message), digestmod=getattr(hashlib, name))
    return base64.b64encode(mac.digest())


def thorn_verify(
    digest: str | bytes, digest_method: str, key: str | bytes, message: str | bytes
) -> bool:
    return hmac.compare_digest(thorn_sign(digest_method, key, message), _thorn_bytes(digest))


# RFC 2202 / RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
RFC_VECTORS = {
    "sha1": "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
    "sha224": "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
    "sha256": "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    "sha384": (
        "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47"
        "e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"
    ),
    "sha512": (
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
        "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
    ),
}

# The example of the Standard Webhooks / Svix documentation.
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STANDARD_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
STANDARD_TIMESTAMP = 1614265330
STANDARD_BODY = b'{"test": 2432232314}'
STANDARD_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
NOW = 1_700_000_000
BODY = b'{"event": "order.placed", "data": {"id": 7}}'


def _headers(
    secret: str | list[str] = SECRET,
    msg_id: str = "msg_1",
    timestamp: int = NOW,
    body: bytes = BODY,
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret, msg_id, timestamp, body),
    }


def _expected_standard(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    content = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


digest_names = st.sampled_from(sorted(THORN_ALLOWED)).flatmap(
    lambda name: st.sampled_from([name, name.upper(), name.capitalize()])
)
texts_or_bytes = st.one_of(st.text(), st.binary())


# -- Thorn: sign --------------------------------------------------------------------------


@pytest.mark.parametrize("digest_method", sorted(RFC_VECTORS))
def test_sign_rfc_vectors(digest_method: str) -> None:
    """sign gives the standard base64 of the published RFC 2202/4231 HMAC of each digest."""
    expected = base64.b64encode(bytes.fromhex(RFC_VECTORS[digest_method])).decode("ascii")
    assert sign(digest_method, "Jefe", "what do ya want for nothing?") == expected
    assert sign(digest_method, b"Jefe", b"what do ya want for nothing?") == expected


def test_sign_encodes_text_as_utf8() -> None:
    """A str key and message are signed as their UTF-8 bytes, as Thorn does."""
    key, message = "clé secrète ☃", "données: ünïcode"
    expected = base64.b64encode(
        hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    ).decode("ascii")
    assert sign("sha256", key, message) == expected
    assert sign("sha256", key.encode("utf-8"), message) == expected


def test_sign_returns_the_same_characters_thorn_returns_as_bytes() -> None:
    """sign returns a str whose ASCII encoding is exactly Thorn's bytes result."""
    result = sign("sha512", "k", b"m")
    assert isinstance(result, str)
    assert result.encode("ascii") == thorn_sign("sha512", "k", b"m")
    assert result.endswith("==")


@pytest.mark.parametrize("digest_method", ["SHA256", "Sha256", "sHa256"])
def test_sign_digest_method_any_case(digest_method: str) -> None:
    """A digest method name is accepted in any letter case, as Thorn lowercases it."""
    assert sign(digest_method, "k", "m") == sign("sha256", "k", "m")


@pytest.mark.parametrize(
    "digest_method",
    ["md5", "sha3_256", "sha512_256", "sha-256", " sha256", "sha256\n", "", "SHA", "blake2b"],
)
def test_sign_unknown_digest_method(digest_method: str) -> None:
    """
    A digest method Thorn refuses is a ValueError that names the one given and every
    allowed one (where Thorn fails an assert).
    """
    with pytest.raises(AssertionError):
        thorn_sign(digest_method, "k", "m")
    with pytest.raises(ValueError) as raised:
        sign(digest_method, "k", "m")
    message = str(raised.value)
    assert repr(digest_method) in message
    assert "sha1, sha224, sha256, sha384, sha512" in message
    with pytest.raises(ValueError):
        verify("x", digest_method, "k", "m")


@pytest.mark.parametrize("digest_method", [b"sha256", None, hashlib.sha256])
def test_sign_digest_method_not_a_string(digest_method: Any) -> None:
    """A digest method that is not a str at all is the same clear ValueError."""
    with pytest.raises(ValueError, match="unknown HMAC digest method"):
        sign(digest_method, "k", "m")


def test_digest_methods_are_thorns() -> None:
    """DIGEST_METHODS is exactly Thorn's allowed_algorithms."""
    assert DIGEST_METHODS == THORN_ALLOWED


@given(digest_method=digest_names, key=texts_or_bytes, message=texts_or_bytes)
def test_sign_equals_thorn(digest_method: str, key: str | bytes, message: str | bytes) -> None:
    """For any digest name, key and message, str or bytes, sign's value is Thorn's."""
    assert sign(digest_method, key, message).encode("ascii") == thorn_sign(
        digest_method, key, message
    )


# -- Thorn: verify ------------------------------------------------------------------------


def test_verify_accepts_str_and_bytes_digest() -> None:
    """verify accepts the right signature given as a str (a header) or as bytes."""
    digest = sign("sha256", "secret", BODY)
    assert verify(digest, "sha256", "secret", BODY) is True
    assert verify(digest.encode("ascii"), "SHA256", b"secret", BODY.decode()) is True


_RIGHT = sign("sha256", "secret", BODY)


@pytest.mark.parametrize(
    ("digest", "digest_method", "key", "message"),
    [
        pytest.param(_RIGHT, "sha256", "wrong secret", BODY, id="wrong-secret"),
        pytest.param(_RIGHT, "sha256", "secret", BODY + b" ", id="tampered-body"),
        pytest.param(_RIGHT, "sha512", "secret", BODY, id="other-digest-method"),
        pytest.param(_RIGHT + "\n", "sha256", "secret", BODY, id="trailing-newline"),
        pytest.param(" " + _RIGHT, "sha256", "secret", BODY, id="leading-space"),
        pytest.param(_RIGHT.rstrip("="), "sha256", "secret", BODY, id="padding-stripped"),
        pytest.param(_RIGHT[:-2] + "é=", "sha256", "secret", BODY, id="non-ascii"),
        pytest.param("", "sha256", "secret", BODY, id="empty"),
    ],
)
def test_verify_rejects(digest: str, digest_method: str, key: str, message: bytes) -> None:
    """
    verify is False, as Thorn's is, for a signature made with another secret, body or
    digest method, and for the right signature altered in any way (it is compared exactly).
    """
    assert verify(digest, digest_method, key, message) is False
    assert thorn_verify(digest, digest_method, key, message) is False
    assert verify(digest.encode("utf-8"), digest_method, key, message) is False


def test_verify_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """verify decides with hmac.compare_digest."""
    calls: list[tuple[object, object]] = []
    real: Callable[[Any, Any], bool] = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("hmac.compare_digest", recording)
    assert verify(sign("sha1", "k", "m"), "sha1", "k", "m")
    assert calls == [(thorn_sign("sha1", "k", "m"), thorn_sign("sha1", "k", "m"))]


@given(
    digest_method=digest_names,
    key=texts_or_bytes,
    message=texts_or_bytes,
    tamper=st.one_of(st.none(), st.text(), st.binary()),
    as_bytes=st.booleans(),
)
def test_verify_equals_thorn(
    digest_method: str,
    key: str | bytes,
    message: str | bytes,
    tamper: str | bytes | None,
    as_bytes: bool,
) -> None:
    """
    For any digest name, key and message, verify answers as Thorn's verify does, for the
    right signature (str or bytes) and for arbitrary other values.
    """
    digest: str | bytes
    if tamper is None:
        right = thorn_sign(digest_method, key, message)
        digest = right if as_bytes else right.decode("ascii")
    else:
        digest = tamper
    assert verify(digest, digest_method, key, message) is thorn_verify(
        digest, digest_method, key, message
    )


def test_thorn_signature_uses_whsec_secret_as_text() -> None:
    """
    thorn_signature keys Hook-HMAC with the secret string's UTF-8 bytes, even for a
    whsec_ secret (Thorn's semantics), not with the decoded Standard Webhooks key.
    """
    value = thorn_signature("sha256", SECRET, BODY)
    assert value == sign("sha256", SECRET.encode("utf-8"), BODY)
    assert value != sign("sha256", standard_key(SECRET), BODY)
    assert thorn_verify(value, "sha256", SECRET, BODY)


# -- Standard Webhooks: keys and secrets ------------------------------------------------


def test_standard_key_decodes_whsec() -> None:
    """A whsec_ secret stands for the base64-decoded key, with or without padding."""
    key = bytes(range(32))
    encoded = base64.b64encode(key).decode()
    assert encoded.endswith("=")
    assert standard_key("whsec_" + encoded) == key
    assert standard_key("whsec_" + encoded.rstrip("=")) == key


def test_standard_key_other_secret_is_utf8() -> None:
    """Any secret without the whsec_ prefix is its own UTF-8 bytes, even if it is base64."""
    assert standard_key("s3cret ☃") == "s3cret ☃".encode()
    assert standard_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == b"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert standard_key("WHSEC_abcd") == b"WHSEC_abcd"


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_not*base64!",
        "whsec_abcde",
        "whsec_ab cd",
        "whsec_abc=d",
        "whsec_YWJj\n",
        "whsec_YW-_",
        "whsec_",
        "whsec_====",
    ],
)
def test_standard_key_malformed_whsec(secret: str) -> None:
    """
    A whsec_ secret that is not standard base64 of a non-empty key is an InvalidSecret
    (a ValueError, not a SignatureError) that says what to do and does not show the secret.
    """
    with pytest.raises(InvalidSecret) as raised:
        standard_key(secret)
    assert isinstance(raised.value, ValueError)
    assert not isinstance(raised.value, SignatureError)
    message = str(raised.value)
    assert "generate_secret()" in message
    assert secret[len("whsec_") :] not in message or secret == "whsec_"


def test_generate_secret() -> None:
    """generate_secret makes whsec_ + base64 of 32 random bytes, different at each call."""
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first[len("whsec_") :], validate=True)) == 32
    assert len(standard_key(first)) == 32
    assert first != second


def test_generate_secret_uses_secrets_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """generate_secret takes its 32 bytes from secrets.token_bytes."""
    asked: list[int] = []

    def token_bytes(n: int) -> bytes:
        asked.append(n)
        return b"\x01" * n

    monkeypatch.setattr("secrets.token_bytes", token_bytes)
    assert generate_secret() == "whsec_" + base64.b64encode(b"\x01" * 32).decode()
    assert asked == [32]


# -- Standard Webhooks: signing -----------------------------------------------------------


def test_sign_standard_published_example() -> None:
    """sign_standard reproduces the published Standard Webhooks example signature."""
    assert (
        sign_standard(STANDARD_SECRET, STANDARD_ID, STANDARD_TIMESTAMP, STANDARD_BODY)
        == STANDARD_SIGNATURE
    )
    assert (
        sign_standard(
            STANDARD_SECRET, STANDARD_ID, STANDARD_TIMESTAMP, STANDARD_BODY.decode("utf-8")
        )
        == STANDARD_SIGNATURE
    )


def test_sign_standard_covers_id_timestamp_and_body() -> None:
    """sign_standard is v1, + base64 HMAC-SHA256 of id.timestamp.body under the key."""
    assert sign_standard(SECRET, "msg_1", NOW, BODY) == _expected_standard(
        bytes(range(32)), "msg_1", NOW, BODY
    )
    assert sign_standard("plain secret", "msg_1", NOW, BODY) == _expected_standard(
        b"plain secret", "msg_1", NOW, BODY
    )


@pytest.mark.parametrize("timestamp", [-1, 1.5, True, "1700000000"])
def test_sign_standard_timestamp_must_be_seconds(timestamp: Any) -> None:
    """A timestamp that is not a non-negative int is a ValueError naming it."""
    with pytest.raises(ValueError, match="whole seconds since the epoch"):
        sign_standard(SECRET, "msg_1", timestamp, BODY)


def test_standard_signature_one_entry_per_secret() -> None:
    """standard_signature has one v1 entry per secret, in order, separated by one space."""
    value = standard_signature([SECRET, OTHER_SECRET], "msg_1", NOW, BODY)
    assert value == " ".join(
        [
            sign_standard(SECRET, "msg_1", NOW, BODY),
            sign_standard(OTHER_SECRET, "msg_1", NOW, BODY),
        ]
    )
    assert standard_signature(SECRET, "msg_1", NOW, BODY) == sign_standard(
        SECRET, "msg_1", NOW, BODY
    )
    assert standard_signature((SECRET,), "msg_1", NOW, BODY) == sign_standard(
        SECRET, "msg_1", NOW, BODY
    )


def test_standard_signature_needs_a_secret() -> None:
    """standard_signature without any secret is a ValueError, not an empty header."""
    with pytest.raises(ValueError, match="at least one secret"):
        standard_signature([], "msg_1", NOW, BODY)


def test_signature_headers() -> None:
    """
    signature_headers gives Hook-HMAC (Thorn's signer, by the first secret) and the
    Standard Webhooks trio (one entry per secret) for one attempt.
    """
    headers = signature_headers(
        secrets=[SECRET, OTHER_SECRET],
        digest_method="sha512",
        msg_id="msg_1",
        timestamp=NOW,
        body=BODY,
    )
    assert headers == {
        "Hook-HMAC": sign("sha512", SECRET, BODY),
        "webhook-id": "msg_1",
        "webhook-timestamp": str(NOW),
        "webhook-signature": standard_signature([SECRET, OTHER_SECRET], "msg_1", NOW, BODY),
    }
    verify_standard(OTHER_SECRET, headers, BODY, now=NOW)
    assert verify(headers["Hook-HMAC"], "sha512", SECRET, BODY)


def test_signature_headers_fresh_at_each_attempt() -> None:
    """Two attempts of one delivery keep the id and differ in timestamp and signature."""

    def attempt(timestamp: int) -> dict[str, str]:
        return signature_headers(
            secrets=SECRET, digest_method="sha256", msg_id="msg_1", timestamp=timestamp, body=BODY
        )

    first, second = attempt(NOW), attempt(NOW + 5)
    assert first["webhook-id"] == second["webhook-id"]
    assert first["Hook-HMAC"] == second["Hook-HMAC"]
    assert first["webhook-timestamp"] != second["webhook-timestamp"]
    assert first["webhook-signature"] != second["webhook-signature"]
    verify_standard(SECRET, second, BODY, now=NOW + 5)


def test_signature_headers_errors() -> None:
    """signature_headers refuses no secrets and an unknown digest method."""
    with pytest.raises(ValueError, match="at least one secret"):
        signature_headers(secrets=[], digest_method="sha256", msg_id="m", timestamp=NOW, body=b"")
    with pytest.raises(ValueError, match="unknown HMAC digest method 'md5'"):
        signature_headers(secrets=SECRET, digest_method="md5", msg_id="m", timestamp=NOW, body=b"")


# -- Standard Webhooks: verifying ---------------------------------------------------------


def test_verify_standard_accepts() -> None:
    """A request signed with the secret, at the receiver's time, verifies."""
    verify_standard(SECRET, _headers(), BODY, now=NOW)
    verify_standard(SECRET, _headers(), BODY.decode(), now=NOW)


def test_verify_standard_published_example() -> None:
    """The published Standard Webhooks example verifies."""
    headers = {
        "webhook-id": STANDARD_ID,
        "webhook-timestamp": str(STANDARD_TIMESTAMP),
        "webhook-signature": STANDARD_SIGNATURE,
    }
    verify_standard(STANDARD_SECRET, headers, STANDARD_BODY, now=STANDARD_TIMESTAMP)


def test_verify_standard_header_names_any_case() -> None:
    """Header names are looked up in any letter case."""
    headers = {name.title(): value for name, value in _headers().items()}
    assert "Webhook-Signature" in headers
    verify_standard(SECRET, headers, BODY, now=NOW)
    verify_standard(
        SECRET, {name.upper(): value for name, value in _headers().items()}, BODY, now=NOW
    )


def test_verify_standard_conflicting_duplicate_header() -> None:
    """One header given twice in different cases with different values is refused."""
    headers = _headers()
    headers["Webhook-Id"] = "msg_2"
    with pytest.raises(SignatureError, match="webhook-id header is given more than once"):
        verify_standard(SECRET, headers, BODY, now=NOW)


def test_verify_standard_default_now_is_the_clock() -> None:
    """Without now, the timestamp is checked against time.time()."""
    now = int(time.time())
    verify_standard(SECRET, _headers(timestamp=now), BODY)
    with pytest.raises(TimestampOutOfTolerance):
        verify_standard(SECRET, _headers(timestamp=now - 3600), BODY)


def test_verify_standard_rotation() -> None:
    """
    While a secret rotates, a header with both entries verifies with either secret, and a
    receiver given both secrets accepts a request signed by either one.
    """
    both = _headers([SECRET, OTHER_SECRET])
    verify_standard(SECRET, both, BODY, now=NOW)
    verify_standard(OTHER_SECRET, both, BODY, now=NOW)
    verify_standard([SECRET, OTHER_SECRET], _headers(OTHER_SECRET), BODY, now=NOW)
    verify_standard((OTHER_SECRET, SECRET), _headers(SECRET), BODY, now=NOW)
    with pytest.raises(NoMatchingSignature, match="2 secrets"):
        verify_standard([SECRET, OTHER_SECRET], _headers(generate_secret()), BODY, now=NOW)


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
@pytest.mark.parametrize("empty", [False, True])
def test_verify_standard_missing_header(header: str, empty: bool) -> None:
    """An absent or empty header is a MissingSignatureHeader naming it."""
    headers = _headers()
    if empty:
        headers[header] = ""
    else:
        del headers[header]
    with pytest.raises(MissingSignatureHeader) as raised:
        verify_standard(SECRET, headers, BODY, now=NOW)
    assert raised.value.header == header
    assert str(raised.value).startswith(f"missing {header} header")


@pytest.mark.parametrize(
    "value", ["abc", "1700000000.5", "-1700000000", "+1700000000", " 17", "1e9"]
)
def test_verify_standard_bad_timestamp(value: str) -> None:
    """A webhook-timestamp that is not digits only is an InvalidTimestamp showing it."""
    headers = _headers()
    headers["webhook-timestamp"] = value
    with pytest.raises(InvalidTimestamp) as raised:
        verify_standard(SECRET, headers, BODY, now=NOW)
    assert repr(value) in str(raised.value)


def test_verify_standard_too_old() -> None:
    """
    A timestamp older than the tolerance is refused, saying by how many seconds and what
    the tolerance is; exactly at the tolerance it is accepted.
    """
    verify_standard(SECRET, _headers(), BODY, now=NOW + DEFAULT_TOLERANCE)
    with pytest.raises(TimestampOutOfTolerance) as raised:
        verify_standard(SECRET, _headers(), BODY, now=NOW + 301)
    assert raised.value.age == 301
    assert raised.value.tolerance == 300
    assert str(raised.value).startswith(
        f"webhook-timestamp {NOW} is 301 seconds in the past (too old); "
        "the tolerance is 300 seconds"
    )


def test_verify_standard_too_new() -> None:
    """A timestamp further in the future than the tolerance is refused, saying so."""
    verify_standard(SECRET, _headers(), BODY, now=NOW - 300)
    with pytest.raises(TimestampOutOfTolerance) as raised:
        verify_standard(SECRET, _headers(), BODY, now=NOW - 300.5)
    assert raised.value.age == -300.5
    assert "is 300.5 seconds in the future (too new); the tolerance is 300 seconds" in str(
        raised.value
    )


def test_verify_standard_custom_tolerance() -> None:
    """The tolerance can be chosen; a negative one is a ValueError."""
    verify_standard(SECRET, _headers(), BODY, now=NOW + 3600, tolerance=3600)
    with pytest.raises(TimestampOutOfTolerance, match="the tolerance is 10 seconds"):
        verify_standard(SECRET, _headers(), BODY, now=NOW + 11, tolerance=10)
    with pytest.raises(ValueError, match="tolerance"):
        verify_standard(SECRET, _headers(), BODY, now=NOW, tolerance=-1)


def test_verify_standard_wrong_secret() -> None:
    """A request signed with another secret is a NoMatchingSignature that says what to check."""
    with pytest.raises(NoMatchingSignature) as raised:
        verify_standard(OTHER_SECRET, _headers(), BODY, now=NOW)
    message = str(raised.value)
    assert "1 v1 entries checked, 0 skipped" in message
    assert "raw body bytes" in message


def test_verify_standard_tampered_body() -> None:
    """A body changed by one byte, or re-encoded, does not verify."""
    with pytest.raises(NoMatchingSignature):
        verify_standard(SECRET, _headers(), BODY.replace(b"7", b"8"), now=NOW)
    with pytest.raises(NoMatchingSignature):
        verify_standard(SECRET, _headers(), BODY.replace(b": ", b":"), now=NOW)


def test_verify_standard_tampered_id() -> None:
    """A webhook-id changed after signing does not verify."""
    headers = _headers()
    headers["webhook-id"] = "msg_2"
    with pytest.raises(NoMatchingSignature):
        verify_standard(SECRET, headers, BODY, now=NOW)


def test_verify_standard_tampered_timestamp() -> None:
    """A webhook-timestamp changed after signing, even within the tolerance, does not verify."""
    headers = _headers()
    headers["webhook-timestamp"] = str(NOW + 1)
    with pytest.raises(NoMatchingSignature):
        verify_standard(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize(
    "entries",
    [
        "v2,{sig}",
        "v1{sig}",
        "{sig}",
        "v1,",
        "v1,not-base64!!",
        "v1,{sig}x",
        "V1,{sig}",
        "v1,,{sig}",
    ],
)
def test_verify_standard_malformed_entries_alone(entries: str) -> None:
    """
    Entries of another version or malformed (no comma, bad base64) are skipped, so alone
    they are a NoMatchingSignature that counts them, even around a right signature.
    """
    headers = _headers()
    headers["webhook-signature"] = entries.format(sig=headers["webhook-signature"][3:])
    with pytest.raises(NoMatchingSignature) as raised:
        verify_standard(SECRET, headers, BODY, now=NOW)
    assert "skipped" in str(raised.value)


def test_verify_standard_malformed_entries_next_to_a_good_one() -> None:
    """Skipped entries do not prevent a right v1 entry, anywhere in the list, from matching."""
    good = _headers()["webhook-signature"]
    for value in [
        f"v2,abcd v1 {good}",
        f"{good} v1,!!!",
        f"v1,{base64.b64encode(b'x' * 32).decode()}   {good}\t",
    ]:
        headers = _headers()
        headers["webhook-signature"] = value
        verify_standard(SECRET, headers, BODY, now=NOW)


def test_verify_standard_invalid_secret() -> None:
    """A malformed whsec_ secret on the receiving side is an InvalidSecret, not a forgery."""
    with pytest.raises(InvalidSecret):
        verify_standard("whsec_not*base64!", _headers(), BODY, now=NOW)
    with pytest.raises(ValueError, match="at least one secret"):
        verify_standard([], _headers(), BODY, now=NOW)


def test_signature_errors_are_value_errors() -> None:
    """Every verification error is a SignatureError, itself a ValueError."""
    for cls in (MissingSignatureHeader, InvalidTimestamp, TimestampOutOfTolerance):
        assert issubclass(cls, SignatureError)
    assert issubclass(NoMatchingSignature, SignatureError)
    assert issubclass(SignatureError, ValueError)


def test_verify_standard_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """verify_standard compares every (secret, v1 entry) pair with hmac.compare_digest."""
    calls: list[tuple[object, object]] = []
    real: Callable[[Any, Any], bool] = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("hmac.compare_digest", recording)
    verify_standard([SECRET, OTHER_SECRET], _headers([SECRET, OTHER_SECRET]), BODY, now=NOW)
    assert len(calls) == 4


# -- Interoperability with the standardwebhooks package ----------------------------------


def _now() -> int:
    return int(time.time())


def test_package_verifies_our_headers() -> None:
    """The standardwebhooks package verifies headers made with a whsec_ secret."""
    secret = generate_secret()
    headers = signature_headers(
        secrets=secret, digest_method="sha256", msg_id="msg_1", timestamp=_now(), body=BODY
    )
    assert Webhook(secret).verify(BODY, headers) == {"event": "order.placed", "data": {"id": 7}}


def test_package_verifies_unpadded_secret() -> None:
    """With the secret's base64 padding stripped, both sides still agree on the key."""
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    stripped = secret.rstrip("=")
    assert stripped != secret
    headers = _headers(stripped, timestamp=_now())
    Webhook(stripped).verify(BODY, headers, json_parse=False)
    Webhook(secret).verify(BODY, headers, json_parse=False)


def test_package_verifies_each_rotating_secret() -> None:
    """Signed by two secrets, the request verifies in the package with either one."""
    headers = _headers([SECRET, OTHER_SECRET], timestamp=_now())
    Webhook(SECRET).verify(BODY, headers, json_parse=False)
    Webhook(OTHER_SECRET).verify(BODY, headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers, json_parse=False)


def test_package_verifies_plain_secret_as_utf8_key() -> None:
    """A secret without whsec_ is its UTF-8 bytes: the package given those bytes agrees."""
    headers = _headers("plain sécret", timestamp=_now())
    Webhook("plain sécret".encode()).verify(BODY, headers, json_parse=False)


def test_package_refuses_tampering() -> None:
    """The package refuses our headers with another body: both sides sign the same bytes."""
    headers = _headers(timestamp=_now())
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY + b" ", headers, json_parse=False)


def test_we_verify_package_signatures() -> None:
    """verify_standard accepts what the package signs, and refuses it with another secret."""
    when = datetime.fromtimestamp(NOW, tz=timezone.utc)
    headers = {
        "webhook-id": "msg_9",
        "webhook-timestamp": str(NOW),
        "webhook-signature": Webhook(SECRET).sign("msg_9", when, BODY.decode()),
    }
    verify_standard(SECRET, headers, BODY, now=NOW)
    with pytest.raises(NoMatchingSignature):
        verify_standard(OTHER_SECRET, headers, BODY, now=NOW)


@given(
    key=st.binary(min_size=1, max_size=64),
    msg_id=st.text(min_size=1).filter(lambda s: s == s.strip()),
    body=st.text(),
    strip=st.booleans(),
)
def test_package_round_trip_property(key: bytes, msg_id: str, body: str, strip: bool) -> None:
    """
    For any key, id and UTF-8 body, the package verifies what we sign and we verify what
    the package signs, with the secret padded or not.
    """
    secret = "whsec_" + base64.b64encode(key).decode()
    if strip:
        secret = secret.rstrip("=")
    now = _now()
    ours = _headers(secret, msg_id=msg_id, timestamp=now, body=body.encode("utf-8"))
    Webhook(secret).verify(body.encode("utf-8"), ours, json_parse=False)
    theirs = dict(
        ours,
        **{
            "webhook-signature": Webhook(secret).sign(
                msg_id, datetime.fromtimestamp(now, tz=timezone.utc), body
            )
        },
    )
    assert theirs["webhook-signature"] == ours["webhook-signature"]
    verify_standard(secret, theirs, body.encode("utf-8"), now=now)


# -- Ed25519 (v1a) -----------------------------------------------------------------------------


def test_verify_ed25519_valid() -> None:
    """A request signed with the private key verifies with the ``whpk_`` public key, as
    text or as a loaded key, in any header letter case."""
    private, public = key_pair()
    body = b'{"order": 42}'
    headers = v1a_headers(private, body, timestamp=NOW)
    verify_ed25519(public, headers, body, now=NOW)
    verify_ed25519(load_public_key(public), {k.upper(): v for k, v in headers.items()}, body, NOW)


def test_verify_ed25519_refused() -> None:
    """A changed body, another key, a changed id, or no v1a entry: no matching
    signature."""
    private, public = key_pair()
    _, other = key_pair()
    body = b'{"order": 42}'
    headers = v1a_headers(private, body, timestamp=NOW)
    with pytest.raises(NoMatchingSignature, match="1 v1a entries checked"):
        verify_ed25519(public, headers, body + b" ", now=NOW)
    with pytest.raises(NoMatchingSignature):
        verify_ed25519(other, headers, body, now=NOW)
    with pytest.raises(NoMatchingSignature):
        verify_ed25519(public, {**headers, "webhook-id": "msg_2"}, body, now=NOW)
    with pytest.raises(NoMatchingSignature, match="0 v1a entries checked"):
        verify_ed25519(public, {**headers, "webhook-signature": "v1,AAAA"}, body, now=NOW)
    with pytest.raises(NoMatchingSignature):
        verify_ed25519(public, {**headers, "webhook-signature": "v1a,not*base64"}, body, now=NOW)


def test_verify_ed25519_timestamp_and_headers() -> None:
    """The timestamp and the headers are checked as ``verify_standard`` checks them."""
    private, public = key_pair()
    body = b"{}"
    headers = v1a_headers(private, body, timestamp=NOW - 3600)
    with pytest.raises(TimestampOutOfTolerance, match="too old"):
        verify_ed25519(public, headers, body, now=NOW)
    verify_ed25519(public, headers, body, now=NOW, tolerance=3700)
    with pytest.raises(InvalidTimestamp):
        verify_ed25519(public, {**headers, "webhook-timestamp": "soon"}, body, now=NOW)
    with pytest.raises(MissingSignatureHeader, match="webhook-id"):
        verify_ed25519(public, {k: v for k, v in headers.items() if k != "webhook-id"}, body)
    with pytest.raises(ValueError, match="tolerance"):
        verify_ed25519(public, headers, body, now=NOW, tolerance=-1)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("AAAA", "starts with 'whpk_'"),
        ("whpk_***", "not standard base64"),
        ("whpk_" + base64.b64encode(b"x" * 31).decode(), "decodes to 31 bytes"),
        ("whsec_" + base64.b64encode(b"x" * 32).decode(), "starts with 'whpk_'"),
    ],
)
def test_load_public_key_refuses_bad_keys(text: str, why: str) -> None:
    """A public key that is not ``whpk_`` and 32 bytes of base64 is refused, saying why."""
    with pytest.raises(ValueError, match=why.replace("(", r"\(")):
        load_public_key(text)


def test_load_public_key_without_padding() -> None:
    """The base64 padding of a public key may be left out."""
    private, public = key_pair()
    body = b"{}"
    verify_ed25519(public.rstrip("="), v1a_headers(private, body, timestamp=NOW), body, now=NOW)


def test_verify_ed25519_and_verify_standard_read_requests_alike() -> None:
    """The two verifications read the headers and check the timestamp with one
    implementation: for the same bad request they raise the same error, with the same
    message, before looking at any signature."""
    private, public = key_pair()
    body = b"{}"
    v1a = v1a_headers(private, body, timestamp=NOW)
    v1 = _headers(body=body)
    signed = {
        **v1,
        "webhook-signature": f"{v1['webhook-signature']} {v1a['webhook-signature']}",
    }
    verify_ed25519(public, signed, body, now=NOW)
    verify_standard(SECRET, signed, body, now=NOW)
    bad_requests: list[tuple[dict[str, str], float]] = [
        ({**signed, "webhook-timestamp": "12:00"}, NOW),
        ({k: v for k, v in signed.items() if k != "webhook-signature"}, NOW),
        ({**signed, "WEBHOOK-ID": "msg_2"}, NOW),
        (signed, NOW + 301),
        (signed, NOW - 301),
    ]
    for headers, now in bad_requests:
        with pytest.raises(SignatureError) as by_key:
            verify_ed25519(public, headers, body, now=now)
        with pytest.raises(SignatureError) as by_secret:
            verify_standard(SECRET, headers, body, now=now)
        assert type(by_key.value) is type(by_secret.value), headers
        assert str(by_key.value) == str(by_secret.value)
        assert not isinstance(by_key.value, NoMatchingSignature)


def test_verify_ed25519_malformed_key_text() -> None:
    """A malformed ``whpk_`` text given to the verification is a ValueError naming the
    problem, not a SignatureError: it is the receiver's configuration that is wrong."""
    private, _ = key_pair()
    body = b"{}"
    with pytest.raises(ValueError, match="decodes to 3 bytes") as raised:
        verify_ed25519("whpk_AAAA", v1a_headers(private, body, timestamp=NOW), body, now=NOW)
    assert not isinstance(raised.value, SignatureError)
