"""
The blocking facades, :class:`~twisted_hooks.sync.BlockingDispatcher` and
:class:`~twisted_hooks.sync.BlockingHooks`: what each call does in the reactor thread,
handlers run in the thread pool, and sends buffered per thread. They block through the
call :mod:`twisted_hooks.sync` installs (:func:`install_blocking_call`), so that module
stays the only one that imports crochet. The public names are those of
:mod:`twisted_hooks.sync`.
"""

from __future__ import annotations

import math
import reprlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs
from twisted.internet.defer import Deferred

from twisted_hooks.dispatcher import (
    DEFAULT_PHASES,
    EventDispatcher,
    FireResult,
    Handler,
    weak_handler_ref,
)
from twisted_hooks.interfaces import IEventDispatcher

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorFromThreads

    from twisted_hooks.webhooks.app import Hooks, Settings
    from twisted_hooks.webhooks.buffer import BufferState, EventBuffer
    from twisted_hooks.webhooks.events import SendOptions, SendResult, WebhookEvent
    from twisted_hooks.webhooks.subscribers import Subscriber

    #: A send held by :meth:`BlockingHooks.buffer_events`: the event, built (validated and
    #: encoded) when it was sent.
    _Held: TypeAlias = WebhookEvent

__all__ = [
    "DEFAULT_TIMEOUT",
    "BlockingCall",
    "BlockingDispatcher",
    "BlockingHooks",
    "check_timeout",
    "install_blocking_call",
]

#: The timeout, in seconds, of a facade call when none is given.
DEFAULT_TIMEOUT: float = 10.0

#: Runs ``function(*args, **kwargs)`` in the reactor thread and waits for its result:
#: ``call(operation, timeout, function, args, kwargs)``, ``operation`` naming it in errors.
BlockingCall: TypeAlias = Callable[
    [str, float, Callable[..., object], tuple[object, ...], dict[str, object]], Any
]

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60


@attrs.define
class _Installed:
    """The blocking call of the facades, once :mod:`twisted_hooks.sync` gave it."""

    call: BlockingCall | None = None


_installed = _Installed()


def install_blocking_call(call: BlockingCall) -> None:
    """Make the facades block through ``call`` (:mod:`twisted_hooks.sync` gives its own,
    made with crochet, when it is imported)."""
    _installed.call = call


def _blocking_call(
    operation: str,
    timeout: float,
    function: Callable[..., object],
    args: tuple[object, ...],
    kwargs: dict[str, object],
) -> Any:
    call = _installed.call
    if call is None:
        raise RuntimeError(f"{operation} needs twisted_hooks.sync: import the facades from there")
    return call(operation, timeout, function, args, kwargs)


def check_timeout(timeout: object) -> float:
    """``timeout`` as a float; :class:`TypeError` or :class:`ValueError` unless it is a
    positive, finite number of seconds."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a positive, finite number of seconds, got {timeout!r}")
    return float(timeout)


# -- handlers run in a thread --------------------------------------------------------------


def _reactor() -> IReactorFromThreads:
    from twisted.internet import reactor

    return reactor  # type: ignore[return-value]


class _ThreadedHandler:
    """
    Stands in the reactor thread for a handler that must run in the thread pool.

    It is registered strongly; when the real handler is held weakly and collected, the
    stand-in removes its own registration.
    """

    def __init__(self, handler: Handler, use_weakref: bool, dispatcher: IEventDispatcher) -> None:
        self._dispatcher = dispatcher
        self.handler_id: int | None = None
        self._get: Callable[[], Handler | None]
        if not use_weakref:
            self._get = lambda: handler
        else:
            self._get = weak_handler_ref(handler, self._collected)
        # Log messages and fire results name the real handler.
        target = getattr(handler, "__func__", handler)
        self.__module__ = getattr(target, "__module__", None) or type(handler).__module__
        self.__qualname__ = (
            getattr(target, "__qualname__", None) or type(handler).__qualname__
        ) + " (in a thread)"

    def __call__(self, event: object) -> Deferred[object] | None:
        from twisted.internet.threads import deferToThread

        handler = self._get()
        if handler is None:
            return None
        return deferToThread(handler, event)

    def _collected(self, _: object) -> None:
        # May run in any thread: hand the removal to the reactor.
        _reactor().callFromThread(self._remove)

    def _remove(self) -> None:
        if self.handler_id is None:
            return
        removed = self._dispatcher.remove_event_handler(self.handler_id)
        removed.addErrback(lambda failure: failure.trap(KeyError) and None)


# -- the facade ----------------------------------------------------------------------------


class _Facade:
    """What the blocking facades share: a default timeout and the blocking call."""

    _timeout: float

    def _call(
        self,
        operation: str,
        timeout: float | None,
        function: Callable[..., object],
        args: tuple[object, ...] = (),
        kwargs: dict[str, object] | None = None,
    ) -> Any:
        # Arguments travel as a tuple and a dict so that no match-spec keyword or detail
        # can collide with this method's own parameters.
        return _blocking_call(
            operation, self._timeout if timeout is None else timeout, function, args, kwargs or {}
        )


class BlockingDispatcher(_Facade):
    """
    A blocking view of an :class:`~twisted_hooks.IEventDispatcher`, for threads other than
    the reactor's.

    Each method runs the dispatcher's method of the same name in the reactor thread and
    blocks until its Deferred fires or the timeout passes. Any number of threads may use
    one facade at the same time.

    :param dispatcher: the dispatcher to drive; it belongs to the reactor thread.
    :param timeout: the default timeout of every call, in seconds.
    :raise TypeError: when ``dispatcher`` does not provide
        :class:`~twisted_hooks.IEventDispatcher`.
    :raise ValueError: when ``timeout`` is not a positive number.
    """

    def __init__(self, dispatcher: IEventDispatcher, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not IEventDispatcher.providedBy(dispatcher):
            raise TypeError(
                f"BlockingDispatcher needs an IEventDispatcher provider such as "
                f"twisted_hooks.EventDispatcher, got {type(dispatcher).__name__} "
                f"{dispatcher!r}"
            )
        self._dispatcher = dispatcher
        self._timeout = check_timeout(timeout)

    @classmethod
    def create(
        cls,
        allowed_match_spec_keywords: Iterable[str],
        phases: Iterable[str] = DEFAULT_PHASES,
        timeout: float = DEFAULT_TIMEOUT,
        start: bool = False,
    ) -> BlockingDispatcher:
        """
        Build an :class:`~twisted_hooks.EventDispatcher` in the reactor thread and wrap it.

        :param allowed_match_spec_keywords: as for :class:`~twisted_hooks.EventDispatcher`.
        :param phases: as for :class:`~twisted_hooks.EventDispatcher`.
        :param timeout: the facade's default timeout, in seconds.
        :param start: start the dispatcher before returning.
        :return: the facade; its :attr:`dispatcher` is the new dispatcher.
        :raise ValueError: for invalid keywords or phases, as the dispatcher raises it.
        :raise TypeError: likewise.
        """
        timeout = check_timeout(timeout)

        def build() -> EventDispatcher:
            dispatcher = EventDispatcher(allowed_match_spec_keywords, phases)
            if start:
                dispatcher.start()
            return dispatcher

        dispatcher: EventDispatcher = _blocking_call(
            "BlockingDispatcher.create()", timeout, build, (), {}
        )
        return cls(dispatcher, timeout)

    @property
    def dispatcher(self) -> IEventDispatcher:
        """The wrapped dispatcher, to be used only in the reactor thread."""
        return self._dispatcher

    @property
    def timeout(self) -> float:
        """The default timeout of this facade's calls, in seconds."""
        return self._timeout

    @property
    def running(self) -> bool:
        """Whether the dispatcher is started (read without a trip to the reactor)."""
        return bool(self._dispatcher.running)

    def start(self, timeout: float | None = None) -> None:
        """
        Start the dispatcher: later fires call their handlers.

        :param timeout: seconds to wait; the facade's default when ``None``.
        :raise SyncTimeoutError: when the reactor does not get to it in time.
        """
        self._call("start()", timeout, self._dispatcher.start)

    def stop(self, timeout: float | None = None) -> None:
        """
        Stop the dispatcher and wait until the fires in flight have finished.

        :param timeout: seconds to wait; the facade's default when ``None``.
        :raise SyncTimeoutError: when fires are still in flight after ``timeout`` seconds;
            the dispatcher is stopped all the same, and those fires go on.
        """
        self._call("stop()", timeout, self._dispatcher.stop)

    def add_event_handler(
        self,
        handler: Handler,
        phase: str,
        use_weakref: bool = True,
        times: int | None = None,
        timeout: float | None = None,
        in_thread: bool = False,
        **match_spec: object,
    ) -> int:
        """
        Register ``handler`` to be called in ``phase`` for events matching ``match_spec``.

        The handler is **called in the reactor thread** and must not block, unless
        ``in_thread`` is true. See :meth:`twisted_hooks.EventDispatcher.add_event_handler`
        for matching, ``use_weakref`` and ``times``.

        :param handler: called with the event object; may return a value, a Deferred, or
            be an ``async def`` function.
        :param phase: one of the dispatcher's phases.
        :param use_weakref: hold the handler weakly (the default): a function that nothing
            else refers to, such as a ``lambda``, is gone at once. ``False`` holds it
            strongly.
        :param times: remove the handler after this many calls.
        :param timeout: seconds to wait; the facade's default when ``None``.
        :param in_thread: call the handler in the reactor's thread pool (through
            :func:`twisted.internet.threads.deferToThread`) so that it may block; its phase
            waits for it. Cancelling the fire does not interrupt the thread.
        :param match_spec: keyword filters. ``use_weakref``, ``times``, ``timeout`` and
            ``in_thread`` are taken by this method and cannot be used as keywords.
        :return: the handler's id, for :meth:`remove_event_handler`.
        :raise ValueError: for an unknown phase or keyword, or a bad ``times``.
        :raise TypeError: for a handler that is not callable or cannot be referenced
            weakly, or an unhashable spec value.
        :raise SyncTimeoutError: when the reactor does not get to it in time.
        """
        if not in_thread:
            return int(
                self._call(
                    "add_event_handler()",
                    timeout,
                    self._dispatcher.add_event_handler,
                    (handler, phase),
                    {"use_weakref": use_weakref, "times": times, **match_spec},
                )
            )
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        threaded = _ThreadedHandler(handler, use_weakref, self._dispatcher)

        def add() -> Deferred[int]:
            added = self._dispatcher.add_event_handler(
                threaded, phase, use_weakref=False, times=times, **match_spec
            )

            def remember(handler_id: int) -> int:
                threaded.handler_id = handler_id
                return handler_id

            return added.addCallback(remember)

        return int(self._call("add_event_handler()", timeout, add))

    def remove_event_handler(self, handler_id: int, timeout: float | None = None) -> None:
        """
        Remove the handler registered as ``handler_id``.

        :param handler_id: what :meth:`add_event_handler` returned.
        :param timeout: seconds to wait; the facade's default when ``None``.
        :raise KeyError: when no handler is registered with that id.
        :raise SyncTimeoutError: when the reactor does not get to it in time.
        """
        self._call(
            "remove_event_handler()", timeout, self._dispatcher.remove_event_handler, (handler_id,)
        )

    def fire_event(
        self, event: object, timeout: float | None = None, **details: object
    ) -> FireResult:
        """
        Fire ``event`` and wait until every phase has run.

        A failing handler does not make this raise: its failure is in the result's
        :attr:`~twisted_hooks.FireResult.failures`.

        :param event: the object handed to each handler.
        :param timeout: seconds to wait; the facade's default when ``None``. ``timeout``
            therefore cannot be used as a detail keyword.
        :param details: the values match specs are compared with.
        :return: the :class:`~twisted_hooks.FireResult`, telling per handler its value or
            failure, or that the event was dropped because the dispatcher is stopped.
        :raise ValueError: for a detail keyword that is not allowed.
        :raise SyncTimeoutError: when the handlers do not finish in time; the fire is
            cancelled (the handlers' pending Deferreds are cancelled and no later phase
            runs).
        """
        result: FireResult = self._call(
            f"fire_event({_short.repr(event)})",
            timeout,
            self._dispatcher.fire_event,
            (event,),
            details,
        )
        return result


# -- webhooks ------------------------------------------------------------------------------


class BlockingHooks(_Facade):
    """
    A blocking facade over a :class:`~twisted_hooks.webhooks.app.Hooks` application, for
    synchronous code (Django, Flask, scripts).

    Every call runs in the reactor thread and waits, as :class:`BlockingDispatcher`'s do.
    Thorn's callbacks (``on_success`` and friends) are called in the reactor thread: they
    must not block.

    :param hooks: the application, to be used only in the reactor thread.
    :param timeout: the default timeout of this facade's calls, in seconds.
    """

    def __init__(self, hooks: Hooks, timeout: float = DEFAULT_TIMEOUT) -> None:
        from twisted_hooks.webhooks.app import Hooks

        if not isinstance(hooks, Hooks):
            raise TypeError(f"BlockingHooks wraps a Hooks application, got {hooks!r}")
        self._hooks = hooks
        self._timeout = check_timeout(timeout)
        self._local = threading.local()

    @classmethod
    def create(
        cls, timeout: float = DEFAULT_TIMEOUT, start: bool = True, **kwargs: Any
    ) -> BlockingHooks:
        """
        Build a :class:`~twisted_hooks.webhooks.app.Hooks` in the reactor thread (with the
        global reactor) and wrap it.

        :param timeout: the facade's default timeout, in seconds.
        :param start: start the application before returning.
        :param kwargs: the keyword arguments of :class:`~twisted_hooks.webhooks.app.Hooks`.
        """
        from twisted_hooks.webhooks.app import Hooks

        def build() -> Hooks:
            hooks = Hooks(**kwargs)
            if start:
                hooks.startService()
            return hooks

        hooks: Hooks = _blocking_call("BlockingHooks.create()", timeout, build, (), {})
        return cls(hooks, timeout)

    @property
    def hooks(self) -> Hooks:
        """The wrapped application, to be used only in the reactor thread."""
        return self._hooks

    @property
    def settings(self) -> Settings:
        """The application's settings."""
        return self._hooks.settings

    def start(self, timeout: float | None = None) -> None:
        """Start the application (its dispatcher and scheduler)."""
        self._call("BlockingHooks.start()", timeout, self._hooks.startService)

    def stop(self, timeout: float | None = None) -> None:
        """Stop the application, waiting for the attempts under way to finish."""
        self._call("BlockingHooks.stop()", timeout, self._hooks.stopService)

    def subscribe(
        self, event: str, url: str, timeout: float | None = None, **fields: Any
    ) -> Subscriber:
        """Add a subscriber; see :meth:`~twisted_hooks.webhooks.app.Hooks.subscribe`."""
        return self._call(  # type: ignore[no-any-return]
            "BlockingHooks.subscribe()", timeout, self._hooks.subscribe, (event, url), fields
        )

    def unsubscribe(self, subscriber_id: str, timeout: float | None = None) -> None:
        """Remove a subscriber."""
        self._call(
            "BlockingHooks.unsubscribe()", timeout, self._hooks.unsubscribe, (subscriber_id,)
        )

    def send(
        self,
        name: str,
        data: object,
        sender: object = None,
        *,
        event_id: str | None = None,
        options: SendOptions | None = None,
        timeout: float | None = None,
    ) -> SendResult | None:
        """
        Publish an event and wait until its deliveries are accepted.

        Inside :meth:`buffer_events` (in this thread) the send is held instead, and
        ``None`` is returned; the flush returns the results.

        :raise twisted_hooks.webhooks.encoding.EncodingError: for data that cannot be
            encoded as JSON (at once, also inside a buffer).
        :raise ValueError: for an invalid event name.
        :raise twisted_hooks.webhooks.app.HooksNotRunning: when the application is not
            started.
        """
        state = self._buffer_state()
        if state.depth:
            # Built (validated, encoded) here and now; the flush publishes it as it is.
            state.hold(
                self._hooks.build_event(name, data, sender, event_id=event_id, options=options)
            )
            return None
        return self._call(  # type: ignore[no-any-return]
            "BlockingHooks.send()",
            timeout,
            self._hooks.send,
            (name, data, sender),
            {"event_id": event_id, "options": options},
        )

    def _buffer_state(self) -> BufferState[_Held]:
        state: BufferState[_Held] | None = getattr(self._local, "buffer", None)
        if state is None:
            from twisted_hooks.webhooks.buffer import BufferState

            state = self._local.buffer = BufferState()
        return state

    def buffer_events(
        self, flush_freq: int | None = None, flush_timeout: float | None = None
    ) -> EventBuffer[_Held]:
        """
        Thorn's ``buffer_events`` for synchronous code: sends made in this thread inside
        the block are held and published when the outermost block exits. ``flush()``
        publishes the held sends now and returns their :class:`SendResult` (or the
        exception of each send that failed), in order.
        """
        from twisted_hooks.webhooks.buffer import EventBuffer

        return EventBuffer(
            self._buffer_state(), self._flush, time.monotonic, flush_freq, flush_timeout
        )

    def _flush(self, items: list[_Held]) -> list[SendResult | BaseException]:
        if not items:
            return []
        hooks = self._hooks

        async def publish() -> list[SendResult | BaseException]:
            results: list[SendResult | BaseException] = []
            sends = [hooks.send_event(event) for event in items]
            for send in sends:
                try:
                    results.append(await send)
                except Exception as error:
                    results.append(error)
            return results

        return self._call("BlockingHooks.flush()", None, publish)  # type: ignore[no-any-return]

    def drain(self, timeout: float | None = None) -> None:
        """Wait until every delivery the application accepted has ended."""
        self._call("BlockingHooks.drain()", timeout, self._hooks.drain)
