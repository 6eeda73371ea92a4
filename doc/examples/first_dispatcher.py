"""
The quick start's first dispatcher: ``python doc/examples/first_dispatcher.py``.

It registers two handlers, fires one event and prints what each handler did.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from twisted_hooks import EventDispatcher


async def main(reactor: IReactorTime) -> None:
    dispatcher = EventDispatcher(("event_type", "role"), reactor=reactor)

    def audit(event: str) -> str:
        print(f"audit: {event}")
        return "audited"

    async def notify_admins(event: str) -> str:
        await task.deferLater(reactor, 0.1)  # stands for sending an e-mail
        return f"told the admins about {event!r}"

    # The handlers are local functions: hold them strongly (see "Weak references").
    audit_id = await dispatcher.add_event_handler(audit, "before", use_weakref=False)
    await dispatcher.add_event_handler(notify_admins, "during", use_weakref=False, role="admin")
    dispatcher.start()

    result = await dispatcher.fire_event(
        "susan signed up", event_type="user_created", role="admin"
    )
    print(f"dropped: {result.dropped}, succeeded: {result.succeeded}")
    for outcome in result.outcomes:
        print(f"{outcome.phase}: {outcome.value}")
    print(f"audit said: {result.for_handler(audit_id).value}")

    result = await dispatcher.fire_event("bob signed up", event_type="user_created", role="user")
    print(f"handlers called for bob: {len(result.outcomes)}")

    await dispatcher.stop()


def run(reactor: IReactorTime) -> Deferred[None]:
    return Deferred.fromCoroutine(main(reactor))


if __name__ == "__main__":
    task.react(run)
