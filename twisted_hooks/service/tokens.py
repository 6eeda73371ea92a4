"""
API token helpers: make a token's text, hash it, store it.

The text of a token is shown once, when it is made (:func:`create_token`); the store keeps
only its SHA-256 hex digest (:func:`token_hash`), so a leaked database leaks no token. The
HTTP API (:mod:`twisted_hooks.service.api`) hashes the bearer token of each request and
looks the hash up; the ``twisted-hooks token create`` command uses :func:`create_token`.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Iterable

from twisted.internet.defer import Deferred, fail

from twisted_hooks.interfaces import ITokenStore
from twisted_hooks.store.tokens import SCOPES, Token

__all__ = [
    "PREFIX",
    "SCOPES",
    "create_token",
    "new_token",
    "parse_scopes",
    "token_hash",
]

#: The prefix of every token's text, so a leaked token is recognisable (secret scanners,
#: logs) as a twisted_hooks API token.
PREFIX = "thk_"

#: The longest token name accepted.
MAX_NAME_LENGTH = 200


def new_token() -> str:
    """
    A new token's text: :data:`PREFIX` followed by 32 random bytes, URL-safe base64.

    :return: text such as ``"thk_3q2-...`` (47 characters).
    """
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(text: str) -> str:
    """
    The hash stored for a token: the SHA-256 hex digest of its UTF-8 text.

    :param text: the token's text, as the client sends it after ``Bearer``.
    :return: 64 lower-case hexadecimal digits.
    """
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def parse_scopes(scopes: str | Iterable[str]) -> frozenset[str]:
    """
    Read scopes given as ``"publish,subscribe"`` text or as an iterable of names.

    :return: the scopes, a non-empty subset of :data:`SCOPES`.
    :raise ValueError: for no scope or an unknown one; the message lists the valid ones.
    """
    names = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    found = frozenset(name.strip() for name in names if name.strip())
    if not found:
        raise ValueError(f"a token needs at least one scope; use some of {sorted(SCOPES)}")
    unknown = sorted(found - SCOPES)
    if unknown:
        raise ValueError(f"unknown scope(s) {unknown}; use some of {sorted(SCOPES)}")
    return found


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a token {what} must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"a token {what} must be at most {MAX_NAME_LENGTH} characters long")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise ValueError(f"a token {what} must not contain control characters: {name!r}")
    return name


def create_token(
    store: ITokenStore,
    name: str,
    scopes: str | Iterable[str],
    owner: str | None = None,
    now: float | None = None,
) -> Deferred[tuple[str, Token]]:
    """
    Make a token, store its hash, and give its text (the only time it is available).

    :param store: where tokens are kept (a :class:`~twisted_hooks.store.Store`).
    :param name: the token's unique name, chosen by the operator (revoke it by name).
    :param scopes: ``publish``, ``subscribe`` and/or ``admin``, as an iterable or as
        comma-separated text (see :func:`parse_scopes`).
    :param owner: the user its subscriptions belong to; the token's name if ``None``.
    :param now: the creation time, in seconds since the epoch; the current time if
        ``None``.
    :return: a Deferred firing ``(text, token)``; it fails with
        :class:`~twisted_hooks.store.DuplicateToken` (a :class:`ValueError`) when the
        name is taken, and with :class:`ValueError` for a bad name, owner or scope.
    """
    try:
        _check_name(name, "name")
        owner = _check_name(owner if owner is not None else name, "owner")
        allowed = parse_scopes(scopes)
    except ValueError as error:
        return fail(error)
    text = new_token()
    token = Token(
        id=str(uuid.uuid4()),
        name=name,
        hash=token_hash(text),
        scopes=allowed,
        owner=owner,
        created_at=time.time() if now is None else now,
    )
    return store.add_token(token).addCallback(lambda stored: (text, stored))
