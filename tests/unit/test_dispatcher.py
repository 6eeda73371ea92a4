"""
Unit tests for :class:`twisted_hooks.dispatcher.EventDispatcher`.

Everything here is synchronous: Deferreds are fired by hand, time is a
:class:`twisted.internet.task.Clock`, and results are read with ``successResultOf`` and
``failureResultOf``. The real-reactor suite is ``tests/integration/test_dispatcher_reactor.py``.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import task
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyClass, verifyObject

from twisted_hooks import (
    DEFAULT_PHASES,
    EventDispatcher,
    FireResult,
    HandlerOutcome,
    IEventDispatcher,
)

KEYWORDS = ("kind", "user", "role")


def dispatcher(
    keywords: Iterable[str] = KEYWORDS, *, running: bool = True, **kwargs: Any
) -> EventDispatcher:
    """A dispatcher over ``keywords``, started unless ``running`` is false."""
    result = EventDispatcher(keywords, **kwargs)
    if running:
        result.start()
    return result


def qualified(function: Callable[..., object]) -> str:
    """The name the dispatcher is expected to give ``function`` in results and logs."""
    return f"{function.__module__}.{function.__qualname__}"


class Recorder:
    """
    Makes handlers that note their calls in one shared list, and keeps them alive so
    that weakly registered handlers stay registered as long as the recorder lives.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.keep: list[Callable[[Any], object]] = []

    def handler(self, name: str, result: object = None) -> Callable[[Any], object]:
        def handler(event: object) -> object:
            self.calls.append((name, event))
            return result

        self.keep.append(handler)
        return handler

    def waiting(self, name: str) -> tuple[Callable[[Any], object], Deferred[object]]:
        """A handler that notes its call and returns a Deferred the test fires."""
        deferred: Deferred[object] = Deferred()
        return self.handler(name, deferred), deferred

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class DispatcherTestCase(SynchronousTestCase):
    def add(
        self,
        target: EventDispatcher,
        handler: Callable[[Any], object],
        phase: str = "during",
        /,
        **kwargs: Any,
    ) -> int:
        """Register ``handler`` and return its id, checking the Deferred has fired."""
        handler_id = self.successResultOf(target.add_event_handler(handler, phase, **kwargs))
        self.assertIsInstance(handler_id, int)
        return handler_id

    def fire(self, target: EventDispatcher, event: object, /, **details: object) -> FireResult:
        """Fire ``event`` and return its result, checking it is there without a turn."""
        result = self.successResultOf(target.fire_event(event, **details))
        self.assertIsInstance(result, FireResult)
        return result


class ConstructorTests(DispatcherTestCase):
    def test_keywords_positional(self) -> None:
        """The allowed keywords may be passed positionally, as any iterable."""
        target = EventDispatcher(["kind", "user"])
        self.assertEqual(target.allowed_match_spec_keywords, frozenset({"kind", "user"}))

    def test_keywords_by_name(self) -> None:
        """The allowed keywords may be passed as ``allowed_match_spec_keywords=``."""
        target = EventDispatcher(allowed_match_spec_keywords=iter(("role",)))
        self.assertEqual(target.allowed_match_spec_keywords, frozenset({"role"}))

    def test_no_keywords(self) -> None:
        """A dispatcher may allow no keywords at all: only wildcard handlers exist then."""
        target = dispatcher(())
        recorder = Recorder()
        self.add(target, recorder.handler("any"))
        self.fire(target, "e")
        self.assertEqual(recorder.names, ["any"])
        self.assertRaises(
            ValueError, target.add_event_handler, recorder.handler("x"), "during", kind="a"
        )

    def test_default_phases(self) -> None:
        """Without ``phases`` the phases are before, during and after, in that order."""
        target = EventDispatcher(KEYWORDS)
        self.assertEqual(target.phases, ("before", "during", "after"))
        self.assertEqual(DEFAULT_PHASES, ("before", "during", "after"))

    def test_custom_phases(self) -> None:
        """Custom phases are kept in the order given and run in that order."""
        target = dispatcher(phases=["third", "first", "second"])
        self.assertEqual(target.phases, ("third", "first", "second"))
        recorder = Recorder()
        for phase in ("second", "first", "third"):
            self.add(target, recorder.handler(phase), phase)
        self.fire(target, "e")
        self.assertEqual(recorder.names, ["third", "first", "second"])

    def test_single_phase(self) -> None:
        """One phase is enough."""
        target = dispatcher(phases=("only",))
        self.assertEqual(target.phases, ("only",))

    def test_keywords_as_string(self) -> None:
        """A single string for the keywords is a TypeError, not a set of letters."""
        with self.assertRaises(TypeError) as caught:
            EventDispatcher("kind")
        self.assertIn("'kind'", str(caught.exception))

    def test_phases_as_string(self) -> None:
        """A single string for the phases is a TypeError, not a tuple of letters."""
        self.assertRaises(TypeError, EventDispatcher, KEYWORDS, phases="during")

    def test_duplicate_phases(self) -> None:
        """Phase names must be distinct."""
        with self.assertRaises(ValueError) as caught:
            EventDispatcher(KEYWORDS, phases=("a", "b", "a"))
        self.assertIn("distinct", str(caught.exception))

    def test_no_phases(self) -> None:
        """A dispatcher without phases is a ValueError."""
        self.assertRaises(ValueError, EventDispatcher, KEYWORDS, phases=())

    def test_non_identifier_keyword(self) -> None:
        """Each keyword must be a Python identifier, since it is passed as ``**kwargs``."""
        for bad in ("not valid", "1st", "", "kind-of", 3):
            with self.assertRaises(ValueError, msg=repr(bad)):
                EventDispatcher(["kind", bad])

    def test_reactor(self) -> None:
        """The reactor given is the one the dispatcher uses."""
        clock = task.Clock()
        self.assertIs(EventDispatcher(KEYWORDS, reactor=clock).reactor, clock)

    def test_provides_interface(self) -> None:
        """An EventDispatcher provides IEventDispatcher, and the class implements it."""
        self.assertTrue(verifyObject(IEventDispatcher, EventDispatcher(KEYWORDS)))
        self.assertTrue(verifyClass(IEventDispatcher, EventDispatcher))

    def test_reserved_keywords(self) -> None:
        """
        The parameter names of ``add_event_handler`` and ``fire_event`` cannot be allowed
        keywords, since no spec or fire could pass them: the constructor says so.
        """
        for reserved in ("handler", "phase", "use_weakref", "times", "event"):
            with self.assertRaises(ValueError, msg=reserved) as caught:
                EventDispatcher(["kind", reserved])
            self.assertIn(repr(reserved), str(caught.exception))


class AddEventHandlerTests(DispatcherTestCase):
    def test_returns_fired_deferred_with_id(self) -> None:
        """``add_event_handler`` returns an already-fired Deferred with a fresh int id."""
        target = dispatcher()
        recorder = Recorder()
        first = self.add(target, recorder.handler("a"))
        second = self.add(target, recorder.handler("b"), "after", kind="x")
        self.assertNotEqual(first, second)
        self.assertIn(first, target)
        self.assertIn(second, target)
        self.assertEqual(len(target), 2)

    def test_same_handler_twice(self) -> None:
        """The same handler registered twice gets two ids and is called twice."""
        target = dispatcher()
        recorder = Recorder()
        handler = recorder.handler("h")
        ids = [self.add(target, handler), self.add(target, handler)]
        result = self.fire(target, "e")
        self.assertEqual(recorder.names, ["h", "h"])
        self.assertEqual([o.handler_id for o in result.outcomes], ids)

    def test_works_while_stopped(self) -> None:
        """Handlers can be registered before the dispatcher is started."""
        target = dispatcher(running=False)
        recorder = Recorder()
        self.add(target, recorder.handler("h"))
        target.start()
        self.fire(target, "e")
        self.assertEqual(recorder.names, ["h"])

    def test_unknown_phase(self) -> None:
        """An unknown phase is a ValueError raised at once; nothing is registered."""
        target = dispatcher()
        with self.assertRaises(ValueError) as caught:
            target.add_event_handler(Recorder().handler("h"), "later")
        self.assertIn("'later'", str(caught.exception))
        self.assertEqual(len(target), 0)

    def test_unknown_keyword(self) -> None:
        """A keyword that is not allowed is a ValueError raised at once."""
        target = dispatcher()
        with self.assertRaises(ValueError) as caught:
            target.add_event_handler(Recorder().handler("h"), "during", kind="a", colour="red")
        self.assertIn("colour", str(caught.exception))
        self.assertEqual(len(target), 0)

    def test_unhashable_spec_value(self) -> None:
        """A list, dict or set as a spec value is a TypeError raised at once."""
        target = dispatcher()
        for value in (["a"], {"a": 1}, {"a"}):
            with self.assertRaises(TypeError, msg=repr(value)) as caught:
                target.add_event_handler(Recorder().handler("h"), "during", kind=value)
            self.assertIn("kind", str(caught.exception))
        self.assertEqual(len(target), 0)

    def test_hashable_containers(self) -> None:
        """Tuples and frozensets are fine spec values and match equal details."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("t"), kind=("a", 1))
        self.add(target, recorder.handler("f"), user=frozenset({1, 2}))
        self.fire(target, "e", kind=("a", 1), user=frozenset({2, 1}))
        self.assertEqual(recorder.names, ["t", "f"])

    def test_not_callable(self) -> None:
        """A handler that is not callable is a TypeError."""
        target = dispatcher()
        self.assertRaises(TypeError, target.add_event_handler, "not a function", "during")
        self.assertRaises(TypeError, target.add_event_handler, None, "during")
        self.assertEqual(len(target), 0)

    def test_times_validation(self) -> None:
        """``times`` must be a whole number of at least 1: 0, -1, True, 1.5 are ValueErrors."""
        target = dispatcher()
        handler = Recorder().handler("h")
        for times in (0, -1, True, False, 1.5, "2"):
            with self.assertRaises(ValueError, msg=repr(times)):
                target.add_event_handler(handler, "during", times=times)
        self.assertEqual(len(target), 0)
        self.add(target, handler, times=1)
        self.add(target, handler, times=None)
        self.assertEqual(len(target), 2)

    def test_none_is_wildcard(self) -> None:
        """``None`` in a spec constrains nothing: the handler matches any value and none."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("h"), kind=None, user="bob")
        self.fire(target, 1, user="bob")
        self.fire(target, 2, user="bob", kind="anything")
        self.fire(target, 3, user="alice")
        self.assertEqual(recorder.calls, [("h", 1), ("h", 2)])

    def test_all_none_is_all_wildcard(self) -> None:
        """A spec of only ``None`` values behaves as an empty spec."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("h"), kind=None, user=None, role=None)
        self.fire(target, 1)
        self.fire(target, 2, kind="k")
        self.assertEqual(recorder.calls, [("h", 1), ("h", 2)])


def naive_match(spec: dict[str, object], details: dict[str, object]) -> bool:
    """The definition of matching, written the obvious way."""
    return all(
        key in details and details[key] == value
        for key, value in spec.items()
        if value is not None
    )


class MatchingTests(DispatcherTestCase):
    def test_subset(self) -> None:
        """A handler matches when its spec is a subset of the details."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("h"), kind="created")
        self.fire(target, 1, kind="created", user="bob", role="admin")
        self.fire(target, 2, kind="deleted", user="bob", role="admin")
        self.assertEqual(recorder.calls, [("h", 1)])

    def test_missing_key(self) -> None:
        """A keyword the handler constrains but the fire leaves out does not match."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("h"), kind="created")
        self.fire(target, 1, user="bob")
        self.assertEqual(recorder.calls, [])

    def test_no_details(self) -> None:
        """``fire_event(event)`` reaches exactly the handlers whose specs are all wildcards."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("empty"))
        self.add(target, recorder.handler("kind"), kind="created")
        self.add(target, recorder.handler("none"), role=None)
        self.add(target, recorder.handler("user"), "before", user="bob")
        result = self.fire(target, "e")
        self.assertEqual(recorder.names, ["empty", "none"])
        self.assertEqual(len(result.outcomes), 2)

    def test_none_detail(self) -> None:
        """A detail that is ``None`` matches no handler constraining that keyword."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("kind"), kind="created")
        self.add(target, recorder.handler("any"))
        self.fire(target, 1, kind=None)
        self.assertEqual(recorder.names, ["any"])

    def test_unknown_detail_keyword(self) -> None:
        """A detail keyword that is not allowed is a ValueError at once; nothing is called."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("any"))
        with self.assertRaises(ValueError) as caught:
            target.fire_event("e", kind="x", colour="red")
        self.assertIn("colour", str(caught.exception))
        self.assertEqual(recorder.calls, [])
        self.assertEqual(target.in_flight, 0)

    def test_unknown_detail_keyword_while_stopped(self) -> None:
        """The ValueError for a bad detail keyword comes even while stopped."""
        target = dispatcher(running=False)
        self.assertRaises(ValueError, target.fire_event, "e", colour="red")

    def test_unhashable_detail(self) -> None:
        """
        An unhashable detail value matches no handler constraining that keyword (alone or
        with others), while wildcard handlers and handlers on other keywords still run.
        """
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("kind"), kind="x")
        self.add(target, recorder.handler("kind-user"), kind="x", user="bob")
        self.add(target, recorder.handler("user"), user="bob")
        self.add(target, recorder.handler("any"))
        result = self.fire(target, "e", kind=["x"], user="bob")
        self.assertEqual(recorder.names, ["user", "any"])
        self.assertTrue(result.succeeded)

    def test_multi_keyword_spec(self) -> None:
        """A spec on several keywords matches only when every one of them is equal."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("h"), kind="created", role="admin")
        self.fire(target, 1, kind="created", role="admin", user="bob")
        self.fire(target, 2, kind="created", role="user")
        self.fire(target, 3, kind="deleted", role="admin")
        self.fire(target, 4, kind="created")
        self.fire(target, 5, role="admin")
        self.assertEqual(recorder.calls, [("h", 1)])

    def test_several_shapes(self) -> None:
        """Handlers of different shapes in one phase are each matched on their own keywords."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("kind"), kind="created")
        self.add(target, recorder.handler("user"), user="bob")
        self.add(target, recorder.handler("kind-user"), kind="created", user="bob")
        self.add(target, recorder.handler("kind-role"), kind="created", role="admin")
        self.add(target, recorder.handler("other-kind"), kind="deleted")
        self.fire(target, "e", kind="created", user="bob", role="user")
        self.assertEqual(recorder.names, ["kind", "user", "kind-user"])

    def test_values_in_same_shape(self) -> None:
        """Handlers of one shape asking for different values each match only their own."""
        target = dispatcher()
        recorder = Recorder()
        for value in ("a", "b", "c"):
            self.add(target, recorder.handler(value), kind=value)
        self.fire(target, 1, kind="b")
        self.fire(target, 2, kind="c")
        self.assertEqual(recorder.calls, [("b", 1), ("c", 2)])

    def test_equal_values_match(self) -> None:
        """Matching is by equality, not identity or type: ``1``, ``1.0`` and ``True`` agree."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("h"), kind=1)
        self.fire(target, 1, kind=1.0)
        self.fire(target, 2, kind=True)
        self.fire(target, 3, kind="1")
        self.assertEqual(recorder.calls, [("h", 1), ("h", 2)])

    def test_registration_order_across_shapes(self) -> None:
        """Within a phase, handlers run in registration order whatever their shapes."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("1-kind"), kind="k")
        self.add(target, recorder.handler("2-any"))
        self.add(target, recorder.handler("3-kind-user"), kind="k", user="u")
        self.add(target, recorder.handler("4-kind"), kind="k")
        self.add(target, recorder.handler("5-user"), user="u")
        self.add(target, recorder.handler("6-any"))
        result = self.fire(target, "e", kind="k", user="u")
        expected = ["1-kind", "2-any", "3-kind-user", "4-kind", "5-user", "6-any"]
        self.assertEqual(recorder.names, expected)
        self.assertEqual(
            [o.handler_id for o in result.outcomes], sorted(o.handler_id for o in result.outcomes)
        )

    def test_shape_emptied_and_refilled(self) -> None:
        """Removing every handler of a shape and adding one back leaves matching intact."""
        target = dispatcher()
        recorder = Recorder()
        first = self.add(target, recorder.handler("first"), kind="k")
        self.add(target, recorder.handler("any"))
        self.successResultOf(target.remove_event_handler(first))
        self.add(target, recorder.handler("second"), kind="k")
        self.fire(target, "e", kind="k")
        self.assertEqual(recorder.names, ["any", "second"])

    @settings(max_examples=200, deadline=None)
    @given(
        registrations=st.lists(
            st.tuples(
                st.sampled_from(DEFAULT_PHASES),
                st.dictionaries(
                    st.sampled_from(KEYWORDS),
                    st.sampled_from([None, 0, 1, "x", "y", ("x", 1)]),
                ),
                st.booleans(),
            ),
            max_size=25,
        ),
        fires=st.lists(
            st.dictionaries(
                st.sampled_from(KEYWORDS),
                st.sampled_from([None, 0, 1, True, "x", "y", ("x", 1), ["x"], {"x": 1}]),
            ),
            min_size=1,
            max_size=4,
        ),
    )
    def test_matches_naive_reference(
        self,
        registrations: list[tuple[str, dict[str, object], bool]],
        fires: list[dict[str, object]],
    ) -> None:
        """
        For random specs, removals and details, the indexed dispatcher calls exactly the
        handlers a naive scan would, phase by phase and in registration order.
        """
        target = dispatcher()
        recorder = Recorder()
        live: list[tuple[int, str, dict[str, object]]] = []
        for number, (phase, spec, removed) in enumerate(registrations):
            handler_id = self.add(target, recorder.handler(str(number)), phase, **spec)
            if removed:
                self.successResultOf(target.remove_event_handler(handler_id))
            else:
                live.append((handler_id, phase, spec))
        self.assertEqual(len(target), len(live))
        for details in fires:
            expected = [
                (handler_id, phase)
                for phase in DEFAULT_PHASES
                for handler_id, handler_phase, spec in live
                if handler_phase == phase and naive_match(spec, details)
            ]
            result = self.fire(target, "e", **details)
            self.assertEqual([(o.handler_id, o.phase) for o in result.outcomes], expected)


class PhaseTests(DispatcherTestCase):
    def test_phase_order(self) -> None:
        """Phases run in order whatever the registration order."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("after"), "after")
        self.add(target, recorder.handler("during"), "during")
        self.add(target, recorder.handler("before"), "before")
        result = self.fire(target, "e")
        self.assertEqual(recorder.names, ["before", "during", "after"])
        self.assertEqual([o.phase for o in result.outcomes], ["before", "during", "after"])

    def test_next_phase_waits_for_every_deferred(self) -> None:
        """The next phase starts only when every Deferred of this phase has fired."""
        target = dispatcher()
        recorder = Recorder()
        first, first_deferred = recorder.waiting("first")
        second, second_deferred = recorder.waiting("second")
        self.add(target, first, "before")
        self.add(target, second, "before")
        self.add(target, recorder.handler("during"), "during")
        fired = target.fire_event("e")
        self.assertNoResult(fired)
        first_deferred.callback("one")
        self.assertEqual(recorder.names, ["first", "second"])
        self.assertNoResult(fired)
        second_deferred.callback("two")
        self.assertEqual(recorder.names, ["first", "second", "during"])
        result = self.successResultOf(fired)
        self.assertEqual([o.value for o in result.outcomes], ["one", "two", None])

    def test_waits_on_clock(self) -> None:
        """A handler's ``deferLater`` on a Clock holds the next phase until time passes."""
        clock = task.Clock()
        target = dispatcher(reactor=clock)
        recorder = Recorder()

        def slow(event: object) -> Deferred[str]:
            recorder.calls.append(("slow", event))
            return task.deferLater(clock, 5, lambda: "slept")

        self.add(target, slow, "before")
        self.add(target, recorder.handler("after"), "after")
        fired = target.fire_event("e")
        clock.advance(4.9)
        self.assertEqual(recorder.names, ["slow"])
        self.assertNoResult(fired)
        clock.advance(0.1)
        self.assertEqual(recorder.names, ["slow", "after"])
        self.assertEqual(self.successResultOf(fired).outcomes[0].value, "slept")

    def test_handlers_of_a_phase_run_concurrently(self) -> None:
        """Every handler of a phase starts before any of them finishes."""
        target = dispatcher()
        recorder = Recorder()
        first, first_deferred = recorder.waiting("first started")
        second, second_deferred = recorder.waiting("second started")
        self.add(target, first)
        self.add(target, second)
        fired = target.fire_event("e")
        self.assertEqual(recorder.names, ["first started", "second started"])
        second_deferred.callback(2)
        self.assertNoResult(fired)
        first_deferred.callback(1)
        result = self.successResultOf(fired)
        self.assertEqual([o.value for o in result.outcomes], [1, 2])

    def test_plain_deferred_and_async_handlers(self) -> None:
        """
        Plain, Deferred-returning and ``async def`` handlers each give their value; an
        ``async def`` awaiting a Deferred holds the phase until that Deferred fires.
        """
        target = dispatcher()
        recorder = Recorder()
        gate: Deferred[int] = Deferred()

        def plain(event: object) -> str:
            return f"plain {event}"

        def returns_deferred(event: object) -> Deferred[str]:
            result: Deferred[str] = Deferred()
            result.callback(f"deferred {event}")
            return result

        async def coroutine(event: object) -> str:
            value = await gate
            return f"async {event} {value}"

        self.add(target, plain)
        self.add(target, returns_deferred)
        self.add(target, coroutine)
        self.add(target, recorder.handler("after"), "after")
        fired = target.fire_event("e")
        self.assertNoResult(fired)
        self.assertEqual(recorder.calls, [])
        gate.callback(7)
        result = self.successResultOf(fired)
        self.assertEqual(
            [o.value for o in result.outcomes], ["plain e", "deferred e", "async e 7", None]
        )
        self.assertEqual(recorder.names, ["after"])

    def test_async_handler_without_await(self) -> None:
        """An ``async def`` that never waits completes within the fire call."""
        target = dispatcher()

        async def coroutine(event: object) -> str:
            return "done"

        self.add(target, coroutine)
        self.assertEqual(self.fire(target, "e").outcomes[0].value, "done")

    def test_handler_receives_event(self) -> None:
        """Every handler is called with the event object itself."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("h"))
        event = object()
        self.fire(target, event)
        self.assertIs(recorder.calls[0][1], event)

    def test_no_turn_needed(self) -> None:
        """
        When nothing waits, add, fire and remove have fired their Deferreds on return,
        already-fired Deferreds returned by handlers included.
        """
        target = dispatcher()
        recorder = Recorder()
        fired_deferred: Deferred[str] = Deferred()
        fired_deferred.callback("ok")
        added = target.add_event_handler(recorder.handler("plain"), "before")
        handler_id = self.successResultOf(added)
        self.add(target, recorder.handler("fired", fired_deferred), "during")
        result = self.successResultOf(target.fire_event("e"))
        self.assertEqual([o.value for o in result.outcomes], [None, "ok"])
        self.assertIsNone(self.successResultOf(target.remove_event_handler(handler_id)))

    def test_empty_dispatcher(self) -> None:
        """A fire with no handlers at all succeeds at once with no outcomes."""
        result = self.fire(dispatcher(), "e", kind="k")
        self.assertEqual(result, FireResult("e", False, ()))
        self.assertTrue(result.succeeded)


class FireResultTests(DispatcherTestCase):
    def result(self) -> tuple[FireResult, dict[str, int]]:
        target = dispatcher()
        ids = {}

        def ok(event: object) -> str:
            return "fine"

        def bad(event: object) -> object:
            raise ZeroDivisionError("boom")

        def late(event: object) -> int:
            return 3

        def unmatched(event: object) -> None:
            raise AssertionError("not called")

        ids["ok"] = self.add(target, ok, "before")
        ids["bad"] = self.add(target, bad, "during")
        ids["late"] = self.add(target, late, "after")
        ids["unmatched"] = self.add(target, unmatched, "after", kind="nope")
        result = self.fire(target, "e")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        return result, ids

    def test_frozen(self) -> None:
        """A FireResult cannot be changed."""
        result, _ = self.result()
        with self.assertRaises(attrs.exceptions.FrozenInstanceError):
            result.dropped = True  # type: ignore[misc]
        with self.assertRaises(attrs.exceptions.FrozenInstanceError):
            result.outcomes = ()  # type: ignore[misc]

    def test_outcomes(self) -> None:
        """Each outcome tells the handler's id, phase, name and value or failure, in order."""
        result, ids = self.result()
        self.assertEqual(result.event, "e")
        self.assertFalse(result.dropped)
        ok, bad, late = result.outcomes
        self.assertEqual(
            (ok.handler_id, ok.phase, ok.value, ok.failure), (ids["ok"], "before", "fine", None)
        )
        self.assertTrue(ok.handler_name.endswith(".result.<locals>.ok"), ok.handler_name)
        self.assertEqual((bad.handler_id, bad.phase, bad.value), (ids["bad"], "during", None))
        assert bad.failure is not None
        self.assertTrue(bad.failure.check(ZeroDivisionError))
        self.assertTrue(bad.handler_name.endswith(".bad"))
        self.assertEqual((late.handler_id, late.phase, late.value), (ids["late"], "after", 3))
        self.assertEqual([o.succeeded for o in result.outcomes], [True, False, True])

    def test_failures_and_succeeded(self) -> None:
        """``failures`` lists the failed outcomes; ``succeeded`` is false when any failed."""
        result, ids = self.result()
        self.assertEqual([o.handler_id for o in result.failures], [ids["bad"]])
        self.assertFalse(result.succeeded)

    def test_succeeded_when_all_succeed(self) -> None:
        """A fire whose handlers all succeed has no failures and succeeded."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("h"))
        result = self.fire(target, "e")
        self.assertEqual(result.failures, ())
        self.assertTrue(result.succeeded)

    def test_for_phase(self) -> None:
        """``for_phase`` gives the outcomes of one phase; an idle phase gives none."""
        target = dispatcher()
        recorder = Recorder()
        first = self.add(target, recorder.handler("a"), "during")
        second = self.add(target, recorder.handler("b"), "during")
        self.add(target, recorder.handler("c"), "after")
        result = self.fire(target, "e")
        self.assertEqual([o.handler_id for o in result.for_phase("during")], [first, second])
        self.assertEqual(result.for_phase("before"), ())

    def test_for_handler(self) -> None:
        """``for_handler`` finds a handler's outcome, or ``None`` when it was not called."""
        result, ids = self.result()
        late = result.for_handler(ids["late"])
        assert late is not None
        self.assertEqual(late.value, 3)
        self.assertIsNone(result.for_handler(ids["unmatched"]))
        self.assertIsNone(result.for_handler(10_000))

    def test_outcome_immutable(self) -> None:
        """A HandlerOutcome is an immutable named tuple."""
        result, _ = self.result()
        outcome = result.outcomes[0]
        self.assertIsInstance(outcome, HandlerOutcome)
        with self.assertRaises(AttributeError):
            outcome.value = "changed"  # type: ignore[misc]
        self.assertEqual(outcome.value, "fine")
        self.assertEqual(HandlerOutcome(1, "during", "h").failure, None)

    def test_order_follows_calls_not_completion(self) -> None:
        """Outcomes are in call order even when later handlers' Deferreds fire first."""
        target = dispatcher()
        recorder = Recorder()
        first, first_deferred = recorder.waiting("first")
        second, second_deferred = recorder.waiting("second")
        ids = [self.add(target, first), self.add(target, second)]
        fired = target.fire_event("e")
        second_deferred.callback("second")
        first_deferred.callback("first")
        result = self.successResultOf(fired)
        self.assertEqual([o.handler_id for o in result.outcomes], ids)
        self.assertEqual([o.value for o in result.outcomes], ["first", "second"])


class FailureTests(DispatcherTestCase):
    def assert_logged(
        self, events: list[dict[str, Any]], handler: Callable[..., object], phase: str
    ) -> None:
        """Exactly one error event names ``handler``, with its failure and phase."""
        matching = [e for e in events if e.get("handler") == qualified(handler)]
        self.assertEqual(len(matching), 1, events)
        (event,) = matching
        self.assertEqual(event["log_level"], LogLevel.error)
        self.assertEqual(event["phase"], phase)
        self.assertTrue(event["log_failure"].check(ZeroDivisionError))
        self.assertEqual(event["log_namespace"], "twisted_hooks.dispatcher")

    def assert_no_unhandled(self, events: list[dict[str, Any]]) -> None:
        """No event is Twisted's 'Unhandled error in Deferred' report."""
        for event in events:
            self.assertNotIn("Unhandled error", str(event.get("log_format")), event)

    def test_raising_handler(self) -> None:
        """
        A handler that raises is recorded as a failure and logged with its name; its
        siblings and later phases still run.
        """
        target = dispatcher()
        recorder = Recorder()

        def boom(event: object) -> None:
            raise ZeroDivisionError("boom")

        self.add(target, recorder.handler("sibling before"))
        boom_id = self.add(target, boom)
        self.add(target, recorder.handler("sibling after"))
        self.add(target, recorder.handler("later"), "after")
        with capturedLogs() as events:
            result = self.fire(target, "e")
            gc.collect()
        self.assertEqual(recorder.names, ["sibling before", "sibling after", "later"])
        outcome = result.for_handler(boom_id)
        assert outcome is not None and outcome.failure is not None
        self.assertTrue(outcome.failure.check(ZeroDivisionError))
        self.assertEqual(outcome.handler_name, qualified(boom))
        self.assert_logged(list(events), boom, "during")
        self.assert_no_unhandled(list(events))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_failing_deferred(self) -> None:
        """
        A handler whose Deferred fails later is recorded and logged; the failure is
        consumed, so nothing reports an unhandled error when the Deferred is collected.
        """
        target = dispatcher()
        recorder = Recorder()
        deferreds: list[Deferred[None]] = []

        def boom(event: object) -> Deferred[None]:
            deferreds.append(Deferred())
            return deferreds[-1]

        boom_id = self.add(target, boom, "before")
        self.add(target, recorder.handler("later"), "after")
        with capturedLogs() as events:
            fired = target.fire_event("e")
            self.assertEqual(recorder.calls, [])
            deferreds.pop().errback(ZeroDivisionError("late boom"))
            result = self.successResultOf(fired)
            del fired
            gc.collect()
        self.assertEqual(recorder.names, ["later"])
        self.assertEqual([o.handler_id for o in result.failures], [boom_id])
        self.assert_logged(list(events), boom, "before")
        self.assert_no_unhandled(list(events))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_failing_async(self) -> None:
        """An ``async def`` that raises after awaiting is recorded and logged."""
        target = dispatcher()
        recorder = Recorder()
        gate: Deferred[None] = Deferred()

        async def boom(event: object) -> None:
            await gate
            raise ZeroDivisionError("async boom")

        self.add(target, boom)
        self.add(target, recorder.handler("sibling"))
        self.add(target, recorder.handler("later"), "after")
        with capturedLogs() as events:
            fired = target.fire_event("e")
            self.assertEqual(recorder.names, ["sibling"])
            gate.callback(None)
            result = self.successResultOf(fired)
            del fired
            gc.collect()
        self.assertEqual(recorder.names, ["sibling", "later"])
        self.assertEqual(len(result.failures), 1)
        self.assertEqual(result.failures[0].handler_name, qualified(boom))
        self.assert_logged(list(events), boom, "during")
        self.assert_no_unhandled(list(events))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_failing_async_without_await(self) -> None:
        """An ``async def`` that raises at once is a failure within the fire call."""
        target = dispatcher()

        async def boom(event: object) -> None:
            raise ZeroDivisionError("at once")

        with capturedLogs() as events:
            self.add(target, boom)
            result = self.fire(target, "e")
        self.assertEqual(len(result.failures), 1)
        self.assert_logged(list(events), boom, "during")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_every_failure_logged(self) -> None:
        """Several failing handlers in several phases are each recorded and logged once."""
        target = dispatcher()

        def first(event: object) -> None:
            raise ZeroDivisionError("first")

        def second(event: object) -> None:
            raise ZeroDivisionError("second")

        self.add(target, first, "before")
        self.add(target, second, "after")
        with capturedLogs() as events:
            result = self.fire(target, "e")
        self.assertEqual([o.phase for o in result.failures], ["before", "after"])
        self.assert_logged(list(events), first, "before")
        self.assert_logged(list(events), second, "after")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)


class ConcurrencyTests(DispatcherTestCase):
    def test_many_fires_at_once(self) -> None:
        """
        Fires are not serialised: several wait at once, and each finishes when its own
        Deferreds fire, in any order.
        """
        target = dispatcher()
        recorder = Recorder()
        gates: dict[object, Deferred[object]] = {}

        def gate(event: object) -> Deferred[object]:
            gates[event] = Deferred()
            return gates[event]

        self.add(target, gate, "before")
        self.add(target, recorder.handler("after"), "after")
        fires = {event: target.fire_event(event) for event in (1, 2, 3)}
        self.assertEqual(target.in_flight, 3)
        self.assertEqual(sorted(gates), [1, 2, 3])
        gates[2].callback("two")
        self.assertEqual(recorder.calls, [("after", 2)])
        self.assertEqual(self.successResultOf(fires[2]).outcomes[0].value, "two")
        self.assertNoResult(fires[1])
        self.assertNoResult(fires[3])
        self.assertEqual(target.in_flight, 2)
        gates[3].callback("three")
        gates[1].callback("one")
        self.assertEqual(recorder.calls, [("after", 2), ("after", 3), ("after", 1)])
        self.assertEqual(self.successResultOf(fires[1]).outcomes[0].value, "one")
        self.assertEqual(target.in_flight, 0)

    def test_fire_from_handler(self) -> None:
        """A handler may fire on the same dispatcher; the inner fire completes inside it."""
        target = dispatcher()
        recorder = Recorder()
        inner: list[FireResult] = []

        def outer(event: object) -> None:
            recorder.calls.append(("outer", event))
            if event == "outer":
                inner.append(self.successResultOf(target.fire_event("inner", kind="inner")))

        self.add(target, outer)
        self.add(target, recorder.handler("inner only"), "after", kind="inner")
        result = self.fire(target, "outer")
        self.assertEqual(
            recorder.calls, [("outer", "outer"), ("outer", "inner"), ("inner only", "inner")]
        )
        self.assertEqual(len(inner[0].outcomes), 2)
        self.assertEqual(len(result.outcomes), 1)
        self.assertEqual(target.in_flight, 0)

    def test_fire_from_waiting_handler(self) -> None:
        """A handler may fire on the dispatcher while another fire waits, without deadlock."""
        target = dispatcher()
        recorder = Recorder()
        handler, gate = recorder.waiting("gate")
        self.add(target, handler, "before", kind="slow")
        self.add(target, recorder.handler("after"), "after")
        slow = target.fire_event("slow", kind="slow")
        self.fire(target, "quick", kind="quick")
        self.assertEqual(recorder.calls, [("gate", "slow"), ("after", "quick")])
        gate.callback(None)
        self.successResultOf(slow)

    def test_handler_adds_handler(self) -> None:
        """A handler added during a fire is not called in that fire, even in a later
        phase, and is called in the next one."""
        target = dispatcher()
        recorder = Recorder()
        added = recorder.handler("added")

        def adder(event: object) -> None:
            if event == 1:
                self.add(target, added, "after")

        self.add(target, adder, "before")
        self.fire(target, 1)
        self.assertEqual(recorder.calls, [])
        self.fire(target, 2)
        self.assertEqual(recorder.calls, [("added", 2)])

    def test_handler_removes_handler(self) -> None:
        """A handler removed during a fire is not called in that fire's later phases."""
        target = dispatcher()
        recorder = Recorder()
        victim_id = self.add(target, recorder.handler("victim"), "after")
        removed: list[None] = []

        def remover(event: object) -> None:
            removed.append(self.successResultOf(target.remove_event_handler(victim_id)))

        self.add(target, remover, "before")
        result = self.fire(target, "e")
        self.assertEqual(removed, [None])
        self.assertEqual(recorder.calls, [])
        self.assertIsNone(result.for_handler(victim_id))
        self.assertNotIn(victim_id, target)

    def test_removal_while_waiting(self) -> None:
        """A handler removed while a fire waits between phases is not called in it."""
        target = dispatcher()
        recorder = Recorder()
        handler, gate = recorder.waiting("gate")
        self.add(target, handler, "before")
        victim_id = self.add(target, recorder.handler("victim"), "after")
        fired = target.fire_event("e")
        self.successResultOf(target.remove_event_handler(victim_id))
        gate.callback(None)
        self.successResultOf(fired)
        self.assertEqual(recorder.names, ["gate"])

    def test_handler_removes_itself(self) -> None:
        """A handler may remove itself: it runs once, and is gone for the next fire."""
        target = dispatcher()
        calls: list[object] = []
        own: list[int] = []

        def once(event: object) -> str:
            calls.append(event)
            self.successResultOf(target.remove_event_handler(own[0]))
            return "removed myself"

        own.append(self.add(target, once))
        result = self.fire(target, 1)
        self.fire(target, 2)
        self.assertEqual(calls, [1])
        self.assertEqual(result.outcomes[0].value, "removed myself")
        self.assertNotIn(own[0], target)
        self.assertEqual(len(target), 0)

    def test_handler_stops_dispatcher(self) -> None:
        """
        A handler may call ``stop()``: the fire under way goes on through its phases, the
        stop Deferred fires when it ends, and later fires are dropped.
        """
        target = dispatcher()
        recorder = Recorder()
        stopped: list[Deferred[None]] = []
        handler, gate = recorder.waiting("during")

        def stopper(event: object) -> None:
            stopped.append(target.stop())

        self.add(target, stopper, "before")
        self.add(target, handler, "during")
        self.add(target, recorder.handler("after"), "after")
        fired = target.fire_event("e")
        self.assertFalse(target.running)
        self.assertNoResult(stopped[0])
        self.assertTrue(self.successResultOf(target.fire_event("late")).dropped)
        gate.callback(None)
        self.assertEqual(recorder.names, ["during", "after"])
        self.assertFalse(self.successResultOf(fired).dropped)
        self.assertIsNone(self.successResultOf(stopped[0]))

    def test_handler_stops_synchronous_fire(self) -> None:
        """``stop()`` from a handler of a fire that never waits fires when the fire ends."""
        target = dispatcher()
        stopped: list[Deferred[None]] = []

        def stopper(event: object) -> None:
            stopped.append(target.stop())

        self.add(target, stopper)
        self.fire(target, "e")
        self.assertIsNone(self.successResultOf(stopped[0]))
        self.assertEqual(target.in_flight, 0)


class Target:
    """An object whose bound method is registered as a handler."""

    def __init__(self) -> None:
        self.calls: list[object] = []

    def handle(self, event: object) -> None:
        self.calls.append(event)


class WeakReferenceTests(DispatcherTestCase):
    def test_default_weak(self) -> None:
        """
        By default a handler is held weakly: once collected it is removed from the index,
        is not called, and its id is unknown.
        """
        target = dispatcher()
        calls: list[object] = []

        def handler(event: object) -> None:
            calls.append(event)

        handler_id = self.add(target, handler)
        self.assertEqual(len(target), 1)
        del handler
        gc.collect()
        self.assertEqual(len(target), 0)
        self.assertNotIn(handler_id, target)
        self.failureResultOf(target.remove_event_handler(handler_id), KeyError)
        self.assertEqual(self.fire(target, "e").outcomes, ())
        self.assertEqual(calls, [])

    def test_dead_handler_skipped_by_fire(self) -> None:
        """A handler collected before the fire is not called, without any other call first."""
        target = dispatcher()
        calls: list[object] = []

        def handler(event: object) -> None:
            calls.append(event)

        self.add(target, handler, kind="k")
        del handler
        gc.collect()
        self.assertEqual(self.fire(target, "e", kind="k").outcomes, ())
        self.assertEqual(calls, [])
        self.assertEqual(len(target), 0)

    def test_dies_during_fire(self) -> None:
        """A handler collected between the phases of a fire is not called in it."""
        target = dispatcher()
        calls: list[object] = []
        holder: list[Callable[[object], None]] = []

        def victim(event: object) -> None:
            calls.append(event)

        holder.append(victim)
        del victim

        def killer(event: object) -> None:
            holder.clear()
            gc.collect()

        self.add(target, killer, "before")
        self.add(target, holder[0], "after")
        result = self.fire(target, "e")
        self.assertEqual(calls, [])
        self.assertEqual(len(result.outcomes), 1)
        self.assertEqual(len(target), 1)

    def test_bound_method(self) -> None:
        """A bound method is held through WeakMethod: alive with its instance, gone after."""
        target = dispatcher()
        instance = Target()
        handler_id = self.add(target, instance.handle)
        gc.collect()
        self.fire(target, 1)
        self.assertEqual(instance.calls, [1])
        self.assertEqual(self.fire(target, 2).outcomes[0].handler_name, qualified(Target.handle))
        del instance
        gc.collect()
        self.assertNotIn(handler_id, target)
        self.assertEqual(len(target), 0)
        self.assertEqual(self.fire(target, 3).outcomes, ())

    def test_strong_reference(self) -> None:
        """``use_weakref=False`` keeps even a lambda with no other reference alive."""
        target = dispatcher()
        calls: list[object] = []
        handler_id = self.add(target, lambda event: calls.append(event), use_weakref=False)
        gc.collect()
        self.assertIn(handler_id, target)
        self.fire(target, "e")
        self.assertEqual(calls, ["e"])

    def test_strong_bound_method(self) -> None:
        """``use_weakref=False`` keeps a bound method's instance alive."""
        target = dispatcher()
        instance = Target()
        self.add(target, instance.handle, use_weakref=False)
        calls = instance.calls
        del instance
        gc.collect()
        self.fire(target, "e")
        self.assertEqual(calls, ["e"])

    def test_builtin_weak(self) -> None:
        """
        A built-in bound method cannot be held weakly: TypeError telling the user to pass
        ``use_weakref=False``; with it, the built-in works.
        """
        target = dispatcher()
        calls: list[object] = []
        with self.assertRaises(TypeError) as caught:
            target.add_event_handler(calls.append, "during")
        self.assertIn("use_weakref=False", str(caught.exception))
        self.assertEqual(len(target), 0)
        self.add(target, calls.append, use_weakref=False)
        self.fire(target, "e")
        self.assertEqual(calls, ["e"])


class TimesTests(DispatcherTestCase):
    def test_times(self) -> None:
        """A handler added with ``times=N`` is called N times and then removed."""
        target = dispatcher()
        recorder = Recorder()
        handler_id = self.add(target, recorder.handler("h"), times=2)
        self.fire(target, 1)
        self.assertIn(handler_id, target)
        self.fire(target, 2)
        self.assertNotIn(handler_id, target)
        self.fire(target, 3)
        self.assertEqual(recorder.calls, [("h", 1), ("h", 2)])
        self.assertEqual(len(target), 0)
        self.failureResultOf(target.remove_event_handler(handler_id), KeyError)

    def test_times_counts_only_matching_fires(self) -> None:
        """Fires that do not match a ``times`` handler do not use up its calls."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("h"), times=1, kind="k")
        self.fire(target, 1, kind="other")
        self.fire(target, 2, kind="k")
        self.fire(target, 3, kind="k")
        self.assertEqual(recorder.calls, [("h", 2)])

    def test_times_one_concurrent_fires(self) -> None:
        """With overlapping fires, a ``times=1`` handler is still called once only."""
        target = dispatcher()
        recorder = Recorder()
        gates: list[Deferred[None]] = []

        def gate(event: object) -> Deferred[None]:
            gates.append(Deferred())
            return gates[-1]

        self.add(target, gate, "before")
        self.add(target, recorder.handler("once"), "after", times=1)
        first = target.fire_event(1)
        second = target.fire_event(2)
        gates[1].callback(None)
        gates[0].callback(None)
        self.assertEqual(recorder.calls, [("once", 2)])
        self.assertEqual(len(self.successResultOf(first).for_phase("after")), 0)
        self.assertEqual(len(self.successResultOf(second).for_phase("after")), 1)

    def test_times_with_failure(self) -> None:
        """A failing call still counts against ``times``."""
        target = dispatcher()
        calls: list[object] = []

        def boom(event: object) -> None:
            calls.append(event)
            raise ZeroDivisionError()

        self.add(target, boom, times=1)
        self.fire(target, 1)
        self.fire(target, 2)
        self.assertEqual(calls, [1])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class RemoveEventHandlerTests(DispatcherTestCase):
    def test_remove(self) -> None:
        """Removing fires None at once and the handler is not called again."""
        target = dispatcher()
        recorder = Recorder()
        handler_id = self.add(target, recorder.handler("h"))
        keep_id = self.add(target, recorder.handler("kept"))
        self.assertIsNone(self.successResultOf(target.remove_event_handler(handler_id)))
        self.fire(target, "e")
        self.assertEqual(recorder.names, ["kept"])
        self.assertEqual(len(target), 1)
        self.assertIn(keep_id, target)

    def test_unknown_id(self) -> None:
        """An id never given fails the Deferred with KeyError."""
        failure = self.failureResultOf(dispatcher().remove_event_handler(42), KeyError)
        self.assertIn("42", str(failure.value))

    def test_double_removal(self) -> None:
        """Removing the same id twice fails the second time with KeyError."""
        target = dispatcher()
        handler_id = self.add(target, Recorder().handler("h"), use_weakref=False)
        self.successResultOf(target.remove_event_handler(handler_id))
        self.failureResultOf(target.remove_event_handler(handler_id), KeyError)


class LifecycleTests(DispatcherTestCase):
    def test_new_is_stopped(self) -> None:
        """A new dispatcher is stopped."""
        self.assertFalse(EventDispatcher(KEYWORDS).running)

    def test_start(self) -> None:
        """``start()`` returns None and starts the dispatcher."""
        target = EventDispatcher(KEYWORDS)
        self.assertIsNone(target.start())  # type: ignore[func-returns-value]
        self.assertTrue(target.running)

    def test_dropped_while_stopped(self) -> None:
        """
        A fire while stopped calls no handler, says it was dropped, and is logged at warn
        level with the event.
        """
        target = dispatcher(running=False)
        recorder = Recorder()
        self.add(target, recorder.handler("h"))
        with capturedLogs() as events:
            result = self.fire(target, "lost")
        self.assertTrue(result.dropped)
        self.assertFalse(result.succeeded)
        self.assertEqual(result.outcomes, ())
        self.assertEqual(result.event, "lost")
        self.assertEqual(recorder.calls, [])
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["event"], "lost")
        self.assertEqual(target.in_flight, 0)

    def test_not_dropped_while_running(self) -> None:
        """A fire while running is not dropped and logs no warning."""
        target = dispatcher()
        with capturedLogs() as events:
            result = self.fire(target, "e")
        self.assertFalse(result.dropped)
        self.assertEqual([e for e in events if e["log_level"] == LogLevel.warn], [])

    def test_stop_waits_for_fires(self) -> None:
        """``stop()`` fires once every fire in flight has finished, and not before."""
        target = dispatcher()
        recorder = Recorder()
        first_handler, first_gate = recorder.waiting("first")
        self.add(target, first_handler, kind="first")
        second_handler, second_gate = recorder.waiting("second")
        self.add(target, second_handler, kind="second")
        first = target.fire_event(1, kind="first")
        second = target.fire_event(2, kind="second")
        self.assertEqual(target.in_flight, 2)
        stopped = target.stop()
        self.assertFalse(target.running)
        self.assertNoResult(stopped)
        first_gate.callback(None)
        self.successResultOf(first)
        self.assertNoResult(stopped)
        second_gate.callback(None)
        self.successResultOf(second)
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(target.in_flight, 0)

    def test_stop_fires_after_the_fire(self) -> None:
        """
        The fire's own Deferred fires before ``stop()``'s: whoever awaits the fire has its
        result before a stopping service goes on to tear things down.
        """
        target = dispatcher()
        handler, gate = Recorder().waiting("h")
        self.add(target, handler)
        order: list[str] = []
        target.fire_event("e").addCallback(lambda _: order.append("fire"))
        target.stop().addCallback(lambda _: order.append("stop"))
        gate.callback(None)
        self.assertEqual(order, ["fire", "stop"])

    def test_fire_counted_out_before_its_result(self) -> None:
        """
        When a fire's Deferred fires, the fire no longer counts as in flight: a callback on
        it sees ``in_flight`` at 0 and gets an already-fired ``stop()``.
        """
        target = dispatcher()
        handler, gate = Recorder().waiting("h")
        self.add(target, handler)
        seen: list[tuple[int, bool]] = []
        fired = target.fire_event("e")
        fired.addCallback(lambda _: seen.append((target.in_flight, target.stop().called)))
        gate.callback(None)
        self.assertEqual(seen, [(0, True)])

    def test_several_stop_waiters(self) -> None:
        """Every ``stop()`` Deferred taken during a fire fires when it ends."""
        target = dispatcher()
        handler, gate = Recorder().waiting("h")
        self.add(target, handler)
        target.fire_event("e")
        stops = [target.stop(), target.stop()]
        gate.callback(None)
        for stopped in stops:
            self.assertIsNone(self.successResultOf(stopped))

    def test_stop_idle(self) -> None:
        """``stop()`` with nothing in flight has already fired."""
        target = dispatcher()
        self.assertIsNone(self.successResultOf(target.stop()))
        self.assertIsNone(self.successResultOf(target.stop(timeout=1)))
        self.assertFalse(target.running)

    def test_stop_timeout(self) -> None:
        """
        ``stop(timeout=...)`` fails with TimeoutError after the timeout while the fire goes
        on; the fire later completes with every phase.
        """
        clock = task.Clock()
        target = dispatcher(reactor=clock)
        recorder = Recorder()
        handler, gate = recorder.waiting("before")
        self.add(target, handler, "before")
        self.add(target, recorder.handler("after"), "after")
        fired = target.fire_event("e")
        stopped = target.stop(timeout=10)
        clock.advance(9.9)
        self.assertNoResult(stopped)
        clock.advance(0.1)
        self.failureResultOf(stopped, TimeoutError)
        self.assertNoResult(fired)
        self.assertEqual(target.in_flight, 1)
        gate.callback("finally")
        result = self.successResultOf(fired)
        self.assertEqual(recorder.names, ["before", "after"])
        self.assertEqual(result.outcomes[0].value, "finally")
        self.assertEqual(target.in_flight, 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_stop_timeout_not_reached(self) -> None:
        """A ``stop(timeout=...)`` whose fires end in time succeeds and leaves no timer."""
        clock = task.Clock()
        target = dispatcher(reactor=clock)
        handler, gate = Recorder().waiting("h")
        self.add(target, handler)
        target.fire_event("e")
        stopped = target.stop(timeout=10)
        clock.advance(5)
        gate.callback(None)
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_restart(self) -> None:
        """After ``stop()``, ``start()`` again makes fires reach handlers again."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("h"))
        self.successResultOf(target.stop())
        self.assertTrue(self.fire(target, 1).dropped)
        target.start()
        self.assertTrue(target.running)
        self.assertFalse(self.fire(target, 2).dropped)
        self.assertEqual(recorder.calls, [("h", 2)])


class CancellationTests(DispatcherTestCase):
    def test_cancel(self) -> None:
        """
        Cancelling a fire cancels the pending Deferreds of the phase under way, runs no
        later phase, fails the fire with CancelledError and ends it (in_flight back to 0),
        logging nothing as an error.
        """
        target = dispatcher()
        recorder = Recorder()
        cancelled: list[str] = []
        done: Deferred[str] = Deferred()
        done.callback("done")

        def pending(name: str) -> Callable[[object], Deferred[None]]:
            def handler(event: object) -> Deferred[None]:
                return Deferred(lambda _: cancelled.append(name))

            recorder.keep.append(handler)
            return handler

        self.add(target, recorder.handler("before"), "before")
        self.add(target, pending("first"), "during")
        self.add(target, recorder.handler("done", done), "during")
        self.add(target, pending("second"), "during")
        self.add(target, recorder.handler("after"), "after")
        fired = target.fire_event("e")
        self.assertEqual(target.in_flight, 1)
        fired.cancel()
        self.failureResultOf(fired, CancelledError)
        self.assertEqual(sorted(cancelled), ["first", "second"])
        self.assertEqual(recorder.names, ["before", "done"])
        self.assertEqual(target.in_flight, 0)
        self.assertIsNone(self.successResultOf(target.stop()))

    def test_cancel_async(self) -> None:
        """Cancelling a fire reaches the Deferred an ``async def`` handler awaits."""
        target = dispatcher()
        recorder = Recorder()
        cancelled: list[bool] = []
        awaited: Deferred[None] = Deferred(lambda _: cancelled.append(True))

        async def handler(event: object) -> None:
            await awaited

        self.add(target, handler)
        self.add(target, recorder.handler("after"), "after")
        fired = target.fire_event("e")
        fired.cancel()
        self.failureResultOf(fired, CancelledError)
        self.assertEqual(cancelled, [True])
        self.assertEqual(recorder.calls, [])
        self.assertEqual(target.in_flight, 0)

    def test_cancel_finished_fire(self) -> None:
        """Cancelling a fire that has finished changes nothing."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("h"))
        fired = target.fire_event("e")
        fired.cancel()
        self.assertEqual(len(self.successResultOf(fired).outcomes), 1)
        self.assertEqual(target.in_flight, 0)

    def test_cancel_releases_stop(self) -> None:
        """
        A ``stop()`` waiting on a fire fires when that fire is cancelled, after the
        fire's own Deferred has failed.
        """
        target = dispatcher()
        handler, _ = Recorder().waiting("h")
        self.add(target, handler)
        order: list[str] = []
        fired = target.fire_event("e")
        fired.addErrback(lambda f: order.append(f"fire {f.type.__name__}"))
        stopped = target.stop()
        stopped.addCallback(lambda _: order.append("stop"))
        fired.cancel()
        self.assertEqual(order, ["fire CancelledError", "stop"])
        self.assertEqual(target.in_flight, 0)


class Counted:
    """A hashable value that counts how often it is hashed and compared."""

    hashes = 0
    comparisons = 0

    def __init__(self, value: int) -> None:
        self.value = value

    def __hash__(self) -> int:
        Counted.hashes += 1
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        Counted.comparisons += 1
        return isinstance(other, Counted) and other.value == self.value


class CostTests(DispatcherTestCase):
    def test_fire_touches_only_matching_handlers(self) -> None:
        """
        With 10,000 registered handlers of one shape, a fire hashes its detail once per
        shape, compares it only with the matching spec values and calls only the
        matching handlers: the cost does not grow with the number registered.
        """
        target = dispatcher()
        calls: list[object] = []

        def handler(event: object) -> None:
            calls.append(event)

        for value in range(10_000):
            self.add(target, handler, kind=Counted(value))
        self.add(target, handler, "after", kind=Counted(5))
        Counted.hashes = Counted.comparisons = 0
        result = self.fire(target, "miss", kind=Counted(-1))
        self.assertEqual(result.outcomes, ())
        self.assertGreaterEqual(Counted.hashes, 1)
        self.assertLessEqual(Counted.hashes, len(target.phases))  # at most once per shape
        self.assertEqual(Counted.comparisons, 0)
        Counted.hashes = Counted.comparisons = 0
        result = self.fire(target, "hit", kind=Counted(5))
        self.assertEqual(len(result.outcomes), 2)
        self.assertEqual(calls, ["hit", "hit"])
        self.assertLessEqual(Counted.hashes, len(target.phases))
        self.assertLessEqual(Counted.comparisons, 2)


class WhereTests(DispatcherTestCase):
    """``add_event_handler(..., where=...)``: a filter on the event object."""

    def test_false_skips_the_handler(self) -> None:
        """A handler whose ``where`` returns something false is not called; true calls it."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("big"), where=lambda event: event > 10)
        self.add(target, recorder.handler("truthy"), where=lambda event: [event][:event])
        self.fire(target, 0)
        self.fire(target, 11)
        self.assertEqual(recorder.calls, [("big", 11), ("truthy", 11)])

    def test_skipped_handler_has_no_outcome(self) -> None:
        """A skipped handler is absent from the fire's outcomes; its siblings are there."""
        target = dispatcher()
        recorder = Recorder()
        skipped = self.add(target, recorder.handler("skipped"), where=lambda event: False)
        called = self.add(target, recorder.handler("called", "done"), where=lambda event: True)
        plain = self.add(target, recorder.handler("plain", "ok"))
        result = self.fire(target, "e")
        self.assertEqual([o.handler_id for o in result.outcomes], [called, plain])
        self.assertIsNone(result.for_handler(skipped))
        self.assertTrue(result.succeeded)
        self.assertEqual(recorder.names, ["called", "plain"])

    def test_skipped_call_does_not_count_against_times(self) -> None:
        """Fires that ``where`` turns away do not use up a ``times`` handler's calls."""
        target = dispatcher()
        recorder = Recorder()
        handler_id = self.add(
            target, recorder.handler("once"), times=1, where=lambda event: event == "yes"
        )
        self.fire(target, "no")
        self.fire(target, "no")
        self.assertIn(handler_id, target)
        self.fire(target, "yes")
        self.assertNotIn(handler_id, target)
        self.fire(target, "yes")
        self.assertEqual(recorder.calls, [("once", "yes")])

    def test_raising_where_is_the_handlers_failure(self) -> None:
        """
        A ``where`` that raises is recorded as the handler's failure and logged at error
        level (naming the filter); the handler is not called, its siblings are, and the
        call counts against ``times``.
        """
        target = dispatcher()
        recorder = Recorder()

        def broken(event: object) -> bool:
            raise ZeroDivisionError()

        handler = recorder.handler("filtered")
        handler_id = self.add(target, handler, times=1, where=broken)
        self.add(target, recorder.handler("sibling"))
        with capturedLogs() as events:
            result = self.fire(target, "e")
        self.assertEqual(recorder.names, ["sibling"])
        outcome = result.for_handler(handler_id)
        assert outcome is not None and outcome.failure is not None
        self.assertTrue(outcome.failure.check(ZeroDivisionError))
        self.assertEqual(outcome.handler_name, qualified(handler))
        self.assertFalse(result.succeeded)
        self.assert_where_logged(list(events), handler)
        self.assertNotIn(handler_id, target)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def assert_where_logged(
        self, events: list[dict[str, Any]], handler: Callable[..., object]
    ) -> None:
        """Exactly one error event names ``handler`` and says its filter failed."""
        matching = [e for e in events if e.get("handler") == qualified(handler)]
        self.assertEqual(len(matching), 1, events)
        (event,) = matching
        self.assertEqual(event["log_level"], LogLevel.error)
        self.assertEqual(event["log_namespace"], "twisted_hooks.dispatcher")
        self.assertEqual(event["phase"], "during")
        self.assertIn("where filter", event["log_format"])
        self.assertTrue(event["log_failure"].check(ZeroDivisionError))

    def test_q_as_where(self) -> None:
        """A :class:`~twisted_hooks.Q` filters on the event object's attributes or keys."""
        from twisted_hooks import Q

        target = dispatcher()
        recorder = Recorder()
        self.add(
            target,
            recorder.handler("published"),
            kind="article",
            where=Q(state__eq="PUBLISHED") & ~Q(title__startswith="Draft"),
        )
        published = attrs.make_class("Article", ["state", "title"])
        events: list[object] = [
            published("PUBLISHED", "Hello"),
            published("DRAFT", "Hello"),
            published("PUBLISHED", "Draft: x"),
            {"state": "PUBLISHED", "title": "From a dict"},
            object(),
        ]
        for event in events:
            self.fire(target, event, kind="article")
        self.assertEqual([event for _, event in recorder.calls], [events[0], events[3]])

    def test_q_transition_as_where(self) -> None:
        """A transition Q reads the event's ``_previous_version``, Thorn's convention."""
        from twisted_hooks import Q

        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("now"), where=Q(state__now_eq="PUBLISHED"))
        article = attrs.make_class("Article", ["state", "_previous_version"])
        first = article("PUBLISHED", article("DRAFT", None))
        again = article("PUBLISHED", article("PUBLISHED", None))
        self.fire(target, first)
        self.fire(target, again)
        self.assertEqual(recorder.calls, [("now", first)])

    def test_where_only_for_matched_handlers(self) -> None:
        """
        ``where`` is called only for handlers the match spec already matched, once per
        fire each, and not for handlers removed or collected before their turn.
        """
        target = dispatcher()
        recorder = Recorder()
        asked: list[str] = []

        def where(name: str) -> Callable[[object], bool]:
            def check(event: object) -> bool:
                asked.append(name)
                return True

            return check

        for kind in ("a", "b", "c"):
            self.add(target, recorder.handler(kind), kind=kind, where=where(kind))
        self.add(target, recorder.handler("user"), user="ann", where=where("user"))
        self.add(target, recorder.handler("any"), where=where("any"))
        self.fire(target, "e", kind="b")
        self.assertEqual(asked, ["b", "any"])
        self.fire(target, "e", kind="z", user="ann")
        self.assertEqual(asked, ["b", "any", "user", "any"])

    def test_where_runs_at_the_handlers_turn(self) -> None:
        """``where`` runs in the handler's phase, after the earlier phases' handlers."""
        target = dispatcher()
        recorder = Recorder()
        state = {"ready": False}

        def prepare(event: object) -> None:
            state["ready"] = True

        self.add(target, prepare, "before")
        self.add(target, recorder.handler("after"), "after", where=lambda event: state["ready"])
        self.fire(target, "e")
        self.assertEqual(recorder.names, ["after"])

    def test_where_removing_its_handler(self) -> None:
        """A ``where`` that removes its own handler stops that call, without an error."""
        target = dispatcher()
        recorder = Recorder()
        ids: list[int] = []

        def remove_self(event: object) -> bool:
            self.successResultOf(target.remove_event_handler(ids[0]))
            return True

        ids.append(self.add(target, recorder.handler("h"), times=2, where=remove_self))
        result = self.fire(target, "e")
        self.assertEqual(recorder.calls, [])
        self.assertEqual(result.outcomes, ())
        self.assertEqual(len(target), 0)

    def test_where_not_callable(self) -> None:
        """A ``where`` that is neither callable nor None is refused with TypeError."""
        target = dispatcher()
        with self.assertRaises(TypeError) as caught:
            target.add_event_handler(Recorder().handler("h"), "during", where="state == 1")
        self.assertIn("where must be a callable taking the event", str(caught.exception))
        self.assertEqual(len(target), 0)

    def test_where_is_reserved(self) -> None:
        """``where`` cannot be an allowed match-spec keyword; the message lists the names."""
        with self.assertRaises(ValueError) as caught:
            EventDispatcher(["kind", "where"])
        message = str(caught.exception)
        self.assertIn("'where'", message)
        self.assertIn(
            "the reserved names are event, handler, phase, times, use_weakref, where", message
        )

    def test_where_default_none(self) -> None:
        """Without ``where`` every matching handler is called, as before."""
        target = dispatcher()
        recorder = Recorder()
        self.add(target, recorder.handler("h"), where=None)
        self.fire(target, "e")
        self.assertEqual(recorder.names, ["h"])
