"""
The engine's own cost per event, with no HTTP: what :class:`~twisted_hooks.webhooks.app.Hooks`
spends between ``send`` and ``delivered`` when the sender answers at once.

Run it from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/engine.py              # full run, a few seconds
    .venv/bin/python benchmarks/engine.py --quick      # smoke: tiny counts

It prints one JSON object on one line (and nothing else on standard output), whose
``name`` is ``engine``.

Each round builds a started :class:`Hooks` on a :class:`~twisted.internet.task.Clock`
(no real time and no sockets, so nothing but the engine's own work is timed) with the
in-memory delivery store, one stored subscriber of ``bench.*``, and a
:class:`twisted_hooks.testing.FakeSender` that answers every attempt ``204`` through a
Deferred that has already fired. It then sends ``--count`` events, each matching the one
subscriber, and advances the clock (by ``record_delay``, the batch timer of the outcomes'
writes) until every delivery has ended. The time from the first ``send`` to the last
delivery recorded as ``delivered``, divided by the count, is one round's figure.

``us_per_event`` is the median over ``--rounds`` rounds (5 by default), ``us_per_event_best``
the best, ``cpu_us_per_event`` the median of the process's CPU time per event (less
disturbed by other work on the machine); ``errors`` counts deliveries that did not end
``delivered`` (it must be 0, and the script exits with status 1 otherwise). The whole
path is timed: validation, JSON encoding, the dispatcher, pattern matching, the delivery
made and enqueued, claimed by the scheduler, admitted by the endpoint's limits, the fake's
attempt (which signs, as the real sender does), the outcome decided, recorded and
announced.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time

from twisted.internet.task import Clock

import twisted
import twisted_hooks
from twisted_hooks.testing import FakeSender
from twisted_hooks.webhooks.app import Hooks, Settings
from twisted_hooks.webhooks.delivery import DELIVERED, MemoryDeliveryStore
from twisted_hooks.webhooks.retry import RetryPolicy

EVENT = "bench.created"
PATTERN = "bench.*"
URL = "http://receiver.example/hook"
#: The most clock steps one round may take before it is declared stuck.
MAX_STEPS = 1_000_000


def one_round(count: int) -> tuple[float, float, int]:
    """
    Send ``count`` events through a fresh started :class:`Hooks` and wait (on its clock)
    until each has ended.

    :return: the seconds taken, the CPU seconds of the process meanwhile, and how many
        deliveries did not end delivered.
    """
    clock = Clock()
    clock.advance(1_700_000_000)
    settings = Settings(retry=RetryPolicy(delays=()))
    store = MemoryDeliveryStore(keep_finished=count)
    sender = FakeSender(clock, default=204)
    hooks = Hooks(clock, settings=settings, deliveries=store, sender=sender)
    hooks.startService()
    hooks.subscribe(PATTERN, URL)
    data = [{"id": n, "kind": EVENT, "total": "9.99"} for n in range(count)]
    send = hooks.send
    step = settings.record_delay
    gc.collect()
    cpu = time.process_time()
    started = time.perf_counter()
    for each in data:
        send(EVENT, each)
    steps = 0
    while hooks.unfinished:
        steps += 1
        if steps > MAX_STEPS:
            raise RuntimeError(f"{hooks.unfinished} deliveries did not end")
        clock.advance(step)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    counted: list[int] = []
    store.list(status=DELIVERED, limit=count).addCallback(lambda found: len(found)).addCallback(
        counted.append
    )
    ok = counted[0]
    hooks.stopService()
    return seconds, cpu, count - ok


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the rounds, print the line; exit status 1 on errors."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=5000, help="events per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the median is kept)")
    parser.add_argument("--quick", action="store_true", help="tiny counts, for a smoke test")
    options = parser.parse_args(argv)
    count, rounds = (50, 2) if options.quick else (options.count, options.rounds)
    if count < 1 or rounds < 1:
        parser.error("--count and --rounds must be at least 1")
    one_round(min(count, 200))  # warm up, untimed
    figures: list[float] = []
    cpu_figures: list[float] = []
    errors = 0
    for _ in range(rounds):
        seconds, cpu, failed = one_round(count)
        errors += failed
        figures.append(seconds / count * 1e6)
        cpu_figures.append(cpu / count * 1e6)
    line = {
        "benchmark": "engine",
        "name": "engine",
        "events": count,
        "rounds": rounds,
        "us_per_event": round(statistics.median(figures), 2),
        "us_per_event_best": round(min(figures), 2),
        "cpu_us_per_event": round(statistics.median(cpu_figures), 2),
        "errors": errors,
        "timer": "perf_counter",
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "twisted_hooks": twisted_hooks.__version__,
    }
    print(json.dumps(line), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
