"""
Durable stores: subscribers, deliveries, attempts, endpoint health, idempotency keys and
API tokens, in memory, in an SQLite file (the service's default) or in PostgreSQL (when
many processes share the work).

Open one with :func:`open_store` and a URL:

``memory:``
    :class:`MemoryStore`: nothing survives the process.
``sqlite:PATH``
    :class:`SQLiteStore`: one file, relative (``sqlite:hooks.db``) or absolute
    (``sqlite:/var/lib/hooks/hooks.db`` or ``sqlite:///var/lib/hooks/hooks.db``), created
    when missing, in WAL mode so readers never block the writer. One process writes at a
    time; a second process on the same file waits for the write lock.
``postgresql://USER@HOST:PORT/DB`` (or ``postgres://...``, or a libpq key/value string)
    :class:`PostgresStore`: many processes, on many nodes, share the database.

A store is four roles: ``store.subscribers``
(:class:`~twisted_hooks.interfaces.ISubscriberStore`), ``store.deliveries``
(:class:`~twisted_hooks.interfaces.IDeliveryStore`), and the store itself
(:class:`~twisted_hooks.interfaces.IHealthStore`,
:class:`~twisted_hooks.interfaces.ITokenStore`). Database work runs on adbapi's thread
pool, never on the reactor thread. The schema is versioned
(:mod:`twisted_hooks.store.schema`); :func:`open_store` applies missing migrations.

The durability promise of the SQL stores:

- a delivery is committed (with its idempotency key, in one transaction) before its first
  attempt, so nothing accepted is lost;
- due deliveries are claimed in batches under a *lease*: a claimed delivery is
  ``in_flight`` until its lease expires, and no other claimer takes it meanwhile
  (PostgreSQL: ``FOR UPDATE SKIP LOCKED``). Choose a lease longer than an attempt's
  deadline;
- a delivery whose lease expired (its claimer crashed, or stopped) is claimed again, with
  the same id: after a crash every delivery not known to be delivered is attempted again,
  with the same ``Hook-Delivery`` and ``webhook-id``. Delivery is at least once;
- outcomes are recorded in batches, one transaction each; an outcome for a delivery that
  has already ended is ignored (its attempt is kept);
- claims read at most the batch asked for: a backlog of any size stays in the database.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

# The webhooks package re-exports the memory stores defined in this package, and this
# package's modules stand on the webhooks value modules: the webhooks package is imported
# whole first, so that whichever of the two a program imports first, neither meets the
# other half-initialised.
import twisted_hooks.webhooks  # noqa: F401
from twisted_hooks.store.base import Store, StoreError
from twisted_hooks.store.cache import SubscriberCache
from twisted_hooks.store.memory import MemoryStore
from twisted_hooks.store.postgres import PostgresStore
from twisted_hooks.store.schema import LATEST_VERSION, MIGRATIONS, Migration, SchemaError
from twisted_hooks.store.sql import SQLDeliveryStore, SQLStore, SQLSubscriberStore
from twisted_hooks.store.sqlite import SQLiteStore
from twisted_hooks.store.tokens import DuplicateToken, Token, TokenNotFound

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "URL_FORMS",
    "DuplicateToken",
    "MemoryStore",
    "Migration",
    "PostgresStore",
    "SQLDeliveryStore",
    "SQLStore",
    "SQLSubscriberStore",
    "SQLiteStore",
    "SchemaError",
    "Store",
    "StoreError",
    "SubscriberCache",
    "Token",
    "TokenNotFound",
    "is_postgres_url",
    "make_store",
    "open_store",
]

#: The store URLs :func:`open_store` accepts, for messages.
URL_FORMS = "'memory:', 'sqlite:PATH' (or 'sqlite:///ABSOLUTE/PATH') or 'postgresql://...'"


def make_store(url: str, reactor: IReactorTime | None = None, **options: Any) -> Store:
    """
    The store ``url`` names, not started (see :func:`open_store` for the URLs).

    :param options: passed to the store's class (``refresh_interval``,
        ``busy_timeout``, ``min_connections``, ``max_connections``, ``listen``,
        ``keep_finished``, ...).
    :raise ValueError: for a URL of no known form.
    """
    if not isinstance(url, str):
        raise ValueError(f"a store URL must be a string, got {url!r}; use {URL_FORMS}")
    if url == "memory:":
        return MemoryStore(**options)
    if url.startswith("sqlite:"):
        rest = url[len("sqlite:") :]
        if rest.startswith("//"):
            parts = urlsplit(url)
            if parts.netloc not in ("", "localhost"):
                raise ValueError(
                    f"store URL {url!r} names a host; SQLite files are local: use "
                    "'sqlite:PATH' or 'sqlite:///ABSOLUTE/PATH'"
                )
            rest = unquote(parts.path)
        if not rest:
            raise ValueError(f"store URL {url!r} has no file path; use 'sqlite:PATH'")
        return SQLiteStore(rest, reactor, **options)
    if is_postgres_url(url):
        return PostgresStore(url, reactor, **options)
    raise ValueError(f"unknown store URL {url!r}; use {URL_FORMS}")


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database (a ``postgresql://`` or ``postgres://``
    URL, or a libpq ``key=value`` connection string)."""
    return url.startswith(("postgresql://", "postgres://")) or (
        "=" in url and ("dbname=" in url or "host=" in url)
    )


def open_store(
    url: str, reactor: IReactorTime | None = None, migrate: bool = True, **options: Any
) -> Deferred[Store]:
    """
    Open the store ``url`` names, bring its schema up to date and load its subscriber
    cache.

    :param url: ``memory:``, ``sqlite:PATH`` (relative or absolute; also
        ``sqlite:///abs/path``), or ``postgresql://...`` / ``postgres://...``.
    :param reactor: the reactor; the global one if ``None``.
    :param migrate: ``False`` leaves the schema alone and fails with :class:`StoreError`
        when it is not up to date (for a service whose operator migrates separately).
    :param options: passed to the store's class (see :func:`make_store`).
    :return: a Deferred firing the started :class:`Store`; it fails with
        :class:`StoreError` when the database cannot be opened (the message names it,
        never a password), and :class:`SchemaError` when its schema is newer than this
        version knows.
    :raise ValueError: at once, for a URL of no known form.
    """
    store = make_store(url, reactor, **options)

    async def start() -> Store:
        try:
            if isinstance(store, SQLStore):
                await store.start(migrate=migrate)
            else:
                await store.start()
        except BaseException:
            await store.close()
            raise
        return store

    return Deferred.fromCoroutine(start())
