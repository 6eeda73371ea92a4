"""
The Redis listener: each event's JSON pushed (``LPUSH``) onto a Redis list, for workers
outside the process to consume (Kinto's ``kinto_redis`` queue, for twisted_hooks).

::

    [listener:queue]
    use = twisted_hooks.listeners.redis
    url = redis://127.0.0.1:6379/0      ; the Redis server (default), redis-py's URL forms
    key = twisted_hooks.events          ; the list (default)
    timeout = 5                         ; connect and command timeout, in seconds (default 5)
    threads = 4                         ; the most commands under way at once (default 4)

``timeout`` is above 0 and at most 3600 seconds, ``threads`` 1 to 256, both in ASCII digits.

Each event becomes ``{"event": name, "id": ..., "timestamp": ..., "sender": ..., "data":
...}`` (see :func:`twisted_hooks.listeners.event_record`), encoded with
:func:`twisted_hooks.webhooks.encoding.encode_json`; a worker pops the oldest with
``RPOP`` or ``BRPOP``.

redis-py blocks, so every command runs in a thread pool of the listener's own
(:func:`~twisted.internet.threads.deferToThreadPool`), never on the reactor thread. A
failed push (Redis down, a timeout) fails the handler's Deferred: the dispatcher records
it in the fire's :class:`~twisted_hooks.FireResult` and logs it, and the other handlers
are not affected; the event is not pushed again. :meth:`RedisListener.close` (called when
the reactor shuts down, or by :meth:`twisted_hooks.listeners.LoadedListeners.close`) lets
the pushes under way finish, then stops the pool.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from twisted_hooks._extras import missing_extra
from twisted_hooks._numbers import decimal, whole

try:
    import redis
except ImportError as _error:
    raise missing_extra(
        _error, "redis", "the Redis listener (twisted_hooks.listeners.redis)"
    ) from None
from twisted_hooks.listeners import ListenerContext, check_settings, event_record
from twisted_hooks.webhooks.encoding import encode_json

__all__ = [
    "DEFAULT_KEY",
    "DEFAULT_URL",
    "ListenerClosed",
    "RedisClient",
    "RedisListener",
    "load_from_config",
]

#: The Redis server used when ``url`` is not set.
DEFAULT_URL = "redis://127.0.0.1:6379/0"
#: The list pushed onto when ``key`` is not set.
DEFAULT_KEY = "twisted_hooks.events"

_KEYS = ("url", "key", "timeout", "threads")
#: The most seconds of ``timeout``, and the most ``threads``.
_MAX_TIMEOUT = 3600.0
_MAX_THREADS = 256


class RedisClient(Protocol):
    """The part of a :class:`redis.Redis` client the listener uses (blocking calls)."""

    def lpush(self, name: str, *values: bytes) -> Any:
        """Push ``values`` onto the head of the list ``name``; returns its new length."""

    def close(self) -> None:
        """Close the client's connections."""


class ListenerClosed(RuntimeError):
    """An event reached a :class:`RedisListener` after :meth:`~RedisListener.close`."""


class RedisListener:
    """
    Pushes each event's JSON onto a Redis list, from a thread pool.

    :param client: a blocking Redis client (:class:`redis.Redis`), only ever used from
        the pool's threads.
    :param reactor: the reactor (an ``IReactorFromThreads`` and ``IReactorCore``).
    :param key: the list.
    :param name: the listener's name, which names the pool's threads.
    :param threads: the pool's most threads, and so the most pushes under way at once.

    The pool starts now and is stopped by :meth:`close`, which runs by itself before the
    reactor shuts down.
    """

    def __init__(
        self,
        client: RedisClient,
        reactor: Any,
        key: str = DEFAULT_KEY,
        *,
        name: str = "",
        threads: int = 4,
    ) -> None:
        self.client = client
        self.key = key
        self._reactor = reactor
        #: The thread pool the commands run in.
        self.pool = ThreadPool(
            minthreads=0, maxthreads=threads, name=f"twisted_hooks.listeners.redis {name}"
        )
        self.pool.start()
        self._pending: set[Deferred[int]] = set()
        self._closing: Deferred[None] | None = None
        self._trigger: object | None = reactor.addSystemEventTrigger(
            "before", "shutdown", self._shutdown
        )

    @property
    def closed(self) -> bool:
        """``True`` once :meth:`close` has been called."""
        return self._closing is not None

    def __call__(self, event: object) -> Deferred[int]:
        """
        ``LPUSH`` the JSON of ``event`` (see :func:`~twisted_hooks.listeners.event_record`)
        in the pool.

        :return: a Deferred firing the list's new length, or failing with redis-py's
            error (or :class:`~twisted_hooks.webhooks.EncodingError` for data JSON cannot
            hold, :class:`ListenerClosed` after :meth:`close`).
        """
        if self._closing is not None:
            return fail(ListenerClosed(f"the Redis listener of {self.key!r} is closed"))
        try:
            body = encode_json(event_record(event))
        except Exception:
            return fail()
        d: Deferred[int] = deferToThreadPool(self._reactor, self.pool, self._push, body)
        self._pending.add(d)

        def done(result: object) -> object:
            self._pending.discard(d)
            return result

        d.addBoth(done)
        return d

    def _push(self, body: bytes) -> int:
        return int(self.client.lpush(self.key, body))

    def _shutdown(self) -> Deferred[None]:
        self._trigger = None
        return self.close()

    def close(self) -> Deferred[None]:
        """
        Refuse new events, let the pushes under way finish, close the client's
        connections (in the pool) and stop the pool. Calling it again returns the same
        result.

        :return: a Deferred firing ``None`` once the pool is stopped.
        """
        if self._closing is not None:
            return self._closing
        if self._trigger is not None:
            self._reactor.removeSystemEventTrigger(self._trigger)
            self._trigger = None
        pending = DeferredList(list(self._pending), consumeErrors=False)

        def close_client(_: object) -> Deferred[None]:
            return deferToThreadPool(self._reactor, self.pool, self.client.close)

        def stop_pool(result: object) -> object:
            # Every worker is idle now: joining them does not block.
            self.pool.stop()
            return result

        closing: Deferred[None] = pending.addCallback(close_client)
        closing.addBoth(stop_pool)
        self._closing = closing
        return closing


def load_from_config(config: ListenerContext, prefix: str) -> RedisListener:
    """
    Make a :class:`RedisListener` from the ``url``, ``key``, ``timeout`` and ``threads``
    keys under ``prefix``. No connection is made until the first event.

    :raise ValueError: for an unknown key or a bad value.
    """
    check_settings(config, prefix, _KEYS)
    settings = config.settings
    url = settings.get(prefix + "url", "").strip() or DEFAULT_URL
    key = settings.get(prefix + "key", "").strip() or DEFAULT_KEY
    timeout_text = settings.get(prefix + "timeout", "").strip() or "5"
    threads_text = settings.get(prefix + "threads", "").strip() or "4"
    timeout = decimal(timeout_text) or 0.0
    if not 0 < timeout <= _MAX_TIMEOUT:
        raise ValueError(
            f"timeout = {timeout_text!r}: expected a number of seconds greater than 0 and at "
            f"most {_MAX_TIMEOUT:g}, in ASCII digits"
        )
    threads = whole(threads_text) or 0
    if not 1 <= threads <= _MAX_THREADS:
        raise ValueError(
            f"threads = {threads_text!r}: expected a whole number of at least 1 and at most "
            f"{_MAX_THREADS}, in ASCII digits"
        )
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    except ValueError as error:
        # redis-py's message does not repeat the URL, which may hold a password.
        raise ValueError(f"url: not a Redis URL ({error})") from None
    name = prefix.removeprefix("listener.").rstrip(".")
    return RedisListener(client, config.reactor, key, name=name, threads=threads)
