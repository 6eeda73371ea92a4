"""
The stores guide's program: ``python doc/examples/durable_sqlite.py``.

It keeps a webhook application's state in an SQLite file in a temporary directory. A first
run sends three events to a receiver on 127.0.0.1 and stops while one delivery waits for
its retry and another is dead; the store is closed and opened again, as by a new process,
which shows what was kept, then a second run finishes the waiting delivery, replays the
dead one and refuses to publish an event id twice.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from twisted_hooks.store import Store, open_store
from twisted_hooks.webhooks import (
    Hooks,
    RecipientPolicy,
    RetryPolicy,
    SendOptions,
    Settings,
    block_internal_ips,
    ensure_port,
    ensure_protocol,
)


class Receiver(Resource):
    """The subscriber's side: answers each order's planned status codes in turn, then 200,
    and notes the ``Hook-Delivery`` of every request."""

    isLeaf = True

    def __init__(self, plans: dict[int, list[int]]) -> None:
        super().__init__()
        self.plans = plans
        self.seen: dict[int, list[str]] = {}
        self.count = 0
        self._waiting: list[tuple[int, Deferred[None]]] = []

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        order = json.loads(request.content.read())["order"]
        delivery_id = request.getHeader("Hook-Delivery")
        assert delivery_id is not None
        self.seen.setdefault(order, []).append(delivery_id)
        plan = self.plans.get(order)
        request.setResponseCode(plan.pop(0) if plan else 200)
        self.count += 1
        for waiting in [w for w in self._waiting if w[0] <= self.count]:
            self._waiting.remove(waiting)
            waiting[1].callback(None)
        return b"noted"

    def requests(self, count: int) -> Deferred[None]:
        """A Deferred firing once ``count`` requests have come in, in all."""
        waiter: Deferred[None] = Deferred()
        if self.count >= count:
            waiter.callback(None)
        else:
            self._waiting.append((count, waiter))
        return waiter


def application(reactor: Any, store: Store, policy: RecipientPolicy) -> Hooks:
    """A webhook application whose subscribers, deliveries and endpoint health live in
    ``store``."""
    return Hooks(
        reactor,
        settings=Settings(policy=policy),
        subscribers=store.subscribers,
        deliveries=store.deliveries,
        health=store,
    )


async def show(store: Store) -> None:
    """Print each delivery in the store: its order, status and attempts."""
    deliveries = await store.deliveries.list()
    for delivery in sorted(deliveries, key=lambda d: json.loads(d.body)["order"]):
        attempts = await store.deliveries.attempts(delivery.id)
        codes = ", ".join(str(attempt.status_code) for attempt in attempts)
        order = json.loads(delivery.body)["order"]
        print(f"  order {order}: {delivery.status}, attempts: {codes}")


async def main(reactor: Any) -> None:
    # Order 2 is answered 503 once, order 3 500 once; everything else 200.
    receiver = Receiver({2: [503], 3: [500]})
    listening = reactor.listenTCP(0, Site(receiver), interface="127.0.0.1")
    port = listening.getHost().port
    policy = RecipientPolicy(
        validators=[block_internal_ips(), ensure_protocol("http", "https"), ensure_port(port)],
        allowed_networks=["127.0.0.0/8"],
    )
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:{directory}/hooks.db"

        # The first run.
        store = await open_store(url, reactor)
        hooks = application(reactor, store, policy)
        hooks.startService()
        await hooks.subscribe("order.*", f"http://127.0.0.1:{port}/hooks")
        retry_in_2s = SendOptions(retry=RetryPolicy(delays=[2.0], jitter=0.0))
        no_retry = SendOptions(retry=RetryPolicy(delays=[]))
        for order, options in [(1, None), (2, retry_in_2s), (3, no_retry)]:
            await hooks.send(
                "order.paid", {"order": order}, event_id=f"order-{order}", options=options
            )
        await receiver.requests(3)  # the first attempt of each order has come in
        await hooks.stopService()  # waits for those attempts and writes their outcomes
        await store.close()
        print("first run: 3 events sent, then stopped")

        # A new process would do the same: open the file again.
        store = await open_store(url, reactor)
        print("the store, opened again:")
        await show(store)

        # The second run: order 2 is due in 2 s; order 3 is replayed now.
        hooks = application(reactor, store, policy)
        hooks.startService()
        again = await hooks.send("order.paid", {"order": 1}, event_id="order-1")
        print(f"order-1 published again: duplicate={again.duplicate}")
        [dead] = await store.deliveries.list(status="dead")
        await hooks.retry(dead.id)
        await receiver.requests(5)
        await hooks.stopService()
        print("after the second run:")
        await show(store)
        same = all(len(set(ids)) == 1 for ids in receiver.seen.values())
        print(f"one Hook-Delivery per order, on every attempt: {same}")
        await store.close()
    await listening.stopListening()


def run(reactor: Any) -> Deferred[None]:
    return Deferred.fromCoroutine(main(reactor))


if __name__ == "__main__":
    task.react(run)
