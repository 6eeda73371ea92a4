"""
Who may call the HTTP API: the paths open to all, bearer tokens, scopes.
"""

from __future__ import annotations

import attrs

from twisted_hooks.interfaces import ITokenStore
from twisted_hooks.service._errors import APIError
from twisted_hooks.service.tokens import token_hash
from twisted_hooks.store.tokens import Token

__all__ = ["PUBLIC_PATHS", "Access", "authenticate", "needs_token"]

#: The paths served without a token; every other path needs ``Authorization: Bearer``.
PUBLIC_PATHS: frozenset[str] = frozenset({"/healthz", "/metrics", "/openapi.json"})

_BEARER_REALM = 'Bearer realm="twisted_hooks"'


def needs_token(path: bytes) -> bool:
    """
    Whether a request for ``path`` must carry a valid token: every path but those of
    :data:`PUBLIC_PATHS` (unknown paths included).

    :param path: the request target as sent, with or without its query string.
    """
    target = path.split(b"?", 1)[0]
    return target.decode("ascii", "replace") not in PUBLIC_PATHS


async def authenticate(tokens: ITokenStore, authorization: bytes | None) -> Token:
    """
    The active token an ``Authorization`` header names; its scopes are not checked.

    :param tokens: the store of tokens.
    :param authorization: the header's value, or ``None`` when the request has none.
    :raises APIError: a 401, with ``WWW-Authenticate``: ``unauthorized`` for a missing or
        malformed header, ``invalid_token`` for an unknown or revoked token.
    """
    if authorization is None:
        raise APIError(
            401,
            "unauthorized",
            "this request needs an API token: send 'Authorization: Bearer TOKEN'",
            headers=[("WWW-Authenticate", _BEARER_REALM)],
        )
    scheme, _, text = authorization.partition(b" ")
    text = text.strip()
    if scheme.lower() != b"bearer" or not text:
        raise APIError(
            401,
            "unauthorized",
            "the Authorization header must be 'Bearer TOKEN'",
            headers=[("WWW-Authenticate", _BEARER_REALM)],
        )
    invalid = APIError(
        401,
        "invalid_token",
        "the API token is unknown or revoked; ask the operator for a new one",
        headers=[("WWW-Authenticate", _BEARER_REALM + ', error="invalid_token"')],
    )
    try:
        decoded = text.decode("ascii")
    except UnicodeDecodeError:
        raise invalid from None
    token = await tokens.token_by_hash(token_hash(decoded))
    if token is None or not token.active:
        raise invalid
    return token


@attrs.frozen
class Access:
    """What a request's token lets it see."""

    token: Token

    @property
    def admin(self) -> bool:
        """Whether the token has the ``admin`` scope (it sees every owner's)."""
        return "admin" in self.token.scopes

    @property
    def owner(self) -> str | None:
        """The owner whose subscriptions and deliveries the token sees; ``None`` for
        every owner (admin)."""
        return None if self.admin else self.token.owner

    def sees(self, owner: str | None) -> bool:
        """Whether the token sees what ``owner`` owns."""
        return self.admin or (owner is not None and owner == self.token.owner)

    def check_scope(self, scope: str) -> None:
        """
        Refuse a token that lacks ``scope`` (admin has every scope).

        :raise APIError: a 403 ``forbidden``.
        """
        if scope not in self.token.scopes and not self.admin:
            raise APIError(
                403,
                "forbidden",
                f"this token lacks the {scope!r} scope (it has {sorted(self.token.scopes)})",
            )
