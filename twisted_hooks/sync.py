"""
A blocking facade over the dispatcher, for synchronous code (Django, Flask, scripts).

This is the only module of twisted_hooks that imports :mod:`crochet`. Crochet runs the
Twisted reactor in a thread of its own; every call of the facade hands its work to that
thread and blocks the calling thread until the work is done or a timeout passes::

    from twisted_hooks import sync

    sync.setup()  # once, early: starts the reactor in a background thread
    users = sync.BlockingDispatcher.create(["event_type", "role"], start=True)

    def notify_admin(event):  # called in the reactor thread: must not block
        ...

    handler_id = users.add_event_handler(notify_admin, "during", role="admin")
    result = users.fire_event(event, event_type="user_created", role="admin")
    assert result.succeeded, result.failures

The rules:

* Call :func:`setup` once before using the facade (or :func:`no_setup` when the
  application runs the reactor itself, e.g. under ``twistd``, and the facade is only used
  from other threads).
* Every call takes a ``timeout`` in seconds (the facade's default when ``None``). When it
  passes, the call raises :class:`SyncTimeoutError` and cancels the operation's Deferred in
  the reactor (a fire stops waiting on its handlers and runs no later phase).
* Errors the dispatcher raises (:class:`ValueError`, :class:`TypeError`,
  :class:`KeyError`) are raised as they are in the calling thread.
* Calling the facade from the reactor thread would block the reactor forever, so it raises
  :class:`ReactorThreadError` at once. Twisted code uses the dispatcher's Deferred API.
* Handlers are always **called in the reactor thread**, whoever fired the event: they must
  not block. A handler that has to block (database, ``requests``, ``time.sleep``) is added
  with ``in_thread=True`` and then runs in the reactor's thread pool.
* Handlers are held weakly by default, as by the dispatcher itself: a ``lambda`` or a
  function created on the fly disappears as soon as nothing else refers to it. Pass
  ``use_weakref=False`` for those.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, overload

import attrs

from twisted_hooks._extras import missing_extra

try:
    import crochet
except ImportError as _error:
    raise missing_extra(_error, "sync", "twisted_hooks.sync (the blocking facade)") from None
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python import threadable
from twisted.python.failure import Failure

from twisted_hooks import _sync_facades
from twisted_hooks._sync_facades import (
    DEFAULT_TIMEOUT,
    BlockingDispatcher,
    BlockingHooks,
    check_timeout,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "BlockingDispatcher",
    "BlockingHooks",
    "NotSetUpError",
    "ReactorStoppedError",
    "ReactorThreadError",
    "SyncTimeoutError",
    "blocking_call",
    "no_setup",
    "setup",
]

_T = TypeVar("_T")

_log = Logger(namespace="twisted_hooks.sync")

# Twisted leaves it unannotated.
_in_reactor_thread: Callable[[], bool] = threadable.isInIOThread


# -- errors --------------------------------------------------------------------------------


class ReactorThreadError(RuntimeError):
    """
    A blocking call was made from the reactor thread.

    Blocking there would stop the reactor from ever running the work waited for, so the
    facade refuses before doing anything. Code running in the reactor (handlers, Twisted
    services) calls the dispatcher's Deferred API instead.
    """


class NotSetUpError(RuntimeError):
    """
    The facade was used before :func:`setup` (or :func:`no_setup`) was called.
    """


class ReactorStoppedError(RuntimeError, crochet.ReactorStopped):
    """
    The reactor has stopped (usually because the process is exiting), so the call can never
    complete. A subclass of :class:`crochet.ReactorStopped` too.
    """


class SyncTimeoutError(TimeoutError, crochet.TimeoutError):
    """
    A blocking call did not complete within its timeout.

    The operation's Deferred has been cancelled in the reactor thread. A subclass of the
    built-in :class:`TimeoutError` and of :class:`crochet.TimeoutError`.

    :ivar operation: a short description of the call that timed out.
    :ivar timeout: the timeout, in seconds, that passed.
    """

    def __init__(self, operation: str, timeout: float) -> None:
        super().__init__(
            f"{operation} did not complete within {timeout:g} seconds and was cancelled. "
            "A handler returning a Deferred that never fires, or a blocked reactor, causes "
            "this; pass a larger timeout= if the work is just slow"
        )
        self.operation = operation
        self.timeout = timeout


# -- set-up --------------------------------------------------------------------------------


def setup() -> None:
    """
    Start the Twisted reactor in a background thread, through :func:`crochet.setup`.

    Call it once, early in the life of a synchronous program (a Django ``AppConfig.ready``,
    a Flask app factory, the top of a script). Later calls do nothing. It also routes
    Twisted's log messages to the standard library's :mod:`logging`.
    """
    crochet.setup()
    _state.set_up = True


def no_setup() -> None:
    """
    Declare that the application runs the reactor itself, through :func:`crochet.no_setup`.

    Use it in a Twisted application (``twistd``, ``twist``) whose own threads, such as
    those of a thread pool, want the blocking facade: it makes later :func:`setup` calls do
    nothing instead of starting a second reactor thread.

    :raise RuntimeError: when :func:`setup` was called before.
    """
    crochet.no_setup()
    _state.set_up = True


@attrs.define
class _SetUpState:
    """Whether :func:`setup` or :func:`no_setup` ran in this process (crochet itself
    offers no public way to ask)."""

    set_up: bool = False


_state = _SetUpState()


def _is_set_up() -> bool:
    return _state.set_up


# -- blocking calls ------------------------------------------------------------------------


class _Call:
    """What the calling thread and the reactor thread share about one blocking call."""

    __slots__ = ("abandoned", "operation")

    def __init__(self, operation: str) -> None:
        self.operation = operation
        # Set by the calling thread before it schedules the cancellation, so the reactor
        # thread sees it when the cancellation arrives.
        self.abandoned = False

    def settle_abandoned(self, failure: Failure) -> Failure | None:
        """Consume the failure of an operation nobody waits for any more."""
        if not self.abandoned:
            return failure
        if not failure.check(CancelledError):
            _log.failure(
                "{operation} failed after its caller stopped waiting",
                failure,
                operation=self.operation,
            )
        return None


@crochet.run_in_reactor
def _in_reactor(
    call: _Call,
    function: Callable[..., object],
    args: tuple[object, ...],
    kwargs: dict[str, object],
) -> Deferred[object]:
    deferred: Deferred[object] = maybeDeferred(function, *args, **kwargs)
    return deferred.addErrback(call.settle_abandoned)


def _call_blocking(
    operation: str,
    timeout: float,
    function: Callable[..., object],
    args: tuple[object, ...],
    kwargs: dict[str, object],
) -> Any:
    timeout = check_timeout(timeout)
    if _in_reactor_thread():
        raise ReactorThreadError(
            f"{operation} was called in the reactor thread, where blocking would hang the "
            "reactor forever; in Twisted code (handlers, services) use the dispatcher's "
            "Deferred API instead of twisted_hooks.sync"
        )
    if not _is_set_up():
        raise NotSetUpError(
            f"{operation} needs a running reactor: call twisted_hooks.sync.setup() once at "
            "start-up (or sync.no_setup() when your application runs the reactor itself)"
        )
    call = _Call(operation)
    try:
        eventual = _in_reactor(call, function, args, kwargs)
        try:
            return eventual.wait(timeout)
        except crochet.TimeoutError:
            call.abandoned = True
            eventual.cancel()
            # Should the result have arrived just now, take it so that crochet does not
            # log it as unhandled.
            eventual.original_failure()
            raise SyncTimeoutError(operation, timeout) from None
    except crochet.ReactorStopped:
        raise ReactorStoppedError(
            f"{operation} cannot complete: the reactor has stopped (is the process exiting?)"
        ) from None


@overload
def blocking_call(
    function: Callable[..., Deferred[_T]],
    *args: object,
    timeout: float = ...,
    **kwargs: object,
) -> _T: ...


@overload
def blocking_call(
    function: Callable[..., Coroutine[Any, Any, _T]],
    *args: object,
    timeout: float = ...,
    **kwargs: object,
) -> _T: ...


@overload
def blocking_call(
    function: Callable[..., _T],
    *args: object,
    timeout: float = ...,
    **kwargs: object,
) -> _T: ...


def blocking_call(
    function: Callable[..., object],
    *args: object,
    timeout: float = DEFAULT_TIMEOUT,
    **kwargs: object,
) -> object:
    """
    Call ``function(*args, **kwargs)`` in the reactor thread and wait for its result.

    The building block of :class:`BlockingDispatcher`, for any other Twisted API.

    :param function: a callable returning a value, a Deferred, or a coroutine (an
        ``async def`` function).
    :param args: its positional arguments.
    :param timeout: how many seconds to wait. The name is taken: ``function`` cannot be
        given a keyword argument called ``timeout`` this way.
    :param kwargs: its keyword arguments.
    :return: the value, or what the Deferred or coroutine fired.
    :raise Exception: what ``function`` raised or its Deferred failed with, as it is.
    :raise SyncTimeoutError: when ``timeout`` seconds pass first; the Deferred is
        cancelled.
    :raise ReactorThreadError: when called in the reactor thread.
    :raise NotSetUpError: when :func:`setup` has not been called.
    :raise ReactorStoppedError: when the reactor has stopped.
    """
    name = getattr(function, "__qualname__", None) or repr(function)
    return _call_blocking(f"blocking_call({name})", timeout, function, args, kwargs)


_sync_facades.install_blocking_call(_call_blocking)
