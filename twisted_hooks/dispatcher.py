"""
The in-process event dispatcher.

:class:`EventDispatcher` calls handlers chosen by match-spec keywords, phase by phase,
waiting for each phase's Deferreds before the next one starts. It is the heir of
``twisted_event_dispatcher`` and keeps its API; :doc:`/dispatcher` describes every rule.

Matching is indexed: handlers are grouped by the set of keywords they constrain (their
*shape*), and within a shape by the tuple of values they ask for, whatever their phase. A
fire looks up each shape once and sorts what it finds into phases, so it costs O(matching
handlers + distinct shapes), however many handlers are registered.

Why one module (past 600 lines): the dispatcher is one class and its index, and a fire is
the hot path of every event; keeping the index, the phase walk and the lifecycle together
keeps that path readable in one place and free of calls across modules.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Iterable
from itertools import count
from operator import attrgetter, itemgetter
from types import BuiltinMethodType, CoroutineType, ModuleType
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_hooks._deferreds import NOT_YET, fired_value
from twisted_hooks._values import FireResult, HandlerOutcome
from twisted_hooks.interfaces import IEventDispatcher

__all__ = [
    "DEFAULT_PHASES",
    "EventDispatcher",
    "FireResult",
    "Handler",
    "HandlerOutcome",
    "weak_handler_ref",
]

#: A handler: called with the event; may return a plain value, a Deferred or a coroutine.
Handler = Callable[[Any], object]

#: The phases a dispatcher has when none are given, in the order they run.
DEFAULT_PHASES: tuple[str, ...] = ("before", "during", "after")

_log = Logger(namespace="twisted_hooks.dispatcher")

_by_id = attrgetter("id")

# The parameters of add_event_handler and fire_event: a match spec or a fire could never
# give a keyword of one of these names.
_RESERVED_KEYWORDS = frozenset({"handler", "phase", "use_weakref", "times", "where", "event"})

#: A handler's filter: called with the event; the handler runs only when it is true.
_Where = Callable[[Any], object]


def _no_keys(details: dict[str, object]) -> tuple[()]:
    return ()


# The fire loop builds outcomes without the keyword handling of the generated __new__.
_outcome = tuple.__new__


def _describe(handler: object) -> str:
    """A stable, readable name for ``handler`` to use in logs and results."""
    target = getattr(handler, "__func__", handler)
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if qualname is None:
        qualname = type(handler).__qualname__
        module = type(handler).__module__
    return f"{module}.{qualname}" if module else str(qualname)


def weak_handler_ref(
    handler: Handler, on_collected: Callable[[object], object]
) -> Callable[[], Handler | None]:
    """
    A weak reference to ``handler``: calling it gives the handler, or ``None`` once the
    handler has been collected (``on_collected`` is then called with the dead reference).

    Bound methods are held through :class:`weakref.WeakMethod`, so the reference dies with
    their instance rather than at once.

    :raise TypeError: for a handler that cannot be held weakly: a bound method of a
        built-in object (``some_list.append`` is made afresh at each attribute access, so
        a weak reference to it would be dead on arrival), or an object that does not
        support weak references (``str.upper``, instances of classes with ``__slots__``
        and no ``__weakref__``). Plain functions, built-in functions such as ``print``,
        bound methods and callable instances are fine.
    """
    if inspect.ismethod(handler):
        return weakref.WeakMethod(handler, on_collected)
    if isinstance(handler, BuiltinMethodType) and not isinstance(
        handler.__self__, (ModuleType, type(None))
    ):
        raise TypeError(
            f"handler {handler!r} is a bound built-in method, which cannot be held "
            "weakly (it is collected at once); pass use_weakref=False to hold it strongly"
        )
    try:
        return weakref.ref(handler, on_collected)
    except TypeError:
        raise TypeError(
            f"handler {handler!r} ({type(handler).__name__}) does not support weak "
            "references; pass use_weakref=False to hold it strongly"
        ) from None


class _Entry:
    """One registered handler: how to reach it and where it sits in the index."""

    __slots__ = (
        "get",
        "id",
        "key",
        "name",
        "phase_index",
        "remaining",
        "removed",
        "shape",
        "where",
    )

    def __init__(
        self,
        handler_id: int,
        get: Callable[[], Handler | None],
        name: str,
        phase_index: int,
        shape: tuple[str, ...],
        key: object,
        remaining: int | None,
        where: _Where | None,
    ) -> None:
        self.id = handler_id
        self.get = get
        self.name = name
        self.phase_index = phase_index
        self.shape = shape
        self.key = key
        self.remaining = remaining
        self.where = where
        self.removed = False


class _Shape:
    """The handlers, of every phase, that constrain exactly the same keywords."""

    __slots__ = ("getter", "table")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.getter: Callable[[dict[str, object]], object] = (
            itemgetter(*keys) if keys else _no_keys
        )
        self.table: dict[object, dict[int, _Entry]] = {}


@implementer(IEventDispatcher)
class EventDispatcher:
    """
    Fires events to handlers chosen by match-spec keywords, through ordered phases.

    :param allowed_match_spec_keywords: the keywords handlers may constrain and fires may
        give as details. May be passed positionally. Each must be an identifier other than
        a parameter name of :meth:`add_event_handler` or :meth:`fire_event` (``handler``,
        ``phase``, ``use_weakref``, ``times``, ``where``, ``event``), or
        :class:`ValueError` is raised.
    :param phases: the phase names, in the order they run.
    :param reactor: the reactor this dispatcher and its collaborators use for time;
        ``None`` means the global reactor, looked up when first needed.

    A new dispatcher is stopped: call :meth:`start` before firing. The dispatcher belongs
    to the reactor thread; synchronous code uses :mod:`twisted_hooks.sync`.
    """

    def __init__(
        self,
        allowed_match_spec_keywords: Iterable[str],
        phases: Iterable[str] = DEFAULT_PHASES,
        reactor: IReactorTime | None = None,
    ) -> None:
        if isinstance(allowed_match_spec_keywords, str):
            raise TypeError(
                "allowed_match_spec_keywords must be a collection of keyword names, "
                f"not the single string {allowed_match_spec_keywords!r}"
            )
        allowed = frozenset(allowed_match_spec_keywords)
        for keyword in allowed:
            if not isinstance(keyword, str) or not keyword.isidentifier():
                raise ValueError(f"match-spec keyword {keyword!r} is not a valid identifier")
            if keyword in _RESERVED_KEYWORDS:
                raise ValueError(
                    f"match-spec keyword {keyword!r} is a parameter name of add_event_handler "
                    "or fire_event, so it could never be passed as a keyword; choose another "
                    f"name (the reserved names are {', '.join(sorted(_RESERVED_KEYWORDS))})"
                )
        if isinstance(phases, str):
            raise TypeError(f"phases must be a sequence of phase names, not {phases!r}")
        phase_tuple = tuple(phases)
        if not phase_tuple:
            raise ValueError("an EventDispatcher needs at least one phase")
        if len(set(phase_tuple)) != len(phase_tuple):
            raise ValueError(f"phase names must be distinct, got {phase_tuple!r}")
        self._allowed = allowed
        self._phases = phase_tuple
        self._phase_index = {name: i for i, name in enumerate(phase_tuple)}
        self._reactor = reactor
        self._ids = count(1)
        self._entries: dict[int, _Entry] = {}
        # One index for all phases: a fire looks each shape up once, whatever the phases.
        self._index: dict[tuple[str, ...], _Shape] = {}
        self._shapes: tuple[_Shape, ...] = ()
        self._dead: list[int] = []
        self._running = False
        self._in_flight = 0
        self._stop_waiters: list[Deferred[None]] = []

    # -- introspection -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """``True`` between :meth:`start` and :meth:`stop`."""
        return self._running

    @property
    def phases(self) -> tuple[str, ...]:
        """The phase names, in the order they run."""
        return self._phases

    @property
    def allowed_match_spec_keywords(self) -> frozenset[str]:
        """The keywords match specs and details may use."""
        return self._allowed

    @property
    def reactor(self) -> IReactorTime:
        """The reactor given at construction, or the global reactor."""
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        assert self._reactor is not None
        return self._reactor

    @property
    def in_flight(self) -> int:
        """How many fires have started and not yet finished."""
        return self._in_flight

    def __len__(self) -> int:
        """The number of registered handlers whose target is still alive."""
        self._purge()
        return len(self._entries)

    def __contains__(self, handler_id: object) -> bool:
        """``True`` when ``handler_id`` names a registered, live handler."""
        self._purge()
        return handler_id in self._entries

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start dispatching: later fires call their handlers."""
        self._running = True

    def stop(self, timeout: float | None = None) -> Deferred[None]:
        """
        Stop dispatching: later fires are dropped until :meth:`start` is called again.

        :param timeout: when given, the returned Deferred fails with
            :class:`twisted.internet.defer.TimeoutError` if fires are still in flight after
            that many seconds; the fires themselves go on.
        :return: a Deferred that fires ``None`` once every fire in flight has finished.
        """
        self._running = False
        if self._in_flight == 0:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._stop_waiters.append(waiter)
        if timeout is not None:
            waiter.addTimeout(timeout, self.reactor)
        return waiter

    def _fire_finished(self) -> None:
        self._in_flight -= 1
        self._wake_stop_waiters()

    def _wake_stop_waiters(self) -> None:
        if self._in_flight == 0 and self._stop_waiters:
            waiters, self._stop_waiters = self._stop_waiters, []
            for waiter in waiters:
                if not waiter.called:
                    waiter.callback(None)

    # -- registration --------------------------------------------------------------------

    def add_event_handler(
        self,
        handler: Handler,
        phase: str,
        use_weakref: bool = True,
        times: int | None = None,
        where: Callable[[Any], object] | None = None,
        **match_spec: object,
    ) -> Deferred[int]:
        """
        Register ``handler`` to be called in ``phase`` for events matching ``match_spec``.

        A handler matches a fire when every keyword of its spec that is not ``None`` is
        among the fire's details with an equal value; ``None`` is a wildcard. ``where``
        then filters on the event object itself.

        :param handler: called with the event object. It may return a value, a Deferred,
            or be an ``async def`` function.
        :param phase: one of :attr:`phases`.
        :param use_weakref: hold the handler weakly (bound methods through
            :class:`weakref.WeakMethod`), so that registering does not keep it alive; once
            it is collected it is removed. ``False`` holds it strongly.
        :param times: remove the handler after it has been called this many times.
        :param where: a filter, such as a :class:`~twisted_hooks.Q`: a callable taking the
            event, called (in the handler's phase, just before the handler would be) only
            when the match spec matched. When it returns something false the handler is
            skipped: it is not called, gets no outcome in the :class:`FireResult`, and the
            fire does not count against ``times``. When it raises, that is the handler's
            failure: logged and recorded as its outcome (and counted against ``times``),
            the handler not being called. It is held strongly. ``None``, the default,
            calls every matching handler.
        :param match_spec: keyword filters, each one of
            :attr:`allowed_match_spec_keywords`.
        :return: a Deferred, already fired, with the handler's id.
        :raise ValueError: for an unknown phase or keyword, or a ``times`` below 1.
        :raise TypeError: for a handler or a ``where`` that is not callable, an unhashable
            spec value, or a handler that cannot be referenced weakly while
            ``use_weakref`` is true.
        """
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        if where is not None and not callable(where):
            raise TypeError(
                f"where must be a callable taking the event (such as a Q), or None; got "
                f"{type(where).__name__} {where!r}"
            )
        phase_index = self._phase_index.get(phase)
        if phase_index is None:
            raise ValueError(
                f"unknown phase {phase!r}; this dispatcher's phases are {self._phases!r}"
            )
        unknown = match_spec.keys() - self._allowed
        if unknown:
            raise ValueError(
                f"unknown match-spec keyword(s) {sorted(unknown)!r}; allowed keywords are "
                f"{sorted(self._allowed)!r}"
            )
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 1
        ):
            raise ValueError(f"times must be a whole number of at least 1 or None, got {times!r}")
        spec = {k: v for k, v in match_spec.items() if v is not None}
        for keyword, value in spec.items():
            try:
                hash(value)
            except TypeError:
                raise TypeError(
                    f"match-spec value for {keyword!r} must be hashable, got "
                    f"{type(value).__name__} {value!r}"
                ) from None
        shape = tuple(sorted(spec))
        key: object = spec[shape[0]] if len(shape) == 1 else tuple(spec[k] for k in shape)
        self._purge()
        handler_id = next(self._ids)
        get = self._reference(handler, handler_id) if use_weakref else (lambda: handler)
        entry = _Entry(handler_id, get, _describe(handler), phase_index, shape, key, times, where)
        self._entries[handler_id] = entry
        shapes = self._index
        shape_index = shapes.get(shape)
        if shape_index is None:
            shape_index = shapes[shape] = _Shape(shape)
            self._shapes = tuple(shapes.values())
        shape_index.table.setdefault(key, {})[handler_id] = entry
        return succeed(handler_id)

    def _reference(self, handler: Handler, handler_id: int) -> Callable[[], Handler | None]:
        dead = self._dead

        def forget(_: object) -> None:
            # Runs wherever the collector runs: only note the id; the index is mended at
            # the next call into the dispatcher.
            dead.append(handler_id)

        return weak_handler_ref(handler, forget)

    def remove_event_handler(self, handler_id: int) -> Deferred[None]:
        """
        Remove the handler registered as ``handler_id``.

        A handler removed while a fire is under way is not called in that fire's later
        phases.

        :return: a Deferred, already fired: ``None``, or a :class:`KeyError` failure for an
            id that is not registered (never given, already removed, used up by ``times``,
            or collected).
        """
        self._purge()
        entry = self._entries.get(handler_id)
        if entry is None:
            return fail(KeyError(f"no event handler is registered with id {handler_id!r}"))
        self._remove(entry)
        return succeed(None)

    def _remove(self, entry: _Entry) -> None:
        entry.removed = True
        del self._entries[entry.id]
        shapes = self._index
        shape_index = shapes[entry.shape]
        bucket = shape_index.table[entry.key]
        del bucket[entry.id]
        if not bucket:
            del shape_index.table[entry.key]
            if not shape_index.table:
                del shapes[entry.shape]
                self._shapes = tuple(shapes.values())

    def _purge(self) -> None:
        """Remove the handlers whose weakly held targets have been collected."""
        while self._dead:
            entry = self._entries.get(self._dead.pop())
            if entry is not None:
                self._remove(entry)

    # -- firing --------------------------------------------------------------------------

    def fire_event(self, event: object, **details: object) -> Deferred[FireResult]:
        """
        Call the matching handlers with ``event``, one phase after another.

        Handlers of one phase run concurrently; the next phase starts once every Deferred
        of this one has fired. A failing handler is logged and recorded, and stops neither
        its siblings nor later phases. When no handler returns an unfired Deferred, the
        returned Deferred has fired by the time this returns.

        Cancelling the returned Deferred cancels the handlers' Deferreds of the phase under
        way and runs no later phase.

        :param event: the object handed to each handler.
        :param details: the values match specs are compared with.
        :return: a Deferred firing a :class:`FireResult`.
        :raise ValueError: for a detail keyword that is not allowed.
        """
        if self._dead:
            self._purge()
        if details and not self._allowed.issuperset(details):
            unknown = sorted(details.keys() - self._allowed)
            raise ValueError(
                f"unknown detail keyword(s) {unknown!r}; allowed keywords are "
                f"{sorted(self._allowed)!r}"
            )
        if not self._running:
            _log.warn("dropped event {event!r}: the dispatcher is stopped", event=event)
            return succeed(FireResult(event, True))
        matched: list[_Entry] | None = None
        several = False
        for shape in self._shapes:
            try:
                bucket = shape.table.get(shape.getter(details))
            except (KeyError, TypeError):
                # A keyword the shape needs is absent, or the detail value is
                # unhashable and so equals no spec value: no handler of it matches.
                continue
            if bucket:
                if matched is None:
                    matched = list(bucket.values())
                else:
                    matched.extend(bucket.values())
                    several = True
        plan: list[list[_Entry] | None] = [None] * len(self._phases)
        if matched is not None:
            if several:
                matched.sort(key=_by_id)
            for entry in matched:
                entries = plan[entry.phase_index]
                if entries is None:
                    plan[entry.phase_index] = [entry]
                else:
                    entries.append(entry)
        return _Fire(self, event, plan).run()

    def _call_used(self, entry: _Entry) -> None:
        """Count one call against ``entry``'s ``times``, removing it when used up."""
        assert entry.remaining is not None
        entry.remaining -= 1
        if entry.remaining <= 0:
            self._remove(entry)


class _Fire:
    """One fire in progress: runs the plan phase by phase."""

    __slots__ = (
        "cancelled",
        "dispatcher",
        "event",
        "in_loop",
        "next_phase",
        "outcomes",
        "pending",
        "plan",
        "result",
        "waiting",
    )

    def __init__(
        self, dispatcher: EventDispatcher, event: object, plan: list[list[_Entry] | None]
    ) -> None:
        self.dispatcher = dispatcher
        self.event = event
        self.plan = plan
        self.next_phase = 0
        self.outcomes: list[HandlerOutcome | None] = []
        self.waiting = 0
        self.pending: list[Deferred[object]] = []
        self.in_loop = False
        self.cancelled = False
        self.result: Deferred[FireResult] | None = None

    def run(self) -> Deferred[FireResult]:
        self.dispatcher._in_flight += 1
        if self._advance():
            return succeed(self._finish())
        self.result = Deferred(self._cancel)
        return self.result

    def _advance(self) -> bool:
        """Run phases until one waits on a Deferred (``False``) or all are done (``True``)."""
        plan = self.plan
        phases = self.dispatcher._phases
        event = self.event
        outcomes = self.outcomes
        while self.next_phase < len(plan) and not self.cancelled:
            entries = plan[self.next_phase]
            phase = phases[self.next_phase]
            self.next_phase += 1
            if not entries:
                continue
            self.in_loop = True
            for entry in entries:
                if entry.removed:
                    continue
                handler = entry.get()
                if handler is None:
                    continue
                where = entry.where
                if where is not None:
                    try:
                        # Skipped when false, or when the filter removed its own handler.
                        if not where(event) or entry.removed:
                            continue
                    except Exception:
                        if entry.remaining is not None and not entry.removed:
                            self.dispatcher._call_used(entry)
                        outcomes.append(self._failed(entry, phase, Failure(), where))
                        continue
                if entry.remaining is not None:
                    self.dispatcher._call_used(entry)
                try:
                    value = handler(event)
                except Exception:
                    outcomes.append(self._failed(entry, phase, Failure()))
                    continue
                if isinstance(value, CoroutineType):
                    value = Deferred.fromCoroutine(value)
                elif isinstance(value, Deferred):
                    # Already fired (a store answering at once): its value, no callback.
                    now = fired_value(value)
                    if now is not NOT_YET:
                        outcomes.append(
                            _outcome(HandlerOutcome, (entry.id, phase, entry.name, now, None))
                        )
                        continue
                else:
                    outcomes.append(
                        _outcome(HandlerOutcome, (entry.id, phase, entry.name, value, None))
                    )
                    continue
                slot = len(outcomes)
                outcomes.append(None)
                self.waiting += 1
                self.pending.append(value)
                value.addBoth(self._settled, slot, entry, phase)
            self.in_loop = False
            if self.waiting:
                return False
            self.pending.clear()
        return True

    def _settled(self, value: object, slot: int, entry: _Entry, phase: str) -> None:
        if isinstance(value, Failure):
            if self.cancelled and value.check(CancelledError):
                self.outcomes[slot] = HandlerOutcome(entry.id, phase, entry.name, None, value)
            else:
                self.outcomes[slot] = self._failed(entry, phase, value)
        else:
            self.outcomes[slot] = HandlerOutcome(entry.id, phase, entry.name, value)
        self.waiting -= 1
        if self.waiting == 0 and not self.in_loop:
            self.pending.clear()
            if self._advance():
                # The fire is over: count it out, then deliver its result, and only then
                # wake stop()'s Deferreds, so that they fire after the fire's own. When
                # cancelled, this runs inside _cancel: fail the fire here for that reason.
                dispatcher = self.dispatcher
                dispatcher._in_flight -= 1
                deferred = self.result
                if deferred is not None and not deferred.called:
                    if self.cancelled:
                        deferred.errback(Failure(CancelledError()))
                    else:
                        deferred.callback(
                            FireResult(self.event, False, tuple(self.outcomes))  # type: ignore[arg-type]
                        )
                dispatcher._wake_stop_waiters()

    def _failed(
        self, entry: _Entry, phase: str, failure: Failure, where: _Where | None = None
    ) -> HandlerOutcome:
        _log.failure(
            "the where filter of event handler {handler} failed in phase {phase} for "
            "event {event!r}"
            if where is not None
            else "event handler {handler} failed in phase {phase} for event {event!r}",
            failure,
            LogLevel.error,
            handler=entry.name,
            handler_id=entry.id,
            phase=phase,
            event=self.event,
        )
        return HandlerOutcome(entry.id, phase, entry.name, None, failure)

    def _finish(self) -> FireResult:
        self.dispatcher._fire_finished()
        return FireResult(self.event, False, tuple(self.outcomes))  # type: ignore[arg-type]

    def _cancel(self, result: Deferred[FireResult]) -> None:
        self.cancelled = True
        for deferred in list(self.pending):
            deferred.cancel()
