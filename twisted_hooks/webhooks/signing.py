"""
Signing webhook deliveries, and verifying them on the receiving side.

Every delivery carries two independent signatures, both computed again at each attempt:

``Hook-HMAC`` (Thorn's scheme)
    The standard base64 (with padding) of ``HMAC(key, body)``, where ``key`` is the
    subscription's secret encoded as UTF-8 and the digest is the subscription's
    ``sha1``, ``sha224``, ``sha256``, ``sha384`` or ``sha512``. :func:`sign` and
    :func:`verify` give exactly the results of Thorn's ``thorn.utils.hmac.sign`` and
    ``thorn.utils.hmac.verify``, so receivers written for Thorn keep working. A secret of
    the form ``whsec_...`` is *not* decoded here: Thorn signs with the secret string itself,
    and so do we.

``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` (`Standard Webhooks`_)
    ``webhook-signature`` holds space-separated ``v1,<base64>`` entries, each the standard
    base64 of ``HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")``. A secret
    ``whsec_<base64>`` is decoded to the key (the base64 padding may be left out); any other
    secret is used as its UTF-8 bytes. While a secret is being rotated, the new and the old
    secret both sign, one entry each, and a receiver accepts the request when any entry
    matches. The timestamp (whole seconds since the epoch) lets the receiver refuse replays.

On the sending side the delivery engine calls :func:`signature_headers` once per attempt.
A receiver verifies with :func:`verify_standard` (or the ``standardwebhooks`` package, or
any other Standard Webhooks library), or checks ``Hook-HMAC`` with :func:`verify`. A sender
that signs with Standard Webhooks' asymmetric scheme (``v1a`` entries, Ed25519) is verified
with :func:`verify_ed25519` and its ``whpk_`` public key. In a
Twisted :class:`~twisted.web.resource.Resource`, for instance::

    from twisted_hooks.webhooks.signing import SignatureError, verify_standard

    SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    def render_POST(self, request):
        body = request.content.read()  # the raw bytes, never re-encoded JSON
        headers = {
            name: request.getHeader(name) or ""
            for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
        }
        try:
            verify_standard(SECRET, headers, body)
        except SignatureError as e:
            request.setResponseCode(401)
            return str(e).encode("utf-8")
        ...  # the body is authentic and recent; handle the event
        return b""

and with Thorn's header alone::

    from twisted_hooks.webhooks.signing import verify

    if not verify(request.getHeader("Hook-HMAC") or "", "sha256", SECRET, body):
        request.setResponseCode(401)

Why one module (past 600 lines): signing and verifying are the two halves of one wire
contract; each scheme's signer and verifier stand beside each other so that they cannot
drift apart, and receivers find every check they need here.

.. _Standard Webhooks: https://www.standardwebhooks.com/
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import re
import secrets as _secrets
import time
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "DEFAULT_TOLERANCE",
    "DIGEST_METHODS",
    "PUBLIC_KEY_PREFIX",
    "SECRET_PREFIX",
    "InvalidSecret",
    "InvalidTimestamp",
    "MissingSignatureHeader",
    "NoMatchingSignature",
    "SignatureError",
    "TimestampOutOfTolerance",
    "generate_secret",
    "load_public_key",
    "sign",
    "sign_standard",
    "signature_headers",
    "standard_key",
    "standard_signature",
    "thorn_signature",
    "verify",
    "verify_ed25519",
    "verify_standard",
]

#: The digest methods :func:`sign` accepts (in any letter case), as Thorn does.
DIGEST_METHODS: frozenset[str] = frozenset({"sha1", "sha224", "sha256", "sha384", "sha512"})

#: The prefix that marks a secret as ``whsec_<base64 of the key>``.
SECRET_PREFIX = "whsec_"

#: The prefix of a Standard Webhooks public key: ``whpk_`` and the standard base64 of the
#: 32 bytes of an Ed25519 public key.
PUBLIC_KEY_PREFIX = "whpk_"

#: How far, in seconds, a ``webhook-timestamp`` may be from the receiver's clock.
DEFAULT_TOLERANCE = 300

_HEADER_ID = "webhook-id"
_HEADER_TIMESTAMP = "webhook-timestamp"
_HEADER_SIGNATURE = "webhook-signature"
_TIMESTAMP_RE = re.compile(r"[0-9]{1,15}")


def _seconds(value: float) -> str:
    """
    Show a number of seconds without a useless fraction: ``301``, ``300.5``.
    """
    return f"{value:.3f}".rstrip("0").rstrip(".")


class InvalidSecret(ValueError):
    """
    A ``whsec_`` secret whose remainder is not standard base64 of a non-empty key.

    This is a configuration error on whichever side holds the secret, not a property of a
    request: it is deliberately not a :class:`SignatureError`. The message never contains
    the secret.
    """


class SignatureError(ValueError):
    """
    A request failed Standard Webhooks verification; the message says why.

    A receiver answers such a request with a 4xx and does not act on it. The subclasses
    tell the reasons apart.
    """


class MissingSignatureHeader(SignatureError):
    """
    One of ``webhook-id``, ``webhook-timestamp`` or ``webhook-signature`` is absent or empty.

    :ivar header: The lowercase name of the missing header.
    """

    header: str

    def __init__(self, header: str) -> None:
        self.header = header
        super().__init__(
            f"missing {header} header: a Standard Webhooks request carries webhook-id, "
            "webhook-timestamp and webhook-signature"
        )


class InvalidTimestamp(SignatureError):
    """
    ``webhook-timestamp`` is not a whole number of seconds since the epoch.
    """


class TimestampOutOfTolerance(SignatureError):
    """
    ``webhook-timestamp`` is further from the receiver's clock than the tolerance allows.

    Either the request is a replay, or one of the two clocks is wrong.

    :ivar age: Seconds from the timestamp to the receiver's clock: positive when the
        timestamp is in the past, negative when it is in the future.
    :ivar tolerance: The tolerance, in seconds, that was exceeded.
    """

    age: float
    tolerance: float

    def __init__(self, timestamp: int, age: float, tolerance: float) -> None:
        self.age = age
        self.tolerance = tolerance
        if age > 0:
            where = f"{_seconds(age)} seconds in the past (too old)"
        else:
            where = f"{_seconds(-age)} seconds in the future (too new)"
        super().__init__(
            f"webhook-timestamp {timestamp} is {where}; the tolerance is {_seconds(tolerance)} "
            "seconds: refuse it as a possible replay, or check the sender's and the "
            "receiver's clocks"
        )


class NoMatchingSignature(SignatureError):
    """
    No ``v1`` entry of ``webhook-signature`` matches the request with any of the secrets.

    The usual causes: a wrong secret, a body that was decoded and re-encoded before being
    verified (verify the raw bytes), or an altered ``webhook-id`` or ``webhook-timestamp``.
    """


def _digest(digest_method: str) -> str:
    """
    Check a digest method name and lowercase it, as Thorn's ``get_digest`` does.

    :raises ValueError: if the name, lowercased, is not one of :data:`DIGEST_METHODS`.
    """
    name = digest_method.lower() if isinstance(digest_method, str) else None
    if name is None or name not in DIGEST_METHODS:
        raise ValueError(
            f"unknown HMAC digest method {digest_method!r}: use one of "
            + ", ".join(sorted(DIGEST_METHODS, key=lambda n: int(n[3:])))
        )
    return name


def _as_bytes(value: str | bytes) -> bytes:
    """
    Encode a ``str`` as UTF-8 and return ``bytes`` unchanged, as Thorn's ``want_bytes`` does.
    """
    return value.encode("utf-8") if isinstance(value, str) else value


def sign(digest_method: str, key: str | bytes, message: str | bytes) -> str:
    """
    Sign a message the way Thorn's ``thorn.utils.hmac.sign`` does.

    The result is the standard base64 (with padding) of ``HMAC(key, message)``, ``str``
    and ``bytes`` arguments being encoded as UTF-8. Thorn returns that value as ``bytes``;
    this returns the same characters as a ``str``, ready for a header.

    :param digest_method: ``"sha1"``, ``"sha224"``, ``"sha256"``, ``"sha384"`` or
        ``"sha512"``, in any letter case.
    :param key: The secret.
    :param message: The message, usually the request body.

    :raises ValueError: if ``digest_method`` is not one of :data:`DIGEST_METHODS`.

    :return: The signature, as it goes in ``Hook-HMAC``.
    """
    digestmod = _digest(digest_method)
    # hmac.digest is the one-shot (OpenSSL) form of hmac.new(...).digest(): same bytes.
    mac = hmac.digest(_as_bytes(key), _as_bytes(message), digestmod)
    return base64.b64encode(mac).decode("ascii")


def verify(
    digest: str | bytes, digest_method: str, key: str | bytes, message: str | bytes
) -> bool:
    """
    Check a signature the way Thorn's ``thorn.utils.hmac.verify`` does.

    The comparison with :func:`sign`'s result takes constant time
    (:func:`hmac.compare_digest`); ``digest`` is compared exactly, without stripping
    whitespace.

    :param digest: The signature received, for instance the ``Hook-HMAC`` header.
    :param digest_method: As for :func:`sign`.
    :param key: The secret.
    :param message: The message, usually the raw request body.

    :raises ValueError: if ``digest_method`` is not one of :data:`DIGEST_METHODS`.

    :return: ``True`` if ``digest`` is the signature of ``message`` under ``key``.
    """
    expected = sign(digest_method, key, message).encode("ascii")
    return hmac.compare_digest(expected, _as_bytes(digest))


def thorn_signature(digest_method: str, secret: str, body: bytes) -> str:
    """
    Compute a delivery's ``Hook-HMAC`` header value.

    The key is ``secret`` as UTF-8, whatever its form: a ``whsec_`` secret is *not* decoded,
    because Thorn's receivers use the secret string as the key.

    :param digest_method: The subscription's digest method; see :func:`sign`.
    :param secret: The subscription's secret.
    :param body: The request body.

    :raises ValueError: if ``digest_method`` is not one of :data:`DIGEST_METHODS`.

    :return: The ``Hook-HMAC`` value.
    """
    return sign(digest_method, secret, body)


@functools.lru_cache(maxsize=1024)
def _decoded_key(secret: str) -> bytes:
    encoded = secret[len(SECRET_PREFIX) :]
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret(
            "a secret starting with 'whsec_' must continue with the standard base64 of the "
            "key (A-Z, a-z, 0-9, '+', '/', optional '=' padding); generate one with "
            "twisted_hooks.webhooks.signing.generate_secret()"
        ) from None
    if not key:
        raise InvalidSecret("the secret 'whsec_' has an empty key; use generate_secret()")
    return key


def standard_key(secret: str) -> bytes:
    """
    Find the HMAC key that a Standard Webhooks secret stands for.

    :param secret: ``whsec_`` followed by the standard base64 of the key (with or without
        its ``=`` padding), or any other string, which is used as its UTF-8 bytes.

    :raises InvalidSecret: if ``secret`` starts with ``whsec_`` but the rest is not
        standard base64 of at least one byte.

    :return: The key.
    """
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode("utf-8")
    # Decoded keys are cached (by secret, for the most recent 1,024): a subscriber's key
    # is decoded once, not at every attempt.
    return _decoded_key(secret)


def _check_timestamp(timestamp: int) -> str:
    """
    Render a timestamp for signing.

    :raises ValueError: if it is not a non-negative ``int``.
    """
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError(f"timestamp must be whole seconds since the epoch, not {timestamp!r}")
    return str(timestamp)


def _signed_content(msg_id: str, timestamp: str, body: str | bytes) -> bytes:
    """
    The bytes a Standard Webhooks signature covers: ``<id>.<timestamp>.<body>``.
    """
    return b"%s.%s.%s" % (msg_id.encode("utf-8"), timestamp.encode("ascii"), _as_bytes(body))


def _hmac_sha256(key: bytes, content: bytes) -> bytes:
    """
    The raw HMAC-SHA256 of ``content`` under ``key``.
    """
    return hmac.digest(key, content, "sha256")


def sign_standard(secret: str, msg_id: str, timestamp: int, body: str | bytes) -> str:
    """
    Compute one Standard Webhooks signature entry.

    :param secret: The secret; see :func:`standard_key`.
    :param msg_id: The ``webhook-id``, the same at every attempt of one delivery.
    :param timestamp: The ``webhook-timestamp``, whole seconds since the epoch.
    :param body: The request body (a ``str`` is encoded as UTF-8).

    :raises InvalidSecret: if ``secret`` is a malformed ``whsec_`` secret.
    :raises ValueError: if ``timestamp`` is not a non-negative ``int``.

    :return: ``v1,<base64>`` for this one secret.
    """
    content = _signed_content(msg_id, _check_timestamp(timestamp), body)
    mac = _hmac_sha256(standard_key(secret), content)
    return "v1," + base64.b64encode(mac).decode("ascii")


def _secret_list(secrets: str | Sequence[str]) -> list[str]:
    """
    Accept one secret or several, refusing none.

    :raises ValueError: if there is no secret.
    """
    found = [secrets] if isinstance(secrets, str) else list(secrets)
    if not found:
        raise ValueError("at least one secret is needed")
    return found


def standard_signature(
    secrets: str | Sequence[str], msg_id: str, timestamp: int, body: str | bytes
) -> str:
    """
    Compute a ``webhook-signature`` header value.

    :param secrets: The secret, or during a rotation the secrets, that sign: one ``v1``
        entry each, in this order.
    :param msg_id: The ``webhook-id``.
    :param timestamp: The ``webhook-timestamp``, whole seconds since the epoch.
    :param body: The request body.

    :raises InvalidSecret: if a secret is a malformed ``whsec_`` secret.
    :raises ValueError: if there is no secret or ``timestamp`` is not a non-negative
        ``int``.

    :return: The entries, separated by single spaces.
    """
    return " ".join(
        sign_standard(secret, msg_id, timestamp, body) for secret in _secret_list(secrets)
    )


def signature_headers(
    *,
    secrets: str | Sequence[str],
    digest_method: str,
    msg_id: str,
    timestamp: int,
    body: bytes,
) -> dict[str, str]:
    """
    Compute every signature header of one delivery attempt.

    Call it at each attempt, with that attempt's timestamp and the delivery's stable id.

    :param secrets: The subscription's current secret, followed during a rotation by the
        previous ones that still sign. ``Hook-HMAC`` holds a single signature, by the
        current (first) secret; ``webhook-signature`` holds one entry per secret.
    :param digest_method: The subscription's digest method for ``Hook-HMAC``; see
        :func:`sign`.
    :param msg_id: The delivery's id, sent as ``webhook-id``.
    :param timestamp: The attempt's time, whole seconds since the epoch.
    :param body: The request body.

    :raises InvalidSecret: if a secret is a malformed ``whsec_`` secret.
    :raises ValueError: if there is no secret, ``digest_method`` is unknown or
        ``timestamp`` is not a non-negative ``int``.

    :return: ``Hook-HMAC``, ``webhook-id``, ``webhook-timestamp`` and
        ``webhook-signature``, by name.
    """
    found = (secrets,) if isinstance(secrets, str) else tuple(secrets)
    if not found:
        raise ValueError("at least one secret is needed")
    digestmod = _digest(digest_method)
    stamp = _check_timestamp(timestamp)
    # The same bytes as thorn_signature and standard_signature compute, from HMAC objects
    # keyed once per subscriber (a copy per attempt), and over the body as it is: the
    # Standard Webhooks prefix is hashed first, not joined to a copy of the body.
    thorn, standard = _keyed(found, digestmod)
    content = _as_bytes(body)
    mac = thorn.copy()
    mac.update(content)
    hook_hmac = _b64(mac.digest())
    prefix = b"%s.%s." % (msg_id.encode("utf-8"), stamp.encode("ascii"))
    entries = []
    for keyed in standard:
        mac = keyed.copy()
        mac.update(prefix)
        mac.update(content)
        entries.append("v1," + _b64(mac.digest()))
    return {
        "Hook-HMAC": hook_hmac,
        _HEADER_ID: msg_id,
        _HEADER_TIMESTAMP: stamp,
        _HEADER_SIGNATURE: " ".join(entries),
    }


def _b64(digest: bytes) -> str:
    """The standard base64 (with padding) of ``digest``, as ``str``."""
    return binascii.b2a_base64(digest, newline=False).decode("ascii")


@functools.lru_cache(maxsize=1024)
def _keyed(secrets: tuple[str, ...], digestmod: str) -> tuple[hmac.HMAC, tuple[hmac.HMAC, ...]]:
    """
    HMAC objects keyed, not yet fed: Thorn's (the first secret as UTF-8, ``digestmod``) and
    one Standard Webhooks HMAC-SHA256 per secret (:func:`standard_key`). Kept for the most
    recent 1,024 subscribers' secrets; each attempt feeds copies.

    :raises InvalidSecret: if a secret is a malformed ``whsec_`` secret.
    """
    thorn = hmac.new(secrets[0].encode("utf-8"), digestmod=digestmod)
    return thorn, tuple(hmac.new(standard_key(s), digestmod="sha256") for s in secrets)


def generate_secret() -> str:
    """
    Make a new random Standard Webhooks secret.

    :return: ``whsec_`` followed by the standard base64 of 32 bytes from
        :func:`secrets.token_bytes`.
    """
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode("ascii")


def _header(headers: Mapping[str, str], name: str) -> str:
    """
    Find a header by its name in any letter case.

    :raises MissingSignatureHeader: if it is absent or empty.
    :raises SignatureError: if it is given twice, in different letter cases, with
        different values.
    """
    values = {value for key, value in headers.items() if key.lower() == name}
    if len(values) > 1:
        raise SignatureError(f"the {name} header is given more than once, with different values")
    value = values.pop() if values else ""
    if not value:
        raise MissingSignatureHeader(name)
    return value


def _v1_signatures(header: str) -> tuple[list[bytes], int]:
    """
    Decode the ``v1`` entries of a ``webhook-signature`` value.

    :return: The decoded signatures, and how many entries were skipped because they belong
        to another version or are malformed.
    """
    found: list[bytes] = []
    skipped = 0
    for entry in header.split():
        version, comma, encoded = entry.partition(",")
        if version != "v1" or not comma:
            skipped += 1
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            skipped += 1
    return found, skipped


def _signed_request(
    headers: Mapping[str, str], body: str | bytes, now: float | None, tolerance: float
) -> tuple[bytes, str]:
    """
    Read the three Standard Webhooks headers of a request and check its timestamp: what
    :func:`verify_standard` and :func:`verify_ed25519` both do before their signatures.

    :return: The bytes the signatures cover (``<webhook-id>.<webhook-timestamp>.<body>``)
        and the ``webhook-signature`` value.

    :raises ValueError: if ``tolerance`` is negative.
    :raises MissingSignatureHeader: if a header is absent or empty.
    :raises InvalidTimestamp: if ``webhook-timestamp`` is not whole seconds.
    :raises TimestampOutOfTolerance: if the timestamp is too old or too new.
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be a number of seconds >= 0, not {tolerance!r}")
    msg_id = _header(headers, _HEADER_ID)
    timestamp_text = _header(headers, _HEADER_TIMESTAMP)
    signature = _header(headers, _HEADER_SIGNATURE)

    if not _TIMESTAMP_RE.fullmatch(timestamp_text):
        raise InvalidTimestamp(
            "webhook-timestamp must be whole seconds since the epoch (digits only), "
            f"not {timestamp_text[:40]!r}"
        )
    timestamp = int(timestamp_text)
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance:
        raise TimestampOutOfTolerance(timestamp, age, tolerance)
    return _signed_content(msg_id, timestamp_text, body), signature


def verify_standard(
    secret: str | Sequence[str],
    headers: Mapping[str, str],
    body: str | bytes,
    now: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> None:
    """
    Check that a request was signed by a holder of the secret, recently.

    Entries of ``webhook-signature`` in another version than ``v1``, or malformed, are
    skipped; the request is accepted when one ``v1`` entry matches. Signatures are compared
    in constant time (:func:`hmac.compare_digest`).

    :param secret: The secret; or, while it is being rotated, a sequence of the secrets to
        accept.
    :param headers: The request's headers; names are looked up in any letter case.
    :param body: The raw request body, exactly as received (a ``str`` is encoded as
        UTF-8).
    :param now: The receiver's time in seconds since the epoch; :func:`time.time` if
        ``None``.
    :param tolerance: How many seconds ``webhook-timestamp`` may be from ``now``, in
        either direction.

    :raises MissingSignatureHeader: if a header is absent or empty.
    :raises InvalidTimestamp: if ``webhook-timestamp`` is not whole seconds.
    :raises TimestampOutOfTolerance: if the timestamp is too old or too new.
    :raises NoMatchingSignature: if no ``v1`` entry matches.
    :raises InvalidSecret: if a secret is a malformed ``whsec_`` secret.
    :raises ValueError: if there is no secret, or ``tolerance`` is negative.
    """
    keys = [standard_key(each) for each in _secret_list(secret)]
    content, signature = _signed_request(headers, body, now, tolerance)
    candidates, skipped = _v1_signatures(signature)
    matched = False
    for key in keys:
        expected = _hmac_sha256(key, content)
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise NoMatchingSignature(
            f"no v1 entry of webhook-signature matches the request with the "
            f"{'secret' if len(keys) == 1 else f'{len(keys)} secrets'} given "
            f"({len(candidates)} v1 entries checked, {skipped} skipped as another version "
            "or malformed): check the secret, verify the raw body bytes, and make sure "
            "webhook-id and webhook-timestamp reach you unchanged"
        )


def load_public_key(text: str) -> Ed25519PublicKey:
    """
    Read a Standard Webhooks public key.

    :param text: ``whpk_`` followed by the standard base64 of the 32 bytes of an Ed25519
        public key (the base64 padding may be left out).

    :raises ValueError: saying what is wrong with the text (never repeating it).

    :return: The Ed25519 public key.
    """
    if not text.startswith(PUBLIC_KEY_PREFIX):
        raise ValueError(
            f"a public key starts with {PUBLIC_KEY_PREFIX!r} followed by the base64 of the "
            "32 bytes of an Ed25519 public key"
        )
    encoded = text[len(PUBLIC_KEY_PREFIX) :]
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"the public key after {PUBLIC_KEY_PREFIX!r} is not standard base64"
        ) from None
    if len(raw) != 32:
        raise ValueError(
            f"the public key after {PUBLIC_KEY_PREFIX!r} decodes to {len(raw)} bytes; an "
            "Ed25519 public key has 32"
        )
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_ed25519(
    public_key: Ed25519PublicKey | str,
    headers: Mapping[str, str],
    body: str | bytes,
    now: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> None:
    """
    Check a Standard Webhooks asymmetric signature: that one ``v1a,<base64>`` entry of
    ``webhook-signature`` is the Ed25519 signature, by the sender's private key, of
    ``<webhook-id>.<webhook-timestamp>.<body>``, and that the request is recent.

    The headers and the timestamp are read and checked exactly as :func:`verify_standard`
    reads and checks them. Entries in another version than ``v1a``, or malformed, are
    skipped.

    :param public_key: The sender's public key, or its ``whpk_`` text (see
        :func:`load_public_key`).
    :param headers: The request's headers; names are looked up in any letter case.
    :param body: The raw request body, exactly as received (a ``str`` is encoded as
        UTF-8).
    :param now: The receiver's time in seconds since the epoch; :func:`time.time` if
        ``None``.
    :param tolerance: How many seconds ``webhook-timestamp`` may be from ``now``, in
        either direction.

    :raises MissingSignatureHeader: if a header is absent or empty.
    :raises InvalidTimestamp: if ``webhook-timestamp`` is not whole seconds.
    :raises TimestampOutOfTolerance: if the timestamp is too old or too new.
    :raises NoMatchingSignature: if no ``v1a`` entry is the key's signature.
    :raises ValueError: if ``public_key`` is a malformed ``whpk_`` text, or ``tolerance``
        is negative.
    """
    key = load_public_key(public_key) if isinstance(public_key, str) else public_key
    content, signature = _signed_request(headers, body, now, tolerance)
    entries = 0
    for entry in signature.split():
        version, comma, encoded = entry.partition(",")
        if version != "v1a" or not comma:
            continue
        entries += 1
        try:
            key.verify(base64.b64decode(encoded, validate=True), content)
        except (binascii.Error, ValueError, InvalidSignature):
            continue
        return
    raise NoMatchingSignature(
        f"no v1a entry of webhook-signature is this public key's signature of the request "
        f"({entries} v1a entries checked): check the public key, verify the raw body bytes, "
        "and make sure webhook-id and webhook-timestamp reach you unchanged"
    )
