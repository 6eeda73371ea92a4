"""
API tokens: made at random, shown once, stored only as a hash.
"""

from __future__ import annotations

import attrs

__all__ = ["SCOPES", "DuplicateToken", "Token", "TokenNotFound"]

#: What a token may allow.
SCOPES: frozenset[str] = frozenset({"publish", "subscribe", "admin"})


@attrs.frozen
class Token:
    """
    A stored API token.

    :ivar id: a UUID string.
    :ivar name: unique, chosen by the operator.
    :ivar hash: the SHA-256 hex digest of the token text.
    :ivar scopes: a subset of :data:`SCOPES`.
    :ivar owner: the user the token acts as (subscriptions belong to it).
    :ivar created_at: seconds since the epoch.
    :ivar revoked_at: when it was revoked, or ``None``.
    """

    id: str
    name: str
    hash: str
    scopes: frozenset[str]
    owner: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        """``True`` until revoked."""
        return self.revoked_at is None


class TokenNotFound(KeyError):
    """No token has the name asked for."""

    def __str__(self) -> str:
        return f"no token named {self.args[0]!r}"


class DuplicateToken(ValueError):
    """A token with that name (or id, or hash) is already stored."""
