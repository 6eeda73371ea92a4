"""
The frozen value types the interfaces speak of, at the bottom of the package: they import
nothing of it. Each is re-exported where it is documented (:class:`FireResult` and
:class:`HandlerOutcome` by :mod:`twisted_hooks.dispatcher` and :mod:`twisted_hooks`).
"""

from __future__ import annotations

from typing import NamedTuple

import attrs
from twisted.python.failure import Failure

__all__ = ["FireResult", "HandlerOutcome"]


class HandlerOutcome(NamedTuple):
    """
    What one handler did during one fire: an immutable named tuple.

    :ivar handler_id: the id :meth:`EventDispatcher.add_event_handler` gave the handler.
    :ivar phase: the phase the handler ran in.
    :ivar handler_name: the handler's dotted name, as used in log messages.
    :ivar value: what the handler returned (or what its Deferred or coroutine fired);
        ``None`` when it failed.
    :ivar failure: the :class:`~twisted.python.failure.Failure` it raised or failed with,
        or ``None`` when it succeeded.
    """

    handler_id: int
    phase: str
    handler_name: str
    value: object = None
    failure: Failure | None = None

    @property
    def succeeded(self) -> bool:
        """``True`` when the handler returned or fired a value rather than failing."""
        return self.failure is None


@attrs.frozen
class FireResult:
    """
    The frozen account of one :meth:`EventDispatcher.fire_event`.

    :ivar event: the event object that was fired.
    :ivar dropped: ``True`` when the dispatcher was stopped and no handler was called.
    :ivar outcomes: one :class:`HandlerOutcome` per handler called, in the order the
        handlers were called (phase by phase, and within a phase in registration order).
    """

    event: object
    dropped: bool
    outcomes: tuple[HandlerOutcome, ...] = ()

    @property
    def failures(self) -> tuple[HandlerOutcome, ...]:
        """The outcomes of the handlers that failed."""
        return tuple(o for o in self.outcomes if o.failure is not None)

    @property
    def succeeded(self) -> bool:
        """``True`` when the event was dispatched and no handler failed."""
        return not self.dropped and all(o.failure is None for o in self.outcomes)

    def for_phase(self, phase: str) -> tuple[HandlerOutcome, ...]:
        """The outcomes of the handlers that ran in ``phase``."""
        return tuple(o for o in self.outcomes if o.phase == phase)

    def for_handler(self, handler_id: int) -> HandlerOutcome | None:
        """The outcome of the handler registered as ``handler_id``, or ``None`` if not called."""
        for outcome in self.outcomes:
            if outcome.handler_id == handler_id:
                return outcome
        return None
