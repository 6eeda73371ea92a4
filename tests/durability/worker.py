"""
A delivery worker for the durability tests (``tests/integration/test_durability.py``): one
process of the webhook engine on a durable store, run by the tests as a child process they
can kill.

::

    python tests/durability/worker.py --database URL --url RECEIVER --count N \
        [--enqueue] [--enqueue-only] [--poll 0.05] [--timeout 2] [--lease 5] ...

It opens the store (:func:`~twisted_hooks.store.open_store`), builds :class:`Hooks` on it
with a recipient policy allowing 127.0.0.0/8, and

- with ``--enqueue``: subscribes ``--url`` (unless a subscriber has it already) and
  publishes ``--count`` events to it, so the store holds that many more deliveries;
- with ``--enqueue-only``: does only that (its scheduler never runs, nothing is attempted);
- otherwise delivers until the store has nothing pending, retrying or in flight.

It writes JSON lines on stdout: ``{"ready": true, "pid": ...}`` once the application
runs, ``{"enqueued": N, ...}`` after enqueueing, and ``{"done": true, ...}`` at the end
(with the store's counts and how many attempts this process made), then exits 0. With
``--report PATH`` it also writes the ids of the deliveries it attempted, in attempt order,
to ``PATH`` (JSON). Warnings and errors are logged on stderr.

This directory is not collected by pytest (``collect_ignore`` in ``tests/conftest.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater, react
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from zope.interface import implementer

from twisted_hooks.interfaces import IWebhookSender
from twisted_hooks.store import open_store
from twisted_hooks.webhooks.app import Hooks, Settings
from twisted_hooks.webhooks.delivery import IN_FLIGHT, PENDING, RETRYING, Attempt, Delivery
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.sender import HTTPSender
from twisted_hooks.webhooks.subscribers import Subscriber
from twisted_hooks.webhooks.validators import (
    RecipientPolicy,
    block_internal_ips,
    ensure_protocol,
)

#: The event the worker publishes; its subscriber listens to ``durability.*``.
EVENT = "durability.tested"
#: Sends under way at once while enqueueing.
SEND_CHUNK = 100


def emit(**fields: Any) -> None:
    """Write one JSON line on stdout, at once."""
    sys.stdout.write(json.dumps(fields, sort_keys=True) + "\n")
    sys.stdout.flush()


@implementer(IWebhookSender)
class CountingSender:
    """
    An :class:`HTTPSender` that remembers which deliveries it attempted and which
    attempts succeeded, so the tests can tell the workers' shares apart.
    """

    def __init__(self, sender: HTTPSender) -> None:
        self._sender = sender
        self.attempted: list[str] = []
        self.succeeded = 0

    def attempt(self, delivery: Delivery, subscriber: Subscriber) -> Deferred[Attempt]:
        """Attempt through the wrapped sender, counting."""
        self.attempted.append(delivery.id)
        return self._sender.attempt(delivery, subscriber).addCallback(self._count)

    def _count(self, attempt: Attempt) -> Attempt:
        if attempt.succeeded:
            self.succeeded += 1
        return attempt

    def close(self) -> Deferred[None]:
        """Close the wrapped sender's idle connections."""
        return self._sender.close()


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="the store URL (open_store)")
    parser.add_argument("--url", required=True, help="the receiver's URL")
    parser.add_argument("--count", type=int, default=0, help="events to enqueue")
    parser.add_argument("--enqueue", action="store_true", help="enqueue --count events")
    parser.add_argument(
        "--enqueue-only", action="store_true", help="enqueue, then exit without delivering"
    )
    parser.add_argument("--poll", type=float, default=0.05, help="poll interval, seconds")
    parser.add_argument("--timeout", type=float, default=2.0, help="attempt deadline")
    parser.add_argument("--lease", type=float, default=5.0, help="lease, seconds")
    parser.add_argument("--concurrency", type=int, default=64, help="attempts at once")
    parser.add_argument(
        "--per-host", type=int, default=None, help="attempts at once to one host (--concurrency)"
    )
    parser.add_argument("--record-delay", type=float, default=0.01)
    parser.add_argument("--refresh", type=float, default=None, help="refresh_interval")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="give up after")
    parser.add_argument("--report", default=None, help="write attempted ids here (JSON)")
    options = parser.parse_args(argv)
    if options.enqueue_only:
        options.enqueue = True
    return options


def local_policy() -> RecipientPolicy:
    """The default validators, with 127.0.0.0/8 allowed and any port."""
    return RecipientPolicy(
        validators=(ensure_protocol("http", "https"), block_internal_ips()),
        allowed_networks=["127.0.0.0/8"],
    )


async def enqueue(hooks: Hooks, url: str, count: int) -> None:
    """Subscribe ``url`` unless stored already, then publish ``count`` events to it."""
    stored = await hooks.subscribers.list()
    if not any(subscriber.url == url for subscriber in stored):
        await hooks.subscribe("durability.*", url)
    for start in range(0, count, SEND_CHUNK):
        sends = [hooks.send(EVENT, {"n": n}) for n in range(start, min(count, start + SEND_CHUNK))]
        results = await gatherResults(sends, consumeErrors=True)
        for result in results:
            if len(result.deliveries) != 1:
                raise RuntimeError(f"an event made {len(result.deliveries)} deliveries, not 1")


async def main(reactor: Any, argv: Sequence[str]) -> None:
    """Open, (enqueue,) deliver until nothing is left, report."""
    options = parse(argv)
    globalLogBeginner.beginLoggingTo(
        [
            FilteringLogObserver(
                textFileLogObserver(sys.stderr),
                [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)],
            )
        ],
        redirectStandardIO=False,
    )
    started = time.monotonic()
    store_options: dict[str, Any] = {}
    if options.refresh is not None:
        store_options["refresh_interval"] = options.refresh
    store = await open_store(options.database, reactor, **store_options)
    settings = Settings(
        timeout=options.timeout,
        lease=options.lease,
        poll_interval=options.poll,
        record_delay=options.record_delay,
        max_concurrency=options.concurrency,
        # By default no queueing in the sender: a claimed delivery starts its deadline at
        # once.
        max_per_host=options.per_host or options.concurrency,
        retry=RetryPolicy(delays=(0.2, 0.5, 1.0), jitter=0.1),
        policy=local_policy(),
        # A receiver hiccup must not pause the run for a circuit's cooldown.
        circuit_failures=1_000_000,
        disable_failures=1_000_000,
    )
    sender = CountingSender(
        HTTPSender(
            reactor,
            settings.policy,
            max_concurrency=settings.max_concurrency,
            max_per_host=settings.max_per_host,
        )
    )
    # Every store provides IHealthStore (whether or not its class says so to mypy).
    health: Any = store
    hooks = Hooks(
        reactor,
        settings=settings,
        subscribers=store.subscribers,
        deliveries=store.deliveries,
        health=health,
        sender=sender,
    )
    if options.enqueue_only:
        # Sends are accepted and stored; nothing is claimed or attempted.
        hooks.scheduler.disownServiceParent()  # type: ignore[no-untyped-call]
    hooks.startService()
    emit(ready=True, pid=os.getpid())
    timed_out = False
    try:
        if options.enqueue:
            before = time.monotonic()
            await enqueue(hooks, options.url, options.count)
            emit(enqueued=options.count, seconds=round(time.monotonic() - before, 3))
        if not options.enqueue_only:
            while True:
                stats = await store.deliveries.stats(reactor.seconds())
                left = sum(stats.counts[status] for status in (PENDING, RETRYING, IN_FLIGHT))
                if left == 0:
                    break
                if time.monotonic() - started > options.max_seconds:
                    timed_out = True
                    break
                await deferLater(reactor, 0.1, lambda: None)
    finally:
        await hooks.stopService()
        counts = (await store.deliveries.stats(reactor.seconds())).counts
        await store.close()
    if options.report is not None:
        with open(options.report, "w", encoding="utf-8") as report:
            json.dump({"pid": os.getpid(), "attempted": sender.attempted}, report)
    emit(
        done=True,
        pid=os.getpid(),
        attempted=len(sender.attempted),
        succeeded=sender.succeeded,
        counts=counts,
        seconds=round(time.monotonic() - started, 3),
        timed_out=timed_out,
    )
    if timed_out:
        raise SystemExit(3)


if __name__ == "__main__":
    react(lambda reactor: Deferred.fromCoroutine(main(reactor, sys.argv[1:])))
