"""
The PostgreSQL store: many processes, on many nodes, share one database.

Queries run on adbapi's threads with :mod:`psycopg` (version 3), autocommit off: each
interaction is one transaction. Due deliveries are claimed with ``FOR UPDATE SKIP
LOCKED``, so concurrent claimers never take the same delivery and never wait on each
other's rows.

Subscriber changes reach every process at once: each write of a subscriber sends, in its
transaction, a ``NOTIFY`` on :data:`SUBSCRIBER_CHANNEL` whose payload names the writing
store and the subscriber; every store listens (``LISTEN``) on one connection of its own,
in a thread of its own, and has its :class:`~twisted_hooks.store.cache.SubscriberCache`
read the subscribers named by the others (:meth:`SubscriberCache.changed
<twisted_hooks.store.cache.SubscriberCache.changed>`). When that connection is lost, the
store connects again (after 1 second, then up to 30 seconds apart), and reloads every
subscriber once it is back, since notifications sent meanwhile are lost.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from twisted_hooks.store._rows import DELIVERY_COLUMNS, Cursor
from twisted_hooks.store.base import StoreError
from twisted_hooks.store.cache import check_refresh_interval
from twisted_hooks.store.schema import CLAIMABLE, POSTGRESQL
from twisted_hooks.store.sql import SQLStore

__all__ = ["NOTIFY_FALLBACK_REFRESH", "SUBSCRIBER_CHANNEL", "PostgresStore", "describe_dsn"]

log = Logger()

#: The ``NOTIFY`` channel of subscriber changes. A payload is the announcing store's node
#: id, a space, and the id of the subscriber added, updated or removed.
SUBSCRIBER_CHANNEL = "twisted_hooks_subscribers"

#: The service's least ``refresh_interval`` on PostgreSQL, in seconds: changes arrive at once
#: through :data:`SUBSCRIBER_CHANNEL`, and the periodic reload of the whole subscriber table
#: is only the fallback for a notification lost while the listening connection was down.
NOTIFY_FALLBACK_REFRESH = 60.0

#: The longest the notification thread waits without looking whether it should stop.
_WAKE_EVERY = 1.0
#: The first delay before connecting again to hear notifications, and the longest.
_RECONNECT_FIRST = 1.0
_RECONNECT_MAX = 30.0


def describe_dsn(dsn: str) -> str:
    """``dsn`` for people: host, port, database and user, never the password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except Exception:
        return "an unreadable PostgreSQL URL"
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    user = params.get("user")
    database = params.get("dbname") or user or "(default database)"
    who = f" as {user}" if user else ""
    return f"PostgreSQL database {database!s} on {host!s}:{port!s}{who}"


def _scrub(text: str, dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    try:
        password = conninfo_to_dict(dsn).get("password")
    except Exception:
        return text.replace(dsn, "<PostgreSQL URL>")
    if password:
        text = text.replace(str(password), "***")
    return text


class PostgresStore(SQLStore):
    """
    A store in a PostgreSQL database, shared by every process given the same ``dsn``.

    :param dsn: a libpq connection string or URL (``postgresql://user@host:5432/db``).
        A ``connect_timeout`` of 10 seconds is added when it has none.
    :param reactor: the reactor (providing ``IReactorTime``, ``IReactorCore`` and
        ``IReactorThreads``); the global one if ``None``.
    :param min_connections: connections (and threads) kept open.
    :param max_connections: the most connections (and threads) used at once.
    :param refresh_interval: seconds between reloads of the subscriber cache, the
        fallback of the notifications (it catches a change whose notification was lost);
        see :class:`~twisted_hooks.store.sql.SQLStore`.
    :param listen: ``True`` (the default) to hear other processes' subscriber changes at
        once, on one more connection (``LISTEN``, which needs a session of its own: not
        through a pooler in transaction mode); ``False`` to see them only at refreshes.
        Changes made through this store are announced either way.

    :ivar node: this store's id in the notifications it sends.
    """

    dialect = POSTGRESQL
    placeholder = "%s"
    greatest = "GREATEST"
    lock_rows = " FOR UPDATE"

    def __init__(
        self,
        dsn: str,
        reactor: IReactorTime | None = None,
        min_connections: int = 1,
        max_connections: int = 5,
        refresh_interval: float | None = None,
        listen: bool = True,
    ) -> None:
        try:
            from psycopg.conninfo import conninfo_to_dict, make_conninfo
        except ImportError:
            raise StoreError(
                "a PostgreSQL database needs psycopg 3, which is not installed: "
                "pip install 'twisted_hooks[postgres]'"
            ) from None

        check_refresh_interval(refresh_interval)
        if reactor is None:
            from twisted.internet import reactor as default

            reactor = default
        assert reactor is not None
        if not 1 <= min_connections <= max_connections:
            raise ValueError(
                "connections must satisfy 1 <= min_connections <= max_connections, got "
                f"{min_connections!r} and {max_connections!r}"
            )
        self.description = describe_dsn(dsn)
        self._dsn = dsn
        try:
            if "connect_timeout" not in conninfo_to_dict(dsn):
                dsn = make_conninfo(dsn, connect_timeout=10)
        except Exception as error:
            raise ValueError(f"invalid PostgreSQL URL: {_scrub(str(error), self._dsn)}") from None
        self._pool_dsn = dsn
        self._listen = listen
        self._listener: _Listener | None = None
        self.node = uuid.uuid4().hex
        pool = ConnectionPool(  # type: ignore[no-untyped-call]
            "psycopg",
            dsn,
            autocommit=False,
            cp_min=min_connections,
            cp_max=max_connections,
            cp_reconnect=True,
            cp_reactor=reactor,
            cp_noisy=False,
        )
        super().__init__(pool, reactor, refresh_interval)

    def __repr__(self) -> str:
        return f"<PostgresStore {self.description}>"

    def claim_rows(
        self, cursor: Cursor, now: float, limit: int, lease_until: float
    ) -> list[dict[str, Any]]:
        """One statement: lock up to ``limit`` due rows, skipping those other claimers hold,
        lease them (adding one to their claim tokens), and return them ordered by the due
        time they had."""
        cursor.execute(
            "WITH picked AS ("
            f" SELECT id, due_at, seq FROM deliveries WHERE {CLAIMABLE} AND due_at <= %s"
            " ORDER BY due_at, seq LIMIT %s FOR UPDATE SKIP LOCKED)"
            " UPDATE deliveries AS d SET status = 'in_flight', due_at = %s,"
            " claim_token = COALESCE(d.claim_token, 0) + 1"
            " FROM picked WHERE d.id = picked.id"
            " RETURNING picked.due_at AS picked_due_at, picked.seq AS picked_seq,"
            f" {DELIVERY_COLUMNS.listed('d.')}",
            (now, limit, lease_until),
        )
        names = ("picked_due_at", "picked_seq", *DELIVERY_COLUMNS.names)
        claimed = []
        for row in cursor.fetchall():
            values = dict(zip(names, row, strict=True))
            order = (values.pop("picked_due_at"), values.pop("picked_seq"))
            claimed.append((order, values))
        claimed.sort(key=lambda pair: pair[0])
        return [values for _, values in claimed]

    # -- notifications -------------------------------------------------------------------

    def announce(self, cursor: Cursor, subscriber_id: str) -> None:
        """``NOTIFY`` on :data:`SUBSCRIBER_CHANNEL` that ``subscriber_id`` changed; sent by
        the server when (and only if) the transaction commits."""
        cursor.execute(
            "SELECT pg_notify(%s, %s)", (SUBSCRIBER_CHANNEL, f"{self.node} {subscriber_id}")
        )

    def listen(self) -> Deferred[None]:
        """``LISTEN`` on :data:`SUBSCRIBER_CHANNEL` (unless made with ``listen=False``);
        fires once the server has taken the ``LISTEN``, or fails with
        :class:`~twisted_hooks.store.StoreError` when the connection cannot be made."""
        if not self._listen or self._listener is not None:
            return succeed(None)
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        extra: dict[str, Any] = {"application_name": f"twisted_hooks-listen-{self.node[:12]}"}
        if "keepalives_idle" not in conninfo_to_dict(self._pool_dsn):
            # A connection that only waits must notice a dead peer by itself.
            extra.update(keepalives=1, keepalives_idle=30, keepalives_interval=10)
        self._listener = _Listener(
            make_conninfo(self._pool_dsn, **extra),
            self._reactor,
            self.node,
            self._heard,
            self._wake,
            self.refresh,
        )
        return self._listener.start().addErrback(self._opening_error)

    def stop_listening(self) -> Deferred[None]:
        """Stop hearing notifications and close their connection; fires once done."""
        listener, self._listener = self._listener, None
        if listener is None:
            return succeed(None)
        return listener.stop()

    def _heard(self, payload: str) -> None:
        node, _, subscriber_id = payload.partition(" ")
        if node != self.node and subscriber_id:
            self.subscribers.cache.changed([subscriber_id])

    def _wake(self, channel: str) -> Deferred[None]:
        d: Deferred[None] = self._pool.runOperation(  # type: ignore[no-untyped-call]
            "SELECT pg_notify(%s, '')", (channel,)
        )
        return d

    def describe_error(self, error: BaseException) -> str | None:
        """Name the database (never the password) when it cannot be reached."""
        import psycopg

        if not isinstance(error, psycopg.OperationalError):
            return None
        reason = _scrub(str(error).strip(), self._dsn)
        return f"cannot connect to the {self.description}: {reason}"


class _Listener:
    """
    Hears the notifications of subscriber changes: one connection listening (``LISTEN``) on
    :data:`SUBSCRIBER_CHANNEL`, in the one thread of a thread pool of its own, handing each
    payload to the reactor thread; connected again when lost.

    :param dsn: the connection string of the listening connection.
    :param reactor: the reactor (``IReactorTime``, ``IReactorCore``, ``IReactorThreads``).
    :param node: the store's node id (names the channel that wakes the thread to stop).
    :param heard: called on the reactor thread with each payload.
    :param wake: sends a notification on the channel named, through the store's pool.
    :param reconnected: called once a lost connection is back (the notifications sent
        meanwhile are lost: the store reloads its cache).
    """

    def __init__(
        self,
        dsn: str,
        reactor: IReactorTime,
        node: str,
        heard: Callable[[str], None],
        wake: Callable[[str], Deferred[None]],
        reconnected: Callable[[], Deferred[None]],
    ) -> None:
        self._dsn = dsn
        self._reactor: Any = reactor
        self._wake_channel = f"twisted_hooks_wake_{node}"
        self._heard = heard
        self._wake = wake
        self._reconnected = reconnected
        self._threads = ThreadPool(minthreads=0, maxthreads=1, name="twisted_hooks listen")
        self._stopping = threading.Event()
        self._session: Deferred[None] | None = None
        self._started: Deferred[None] | None = None
        self._connected_once = False
        self._retry: IDelayedCall | None = None
        self._delay = _RECONNECT_FIRST
        self._shutdown_trigger: Any = None
        self._stopped: list[Deferred[None]] = []

    def start(self) -> Deferred[None]:
        """Start the thread and connect; fires once ``LISTEN`` is in effect, or fails with
        the first connection's error."""
        self._started = Deferred()
        self._threads.start()
        self._shutdown_trigger = self._reactor.addSystemEventTrigger(
            "before", "shutdown", self._shutting_down
        )
        self._connect()
        return self._started

    def _shutting_down(self) -> Deferred[None]:
        self._shutdown_trigger = None
        return self.stop()

    def _connect(self) -> None:
        self._retry = None
        self._session = deferToThreadPool(self._reactor, self._threads, self._listen)
        self._session.addBoth(self._ended)

    def _listen(self) -> None:
        """The thread's work: connect, ``LISTEN``, hand over notifications until told to
        stop. Blocking."""
        import psycopg

        connection = psycopg.connect(self._dsn, autocommit=True)
        try:
            connection.execute(f"LISTEN {SUBSCRIBER_CHANNEL}")
            connection.execute(f"LISTEN {self._wake_channel}")
            self._reactor.callFromThread(self._listening)
            while not self._stopping.is_set():
                for notify in connection.notifies(timeout=_WAKE_EVERY):
                    if notify.channel == SUBSCRIBER_CHANNEL:
                        self._reactor.callFromThread(self._heard, notify.payload)
                    elif self._stopping.is_set():
                        break
        finally:
            connection.close()

    def _listening(self) -> None:
        self._delay = _RECONNECT_FIRST
        if not self._connected_once:
            self._connected_once = True
            started, self._started = self._started, None
            if started is not None:
                started.callback(None)
            return
        log.info("hearing subscriber changes from other processes again")

        def failed(failure: Failure) -> None:
            log.failure(
                "reloading the subscribers after the notifications came back failed",
                failure,
            )

        self._reconnected().addErrback(failed)

    def _ended(self, outcome: Failure | None) -> None:
        self._session = None
        if self._stopping.is_set():
            self._finish()
            return
        failure = (
            outcome
            if isinstance(outcome, Failure)
            else Failure(StoreError("the notification connection ended"))
        )
        if not self._connected_once:
            started, self._started = self._started, None
            self._stopping.set()
            self._finish()
            if started is not None:
                started.errback(failure)
            return
        delay = self._delay
        self._delay = min(delay * 2, _RECONNECT_MAX)
        log.warn(
            "lost the connection that hears subscriber changes from other processes"
            " ({error}); connecting again in {delay:g} s, and reloading the subscribers then",
            error=str(failure.value).strip() or type(failure.value).__name__,
            delay=delay,
        )
        self._retry = self._reactor.callLater(delay, self._connect)

    def stop(self) -> Deferred[None]:
        """Stop hearing: wake the thread, let it close its connection, stop the thread;
        fires once done."""
        self._stopping.set()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
            self._retry = None
        done: Deferred[None] = Deferred()
        if self._session is None:
            self._finish()
            done.callback(None)
            return done
        self._stopped.append(done)
        # The thread waits at most _WAKE_EVERY between looks at the flag; a notification on
        # its own channel makes it look at once.
        self._wake(self._wake_channel).addErrback(lambda _: None)
        return done

    def _finish(self) -> None:
        if self._shutdown_trigger is not None:
            self._reactor.removeSystemEventTrigger(self._shutdown_trigger)
            self._shutdown_trigger = None
        if self._threads.started:
            self._threads.stop()
        waiters, self._stopped = self._stopped, []
        for waiter in waiters:
            waiter.callback(None)
