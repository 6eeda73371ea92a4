"""
The memory store: every role of a store, in the process's memory.

Nothing survives the process; this is the ``default`` backend's store and the fake the
other suites use. It composes :class:`~twisted_hooks.webhooks.MemorySubscriberStore` and
:class:`~twisted_hooks.webhooks.MemoryDeliveryStore`, which live here in the store package
with every other store (importable from :mod:`twisted_hooks.webhooks`, where they are
documented), and adds endpoint health and API tokens. Every method returns an
already-fired Deferred.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from twisted_hooks.interfaces import IHealthStore, ITokenStore
from twisted_hooks.store._memory_deliveries import MemoryDeliveryStore
from twisted_hooks.store._memory_subscribers import MemorySubscriberStore
from twisted_hooks.store.base import Store
from twisted_hooks.store.tokens import DuplicateToken, Token, TokenNotFound
from twisted_hooks.webhooks._health import EndpointHealth
from twisted_hooks.webhooks._subscriber import Subscriber

__all__ = ["MemoryStore"]


@implementer(IHealthStore, ITokenStore)
class MemoryStore(Store):
    """
    Subscribers, deliveries, endpoint health and tokens in memory.

    :param subscribers: subscribers to start with.
    :param keep_finished: see :class:`~twisted_hooks.webhooks.MemoryDeliveryStore`.
    :param keep_attempts: see :class:`~twisted_hooks.webhooks.MemoryDeliveryStore`.
    :param keep_keys: see :class:`~twisted_hooks.webhooks.MemoryDeliveryStore`.

    :ivar subscribers: a :class:`~twisted_hooks.webhooks.MemorySubscriberStore`.
    :ivar deliveries: a :class:`~twisted_hooks.webhooks.MemoryDeliveryStore`.
    """

    durable = False

    def __init__(
        self,
        subscribers: Iterable[Subscriber] = (),
        keep_finished: int = 10_000,
        keep_attempts: int = 20,
        keep_keys: int = 100_000,
    ) -> None:
        self.subscribers: MemorySubscriberStore = MemorySubscriberStore(subscribers)
        self.deliveries: MemoryDeliveryStore = MemoryDeliveryStore(
            keep_finished=keep_finished, keep_attempts=keep_attempts, keep_keys=keep_keys
        )
        self._health: dict[str, EndpointHealth] = {}
        self._tokens: dict[str, Token] = {}

    def __repr__(self) -> str:
        return "<MemoryStore>"

    def start(self) -> Deferred[None]:
        """Nothing to open: fires at once."""
        return succeed(None)

    def refresh(self) -> Deferred[None]:
        """Nothing is cached apart from the store itself: fires at once."""
        return succeed(None)

    def close(self) -> Deferred[None]:
        """Nothing to release: fires at once."""
        return succeed(None)

    def load_health(self) -> Deferred[Sequence[EndpointHealth]]:
        """Every health record, by subscriber id."""
        return succeed([self._health[key] for key in sorted(self._health)])

    def save_health(self, records: Sequence[EndpointHealth]) -> Deferred[None]:
        """Insert or replace ``records`` by subscriber id."""
        for record in records:
            self._health[record.subscriber_id] = record
        return succeed(None)

    def add_token(self, token: Token) -> Deferred[Token]:
        """Store a new token; fails with :class:`~twisted_hooks.store.tokens.DuplicateToken`
        (a :class:`ValueError`) when its name, id or hash is taken."""
        if token.name in self._tokens:
            return fail(DuplicateToken(f"a token named {token.name!r} already exists"))
        if any(t.id == token.id or t.hash == token.hash for t in self._tokens.values()):
            return fail(
                DuplicateToken(
                    f"token {token.name!r} has the id or hash of a stored token; make a new one"
                )
            )
        self._tokens[token.name] = token
        return succeed(token)

    def token_by_hash(self, token_hash: str) -> Deferred[Token | None]:
        """The token with this hash, revoked or not, or ``None``."""
        for token in self._tokens.values():
            if token.hash == token_hash:
                return succeed(token)
        return succeed(None)

    def tokens(self) -> Deferred[Sequence[Token]]:
        """Every token, oldest first."""
        return succeed(sorted(self._tokens.values(), key=lambda t: (t.created_at, t.name)))

    def revoke_token(self, name: str, now: float) -> Deferred[Token]:
        """Mark a token revoked at ``now`` (a revoked one keeps its first revocation time);
        fails with :class:`~twisted_hooks.store.tokens.TokenNotFound` (a :class:`KeyError`)."""
        token = self._tokens.get(name)
        if token is None:
            return fail(TokenNotFound(name))
        if token.revoked_at is None:
            token = self._tokens[name] = attrs.evolve(token, revoked_at=now)
        return succeed(token)
