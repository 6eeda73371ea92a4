"""
Tests for :mod:`twisted_hooks.sync`, the blocking facade, against a reactor running in
crochet's thread.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import crochet
import pytest
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import deferLater
from twisted.python import threadable
from zope.interface import implementer

from twisted_hooks import EventDispatcher, FireResult, IEventDispatcher
from twisted_hooks.sync import (
    DEFAULT_TIMEOUT,
    BlockingDispatcher,
    NotSetUpError,
    ReactorStoppedError,
    ReactorThreadError,
    SyncTimeoutError,
    blocking_call,
)

ROOT = Path(__file__).resolve().parents[2]


class Unreferenceable:
    """A callable that cannot be referenced weakly."""

    __slots__ = ()

    def __call__(self, event: object) -> None:
        pass


def in_reactor_thread() -> bool:
    return bool(threadable.isInIOThread())


@pytest.fixture
def facade() -> BlockingDispatcher:
    return BlockingDispatcher.create(["event_type", "user"], timeout=5.0, start=True)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# -- construction ---------------------------------------------------------------------


def test_create_builds_in_reactor() -> None:
    """create() builds an EventDispatcher, stopped unless asked, with the given options."""
    facade = BlockingDispatcher.create(["role"], phases=("one", "two"), timeout=2.5)
    assert isinstance(facade.dispatcher, EventDispatcher)
    assert facade.dispatcher.phases == ("one", "two")
    assert facade.timeout == 2.5
    assert not facade.running


def test_create_errors_raised_as_is() -> None:
    """create() raises the dispatcher's own ValueError/TypeError in the caller's thread."""
    with pytest.raises(ValueError, match="at least one phase"):
        BlockingDispatcher.create(["role"], phases=())
    with pytest.raises(TypeError, match="single string"):
        BlockingDispatcher.create("role")


def test_wraps_existing_dispatcher() -> None:
    """A dispatcher built elsewhere is wrapped as it is, with the default timeout."""
    dispatcher = EventDispatcher(["role"])
    facade = BlockingDispatcher(dispatcher)
    assert facade.dispatcher is dispatcher
    assert facade.timeout == DEFAULT_TIMEOUT


def test_not_a_dispatcher() -> None:
    """Wrapping something that does not provide IEventDispatcher is a TypeError."""
    with pytest.raises(TypeError, match="IEventDispatcher"):
        BlockingDispatcher(object())  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan")])
def test_bad_default_timeout(timeout: float) -> None:
    """A default timeout that is not a positive finite number is a ValueError."""
    with pytest.raises(ValueError, match="timeout"):
        BlockingDispatcher(EventDispatcher(["role"]), timeout=timeout)


def test_bad_call_timeout(facade: BlockingDispatcher) -> None:
    """A per-call timeout that is not a number is a TypeError, raised before any work."""
    with pytest.raises(TypeError, match="timeout"):
        facade.fire_event("e", timeout="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        facade.fire_event("e", timeout=0)


# -- lifecycle ------------------------------------------------------------------------


def test_start_and_stop() -> None:
    """start() and stop() run in the reactor and change running; stopped fires drop."""
    facade = BlockingDispatcher.create(["user"])
    assert not facade.running
    facade.start()
    assert facade.running
    facade.stop()
    assert not facade.running
    assert facade.fire_event("e").dropped


def test_stop_waits_for_fires_in_flight(facade: BlockingDispatcher) -> None:
    """stop() returns only once a fire in flight has finished."""

    def slow(event: object) -> Deferred[None]:
        return deferLater(reactor, 0.3, lambda: None)

    facade.add_event_handler(slow, "during", use_weakref=False)
    results: list[FireResult] = []
    firing = threading.Thread(target=lambda: results.append(facade.fire_event("e")))
    firing.start()
    assert wait_until(lambda: blocking_call(lambda: facade.dispatcher.in_flight) == 1)
    facade.stop()
    assert blocking_call(lambda: facade.dispatcher.in_flight) == 0
    firing.join(5)
    assert results and results[0].succeeded


def test_stop_timeout(facade: BlockingDispatcher) -> None:
    """
    stop() with a fire stuck in flight raises SyncTimeoutError naming stop(); the
    dispatcher is stopped all the same and the fire goes on.
    """
    hung: Deferred[None] = Deferred()
    facade.add_event_handler(lambda event: hung, "during", use_weakref=False)
    results: list[FireResult] = []
    firing = threading.Thread(target=lambda: results.append(facade.fire_event("e")))
    firing.start()
    assert wait_until(lambda: blocking_call(lambda: facade.dispatcher.in_flight) == 1)
    with pytest.raises(SyncTimeoutError, match=r"stop\(\) did not complete within 0.1 seconds"):
        facade.stop(timeout=0.1)
    assert not facade.running
    blocking_call(hung.callback, None)
    firing.join(5)
    assert results and results[0].succeeded


# -- add / remove / fire --------------------------------------------------------------


def test_add_fire_remove(facade: BlockingDispatcher) -> None:
    """A handler added through the facade is called by a fire, and not after removal."""
    calls: list[object] = []

    def handler(event: object) -> str:
        calls.append(event)
        return "seen"

    handler_id = facade.add_event_handler(handler, "during", event_type="created")
    assert isinstance(handler_id, int)
    result = facade.fire_event("first", event_type="created", user="bob")
    assert calls == ["first"]
    assert result.succeeded
    outcome = result.for_handler(handler_id)
    assert outcome is not None and outcome.value == "seen" and outcome.phase == "during"
    assert facade.fire_event("other", event_type="deleted").outcomes == ()
    assert facade.remove_event_handler(handler_id) is None  # type: ignore[func-returns-value]
    facade.fire_event("second", event_type="created")
    assert calls == ["first"]


def test_handlers_called_in_reactor_thread(facade: BlockingDispatcher) -> None:
    """Handlers added and fired through the facade run in the reactor thread."""
    threads: list[bool] = []

    def handler(event: object) -> None:
        threads.append(in_reactor_thread())

    facade.add_event_handler(handler, "during")
    facade.fire_event("e")
    assert threads == [True]
    assert not in_reactor_thread()


def test_times(facade: BlockingDispatcher) -> None:
    """times= is passed on: the handler goes after that many calls."""
    calls: list[object] = []

    def handler(event: object) -> None:
        calls.append(event)

    handler_id = facade.add_event_handler(handler, "during", times=2)
    for n in range(3):
        facade.fire_event(n)
    assert calls == [0, 1]
    with pytest.raises(KeyError):
        facade.remove_event_handler(handler_id)


def test_weakref_default(facade: BlockingDispatcher) -> None:
    """Handlers are held weakly by default; use_weakref=False keeps a lambda alive."""
    calls: list[str] = []
    facade.add_event_handler(lambda event: calls.append("weak"), "during")
    facade.add_event_handler(lambda event: calls.append("strong"), "during", use_weakref=False)
    gc.collect()
    facade.fire_event("e")
    assert calls == ["strong"]


def test_match_spec_keywords_named_like_facade_parameters() -> None:
    """Details and match specs are passed on whole, whatever their names."""
    facade = BlockingDispatcher.create(["operation", "function", "args"], start=True)
    calls: list[object] = []

    def handler(event: object) -> None:
        calls.append(event)

    facade.add_event_handler(handler, "during", operation="x", function="y", args="z")
    facade.fire_event("hit", operation="x", function="y", args="z")
    facade.fire_event("miss", operation="x", function="n", args="z")
    assert calls == ["hit"]


# -- errors raised as they are --------------------------------------------------------


def test_add_unknown_phase(facade: BlockingDispatcher) -> None:
    """An unknown phase is the dispatcher's ValueError, in the caller's thread."""
    with pytest.raises(ValueError, match="unknown phase 'nope'"):
        facade.add_event_handler(print, "nope", use_weakref=False)


def test_add_unknown_keyword(facade: BlockingDispatcher) -> None:
    """An unknown match-spec keyword is the dispatcher's ValueError."""
    with pytest.raises(ValueError, match="unknown match-spec keyword"):
        facade.add_event_handler(print, "during", use_weakref=False, colour="red")


def test_add_unhashable(facade: BlockingDispatcher) -> None:
    """An unhashable spec value is the dispatcher's TypeError."""
    with pytest.raises(TypeError, match="hashable"):
        facade.add_event_handler(print, "during", use_weakref=False, user=["bob"])


def test_add_not_weakly_referenceable(facade: BlockingDispatcher) -> None:
    """A built-in held weakly is the dispatcher's TypeError, which says what to do."""
    with pytest.raises(TypeError, match="use_weakref=False"):
        facade.add_event_handler(Unreferenceable(), "during")


def test_remove_unknown(facade: BlockingDispatcher) -> None:
    """Removing an unknown id is the dispatcher's KeyError."""
    with pytest.raises(KeyError, match="12345"):
        facade.remove_event_handler(12345)


def test_fire_unknown_detail(facade: BlockingDispatcher) -> None:
    """A detail keyword that is not allowed is the dispatcher's ValueError."""
    with pytest.raises(ValueError, match="unknown detail keyword"):
        facade.fire_event("e", colour="red")


def test_handler_failure_in_result(facade: BlockingDispatcher) -> None:
    """A failing handler does not make fire_event raise: it is in the result."""

    def broken(event: object) -> None:
        raise ZeroDivisionError("boom")

    facade.add_event_handler(broken, "during")
    result = facade.fire_event("e")
    assert not result.succeeded
    [outcome] = result.failures
    assert outcome.failure is not None and outcome.failure.check(ZeroDivisionError)


# -- async handlers -------------------------------------------------------------------


def test_deferred_handler(facade: BlockingDispatcher) -> None:
    """fire_event waits for a handler's Deferred and returns what it fired."""

    def later(event: object) -> Deferred[str]:
        return deferLater(reactor, 0.05, lambda: f"late {event}")

    handler_id = facade.add_event_handler(later, "during")
    outcome = facade.fire_event("e").for_handler(handler_id)
    assert outcome is not None and outcome.value == "late e"


def test_async_def_handler(facade: BlockingDispatcher) -> None:
    """An async def handler is awaited, and phases run in order around it."""
    order: list[str] = []

    async def during(event: object) -> str:
        order.append("during started")
        await deferLater(reactor, 0.05, lambda: None)
        order.append("during finished")
        return "done"

    def after(event: object) -> None:
        order.append("after")

    during_id = facade.add_event_handler(during, "during")
    facade.add_event_handler(after, "after")
    result = facade.fire_event("e")
    assert order == ["during started", "during finished", "after"]
    outcome = result.for_handler(during_id)
    assert outcome is not None and outcome.value == "done"


# -- timeouts -------------------------------------------------------------------------


def test_fire_timeout_cancels(facade: BlockingDispatcher) -> None:
    """
    A handler whose Deferred never fires makes fire_event raise SyncTimeoutError (a
    TimeoutError saying what and how long) and cancels that Deferred; no later phase runs.
    """
    cancelled = threading.Event()
    after_calls: list[object] = []

    def never(event: object) -> Deferred[None]:
        return Deferred(lambda d: cancelled.set())

    def after(event: object) -> None:
        after_calls.append(event)

    facade.add_event_handler(never, "during")
    facade.add_event_handler(after, "after")
    started = time.monotonic()
    with pytest.raises(SyncTimeoutError) as info:
        facade.fire_event("stuck-event", timeout=0.2)
    assert time.monotonic() - started < 2.0
    error = info.value
    assert isinstance(error, TimeoutError)
    assert isinstance(error, crochet.TimeoutError)
    assert error.timeout == 0.2
    assert "fire_event('stuck-event')" in str(error)
    assert "0.2 seconds" in str(error)
    assert cancelled.wait(5)
    assert blocking_call(lambda: facade.dispatcher.in_flight) == 0
    assert after_calls == []


def test_timeout_then_facade_still_works(facade: BlockingDispatcher) -> None:
    """After a timeout the facade and the reactor go on working."""
    facade.add_event_handler(lambda event: Deferred(), "during", use_weakref=False, times=1)
    with pytest.raises(SyncTimeoutError):
        facade.fire_event("e", timeout=0.1)
    assert facade.fire_event("e").succeeded


def test_blocking_call_timeout_cancels() -> None:
    """blocking_call times out the same way and cancels the Deferred."""
    cancelled = threading.Event()
    with pytest.raises(SyncTimeoutError, match="blocking_call"):
        blocking_call(lambda: Deferred(lambda d: cancelled.set()), timeout=0.1)
    assert cancelled.wait(5)


# -- the reactor thread ---------------------------------------------------------------


def test_call_from_reactor_thread(facade: BlockingDispatcher) -> None:
    """A facade call made in the reactor thread raises ReactorThreadError at once."""
    with pytest.raises(ReactorThreadError, match="reactor thread") as info:
        blocking_call(facade.fire_event, "e")
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(ReactorThreadError):
        blocking_call(blocking_call, lambda: None)


def test_handler_calling_facade(facade: BlockingDispatcher) -> None:
    """
    A handler that calls the facade (wrongly: it runs in the reactor) fails with
    ReactorThreadError instead of hanging, and the fire completes.
    """

    def reentrant(event: object) -> None:
        facade.add_event_handler(reentrant, "during")

    facade.add_event_handler(reentrant, "during")
    result = facade.fire_event("e", timeout=2.0)
    [outcome] = result.failures
    assert outcome.failure is not None and outcome.failure.check(ReactorThreadError)


# -- concurrency ----------------------------------------------------------------------


def test_many_threads_fire_at_once(facade: BlockingDispatcher) -> None:
    """Several threads firing at once each get their own complete result."""
    seen: list[tuple[str, int]] = []

    async def handler(event: tuple[str, int]) -> tuple[str, int]:
        await deferLater(reactor, 0.001, lambda: None)
        seen.append(event)
        return event

    facade.add_event_handler(handler, "during")
    errors: list[BaseException] = []
    results: dict[str, list[FireResult]] = {}
    barrier = threading.Barrier(8)

    def worker(name: str) -> None:
        try:
            barrier.wait(5)
            results[name] = [facade.fire_event((name, n), user=name) for n in range(25)]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(seen) == 8 * 25
    for name, fired in results.items():
        assert [r.outcomes[0].value for r in fired] == [(name, n) for n in range(25)]
        assert all(r.succeeded for r in fired)


def test_threads_add_and_remove_at_once(facade: BlockingDispatcher) -> None:
    """Handlers added and removed from many threads at once get distinct ids."""
    ids: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            handler_id = facade.add_event_handler(print, "during", use_weakref=False, user="x")
            with lock:
                ids.append(handler_id)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(set(ids)) == 100
    for handler_id in ids:
        facade.remove_event_handler(handler_id)
    assert blocking_call(len, facade.dispatcher) == 0


# -- handlers in a thread -------------------------------------------------------------


def test_in_thread_handler(facade: BlockingDispatcher) -> None:
    """
    A handler added with in_thread=True runs outside the reactor thread, may block, and
    its phase waits for it; its name in the result is the real handler's.
    """
    threads: list[bool] = []
    order: list[str] = []

    def blocking(event: object) -> str:
        threads.append(in_reactor_thread())
        time.sleep(0.1)
        order.append("blocking")
        return f"done {event}"

    def after(event: object) -> None:
        order.append("after")

    handler_id = facade.add_event_handler(blocking, "during", in_thread=True, user="bob")
    facade.add_event_handler(after, "after")
    result = facade.fire_event("e", user="bob")
    assert threads == [False]
    assert order == ["blocking", "after"]
    outcome = result.for_handler(handler_id)
    assert outcome is not None
    assert outcome.value == "done e"
    assert outcome.handler_name.endswith("test_in_thread_handler.<locals>.blocking (in a thread)")
    assert facade.fire_event("e", user="alice").for_handler(handler_id) is None


def test_in_thread_refuses_handlers_it_cannot_hold_weakly(facade: BlockingDispatcher) -> None:
    """
    in_thread=True applies the dispatcher's weak-reference rules: a bound built-in method
    (dead on arrival as a weak reference) and an object without weak-reference support are
    refused with TypeError rather than registered and silently lost.
    """
    seen: list[object] = []
    with pytest.raises(TypeError, match="bound built-in method"):
        facade.add_event_handler(seen.append, "during", in_thread=True)
    with pytest.raises(TypeError, match="does not support weak references"):
        facade.add_event_handler(Unreferenceable(), "during", in_thread=True)
    handler_id = facade.add_event_handler(seen.append, "during", in_thread=True, use_weakref=False)
    facade.start()
    facade.fire_event("e")
    assert seen == ["e"]
    facade.remove_event_handler(handler_id)


def test_in_thread_handlers_run_concurrently(facade: BlockingDispatcher) -> None:
    """Two in-thread handlers of one phase block at the same time, not one after another."""
    barrier = threading.Barrier(2)

    def meet(event: object) -> None:
        barrier.wait(5)

    facade.add_event_handler(meet, "during", in_thread=True)
    facade.add_event_handler(meet, "during", in_thread=True)
    assert facade.fire_event("e").succeeded


def test_in_thread_failure(facade: BlockingDispatcher) -> None:
    """An in-thread handler's exception is recorded in the result."""

    def broken(event: object) -> None:
        raise LookupError("nope")

    facade.add_event_handler(broken, "during", in_thread=True)
    [outcome] = facade.fire_event("e").failures
    assert outcome.failure is not None and outcome.failure.check(LookupError)


def test_in_thread_weak_handler_removed(facade: BlockingDispatcher) -> None:
    """An in-thread handler held weakly is removed once it is collected."""

    def make() -> Callable[[object], None]:
        def handler(event: object) -> None:
            pass

        return handler

    handler = make()
    handler_id = facade.add_event_handler(handler, "during", in_thread=True)
    assert blocking_call(facade.dispatcher.__contains__, handler_id)
    del handler
    gc.collect()
    assert wait_until(lambda: not blocking_call(facade.dispatcher.__contains__, handler_id))
    assert facade.fire_event("e").outcomes == ()


def test_in_thread_strong_handler(facade: BlockingDispatcher) -> None:
    """in_thread=True with use_weakref=False keeps a lambda alive, and it is removable."""
    handler_id = facade.add_event_handler(
        lambda event: "lambda", "during", in_thread=True, use_weakref=False
    )
    gc.collect()
    assert facade.fire_event("e").outcomes[0].value == "lambda"
    facade.remove_event_handler(handler_id)
    assert facade.fire_event("e").outcomes == ()


def test_in_thread_errors(facade: BlockingDispatcher) -> None:
    """in_thread=True keeps the dispatcher's argument errors."""
    with pytest.raises(TypeError, match="callable"):
        facade.add_event_handler("nope", "during", in_thread=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="use_weakref=False"):
        facade.add_event_handler(Unreferenceable(), "during", in_thread=True)
    with pytest.raises(ValueError, match="unknown phase"):
        facade.add_event_handler(print, "nope", in_thread=True, use_weakref=False)


# -- other dispatchers and blocking_call ----------------------------------------------


def test_other_provider() -> None:
    """The facade drives any IEventDispatcher provider, in the reactor thread."""

    @implementer(IEventDispatcher)
    class Recorder:
        running = True
        phases = ("only",)
        allowed_match_spec_keywords = frozenset()

        def __init__(self) -> None:
            self.fired: list[tuple[object, dict[str, object], bool]] = []

        def fire_event(self, event: object, **details: object) -> Deferred[str]:
            self.fired.append((event, details, in_reactor_thread()))
            return succeed("fired")

    recorder = Recorder()
    facade = BlockingDispatcher(recorder)  # type: ignore[arg-type]
    assert facade.fire_event("e", user="bob") == "fired"  # type: ignore[comparison-overlap]
    assert recorder.fired == [("e", {"user": "bob"}, True)]


def test_blocking_call_values() -> None:
    """blocking_call returns plain values, Deferred results and coroutine results."""

    async def coroutine(x: int) -> int:
        await deferLater(reactor, 0.01, lambda: None)
        return x * 2

    assert blocking_call(lambda x, y=0: x + y, 1, y=2) == 3
    assert blocking_call(succeed, "d") == "d"
    assert blocking_call(coroutine, 21) == 42
    assert blocking_call(in_reactor_thread) is True


def test_blocking_call_raises_as_is() -> None:
    """blocking_call raises what the function raised, with its own type and message."""

    def broken() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        blocking_call(broken)


def test_cancelled_operation() -> None:
    """A Deferred cancelled in the reactor surfaces as CancelledError, not as a timeout."""

    def cancelled() -> Deferred[None]:
        d: Deferred[None] = Deferred()
        d.cancel()
        return d

    with pytest.raises(CancelledError):
        blocking_call(cancelled)


# -- set-up and shutdown (each in a fresh process) ------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_not_set_up() -> None:
    """Using the facade before setup() raises NotSetUpError, which says what to call."""
    result = run_python(
        "from twisted_hooks import EventDispatcher\n"
        "from twisted_hooks.sync import BlockingDispatcher, NotSetUpError\n"
        "facade = BlockingDispatcher(EventDispatcher(['user']))\n"
        "try:\n"
        "    facade.fire_event('e')\n"
        "except NotSetUpError as e:\n"
        "    print('raised:', e)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "raised:" in result.stdout
    assert "twisted_hooks.sync.setup()" in result.stdout


def test_no_setup_counts_as_set_up() -> None:
    """After no_setup() (a program running its own reactor) the facade is usable from
    another thread: no NotSetUpError, the call reaches the reactor the program runs."""
    result = run_python(
        "import threading\n"
        "from twisted.internet import reactor\n"
        "from twisted_hooks import EventDispatcher, sync\n"
        "sync.no_setup()\n"
        "dispatcher = EventDispatcher(['user'])\n"
        "dispatcher.start()\n"
        "facade = sync.BlockingDispatcher(dispatcher)\n"
        "def other_thread():\n"
        "    try:\n"
        "        result = facade.fire_event('e', timeout=10)\n"
        "        print('fired, dropped:', result.dropped)\n"
        "    finally:\n"
        "        reactor.callFromThread(reactor.stop)\n"
        "reactor.callWhenRunning(threading.Thread(target=other_thread).start)\n"
        "reactor.run()\n"
    )
    assert result.returncode == 0, result.stderr
    assert "fired, dropped: False" in result.stdout


def test_crochet_private_state_is_not_read() -> None:
    """twisted_hooks.sync uses crochet's public API only: no ``crochet._name``."""
    import ast
    import inspect

    from twisted_hooks import sync

    tree = ast.parse(inspect.getsource(sync))
    private = [
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "crochet"
        and node.attr.startswith("_")
    ]
    assert private == []
    assert "getattr(crochet" not in inspect.getsource(sync)


def test_reactor_stopped() -> None:
    """Once the reactor has stopped, a facade call raises ReactorStoppedError."""
    result = run_python(
        "import time\n"
        "from twisted_hooks import sync\n"
        "sync.setup()\n"
        "facade = sync.BlockingDispatcher.create(['user'], start=True)\n"
        "from twisted.internet import reactor\n"
        "reactor.callFromThread(reactor.stop)\n"
        "deadline = time.monotonic() + 10\n"
        "while reactor.running and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "try:\n"
        "    facade.fire_event('e', timeout=5)\n"
        "except sync.ReactorStoppedError as e:\n"
        "    print('raised:', e)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "raised:" in result.stdout
    assert "reactor has stopped" in result.stdout


def test_reactor_stopped_error_is_crochets() -> None:
    """ReactorStoppedError is a RuntimeError and a crochet.ReactorStopped."""
    assert issubclass(ReactorStoppedError, RuntimeError)
    assert issubclass(ReactorStoppedError, crochet.ReactorStopped)
    assert issubclass(NotSetUpError, RuntimeError)
