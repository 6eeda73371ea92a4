"""
The synchronous guide's script: ``python doc/examples/blocking_script.py``.

A plain script, with no Twisted code of its own, that fires events through
:mod:`twisted_hooks.sync`.
"""

from __future__ import annotations

import time

from twisted.internet.defer import Deferred

from twisted_hooks import sync


def audit(event: str) -> str:
    # Called in the reactor thread: it must not block.
    return f"audited {event}"


def send_mail(event: str) -> str:
    # Blocks, so it is added with in_thread=True and runs in the reactor's thread pool.
    time.sleep(0.05)
    return f"mailed the admins about {event}"


def stuck(event: str) -> Deferred[None]:
    # A Deferred that never fires: the fire waits for it until its timeout.
    return Deferred()


def main() -> None:
    sync.setup()  # once, early: runs the reactor in a thread of its own
    users = sync.BlockingDispatcher.create(["event_type", "role"], timeout=5.0, start=True)

    users.add_event_handler(audit, "before")
    users.add_event_handler(send_mail, "after", in_thread=True, role="admin")

    result = users.fire_event("susan", event_type="user_created", role="admin")
    print(f"succeeded: {result.succeeded}")
    for outcome in result.outcomes:
        print(f"{outcome.phase}: {outcome.value}")

    try:
        users.add_event_handler(audit, "later")
    except ValueError as error:
        print(f"ValueError: {error}")

    stuck_id = users.add_event_handler(stuck, "during", event_type="import")
    try:
        users.fire_event("a big import", event_type="import", timeout=0.5)
    except sync.SyncTimeoutError as error:
        print(f"timed out after {error.timeout:g} s: {error.operation}")
    users.remove_event_handler(stuck_id)

    users.stop()
    print(f"dropped after stop: {users.fire_event('late').dropped}")


if __name__ == "__main__":
    main()
