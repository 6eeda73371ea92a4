"""
Reading the result of a Deferred that has already fired, without a callback.

The engine's stores and fakes answer with Deferreds that have already fired (the memory
stores, :class:`~twisted_hooks.testing.FakeSender`). Adding a callback to each costs
more than the work it waits for; :func:`fired_value` takes such a result at once, and the
caller goes on as its callback would have. A Deferred that has not fired yet, or fired a
failure, is left to the usual callbacks, so errors are handled in one place.
"""

from __future__ import annotations

import enum
from typing import Literal, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

__all__ = ["NOT_YET", "fired_value"]

_T = TypeVar("_T")


class _Pending(enum.Enum):
    NOT_YET = "not yet"


#: What :func:`fired_value` answers for a Deferred whose result cannot be taken now.
NOT_YET: Literal[_Pending.NOT_YET] = _Pending.NOT_YET


def fired_value(d: Deferred[_T]) -> _T | Literal[_Pending.NOT_YET]:
    """
    The result of ``d`` when it has fired a success (not paused, not chained to another
    Deferred); :data:`NOT_YET` otherwise: it has not fired, or it fired a failure, which
    the caller's errback handles (and so consumes). A caller that takes a result adds no
    callback to ``d``.

    ``d`` is a Deferred just returned to the caller: one whose own callbacks are running
    further up the stack holds an intermediate result, which this would take.
    """
    if d.called and not d.paused:
        result = d.result
        # Not paused, so not waiting on a Deferred its callbacks returned.
        if not isinstance(result, Failure):
            return result  # type: ignore[return-value]
    return NOT_YET
