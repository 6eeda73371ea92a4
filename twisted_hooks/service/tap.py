"""
The twistd plugin's service: ``twist hooks`` and ``twistd -n hooks``.

:class:`Options` are the plugin's command-line options; :func:`makeService` reads the
configuration (:func:`~twisted_hooks.service.config.load_config`) and returns a
:class:`HooksService`, which, once started:

1. opens the store (creating and migrating the database);
2. builds the webhook application (:class:`~twisted_hooks.webhooks.Hooks`) on it, with
   the configured settings and static subscribers;
3. registers the application's dispatcher in a
   :class:`zope.interface.registry.Components` (:attr:`HooksService.registry`) and loads
   the configured listeners (:mod:`twisted_hooks.listeners`) with it;
4. starts the application (its scheduler claims due deliveries, those left by a previous
   run included);
5. listens, last, with the HTTP API (:mod:`twisted_hooks.service.api`).

Stopping (``SIGTERM``, ``SIGINT``) goes the other way: the API stops listening first (no
new intake), the attempts under way get ``[hooks] shutdown_timeout`` seconds to finish
and be recorded (those still running after that stay in the store under their lease and
are attempted again, with the same ids, after a restart), endpoint health is saved, the
listeners are closed and the store last. Nothing accepted is lost.

A failure to start (a database that cannot be opened, a port already taken, a listener
that cannot be loaded) is logged as one critical message saying what is wrong; the
process then stops with exit status 1.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
from collections.abc import Callable
from typing import Any

import attrs
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorCore
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.web.server import Site
from zope.interface.registry import Components

from twisted_hooks._version import __version__
from twisted_hooks.listeners import LoadedListeners, load_listeners
from twisted_hooks.registry import register_dispatcher
from twisted_hooks.service._database import (
    DATABASE_ENV,
    absolute_database,
    database_override,
    database_source,
    describe_database,
)
from twisted_hooks.service.config import (
    DEFAULT_DATABASE,
    DEFAULT_LISTEN,
    ConfigError,
    ServiceConfig,
    load_config,
)
from twisted_hooks.store import Store, StoreError, is_postgres_url, make_store, open_store
from twisted_hooks.store.postgres import NOTIFY_FALLBACK_REFRESH
from twisted_hooks.webhooks import Hooks

__all__ = [
    "LISTEN_FORMS",
    "HooksService",
    "Options",
    "exit_on_failure",
    "listen_endpoint",
    "makeService",
]

_log = Logger(namespace="twisted_hooks.service")


class Options(usage.Options):
    """
    The options of ``twist hooks`` / ``twistd -n hooks``.

    ``--listen`` and ``--database`` win over the configuration file and the environment
    (for the database, ``TWISTED_HOOKS_DATABASE`` comes next); ``--allow-network``
    (repeatable) adds to ``[validators] allowed_networks``. A bad option or configuration
    is a usage error, reported before anything starts.

    Once parsed, :attr:`service_config` holds the configuration, with the listen endpoint
    in its full form (:func:`listen_endpoint`) and an SQLite path made absolute;
    :attr:`database_source` says where the database was chosen.
    """

    synopsis = "[--listen=ENDPOINT] [--database=URL] [--config=FILE] [--allow-network=CIDR]"
    longdesc = (
        "Run the twisted_hooks webhook service: the HTTP API (bearer tokens made with "
        "'twisted-hooks token create'), and signed, retried, durable deliveries from the "
        "database. The database is --database, else $TWISTED_HOOKS_DATABASE, else "
        "[hooks] database of --config, else twisted_hooks.sqlite3 in the current "
        "directory; the service logs its absolute path at start."
    )
    optParameters = [
        [
            "listen",
            "l",
            None,
            f"where the API listens: PORT (on 127.0.0.1 only), tcp:PORT:interface=ADDR, "
            f"unix:PATH, ... (a strports description; default: [hooks] listen, else "
            f"{DEFAULT_LISTEN})",
        ],
        [
            "database",
            "d",
            None,
            f"the store: sqlite:PATH or postgresql://... (default: ${DATABASE_ENV}, else "
            f"[hooks] database, else {DEFAULT_DATABASE} in the current directory)",
        ],
        [
            "config",
            "c",
            None,
            "the configuration file (INI); without it, the defaults and the TWISTED_HOOKS_* "
            "environment variables",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["allow-network"] = []
        self.service_config: ServiceConfig | None = None
        self.database_source: str | None = None

    def opt_allow_network(self, cidr: str) -> None:
        """Deliver to this internal network (CIDR, e.g. 127.0.0.0/8); repeatable."""
        self["allow-network"].append(cidr)

    def postOptions(self) -> None:
        """Read and check the configuration now, so that errors are usage errors."""
        environ = os.environ
        try:
            config = load_config(
                self["config"],
                overrides={
                    "listen": self["listen"],
                    "database": database_override(self["database"], environ),
                    "allow_network": self["allow-network"] or None,
                },
            )
            _check_database_url(config.database)
            where = "--listen" if self["listen"] is not None else "[hooks] listen"
            listen = listen_endpoint(config.listen, where)
        except (ConfigError, ValueError) as error:
            raise usage.UsageError(str(error)) from None
        self.database_source = database_source(self["database"], environ, config)
        self.service_config = attrs.evolve(
            config, listen=listen, database=absolute_database(config.database)
        )


#: The endpoint forms ``--listen`` accepts, for messages.
LISTEN_FORMS = (
    "PORT (e.g. 8000: 127.0.0.1 only), tcp:PORT:interface=ADDR (0.0.0.0: every IPv4 "
    "interface), tcp6:PORT:interface=ADDR, unix:PATH, or "
    "ssl:PORT:privateKey=KEY.pem:certKey=CERT.pem"
)

_HOST_PORT = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|([0-9A-Za-z.-]+)):([0-9]+)")


def _host_port_hint(text: str) -> str:
    """For ``HOST:PORT`` (or ``[IPv6]:PORT``), the description meaning it; else ``""``."""
    found = _HOST_PORT.fullmatch(text)
    if found is None:
        return ""
    ipv6, host, port = found.groups()
    if ipv6 is not None:
        escaped = ipv6.replace(":", "\\:")
        return f" (for port {port} of {ipv6}: tcp6:{port}:interface={escaped})"
    if host == "localhost":
        return f" (for port {port} of localhost: tcp:{port}:interface=127.0.0.1)"
    if "." in host:  # an address or a host name, not a mistyped endpoint type
        return f" (for port {port} of {host}: tcp:{port}:interface={host})"
    return ""


def listen_endpoint(description: str, where: str = "--listen") -> str:
    """
    The strports description of the API's endpoint: a bare port number is
    ``tcp:PORT:interface=127.0.0.1`` (this machine only); any other text must be a
    description Twisted can parse, and is returned unchanged.

    Nothing is opened: a port already taken is found at start.

    :param description: the text given.
    :param where: where it was given, for the message (``--listen``, ``[hooks] listen``).
    :raise ValueError: in one line naming ``where``, the text, what is wrong and the forms
        accepted (:data:`LISTEN_FORMS`).
    """
    text = description.strip()
    if text.isascii() and text.isdigit():  # not "٣" or "²", which isdigit() also takes
        port = int(text)
        if port > 65535:
            raise ValueError(
                f"{where} {description!r}: the port must be 0 to 65535; use {LISTEN_FORMS}"
            )
        return f"tcp:{port}:interface=127.0.0.1"
    try:
        endpoint = serverFromString(None, text)  # type: ignore[no-untyped-call]
    except Exception as error:  # what Twisted's parsers raise varies: report any of it
        detail = str(error) or type(error).__name__
        raise ValueError(
            f"{where} {description!r} is not an endpoint description "
            f"({detail}){_host_port_hint(text)}; use {LISTEN_FORMS}"
        ) from None
    number = getattr(endpoint, "_port", None)
    if isinstance(number, int) and not 0 <= number <= 65535:
        raise ValueError(
            f"{where} {description!r}: the port must be 0 to 65535; use {LISTEN_FORMS}"
        )
    return text


def _check_database_url(url: str) -> None:
    """
    Refuse a store URL of no known form, without opening anything.

    :raise ValueError: with a message naming the forms accepted.
    """
    if url.startswith("sqlite:") and url[len("sqlite:") :].strip("/"):
        return
    if url == "memory:" or url.startswith(("postgresql://", "postgres://")):
        return
    make_store(url)  # raises the store's own message for what is left


def exit_on_failure(reactor: IReactorCore) -> Callable[[str], None]:
    """
    What the plugin does when the service cannot start: stop the reactor, and make the
    process exit with status 1 once twist/twistd have cleaned up (they return normally
    once the reactor stops, and would exit with 0).

    :param reactor: the reactor to stop.
    :return: the callback :class:`HooksService` calls with the reason.
    """

    def failed(reason: str) -> None:
        atexit.register(_exit, 1)
        if reactor.running:
            reactor.stop()
        else:
            reactor.callWhenRunning(reactor.stop)

    return failed


def _exit(status: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


StoreOpener = Callable[..., Deferred[Store]]


class HooksService(MultiService):
    """
    The service: store, webhook application, listeners and HTTP API, started in that
    order and stopped in the other.

    :param config: the configuration.
    :param reactor: the reactor.
    :param on_failure: called with a sentence when the service cannot start (after what
        was started is stopped again); the plugin passes :func:`exit_on_failure`.
    :param store_opener: opens the store (for tests); :func:`twisted_hooks.store.open_store`
        by default.
    :param database_source: where the database was chosen (``--database``, an
        environment variable, the configuration file, the default), for the start log.

    :ivar registry: the component registry in which the application's dispatcher is
        registered (unnamed, providing :class:`~twisted_hooks.IEventDispatcher`); listeners
        find it there.
    :ivar store: the open store, once started.
    :ivar hooks: the webhook application, once started.
    :ivar port: the API's listening port, once listening.
    :ivar api: the HTTP API (:class:`~twisted_hooks.service.api.HooksAPI`), once started;
        told the address it listens on, which starts the URLs of its answers when
        ``[hooks] base_url`` is not set.

    Wait for the start with :meth:`when_started`.
    """

    def __init__(
        self,
        config: ServiceConfig,
        reactor: Any,
        on_failure: Callable[[str], None] | None = None,
        store_opener: StoreOpener = open_store,
        database_source: str | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.config = config
        self._database_source = database_source
        self._reactor = reactor
        self._on_failure = on_failure
        self._open_store = store_opener
        self.registry = Components("twisted_hooks.service")
        self.store: Store | None = None
        self.hooks: Hooks | None = None
        self.port: IListeningPort | None = None
        self.api: Any = None
        self.listeners: LoadedListeners | None = None
        self._start_outcome: Failure | bool | None = False  # False: not known yet
        self._start_waiters: list[Deferred[None]] = []
        self._starting: Deferred[None] | None = None
        self._stopping: Deferred[None] | None = None

    # -- starting ----------------------------------------------------------------------------

    def startService(self) -> None:
        """Start in the background: store, application, listeners, then the API."""
        super().startService()  # type: ignore[no-untyped-call]
        self._starting = Deferred.fromCoroutine(self._start())
        self._starting.addCallbacks(self._started, self._start_failed)

    async def _start(self) -> None:
        config = self.config
        _log.info(
            "twisted_hooks {version} starting with the database {database} (from {source})",
            version=__version__,
            database=describe_database(config.database),
            source=self._database_source or "the configuration",
        )
        options: dict[str, Any] = {}
        if config.database != "memory:" and config.settings.poll_interval is not None:
            # Subscribers added by the twisted-hooks command (or another node) are seen:
            # on PostgreSQL at once (LISTEN/NOTIFY), the periodic reload only a fallback.
            refresh = config.settings.poll_interval
            if is_postgres_url(config.database):
                refresh = max(refresh, NOTIFY_FALLBACK_REFRESH)
            options["refresh_interval"] = refresh
        self.store = await self._open_store(config.database, self._reactor, **options)
        if not self.running:
            return
        store = self.store
        self.hooks = Hooks(
            self._reactor,
            settings=config.settings,
            subscribers=store.subscribers,
            deliveries=store.deliveries,
            health=store,
            static_subscribers=config.static_subscribers,
            default_secret=config.default_secret,
        )
        register_dispatcher(self.registry, self.hooks.dispatcher)
        self.listeners = self._load_listeners(self.hooks)
        # A child (found in the service tree), started now; stopped by _teardown, in order.
        self.hooks.setServiceParent(self)  # type: ignore[no-untyped-call]
        site = self._api_site(self.hooks, store)
        endpoint = serverFromString(self._reactor, config.listen)  # type: ignore[no-untyped-call]
        port = await endpoint.listen(site)
        if not self.running:
            await _stop_listening(port)
            return
        self.port = port
        self.api.listening_on(port.getHost())

    def _load_listeners(self, hooks: Hooks) -> LoadedListeners:
        return load_listeners(self.config, hooks.dispatcher, self.registry, self._reactor)

    def _api_site(self, hooks: Hooks, store: Store) -> Site:
        from twisted_hooks.interfaces import ITokenStore
        from twisted_hooks.service._limits import LimitedSite
        from twisted_hooks.service.api import HooksAPI

        limit = self.config.max_request_body
        api = HooksAPI(
            hooks, store, self._reactor, max_request_body=limit, base_url=self.config.base_url
        )
        self.api = api
        # Refuses oversized and unauthenticated bodies before reading them; the API checks
        # both again.
        return LimitedSite(
            api.resource(),
            ITokenStore(store),
            limit,
            reactor=self._reactor,
            observe=api.metrics.request,
        )

    def _started(self, _: None) -> None:
        if self.port is not None:
            address = self.port.getHost()
            host = getattr(address, "host", None)
            port = getattr(address, "port", None)
            where = f"http://{host}:{port}/" if port is not None else str(address)
            _log.info(
                "twisted_hooks is listening on {where} (database {database})",
                where=where,
                host=host,
                port=port,
                database=describe_database(self.config.database),
            )
        self._start_outcome = None
        self._tell_waiters()

    def _start_failed(self, failure: Failure) -> Deferred[None]:
        reason = describe_start_failure(failure, self.config)
        if _expected(failure):
            _log.critical("twisted_hooks cannot start: {reason}", reason=reason)
        else:  # a bug: keep the traceback
            _log.critical(
                "twisted_hooks cannot start: {reason}", reason=reason, log_failure=failure
            )
        self._start_outcome = failure
        self._tell_waiters()
        stopped = self._teardown()

        def report(_: object) -> None:
            if self._on_failure is not None:
                self._on_failure(reason)

        return stopped.addBoth(report)

    def when_started(self) -> Deferred[None]:
        """
        A Deferred firing ``None`` once the API listens, or failing with the reason the
        service could not start.
        """
        waiter: Deferred[None] = Deferred()
        self._start_waiters.append(waiter)
        if self._start_outcome is not False:
            self._tell_waiters()
        return waiter

    def _tell_waiters(self) -> None:
        waiters, self._start_waiters = self._start_waiters, []
        for waiter in waiters:
            if isinstance(self._start_outcome, Failure):
                waiter.errback(self._start_outcome)
            else:
                waiter.callback(None)

    # -- stopping ----------------------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        """
        Stop listening, let the attempts under way finish within ``shutdown_timeout``
        seconds, save endpoint health, close the listeners and the store.
        """
        if not self.running:
            return self._stopping if self._stopping is not None else _done()
        # Not MultiService.stopService: it stops the children all at once.
        self.running = False
        self._stopping = Deferred.fromCoroutine(self._stop())
        return self._stopping

    async def _stop(self) -> None:
        if self._starting is not None and not self._starting.called:
            # SIGTERM while starting: let the start finish (or fail), then stop.
            waiting: Deferred[None] = Deferred()
            self._starting.addBoth(lambda _: waiting.callback(None))
            await waiting
        await self._teardown()

    def _teardown(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._teardown_steps())

    async def _teardown_steps(self) -> None:
        port, self.port = self.port, None
        if port is not None:
            await _stop_listening(port)
            _log.info("stopped listening; new requests are refused")
        hooks, self.hooks = self.hooks, None
        if hooks is not None:
            await self._stop_hooks(hooks)
        listeners, self.listeners = self.listeners, None
        if listeners is not None:
            await listeners.close()
        store, self.store = self.store, None
        if store is not None:
            await store.close()
            _log.info("the store is closed")

    async def _stop_hooks(self, hooks: Hooks) -> None:
        if not hooks.running:
            return
        timeout = self.config.shutdown_timeout
        in_flight = hooks.scheduler.in_flight
        if in_flight:
            _log.info(
                "waiting up to {timeout:g} s for {count} attempt(s) under way",
                timeout=timeout,
                count=in_flight,
            )
        finished = await _within(hooks.stopService(), timeout, self._reactor)
        if not finished:
            hooks.scheduler.abandon()
            _log.warn(
                "{count} attempt(s) still under way after {timeout:g} s; they stay in the "
                "store under their lease and are attempted again after a restart",
                count=hooks.scheduler.in_flight,
                timeout=timeout,
            )
            await hooks.endpoint_health.save()


def _within(work: Deferred[Any], timeout: float, reactor: Any) -> Deferred[bool]:
    """
    Fire ``True`` when ``work`` has fired (its failure logged), or ``False`` after
    ``timeout`` seconds; ``work`` is not cancelled.
    """
    result: Deferred[bool] = Deferred()

    def finished(outcome: object) -> None:
        if isinstance(outcome, Failure):
            _log.failure("stopping the webhook application failed", outcome)
        if not result.called:
            timer.cancel()
            result.callback(True)

    def expired() -> None:
        if not result.called:
            result.callback(False)

    timer = reactor.callLater(timeout, expired)
    work.addBoth(finished)
    return result


def _stop_listening(port: IListeningPort) -> Deferred[None]:
    stopped = port.stopListening()
    return stopped if stopped is not None else _done()


def _done() -> Deferred[None]:
    d: Deferred[None] = Deferred()
    d.callback(None)
    return d


def _expected(failure: Failure) -> bool:
    """Whether ``failure`` is one a user can meet and fix (no traceback is shown)."""
    if failure.check(CannotListenError, ConfigError, ImportError, StoreError):
        return True
    return type(failure.value).__module__.startswith("twisted_hooks.store")


def describe_start_failure(failure: Failure, config: ServiceConfig) -> str:
    """
    Say why the service could not start, and what to do, in one sentence.

    :param failure: what went wrong.
    :param config: the configuration (for the endpoint and database named).
    """
    error = failure.value
    if isinstance(error, CannotListenError):
        return (
            f"cannot listen on {config.listen!r}: {error.socketError or error}; stop the "
            "program using that port, or choose another with --listen or [hooks] listen"
        )
    text = str(error) or type(error).__name__
    if isinstance(error, ImportError | ConfigError):
        return text
    if _expected(failure):  # the store's messages name the database
        return text
    return f"{type(error).__name__}: {text}"


def makeService(options: Options, reactor: IReactorCore | None = None) -> HooksService:
    """
    The service the options describe; the twistd plugin's entry point.

    :param options: parsed :class:`Options`.
    :param reactor: the reactor; the global one if ``None``.
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    assert reactor is not None
    config = options.service_config
    if config is None:
        options.postOptions()
        config = options.service_config
        assert config is not None
    return HooksService(
        config,
        reactor,
        on_failure=exit_on_failure(reactor),
        database_source=options.database_source,
    )
