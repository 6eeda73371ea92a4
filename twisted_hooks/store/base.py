"""
What every store is: one object holding the four roles of durable state.

A store's subscriber and delivery roles have methods of the same names (``get``, ``list``),
so they are separate objects, :attr:`Store.subscribers` and :attr:`Store.deliveries`; the
store itself provides :class:`~twisted_hooks.interfaces.IHealthStore` and
:class:`~twisted_hooks.interfaces.ITokenStore`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from twisted.internet.defer import Deferred

from twisted_hooks.interfaces import IDeliveryStore, ISubscriberStore

__all__ = ["Store", "StoreError"]


class StoreError(Exception):
    """A store cannot be opened or used; the message says which and what to do."""


class Store(ABC):
    """
    Subscribers, deliveries, endpoint health and API tokens, kept together.

    Subclasses provide :class:`~twisted_hooks.interfaces.IHealthStore` and
    :class:`~twisted_hooks.interfaces.ITokenStore` themselves.

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
