"""
Integration tests for :class:`twisted_hooks.dispatcher.EventDispatcher` on the real reactor:
``async def`` handlers awaiting real timers, fires overlapping in time, and ``stop()``
draining them. The unit suite is ``tests/unit/test_dispatcher.py``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from twisted_hooks import EventDispatcher

#: Short enough to keep the suite quick, long enough for other work to interleave.
TICK = 0.02


class ReactorDispatcherTests(TestCase):
    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: IReactorTime = reactor  # type: ignore[assignment]
        self.dispatcher = EventDispatcher(("kind",), reactor=self.reactor)
        self.dispatcher.start()
        self.log: list[str] = []

    def sleeper(self, name: str, delay: float = TICK) -> Any:
        """An ``async def`` handler that notes its start and end around a real sleep."""

        async def handler(event: object) -> str:
            self.log.append(f"{name} start {event}")
            await deferLater(self.reactor, delay, lambda: None)
            self.log.append(f"{name} end {event}")
            return f"{name} {event}"

        return handler

    async def test_async_handlers_across_phases(self) -> None:
        """
        ``async def`` handlers awaiting real timers give their values, and the next phase
        starts only after every one of them has finished.
        """
        first = self.sleeper("first")
        second = self.sleeper("second", TICK * 2)
        after = self.sleeper("after")
        await self.dispatcher.add_event_handler(first, "before")
        await self.dispatcher.add_event_handler(second, "before")
        await self.dispatcher.add_event_handler(after, "after")
        result = await self.dispatcher.fire_event("e")
        self.assertEqual(
            self.log,
            [
                "first start e",
                "second start e",
                "first end e",
                "second end e",
                "after start e",
                "after end e",
            ],
        )
        self.assertEqual([o.value for o in result.outcomes], ["first e", "second e", "after e"])
        self.assertTrue(result.succeeded)

    async def test_concurrent_fires_overlap(self) -> None:
        """Two fires run at the same time: both start before either one's handler ends."""
        handler = self.sleeper("h")
        await self.dispatcher.add_event_handler(handler, "during")
        first = self.dispatcher.fire_event(1)
        second = self.dispatcher.fire_event(2)
        self.assertEqual(self.dispatcher.in_flight, 2)
        results = [await first, await second]
        self.assertEqual(self.log[:2], ["h start 1", "h start 2"])
        self.assertEqual(sorted(self.log[2:]), ["h end 1", "h end 2"])
        self.assertEqual([r.outcomes[0].value for r in results], ["h 1", "h 2"])
        self.assertEqual(self.dispatcher.in_flight, 0)

    async def test_short_fire_overtakes_long_one(self) -> None:
        """A quick fire started after a slow one finishes first: fires are not serialised."""
        slow = self.sleeper("slow", TICK * 5)
        quick = self.sleeper("quick")
        await self.dispatcher.add_event_handler(slow, "during", kind="slow")
        await self.dispatcher.add_event_handler(quick, "during", kind="quick")
        finished: list[str] = []
        slow_fire = self.dispatcher.fire_event("a", kind="slow")
        slow_fire.addCallback(lambda _: finished.append("slow"))
        quick_fire = self.dispatcher.fire_event("b", kind="quick")
        quick_fire.addCallback(lambda _: finished.append("quick"))
        await quick_fire
        await slow_fire
        self.assertEqual(finished, ["quick", "slow"])

    async def test_stop_waits_for_in_flight(self) -> None:
        """``stop()`` fires only once the fire in flight has run all its phases."""
        before = self.sleeper("before")
        after = self.sleeper("after")
        await self.dispatcher.add_event_handler(before, "before")
        await self.dispatcher.add_event_handler(after, "after")
        fired = self.dispatcher.fire_event("e")
        stopped = self.dispatcher.stop()
        self.assertFalse(stopped.called)
        await stopped
        self.assertTrue(fired.called)
        self.assertEqual(self.log[-1], "after end e")
        result = await fired
        self.assertEqual(len(result.outcomes), 2)
        self.assertEqual(self.dispatcher.in_flight, 0)

    async def test_stop_timeout(self) -> None:
        """
        ``stop(timeout=...)`` fails with TimeoutError when a fire outlasts it, and the fire
        still goes on to finish.
        """
        gate: Deferred[None] = Deferred()

        async def blocked(event: object) -> str:
            await gate
            return "released"

        after = self.sleeper("after")
        await self.dispatcher.add_event_handler(blocked, "before")
        await self.dispatcher.add_event_handler(after, "after")
        fired = self.dispatcher.fire_event("e")
        await self.assertFailure(self.dispatcher.stop(timeout=TICK), TimeoutError)
        self.assertFalse(fired.called)
        self.assertEqual(self.dispatcher.in_flight, 1)
        self.reactor.callLater(TICK, gate.callback, None)
        result = await fired
        self.assertEqual([o.value for o in result.outcomes], ["released", "after e"])
        self.assertEqual(self.dispatcher.in_flight, 0)

    async def test_cancel_stops_timers(self) -> None:
        """
        Cancelling a fire cancels the timers its handlers await (the reactor is left
        clean) and runs no later phase.
        """
        slow = self.sleeper("slow", 60)
        after = self.sleeper("after")
        await self.dispatcher.add_event_handler(slow, "before")
        await self.dispatcher.add_event_handler(after, "after")
        fired = self.dispatcher.fire_event("e")
        await deferLater(self.reactor, TICK, lambda: None)
        fired.cancel()
        await self.assertFailure(fired, CancelledError)
        self.assertEqual(self.log, ["slow start e"])
        self.assertEqual(self.dispatcher.in_flight, 0)

    async def test_failing_async_handler(self) -> None:
        """An ``async def`` that fails after a real sleep is recorded, logged, and isolated."""

        async def boom(event: object) -> None:
            await deferLater(self.reactor, TICK, lambda: None)
            raise ZeroDivisionError("boom")

        after = self.sleeper("after")
        await self.dispatcher.add_event_handler(boom, "during")
        await self.dispatcher.add_event_handler(after, "after")
        result = await self.dispatcher.fire_event("e")
        self.assertEqual(len(result.failures), 1)
        self.assertEqual(result.for_phase("after")[0].value, "after e")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
