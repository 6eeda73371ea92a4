"""
What every store is: one object holding the four roles of durable state.

A store's subscriber and delivery roles have methods of the same names (``get``, ``list``),
so they are separate objects, :attr:`Store.subscribers` and :attr:`Store.deliveries`; the
store itself provides :class:`~twisted_hooks.interfaces.IHealthStore` and
:class:`~twisted_hooks.interfaces.ITokenStore`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from zope.interface import implementer

from twisted_hooks.interfaces import IDeliveryStore, IHealthStore, ISubscriberStore, ITokenStore

if TYPE_CHECKING:
    from twisted_hooks.store.tokens import Token
    from twisted_hooks.webhooks._health import EndpointHealth

__all__ = ["Store", "StoreError"]


class StoreError(Exception):
    """A store cannot be opened or used; the message says which and what to do."""


@implementer(IHealthStore, ITokenStore)
class Store(ABC):
    """
    Subscribers, deliveries, endpoint health and API tokens, kept together.

    A store provides :class:`~twisted_hooks.interfaces.IHealthStore` and
    :class:`~twisted_hooks.interfaces.ITokenStore` itself (each kind of store implements
    their methods), so it can be given as ``Hooks(health=store)``.

    :ivar durable: ``True`` when what is stored survives the process.
    :ivar subscribers: the subscriber role.
    :ivar deliveries: the delivery role.
    """

    durable: bool
    subscribers: ISubscriberStore
    deliveries: IDeliveryStore

    @abstractmethod
    def start(self) -> Deferred[None]:
        """
        Make the store ready: open it, bring its schema up to date and load what it caches.

        :return: a Deferred firing ``None`` once the store can be used; it fails with
            :class:`StoreError` when the store cannot be opened.
        """

    @abstractmethod
    def refresh(self) -> Deferred[None]:
        """
        Reload what the store caches (the subscribers it matches events against) from its
        database, to see other processes' writes.

        :return: a Deferred firing ``None`` once reloaded.
        """

    @abstractmethod
    def close(self) -> Deferred[None]:
        """
        Finish the work under way and release the store's connections and threads.

        :return: a Deferred firing ``None`` once closed. Closing twice is harmless.
        """

    # -- IHealthStore ------------------------------------------------------------------------

    @abstractmethod
    def load_health(self) -> Deferred[Sequence[EndpointHealth]]:
        """Every stored endpoint health record."""

    @abstractmethod
    def save_health(self, records: Sequence[EndpointHealth]) -> Deferred[None]:
        """Insert or replace these records (by subscriber id), in one transaction."""

    # -- ITokenStore -------------------------------------------------------------------------

    @abstractmethod
    def add_token(self, token: Token) -> Deferred[Token]:
        """Store a new token; fails with :class:`ValueError` when its name (or id, or hash)
        is taken."""

    @abstractmethod
    def token_by_hash(self, token_hash: str) -> Deferred[Token | None]:
        """The token with this hash, revoked or not, or ``None``."""

    @abstractmethod
    def tokens(self) -> Deferred[Sequence[Token]]:
        """Every token, oldest first."""

    @abstractmethod
    def revoke_token(self, name: str, now: float) -> Deferred[Token]:
        """Mark a token revoked; fails with :class:`KeyError` for an unknown name."""
