"""
Event buffering, as in Thorn's ``buffer_events``.

Inside ``with app.buffer_events():`` sends are held in a list and dispatched when the
block exits (or on :meth:`EventBuffer.flush`). Nested contexts delegate to the outermost:
only its exit flushes, and ``flush()`` in any context flushes the events of all of them.
``flush_freq`` and ``flush_timeout`` make :meth:`EventBuffer.maybe_flush` flush every N
events or after T seconds.

The same class serves Twisted code (:meth:`twisted_hooks.webhooks.app.Hooks.buffer_events`,
one buffer per application, used in the reactor thread) and synchronous code
(:meth:`twisted_hooks.sync.BlockingHooks.buffer_events`, one buffer per calling thread).
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

from twisted_hooks._fields import Rule

__all__ = ["BufferState", "EventBuffer"]

#: Thorn's ``flush_freq``: a flush after this many sends (or none).
_FLUSH_FREQ = Rule(integer=True, minimum=1, optional=True)
#: Thorn's ``flush_timeout``: a flush after this many seconds (or none).
_FLUSH_TIMEOUT = Rule(above=True, minimum=0.0, optional=True, unit="seconds")

T = TypeVar("T")


class BufferState(Generic[T]):
    """What the contexts of one buffer share: the held sends and the nesting depth."""

    def __init__(self) -> None:
        self.items: list[T] = []
        self.depth = 0
        self.since_flush = 0
        self.last_flush: float | None = None

    def hold(self, item: T) -> None:
        """Hold one send until the next flush."""
        self.items.append(item)
        self.since_flush += 1


class EventBuffer(Generic[T]):
    """
    One ``buffer_events`` context.

    :param state: the shared state of the buffer this context belongs to.
    :param dispatch: sends the held items; called with the list on every flush.
    :param clock: the current time in seconds (for ``flush_timeout``).
    :param flush_freq: :meth:`maybe_flush` flushes once this many events are held.
    :param flush_timeout: :meth:`maybe_flush` flushes once this many seconds have passed
        since the last flush (or since the outermost context was entered).
    """

    def __init__(
        self,
        state: BufferState[T],
        dispatch: Callable[[list[T]], object],
        clock: Callable[[], float],
        flush_freq: int | None = None,
        flush_timeout: float | None = None,
    ) -> None:
        _FLUSH_FREQ.check("flush_freq", flush_freq)
        _FLUSH_TIMEOUT.check("flush_timeout", flush_timeout)
        self._state = state
        self._dispatch = dispatch
        self._clock = clock
        self.flush_freq = flush_freq
        self.flush_timeout = flush_timeout

    @property
    def outermost(self) -> bool:
        """``True`` when this context is the outermost active one."""
        return self._state.depth == 1

    @property
    def pending(self) -> int:
        """How many sends are held."""
        return len(self._state.items)

    def __enter__(self) -> EventBuffer[T]:
        state = self._state
        state.depth += 1
        if state.depth == 1:
            state.last_flush = self._clock()
            state.since_flush = 0
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        state = self._state
        state.depth -= 1
        if state.depth == 0:
            # Thorn flushes on exit whatever happened in the block.
            self.flush()

    def hold(self, item: T) -> None:
        """Hold one send until the next flush."""
        self._state.hold(item)

    def flush(self) -> object:
        """Dispatch every held send now (of every nested context); returns ``dispatch``'s
        result."""
        state = self._state
        items, state.items = state.items, []
        state.since_flush = 0
        state.last_flush = self._clock()
        return self._dispatch(items)

    def maybe_flush(self) -> object | None:
        """Flush when ``flush_freq`` events are held or ``flush_timeout`` has passed;
        returns ``dispatch``'s result, or ``None`` when it did not flush."""
        state = self._state
        due = self.flush_freq is not None and state.since_flush >= self.flush_freq
        if not due and self.flush_timeout is not None and state.last_flush is not None:
            due = self._clock() - state.last_flush >= self.flush_timeout
        if due:
            return self.flush()
        return None
