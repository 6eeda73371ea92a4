"""
A small runnable tour of the dispatcher: ``python -m twisted_hooks.demo``.

It registers handlers in the three default phases (a plain one, an ``async def`` one that
waits on the reactor, one filtered by role, one limited with ``times=1`` and one that
fails), fires a few events and prints, for each fire, what every handler did.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

import attrs
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from twisted_hooks import EventDispatcher, FireResult


@attrs.frozen
class UserEvent:
    """The event the demo fires: something happened to a user."""

    event_type: str
    user: str
    role: str


def describe(result: FireResult) -> list[str]:
    """Lines saying what each handler of one fire did."""
    if result.dropped:
        return ["  dropped: the dispatcher was stopped"]
    lines = []
    for outcome in result.outcomes:
        if outcome.failure is not None:
            what = f"failed: {outcome.failure.getErrorMessage()}"
        else:
            what = f"returned {outcome.value!r}"
        lines.append(f"  [{outcome.phase:>6}] {outcome.handler_name.rsplit('.', 1)[-1]} {what}")
    return lines


async def tour(reactor: IReactorTime, out: TextIO) -> None:
    """Fire a few events through a dispatcher and write what happened to ``out``."""
    dispatcher = EventDispatcher(("event_type", "role"), reactor=reactor)

    def validate(event: UserEvent) -> str:
        return f"validated {event.user}"

    async def store(event: UserEvent) -> str:
        await task.deferLater(reactor, 0.05)
        return f"stored {event.user} after 50 ms"

    def notify_admins(event: UserEvent) -> str:
        return f"told the admins about {event.user}"

    def welcome_once(event: UserEvent) -> str:
        return f"welcomed {event.user} (first user only)"

    def flaky_audit(event: UserEvent) -> None:
        raise RuntimeError(f"audit log unavailable for {event.user}")

    handlers: list[tuple[Callable[[UserEvent], object], str, dict[str, Any]]] = [
        (validate, "before", {}),
        (store, "during", {"event_type": "user_created"}),
        (notify_admins, "after", {"role": "admin"}),
        (welcome_once, "after", {"event_type": "user_created", "times": 1}),
        (flaky_audit, "after", {"event_type": "user_deleted"}),
    ]
    for handler, phase, spec in handlers:
        await dispatcher.add_event_handler(handler, phase, use_weakref=False, **spec)

    dispatcher.start()
    events = [
        UserEvent("user_created", "bob", "user"),
        UserEvent("user_created", "susan", "admin"),
        UserEvent("user_deleted", "bob", "user"),
    ]
    for event in events:
        result = await dispatcher.fire_event(event, event_type=event.event_type, role=event.role)
        print(f"{event.event_type} {event.user} ({event.role}):", file=out)
        for line in describe(result):
            print(line, file=out)
    await dispatcher.stop()
    late = await dispatcher.fire_event(UserEvent("user_created", "late", "user"))
    print("user_created late (after stop):", file=out)
    for line in describe(late):
        print(line, file=out)


def main() -> None:
    """Run :func:`tour` on the global reactor, writing to standard output."""

    def run(reactor: IReactorTime) -> Deferred[None]:
        return Deferred.fromCoroutine(tour(reactor, sys.stdout))

    task.react(run)


if __name__ == "__main__":
    main()
