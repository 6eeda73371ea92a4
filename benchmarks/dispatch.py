"""
Throughput of :meth:`twisted_hooks.dispatcher.EventDispatcher.fire_event`.

Run it from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/dispatch.py            # the full run, well under 30 s
    .venv/bin/python benchmarks/dispatch.py --quick    # tiny counts: checks it works
    .venv/bin/python benchmarks/dispatch.py --fires 50000 --repeats 7

It prints one JSON object per line (and nothing else on standard output):

* ``registered-N`` for N in 1, 100, 10000: a dispatcher with the default three phases
  (``before``, ``during``, ``after``) holds N handlers, of which exactly one, a plain
  synchronous function in ``during``, matches the fired details. The N-1 others are spread
  round-robin over the three phases and constrain ``user``, ``user`` and ``kind``, or
  ``source`` with values the fire never gives, so the index holds several shapes as a real
  application's would. N=1 therefore has one shape in one phase, N=100 and N=10000 three
  shapes in each phase: what separates N=1 from N=100 is the shapes looked up, and what
  separates N=100 from N=10000 is the number of handlers alone.
* ``matching-M`` for M in 1, 10, 100: M synchronous handlers that all match, spread over
  the three phases and over two shapes (``user`` alone, ``user`` with ``kind``), next to
  100 handlers that do not match (so ``registered`` is M+100). These lines add
  ``handler_calls_per_s`` and ``handler_calls_per_s_best``.
* ``summary``: ``ratio_n10000_over_n1``, the median events/s with N=1 divided by the median
  events/s with N=10000 (1.0 means registering 9,999 non-matching handlers costs nothing;
  the target is at most 1.5), and ``ratio_n10000_over_n1_best``, the same from the best
  repetitions.

Reading a line: ``events_per_s`` is the median over ``repeats`` timed repetitions of
``fires`` fires each (``events_per_s_best`` the fastest repetition). Every dispatcher is
built first and warmed up with an untimed fifth of a repetition; then the repetitions are
interleaved, one of each configuration per round, so that load from elsewhere on the
machine slows all configurations alike rather than skewing their comparison. ``matching-100``
runs a tenth of ``--fires`` per repetition, as each of its fires calls 100 handlers.

Each fire is awaited: the benchmark checks that the returned Deferred has already fired
(no handler waits on anything, so no reactor turn is needed) and that its
:class:`~twisted_hooks.dispatcher.FireResult` holds one outcome per matching handler, so a
fire that skipped its handlers would fail the run rather than look fast. Timing uses
:func:`time.perf_counter`; the garbage collector stays enabled, as in production. Each
line records the Python, Twisted and twisted_hooks versions, the Python implementation and
the machine, since figures are only comparable on one machine.

The targets from the issue: at least 150,000 events/s for N=1 (one matching handler
through three phases), and N=10000 within 1.5x of N=1.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import attrs

import twisted
import twisted_hooks
from twisted_hooks.dispatcher import DEFAULT_PHASES, EventDispatcher, FireResult

KEYWORDS = ("user", "kind", "source")
#: The details every fire gives; the one matching handler of ``registered-N`` asks for
#: ``user=MATCH_USER``.
MATCH_USER = "u-match"
DETAILS: dict[str, object] = {"user": MATCH_USER, "kind": "article.created", "source": "api"}
EVENT = "article.created"

REGISTERED = (1, 100, 10_000)
MATCHING = (1, 10, 100)
#: Non-matching handlers registered next to the matching ones of ``matching-M``.
MATCHING_BACKGROUND = 100


def handler(event: object) -> None:
    """A synchronous handler that does nothing: what is measured is the dispatcher."""


def other_handler(event: object) -> object:
    """A second synchronous handler, returning a value, for the non-matching population."""
    return event


@attrs.frozen
class Configuration:
    """One line of output: how the dispatcher is populated before it is fired."""

    name: str
    registered: int
    matching: int


def add_non_matching(dispatcher: EventDispatcher, count: int) -> None:
    """
    Register ``count`` handlers that :data:`DETAILS` never match, over three shapes and
    the three phases.
    """
    phases = DEFAULT_PHASES
    for i in range(count):
        phase = phases[i % len(phases)]
        shape = i % 4
        target = handler if i % 2 else other_handler
        if shape in (0, 1):
            dispatcher.add_event_handler(target, phase, user=f"u{i}")
        elif shape == 2:
            dispatcher.add_event_handler(target, phase, user=f"u{i}", kind="article.created")
        else:
            dispatcher.add_event_handler(target, phase, source=f"s{i}")


def add_matching(dispatcher: EventDispatcher, count: int) -> None:
    """Register ``count`` handlers that :data:`DETAILS` match, over two shapes and three phases."""
    phases = DEFAULT_PHASES
    for i in range(count):
        # With one handler it goes in the middle phase, so all three phases are walked.
        phase = "during" if count == 1 else phases[i % len(phases)]
        if i % 2:
            dispatcher.add_event_handler(handler, phase, user=MATCH_USER, kind="article.created")
        else:
            dispatcher.add_event_handler(handler, phase, user=MATCH_USER)


def build(configuration: Configuration) -> EventDispatcher:
    """A started dispatcher populated for ``configuration``."""
    dispatcher = EventDispatcher(KEYWORDS)
    add_non_matching(dispatcher, configuration.registered - configuration.matching)
    add_matching(dispatcher, configuration.matching)
    assert len(dispatcher) == configuration.registered
    dispatcher.start()
    return dispatcher


def run_fires(dispatcher: EventDispatcher, fires: int, expected: int) -> float:
    """
    Fire ``fires`` events, checking each one completed with ``expected`` outcomes.

    :return: the elapsed time in seconds.
    """
    fire = dispatcher.fire_event
    details = DETAILS
    event = EVENT
    start = time.perf_counter()
    for _ in range(fires):
        deferred = fire(event, **details)
        # Await it without a reactor turn: it must have fired already, with a FireResult
        # holding one outcome per matching handler.
        if not deferred.called:
            raise AssertionError(f"fire_event returned an unfired Deferred: {deferred!r}")
        result = deferred.result
        if not isinstance(result, FireResult) or len(result.outcomes) != expected:
            raise AssertionError(f"expected {expected} outcomes, got {result!r}")
    elapsed = time.perf_counter() - start
    if dispatcher.in_flight:
        raise AssertionError(f"{dispatcher.in_flight} fires are still in flight")
    return elapsed


@attrs.define
class Bench:
    """One configuration being measured: its dispatcher and the rates measured so far."""

    configuration: Configuration
    dispatcher: EventDispatcher
    fires: int
    rates: list[float] = attrs.field(factory=list)

    def warm_up(self) -> None:
        """Run a fifth of a repetition, untimed, so caches and specialisations settle."""
        run_fires(self.dispatcher, self.warmup_fires, self.configuration.matching)

    @property
    def warmup_fires(self) -> int:
        return max(1, self.fires // 5)

    def repeat(self) -> None:
        """Time one repetition and record its rate."""
        elapsed = run_fires(self.dispatcher, self.fires, self.configuration.matching)
        self.rates.append(self.fires / elapsed)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def best(self) -> float:
        return max(self.rates)

    def line(self) -> dict[str, object]:
        """The JSON-able line reporting this configuration."""
        configuration = self.configuration
        line: dict[str, object] = {
            "benchmark": "dispatch",
            "name": configuration.name,
            "registered": configuration.registered,
            "matching": configuration.matching,
            "phases": len(self.dispatcher.phases),
            "events_per_s": round(self.median),
            "events_per_s_best": round(self.best),
        }
        if configuration.name.startswith("matching-"):
            line["handler_calls_per_s"] = round(self.median * configuration.matching)
            line["handler_calls_per_s_best"] = round(self.best * configuration.matching)
        line.update(
            {
                "repeats": len(self.rates),
                "fires": self.fires,
                "warmup_fires": self.warmup_fires,
                "timer": "perf_counter",
                "gc": "enabled" if gc.isenabled() else "disabled",
                "interleaved": True,
            }
        )
        line.update(environment())
        return line


def measure_all(fires: int, repeats: int) -> list[Bench]:
    """
    Build every configuration, warm each up, then time ``repeats`` rounds in which every
    configuration runs one repetition of its fires.

    Interleaving the repetitions means a burst of load from elsewhere on the machine slows
    every configuration alike instead of skewing the comparison between them.
    """
    benches = []
    for configuration in configurations():
        # A fire calling 100 handlers takes about ten times as long: a tenth of the fires.
        count = fires if configuration.matching <= 10 else max(1, fires // 10)
        benches.append(Bench(configuration, build(configuration), count))
    gc.collect()
    for bench in benches:
        bench.warm_up()
    for _ in range(repeats):
        for bench in benches:
            bench.repeat()
    return benches


def environment() -> dict[str, object]:
    """The versions and platform the figures were measured on."""
    return {
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "twisted_hooks": twisted_hooks.__version__,
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
    }


def configurations() -> list[Configuration]:
    """Every configuration, in the order they are printed."""
    return [Configuration(f"registered-{n}", n, 1) for n in REGISTERED] + [
        Configuration(f"matching-{m}", m + MATCHING_BACKGROUND, m) for m in MATCHING
    ]


def main(argv: Sequence[str] | None = None, emit: Callable[[str], None] = print) -> int:
    """Parse ``argv``, run every configuration and emit one JSON line per result."""
    parser = argparse.ArgumentParser(
        description="Measure EventDispatcher.fire_event throughput; prints JSON lines."
    )
    parser.add_argument(
        "--fires", type=int, default=50_000, help="fires per timed repetition (default 50000)"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed repetitions per configuration (default 5)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny counts (200 fires, 2 repetitions): checks the benchmark runs, measures nothing",
    )
    args = parser.parse_args(argv)
    fires: int = 200 if args.quick else args.fires
    repeats: int = 2 if args.quick else args.repeats
    if fires < 1 or repeats < 1:
        parser.error("--fires and --repeats must be at least 1")
    benches = {bench.configuration.name: bench for bench in measure_all(fires, repeats)}
    for bench in benches.values():
        emit(json.dumps(bench.line()))
    n1, n10000 = benches["registered-1"], benches["registered-10000"]
    summary: dict[str, object] = {
        "benchmark": "dispatch",
        "name": "summary",
        "ratio_n10000_over_n1": round(n1.median / n10000.median, 3),
        "ratio_n10000_over_n1_best": round(n1.best / n10000.best, 3),
        "events_per_s_n1": round(n1.median),
        "events_per_s_n10000": round(n10000.median),
        "target_events_per_s_n1": 150_000,
        "target_ratio_max": 1.5,
    }
    summary.update(environment())
    emit(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
