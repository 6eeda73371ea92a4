"""
Tests for :mod:`twisted_hooks.listeners`: loading Kinto-style listeners onto a dispatcher,
the log listener, and the Redis listener (its thread pool, its failures, and a real Redis
server when ``TWISTED_HOOKS_TEST_REDIS`` names one).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import textwrap
import threading
import types
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python import threadable
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.registry import Components

from twisted_hooks.dispatcher import EventDispatcher
from twisted_hooks.listeners import (
    ListenerContext,
    LoadedListeners,
    event_record,
    load_listeners,
)
from twisted_hooks.listeners.log import LogListener
from twisted_hooks.listeners.redis import (
    DEFAULT_KEY,
    ListenerClosed,
    RedisListener,
)
from twisted_hooks.registry import get_dispatcher, register_dispatcher
from twisted_hooks.service.config import ConfigError, ServiceConfig, load_config
from twisted_hooks.webhooks import Attempt, Delivery, EncodingError, Subscriber, WebhookEvent
from twisted_hooks.webhooks.app import KEYWORDS, OPERATIONAL, WEBHOOK, OperationalEvent

#: The Redis server to test against, if any (``.ci/run`` sets it).
REDIS_URL = os.environ.get("TWISTED_HOOKS_TEST_REDIS")
NO_REDIS = (
    "TWISTED_HOOKS_TEST_REDIS is not set; set it to a Redis URL such as "
    "redis://127.0.0.1:6379/0 (as .ci/run does) to run the Redis listener against a server"
)

#: A Redis URL nothing listens on: connections are refused at once.
DEAD_REDIS = "redis://127.0.0.1:1/0"


class Sender:
    """A Django-like sender: its owner identity is its ``pk``."""

    pk = 42


def webhook_event(name: str = "order.created", data: object = None) -> WebhookEvent:
    return WebhookEvent(
        name=name,
        data={"order": 7} if data is None else data,
        sender=Sender(),
        id="evt-1",
        timestamp=1700000000.5,
    )


def operational_event() -> OperationalEvent:
    subscriber = Subscriber(
        event="order.*",
        url="https://hooks.example.com/secret-token",
        secret="s",
        id="00000000-0000-4000-8000-000000000001",
    )
    delivery = Delivery(
        id="dlv-1",
        event="order.created",
        event_id="evt-1",
        subscriber=subscriber,
        body=b"{}",
        created_at=100.0,
        next_attempt_at=100.0,
    )
    attempt = Attempt(
        delivery_id="dlv-1",
        number=3,
        started_at=200.0,
        duration=1.5,
        status_code=503,
        error_kind="status",
        error_message="503",
    )
    return OperationalEvent(
        name="webhook.delivery.failed", delivery=delivery, attempt=attempt, reason="503 answer"
    )


def fire(dispatcher: EventDispatcher, event: object) -> Deferred[Any]:
    """Fire ``event`` with the details the application uses."""
    if isinstance(event, OperationalEvent):
        return dispatcher.fire_event(event, name=event.name, kind=OPERATIONAL, owner=None)
    assert isinstance(event, WebhookEvent)
    return dispatcher.fire_event(event, name=event.name, kind=WEBHOOK, owner="42")


class ListenerTestMixin:
    """A started dispatcher registered in a registry, fake listener modules, config files."""

    mktemp: Callable[[], str]
    addCleanup: Callable[..., None]

    def set_up(self) -> None:
        self.dispatcher = EventDispatcher(KEYWORDS)
        self.dispatcher.start()
        self.registry = Components("test")
        register_dispatcher(self.registry, self.dispatcher)

    def module(self, **attributes: object) -> str:
        """A listener module made of ``attributes``, importable under the name returned."""
        name = f"fake_listener_{uuid.uuid4().hex}"
        module = types.ModuleType(name)
        for attribute, value in attributes.items():
            setattr(module, attribute, value)
        sys.modules[name] = module
        self.addCleanup(sys.modules.pop, name, None)
        return name

    def config(self, text: str) -> ServiceConfig:
        path = self.mktemp()
        Path(path).write_text(textwrap.dedent(text), encoding="utf-8")
        return load_config(path, {})


class LoadListenersTests(ListenerTestMixin, SynchronousTestCase):
    """load_listeners imports, calls load_from_config and registers handlers."""

    def setUp(self) -> None:
        self.set_up()
        self.clock = Clock()
        self.calls: list[object] = []
        self.contexts: list[tuple[ListenerContext, str]] = []

    def recording(self, context: ListenerContext, prefix: str) -> Callable[[object], str]:
        self.contexts.append((context, prefix))

        def handler(event: object) -> str:
            self.calls.append(event)
            return "seen"

        return handler

    def test_registered_in_phase_with_match_spec(self) -> None:
        """
        The handler runs in the section's phase, only for events matching its
        ``match.*`` keys and (by default) of kind ``webhook``; the id returned is its id.
        """
        module = self.module(load_from_config=self.recording)
        config = self.config(
            f"""
            [listener:audit]
            use = {module}
            phase = before
            match.name = order.created
            """
        )
        ids = load_listeners(config, self.dispatcher, self.registry, self.clock)
        self.assertEqual(len(ids), 1)
        event = webhook_event()
        result = self.successResultOf(fire(self.dispatcher, event))
        self.assertEqual(self.calls, [event])
        (outcome,) = result.for_phase("before")
        self.assertEqual(outcome.handler_id, ids[0])
        self.assertEqual(outcome.value, "seen")
        self.successResultOf(fire(self.dispatcher, webhook_event("order.paid")))
        self.successResultOf(
            self.dispatcher.fire_event(event, name="order.created", kind=OPERATIONAL, owner=None)
        )
        self.assertEqual(self.calls, [event])

    def test_default_phase_is_after(self) -> None:
        """Without ``phase``, the handler runs in ``after``, behind the webhook deliveries."""
        module = self.module(load_from_config=self.recording)
        config = self.config(f"[listener:audit]\nuse = {module}\n")
        ids = load_listeners(config, self.dispatcher, self.registry, self.clock)
        result = self.successResultOf(fire(self.dispatcher, webhook_event()))
        self.assertEqual([o.handler_id for o in result.for_phase("after")], list(ids))

    def test_every_kind(self) -> None:
        """An empty ``match.kind`` receives operational and webhook events alike."""
        module = self.module(load_from_config=self.recording)
        config = self.config(f"[listener:all]\nuse = {module}\nmatch.kind =\n")
        load_listeners(config, self.dispatcher, self.registry, self.clock)
        webhook, operational = webhook_event(), operational_event()
        self.successResultOf(fire(self.dispatcher, webhook))
        self.successResultOf(fire(self.dispatcher, operational))
        self.assertEqual(self.calls, [webhook, operational])

    def test_context_and_prefix(self) -> None:
        """
        load_from_config gets a ListenerContext (the flat settings, the registry, the
        reactor) and the prefix ``listener.NAME.``, and reads its keys Kinto's way.
        """
        module = self.module(load_from_config=self.recording)
        config = self.config(f"[listener:chat]\nuse = {module}\nchannel = #ops\n")
        load_listeners(config, self.dispatcher, self.registry, self.clock)
        ((context, prefix),) = self.contexts
        self.assertEqual(prefix, "listener.chat.")
        self.assertIs(context.settings, config.raw)
        self.assertIs(context.get_settings(), config.raw)
        self.assertEqual(context.get_settings()[prefix + "channel"], "#ops")
        self.assertEqual(context.settings["hooks.timeout"], "10")
        self.assertIs(context.registry, self.registry)
        self.assertIs(context.reactor, self.clock)

    def test_listener_finds_the_dispatcher_in_the_registry(self) -> None:
        """A listener looks the service's dispatcher up with get_dispatcher(registry)."""
        found: list[object] = []

        def load_from_config(context: ListenerContext, prefix: str) -> Callable[[object], None]:
            found.append(get_dispatcher(context.registry))
            return lambda event: None

        module = self.module(load_from_config=load_from_config)
        load_listeners(
            self.config(f"[listener:a]\nuse = {module}\n"),
            self.dispatcher,
            self.registry,
            self.clock,
        )
        self.assertEqual(found, [self.dispatcher])

    def test_handlers_are_held_strongly(self) -> None:
        """A handler nothing else refers to stays registered (``use_weakref=False``)."""

        class Handler:
            def __call__(self, event: object) -> str:
                return "alive"

        module = self.module(load_from_config=lambda context, prefix: Handler())
        ids = load_listeners(
            self.config(f"[listener:a]\nuse = {module}\n"),
            self.dispatcher,
            self.registry,
            self.clock,
        )
        ids.handlers.clear()
        gc.collect()
        result = self.successResultOf(fire(self.dispatcher, webhook_event()))
        self.assertEqual([o.value for o in result.outcomes], ["alive"])

    def test_several_listeners_in_order(self) -> None:
        """The ids and handlers come in the file's order, the handlers by name."""
        module = self.module(load_from_config=self.recording)
        config = self.config(
            f"[listener:b]\nuse = {module}\n[listener:a]\nuse = {module}\nphase = during\n"
        )
        ids = load_listeners(config, self.dispatcher, self.registry, self.clock)
        self.assertIsInstance(ids, list)
        self.assertEqual(len(ids), 2)
        self.assertEqual(list(ids.handlers), ["b", "a"])
        result = self.successResultOf(fire(self.dispatcher, webhook_event()))
        self.assertEqual([o.handler_id for o in result.for_phase("after")], [ids[0]])
        self.assertEqual([o.handler_id for o in result.for_phase("during")], [ids[1]])

    def test_global_reactor_by_default(self) -> None:
        """Without a reactor, listeners are given the global one."""
        from twisted.internet import reactor

        module = self.module(load_from_config=self.recording)
        load_listeners(
            self.config(f"[listener:a]\nuse = {module}\n"), self.dispatcher, self.registry
        )
        self.assertIs(self.contexts[0][0].reactor, reactor)

    def error(self, text: str) -> ConfigError:
        config = self.config(text)
        with self.assertRaises(ConfigError) as caught:
            load_listeners(config, self.dispatcher, self.registry, self.clock)
        self.assertEqual(caught.exception.section, "listener:audit")
        self.assertTrue(str(caught.exception).startswith(f"{config.path}: [listener:audit] "))
        return caught.exception

    def test_module_missing(self) -> None:
        """A module that cannot be imported is an error naming the section and the module."""
        error = self.error("[listener:audit]\nuse = no_such_module.listener\n")
        self.assertIn(
            "[listener:audit] (use = no_such_module.listener): the module cannot be imported "
            "(ModuleNotFoundError: No module named 'no_such_module'); install it, or correct "
            "the dotted name",
            str(error),
        )

    def test_module_failing_to_import(self) -> None:
        """A module raising on import is an error naming the section and the exception."""
        path = self.mktemp()
        Path(path).mkdir()
        name = f"broken_listener_{uuid.uuid4().hex}"
        Path(path, f"{name}.py").write_text("raise RuntimeError('no config')\n")
        sys.path.insert(0, path)
        self.addCleanup(sys.path.remove, path)
        self.addCleanup(sys.modules.pop, name, None)
        error = self.error(f"[listener:audit]\nuse = {name}\n")
        self.assertIn("the module cannot be imported (RuntimeError: no config)", str(error))

    def test_no_load_from_config(self) -> None:
        """A module without load_from_config is an error naming the section."""
        module = self.module()
        error = self.error(f"[listener:audit]\nuse = {module}\n")
        self.assertIn(
            f"(use = {module}): the module {module} has no load_from_config(config, prefix) "
            "function; point use at a listener module",
            str(error),
        )

    def test_load_from_config_raising(self) -> None:
        """load_from_config raising is an error naming the section, with the cause kept."""

        def load_from_config(context: ListenerContext, prefix: str) -> object:
            raise KeyError(prefix + "url")

        module = self.module(load_from_config=load_from_config)
        error = self.error(f"[listener:audit]\nuse = {module}\n")
        self.assertIn(
            f"(use = {module}): load_from_config failed: KeyError: 'listener.audit.url'",
            str(error),
        )
        self.assertIsInstance(error.__cause__, KeyError)

    def test_not_callable(self) -> None:
        """load_from_config returning something not callable is an error."""
        module = self.module(load_from_config=lambda context, prefix: 42)
        error = self.error(f"[listener:audit]\nuse = {module}\n")
        self.assertIn("load_from_config returned 42, which is not callable", str(error))

    def test_unknown_phase(self) -> None:
        """A phase the dispatcher does not have is an error naming the section and phases."""
        module = self.module(load_from_config=self.recording)
        error = self.error(f"[listener:audit]\nuse = {module}\nphase = later\n")
        self.assertIn(
            "the handler cannot be registered: unknown phase 'later'; this dispatcher's "
            "phases are ('before', 'during', 'after')",
            str(error),
        )

    def test_failure_unloads_the_loaded(self) -> None:
        """
        When one listener fails, those loaded before it are removed from the dispatcher
        and closed.
        """
        closed: list[str] = []

        class Closable:
            def __call__(self, event: object) -> None:
                pass

            def close(self) -> None:
                closed.append("first")

        good = self.module(load_from_config=lambda context, prefix: Closable())
        config = self.config(
            f"[listener:first]\nuse = {good}\n[listener:audit]\nuse = nowhere_at_all\n"
        )
        with self.assertRaises(ConfigError):
            load_listeners(config, self.dispatcher, self.registry, self.clock)
        self.assertEqual(len(self.dispatcher), 0)
        self.assertEqual(closed, ["first"])


class LoadedListenersTests(ListenerTestMixin, SynchronousTestCase):
    """LoadedListeners.close unloads."""

    def setUp(self) -> None:
        self.set_up()

    def test_close(self) -> None:
        """
        close() removes the handlers, calls every handler's close() (plain or returning a
        Deferred), logs a failing one without raising, and fires once all are done.
        """
        closing: Deferred[None] = Deferred()
        calls: list[str] = []

        class Plain:
            def __call__(self, event: object) -> None:
                pass

            def close(self) -> None:
                calls.append("plain")

        class Slow(Plain):
            def close(self) -> Deferred[None]:  # type: ignore[override]
                calls.append("slow")
                return closing

        class Broken(Plain):
            def close(self) -> Deferred[None]:  # type: ignore[override]
                return fail(RuntimeError("cannot close"))

        handlers = {"plain": Plain(), "slow": Slow(), "broken": Broken(), "bare": print}
        module = self.module(
            load_from_config=lambda context, prefix: handlers[prefix.split(".")[1]]
        )
        config = self.config("".join(f"[listener:{name}]\nuse = {module}\n" for name in handlers))
        ids = load_listeners(config, self.dispatcher, self.registry, Clock())
        self.assertEqual(len(self.dispatcher), 4)
        with capturedLogs() as events:
            d = ids.close()
            self.assertNoResult(d)
            closing.callback(None)
            self.assertIsNone(self.successResultOf(d))
        self.assertEqual(calls, ["plain", "slow"])
        self.assertEqual(len(self.dispatcher), 0)
        self.assertEqual(list(ids), [])
        self.assertEqual(ids.handlers, {})
        (logged,) = [e for e in events if e.get("listener") == "broken"]
        self.assertEqual(formatEvent(logged), "listener broken failed to close")
        self.flushLoggedErrors(RuntimeError)

    def test_close_nothing(self) -> None:
        """Closing no listeners fires at once."""
        self.assertIsNone(self.successResultOf(LoadedListeners(self.dispatcher).close()))


class EventRecordTests(SynchronousTestCase):
    """event_record: the JSON-ready form of events."""

    def test_webhook_event(self) -> None:
        """A webhook event gives its name, id, timestamp, sender identity and data."""
        self.assertEqual(
            event_record(webhook_event()),
            {
                "event": "order.created",
                "id": "evt-1",
                "timestamp": 1700000000.5,
                "sender": "42",
                "data": {"order": 7},
            },
        )

    def test_operational_event(self) -> None:
        """
        An operational event gives the published event's id, the attempt's end, and the
        delivery's facts, never the subscriber's URL.
        """
        record = event_record(operational_event())
        self.assertEqual(
            record,
            {
                "event": "webhook.delivery.failed",
                "id": "evt-1",
                "timestamp": 201.5,
                "sender": None,
                "data": {
                    "delivery_id": "dlv-1",
                    "subscriber_id": "00000000-0000-4000-8000-000000000001",
                    "event": "order.created",
                    "attempt": 3,
                    "status_code": 503,
                    "error_kind": "status",
                    "reason": "503 answer",
                },
            },
        )
        self.assertNotIn("secret-token", json.dumps(record))

    def test_other_objects(self) -> None:
        """Other objects give their name, or their type's name."""
        self.assertEqual(event_record(types.SimpleNamespace(name="x"))["event"], "x")
        self.assertEqual(
            event_record(3),
            {"event": "int", "id": None, "timestamp": None, "sender": None, "data": None},
        )


class LogListenerTests(ListenerTestMixin, SynchronousTestCase):
    """The built-in log listener."""

    def setUp(self) -> None:
        self.set_up()

    def load(self, extra: str = "") -> LoadedListeners:
        config = self.config(
            f"[listener:audit]\nuse = twisted_hooks.listeners.log\nmatch.kind =\n{extra}"
        )
        return load_listeners(config, self.dispatcher, self.registry, Clock())

    def test_logs_webhook_events(self) -> None:
        """
        Each webhook event is logged at ``info`` with stable fields (listener, event name,
        id and kind); the data is not logged.
        """
        self.load()
        with capturedLogs() as events:
            result = self.successResultOf(fire(self.dispatcher, webhook_event()))
        self.assertTrue(result.succeeded)
        (logged,) = [e for e in events if e["log_namespace"] == "twisted_hooks.listeners.log"]
        self.assertEqual(logged["log_level"], LogLevel.info)
        self.assertEqual(logged["listener"], "audit")
        self.assertEqual(logged["event_name"], "order.created")
        self.assertEqual(logged["event_id"], "evt-1")
        self.assertEqual(logged["event_kind"], "webhook")
        self.assertEqual(formatEvent(logged), "event order.created (webhook) evt-1")
        self.assertNotIn("data", logged)

    def test_logs_operational_events(self) -> None:
        """An operational event is logged with its delivery id and reason."""
        self.load()
        with capturedLogs() as events:
            self.successResultOf(fire(self.dispatcher, operational_event()))
        (logged,) = [e for e in events if e["log_namespace"] == "twisted_hooks.listeners.log"]
        self.assertEqual(logged["event_kind"], "operational")
        self.assertEqual(logged["delivery_id"], "dlv-1")
        self.assertEqual(logged["event_id"], "evt-1")
        self.assertEqual(
            formatEvent(logged),
            "event webhook.delivery.failed (operational) for delivery dlv-1: 503 answer",
        )

    def test_level(self) -> None:
        """``level`` sets the log level, in any case; ``warning`` is ``warn``."""
        for text, level in [("debug", LogLevel.debug), ("WARNING", LogLevel.warn)]:
            ids = self.load(f"level = {text}\n")
            listener = ids.handlers["audit"]
            assert isinstance(listener, LogListener)
            self.assertEqual(listener.level, level)
            self.successResultOf(ids.close())

    def test_bad_level(self) -> None:
        """An unknown level is an error naming the section and the levels."""
        with self.assertRaises(ConfigError) as caught:
            self.load("level = loud\n")
        self.assertIn(
            "[listener:audit] (use = twisted_hooks.listeners.log): load_from_config failed: "
            "ValueError: level = 'loud': expected one of debug, info, warn, warning, error, "
            "critical",
            str(caught.exception),
        )

    def test_unknown_key(self) -> None:
        """A key the log listener does not know is an error, not ignored."""
        with self.assertRaises(ConfigError) as caught:
            self.load("levle = debug\n")
        self.assertIn(
            "ValueError: unknown key 'levle'; this listener's keys are level",
            str(caught.exception),
        )

    def test_other_events(self) -> None:
        """An object that is not one of the application's events is logged by its type."""
        listener = LogListener("x")
        with capturedLogs() as events:
            listener(3)
        self.assertEqual(formatEvent(events[0]), "event int (int) None")


class FakeReactor:
    """The real reactor's thread calls, with system event triggers recorded, not added."""

    def __init__(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor
        self.triggers: dict[object, tuple[str, str, Callable[[], object]]] = {}

    def callFromThread(self, f: Callable[..., object], *args: object, **kw: object) -> None:
        self.reactor.callFromThread(f, *args, **kw)

    def addSystemEventTrigger(self, phase: str, event: str, f: Callable[[], object]) -> object:
        token = object()
        self.triggers[token] = (phase, event, f)
        return token

    def removeSystemEventTrigger(self, token: object) -> None:
        del self.triggers[token]


class FakeClient:
    """A blocking Redis client in memory, noting the thread of each call."""

    def __init__(self) -> None:
        self.lists: dict[str, list[bytes]] = {}
        self.in_reactor_thread: list[bool] = []
        self.gate = threading.Event()
        self.gate.set()
        self.closed_in_reactor_thread: bool | None = None

    def lpush(self, name: str, *values: bytes) -> int:
        self.in_reactor_thread.append(threadable.isInIOThread())
        self.gate.wait(10)
        items = self.lists.setdefault(name, [])
        for value in values:
            items.insert(0, value)
        return len(items)

    def close(self) -> None:
        self.closed_in_reactor_thread = threadable.isInIOThread()


class RedisListenerConfigTests(ListenerTestMixin, SynchronousTestCase):
    """load_from_config of the Redis listener; no connection is made."""

    def setUp(self) -> None:
        self.set_up()
        self.reactor = FakeReactor()

    def load(self, extra: str = "") -> RedisListener:
        config = self.config(f"[listener:queue]\nuse = twisted_hooks.listeners.redis\n{extra}")
        ids = load_listeners(config, self.dispatcher, self.registry, self.reactor)
        listener = ids.handlers["queue"]
        assert isinstance(listener, RedisListener)
        self.addCleanup(listener.pool.stop)
        return listener

    def test_defaults(self) -> None:
        """
        By default: ``redis://127.0.0.1:6379/0``, the list ``twisted_hooks.events``, 5 s
        timeouts, 4 threads, and a close before the reactor shuts down.
        """
        listener = self.load()
        assert isinstance(listener.client, redis.Redis)
        kwargs = listener.client.connection_pool.connection_kwargs
        self.assertEqual((kwargs["host"], kwargs["port"], kwargs["db"]), ("127.0.0.1", 6379, 0))
        self.assertEqual(kwargs["socket_timeout"], 5.0)
        self.assertEqual(kwargs["socket_connect_timeout"], 5.0)
        self.assertEqual(listener.key, DEFAULT_KEY)
        self.assertEqual(listener.key, "twisted_hooks.events")
        self.assertEqual(listener.pool.max, 4)
        self.assertEqual(listener.pool.name, "twisted_hooks.listeners.redis queue")
        (trigger,) = self.reactor.triggers.values()
        self.assertEqual(trigger[:2], ("before", "shutdown"))

    def test_settings(self) -> None:
        """``url``, ``key``, ``timeout`` and ``threads`` are read."""
        listener = self.load(
            "url = redis://localhost:6390/3\nkey = my.events\ntimeout = 0.5\nthreads = 2\n"
        )
        assert isinstance(listener.client, redis.Redis)
        kwargs = listener.client.connection_pool.connection_kwargs
        self.assertEqual((kwargs["host"], kwargs["port"], kwargs["db"]), ("localhost", 6390, 3))
        self.assertEqual(kwargs["socket_timeout"], 0.5)
        self.assertEqual(listener.key, "my.events")
        self.assertEqual(listener.pool.max, 2)

    def test_errors(self) -> None:
        """
        A bad URL (its password not repeated), timeout or thread count (out of range, or not
        in ASCII digits), or an unknown key, is an error naming the section.
        """
        cases = [
            ("url = http://user:hunter2@host/\n", "url: not a Redis URL ("),
            ("timeout = 0\n", "timeout = '0': expected a number of seconds greater than 0"),
            ("timeout = soon\n", "timeout = 'soon': expected a number of seconds"),
            ("threads = 0\n", "threads = '0': expected a whole number of at least 1"),
            ("timeout = 1e300\n", "timeout = '1e300': expected a number of seconds"),
            ("timeout = \u0663\n", "timeout = '\u0663': expected a number of seconds"),
            ("timeout = inf\n", "timeout = 'inf': expected a number of seconds"),
            ("threads = \u0663\n", "threads = '\u0663': expected a whole number"),
            ("threads = 1_0\n", "threads = '1_0': expected a whole number"),
            ("threads = 100000\n", "threads = '100000': expected a whole number"),
            (
                "host = x\n",
                "unknown key 'host'; this listener's keys are url, key, timeout, threads",
            ),
        ]
        for extra, expected in cases:
            with self.assertRaises(ConfigError) as caught:
                self.load(extra)
            message = str(caught.exception)
            self.assertIn(
                "[listener:queue] (use = twisted_hooks.listeners.redis): load_from_config "
                "failed: ValueError: ",
                message,
            )
            self.assertIn(expected, message)
            self.assertNotIn("hunter2", message)
        self.assertEqual(self.reactor.triggers, {})


class RedisListenerThreadTests(TestCase):
    """The Redis listener's thread pool, on the real reactor, with an in-memory client."""

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.client = FakeClient()
        self.listener = RedisListener(self.client, self.reactor, "events", name="t")
        self.addCleanup(self.listener.close)

    async def test_push_runs_off_the_reactor_thread(self) -> None:
        """The blocking client is only called from the pool's threads, never the reactor's."""
        self.assertTrue(threadable.isInIOThread())
        length = await self.listener(webhook_event())
        self.assertEqual(length, 1)
        self.assertEqual(self.client.in_reactor_thread, [False])
        self.assertEqual(
            [json.loads(v) for v in self.client.lists["events"]], [event_record(webhook_event())]
        )

    async def test_reactor_runs_while_a_push_blocks(self) -> None:
        """While a push is blocked in the client, the reactor keeps running."""
        self.client.gate.clear()
        pushed = self.listener(webhook_event())
        ticked = await deferToThread(lambda: "reactor alive")
        self.assertEqual(ticked, "reactor alive")
        self.assertNoResult(pushed)
        self.client.gate.set()
        self.assertEqual(await pushed, 1)

    async def test_close_waits_then_stops_the_pool(self) -> None:
        """
        close() refuses new events, lets the push under way finish, closes the client in
        the pool, then stops the pool; closing again gives the same result.
        """
        self.client.gate.clear()
        pushed = self.listener(webhook_event())
        closing = self.listener.close()
        self.assertTrue(self.listener.closed)
        self.assertIs(self.listener.close(), closing)
        self.failureResultOf(self.listener(webhook_event()), ListenerClosed)
        self.assertNoResult(closing)
        self.client.gate.set()
        self.assertEqual(await pushed, 1)
        await closing
        self.assertFalse(self.listener.pool.started)
        self.assertTrue(self.listener.pool.joined)
        self.assertIs(self.client.closed_in_reactor_thread, False)
        self.assertEqual(self.reactor.triggers, {})

    async def test_shutdown_closes(self) -> None:
        """The trigger registered before reactor shutdown closes the listener."""
        ((phase, event, trigger),) = self.reactor.triggers.values()
        self.assertEqual((phase, event), ("before", "shutdown"))
        await trigger()  # type: ignore[misc]
        self.assertTrue(self.listener.closed)
        self.assertTrue(self.listener.pool.joined)

    def test_unencodable_data(self) -> None:
        """Data JSON cannot hold fails the handler at once; nothing reaches the client."""
        self.failureResultOf(self.listener(webhook_event(data={"x": object()})), EncodingError)
        self.assertEqual(self.client.in_reactor_thread, [])

    async def test_failure_is_recorded_and_isolated(self) -> None:
        """
        A Redis that refuses connections fails the listener's handler: the dispatcher
        records it in the FireResult and logs it, and another handler of the same phase
        succeeds.
        """
        dispatcher = EventDispatcher(KEYWORDS)
        dispatcher.start()
        registry = Components("test")
        register_dispatcher(registry, dispatcher)
        path = self.mktemp()
        Path(path).write_text(
            f"[listener:queue]\nuse = twisted_hooks.listeners.redis\nurl = {DEAD_REDIS}\n"
            "timeout = 2\n"
        )
        ids = load_listeners(load_config(path, {}), dispatcher, registry, self.reactor)
        self.addCleanup(ids.close)
        other_id = await dispatcher.add_event_handler(
            lambda e: "other", "after", use_weakref=False, kind=WEBHOOK
        )
        with capturedLogs() as events:
            result = await fire(dispatcher, webhook_event())
        redis_outcome = result.for_handler(ids[0])
        assert redis_outcome is not None and redis_outcome.failure is not None
        self.assertTrue(redis_outcome.failure.check(redis.exceptions.ConnectionError))
        other = result.for_handler(other_id)
        assert other is not None
        self.assertEqual(other.value, "other")
        self.assertFalse(result.succeeded)
        (logged,) = [e for e in events if e.get("log_failure") is not None]
        self.assertEqual(logged["handler"], "twisted_hooks.listeners.redis.RedisListener")
        self.assertIn("failed in phase after", formatEvent(logged))
        self.flushLoggedErrors(redis.exceptions.ConnectionError)


class RedisServerTests(TestCase):
    """The Redis listener against a real Redis server (``TWISTED_HOOKS_TEST_REDIS``)."""

    if REDIS_URL is None:
        skip = NO_REDIS

    async def setUp(self) -> None:  # type: ignore[override]
        assert REDIS_URL is not None
        self.url = REDIS_URL
        self.redis = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5, socket_timeout=5)
        self.addCleanup(self.redis.close)
        try:
            await deferToThread(self.redis.ping)
        except redis.exceptions.RedisError as error:
            self.fail(
                f"TWISTED_HOOKS_TEST_REDIS={REDIS_URL} cannot be reached ({error}); start "
                "Redis there, or unset the variable to skip these tests"
            )
        self.key = f"twisted_hooks.test.{uuid.uuid4().hex}"
        self.addCleanup(lambda: deferToThread(self.redis.delete, self.key))
        self.dispatcher = EventDispatcher(KEYWORDS)
        self.dispatcher.start()
        self.registry = Components("test")
        register_dispatcher(self.registry, self.dispatcher)

    def load(self) -> LoadedListeners:
        from twisted.internet import reactor

        path = self.mktemp()
        Path(path).write_text(
            f"[listener:queue]\nuse = twisted_hooks.listeners.redis\nurl = {self.url}\n"
            f"key = {self.key}\n"
        )
        ids = load_listeners(load_config(path, {}), self.dispatcher, self.registry, reactor)
        self.addCleanup(ids.close)
        return ids

    async def lrange(self) -> list[object]:
        values = await deferToThread(self.redis.lrange, self.key, 0, -1)
        return [json.loads(v) for v in values]

    async def test_events_are_pushed(self) -> None:
        """
        Events fired through the dispatcher on the real reactor land on the list as JSON,
        newest first; the handler's value is the list's length.
        """
        ids = self.load()
        first = await fire(self.dispatcher, webhook_event())
        second_event = WebhookEvent("order.paid", {"total": "9.90"}, None, "evt-2", 1.0)
        second = await fire(self.dispatcher, second_event)
        self.assertTrue(first.succeeded and second.succeeded)
        self.assertEqual(first.for_handler(ids[0]).value, 1)  # type: ignore[union-attr]
        self.assertEqual(second.for_handler(ids[0]).value, 2)  # type: ignore[union-attr]
        self.assertEqual(
            await self.lrange(),
            [
                {
                    "event": "order.paid",
                    "id": "evt-2",
                    "timestamp": 1.0,
                    "sender": None,
                    "data": {"total": "9.90"},
                },
                {
                    "event": "order.created",
                    "id": "evt-1",
                    "timestamp": 1700000000.5,
                    "sender": "42",
                    "data": {"order": 7},
                },
            ],
        )

    async def test_redis_is_called_off_the_reactor_thread(self) -> None:
        """
        The real client, wrapped to note its thread, is called from the pool, not the
        reactor thread, and the push reaches the server.
        """
        ids = self.load()
        listener = ids.handlers["queue"]
        assert isinstance(listener, RedisListener)
        real = listener.client
        threads: list[bool] = []

        class Spy:
            def lpush(self, name: str, *values: bytes) -> Any:
                threads.append(threadable.isInIOThread())
                return real.lpush(name, *values)

            def close(self) -> None:
                real.close()

        listener.client = Spy()
        self.assertTrue(threadable.isInIOThread())
        result = await fire(self.dispatcher, webhook_event())
        self.assertTrue(result.succeeded)
        self.assertEqual(threads, [False])
        self.assertEqual(await self.lrange(), [event_record(webhook_event())])

    async def test_operational_events(self) -> None:
        """With ``match.kind = operational``-style specs, operational events are pushed too."""
        ids = self.load()
        listener = ids.handlers["queue"]
        await listener(operational_event())  # type: ignore[misc]
        self.assertEqual(await self.lrange(), [event_record(operational_event())])

    async def test_close_stops_the_pool(self) -> None:
        """Closing the loaded listeners stops the Redis listener's pool."""
        ids = self.load()
        listener = ids.handlers["queue"]
        assert isinstance(listener, RedisListener)
        await fire(self.dispatcher, webhook_event())
        await ids.close()
        self.assertTrue(listener.pool.joined)
        self.assertFalse(listener.pool.started)
        self.assertEqual(len(self.dispatcher), 0)
