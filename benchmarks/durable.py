"""
Durable delivery throughput: the SQLite and PostgreSQL stores beside the in-memory one.

Run it from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/durable.py                  # memory and SQLite
    .venv/bin/python benchmarks/durable.py --postgres postgresql://postgres@127.0.0.1/test
    .venv/bin/python benchmarks/durable.py --count 50 --rounds 1     # smoke

It prints one JSON object per line (and nothing else on standard output). Each backend
runs a started :class:`~twisted_hooks.webhooks.app.Hooks` (``max_concurrency`` and
``max_per_host`` = ``--concurrency``, 64 by default; retries off; a policy allow-listing
``127.0.0.0/8``) whose subscriber, delivery and health stores are one store opened with
:func:`~twisted_hooks.store.open_store`:

* ``memory``: ``memory:``, the floor;
* ``sqlite``: ``sqlite:PATH``, a new file in a temporary directory for every run;
* ``postgresql``: the DSN of ``--postgres`` (or ``TWISTED_HOOKS_TEST_POSTGRES``), in a new
  schema for every run, dropped afterwards. Without either, the backend is skipped and
  the reason is printed on standard error (and in the summary's ``skipped``).

A run subscribes one subscriber to ``bench.*``, then, timed, sends ``--count`` events with
1 KiB JSON bodies (``hooks.send``) and waits for ``hooks.drain()``: the figure is
end-to-end deliveries per second, sends included, so a durable store pays for committing
each delivery before its first attempt, for its claims under a lease and for its batched
outcome records. The receiver is the delivery benchmark's (``benchmarks/_receiver.py`` in a
subprocess), shared by every backend.

Every backend is warmed up once, untimed. Then each of ``--rounds`` rounds (3) runs every
backend once, in an order rotated from round to round, so load from elsewhere on the
machine does not favour one. After the run the store is asked how many deliveries ended
``delivered``; ``errors`` counts the others, and the script exits with status 1 if any
run had one, after printing every line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import react
from twisted.internet.threads import deferToThread

from twisted_hooks.interfaces import IHealthStore
from twisted_hooks.store import Store, open_store
from twisted_hooks.webhooks.app import Hooks, Settings
from twisted_hooks.webhooks.delivery import DELIVERED
from twisted_hooks.webhooks.retry import RetryPolicy

# The delivery benchmark's helpers (this directory is not a package).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from delivery import (
    BODY_SIZE,
    EVENT,
    PATTERN,
    environment,
    event_data,
    local_policy,
    start_receiver,
    stop_receiver,
)

MEMORY = "memory"
SQLITE = "sqlite"
POSTGRESQL = "postgresql"
BACKENDS = (MEMORY, SQLITE, POSTGRESQL)
#: The environment variable giving a PostgreSQL DSN when ``--postgres`` is not given.
POSTGRES_ENV = "TWISTED_HOOKS_TEST_POSTGRES"
#: The issue's target: SQLite-durable throughput at least this fraction of in-memory.
TARGET_RATIO_MIN = 0.5


@attrs.frozen
class Run:
    """One timed run of one backend."""

    seconds: float
    cpu_seconds: float
    delivered: int
    errors: int


@attrs.define
class Place:
    """Where one run keeps its store: a URL, and how to clean up after it."""

    url: str
    cleanup: Callable[[], None]


def _postgres_schema(dsn: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(statement)


def make_place(name: str, workdir: str, postgres: str | None) -> Place:
    """A fresh place for one run of backend ``name`` (blocking: call it off the reactor)."""
    if name == MEMORY:
        return Place("memory:", lambda: None)
    if name == SQLITE:
        path = os.path.join(workdir, f"durable-{uuid.uuid4().hex[:12]}.db")

        def remove() -> None:
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(path + suffix):
                    os.remove(path + suffix)

        return Place(f"sqlite:{path}", remove)
    assert postgres is not None
    from psycopg.conninfo import make_conninfo

    schema = f"th_bench_{uuid.uuid4().hex[:12]}"
    _postgres_schema(postgres, f'CREATE SCHEMA "{schema}"')
    return Place(
        make_conninfo(postgres, options=f"-c search_path={schema}"),
        lambda: _postgres_schema(postgres, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'),
    )


async def run_backend(
    reactor: Any,
    name: str,
    url: str,
    concurrency: int,
    count: int,
    workdir: str,
    postgres: str | None,
) -> Run:
    """Send ``count`` events through a started :class:`Hooks` on a fresh ``name`` store."""
    place: Place = await deferToThread(make_place, name, workdir, postgres)
    try:
        options: dict[str, Any] = {"keep_finished": count} if name == MEMORY else {}
        store: Store = await open_store(place.url, reactor, **options)
        try:
            return await _timed(reactor, store, url, concurrency, count)
        finally:
            await store.close()
    finally:
        await deferToThread(place.cleanup)


async def _timed(reactor: Any, store: Store, url: str, concurrency: int, count: int) -> Run:
    settings = Settings(
        policy=local_policy(),
        max_concurrency=concurrency,
        max_per_host=concurrency,
        retry=RetryPolicy(delays=()),
    )
    hooks = Hooks(
        reactor,
        settings=settings,
        subscribers=store.subscribers,
        deliveries=store.deliveries,
        health=IHealthStore(store),
    )
    hooks.startService()
    try:
        await hooks.subscribe(PATTERN, url)
        data = [event_data(n) for n in range(count)]
        send = hooks.send
        cpu = time.process_time()
        started = time.perf_counter()
        sent = [send(EVENT, each) for each in data]
        results = await gatherResults(sent)
        await hooks.drain()
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        await hooks.stopService()
    made = sum(len(result.deliveries) for result in results)
    if made != count:
        raise AssertionError(f"{count} sends made {made} deliveries, not one each")
    stats = await store.deliveries.stats(reactor.seconds())
    delivered = stats.counts[DELIVERED]
    return Run(seconds, cpu, delivered, count - delivered)


@attrs.define
class Series:
    """The runs of one backend."""

    name: str
    concurrency: int
    count: int
    runs: list[Run] = attrs.field(factory=list)

    @property
    def rates(self) -> list[float]:
        return [self.count / run.seconds for run in self.runs]

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def best(self) -> float:
        return max(self.rates)

    @property
    def errors(self) -> int:
        return sum(run.errors for run in self.runs)

    def line(self) -> dict[str, object]:
        """The JSON-able line reporting this series."""
        cpu = statistics.median(run.cpu_seconds for run in self.runs)
        line: dict[str, object] = {
            "benchmark": "durable",
            "name": self.name,
            "concurrency": self.concurrency,
            "count": self.count,
            "deliveries_per_s": round(self.rate, 1),
            "deliveries_per_s_best": round(self.best, 1),
            "seconds": round(statistics.median(run.seconds for run in self.runs), 4),
            "cpu_us_per_delivery": round(cpu / self.count * 1e6, 1),
            "rounds": len(self.runs),
            "delivered": sum(run.delivered for run in self.runs),
            "errors": self.errors,
            "body_bytes": BODY_SIZE,
        }
        line.update(environment())
        return line


def _rounded(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 1)


def _ratio(numerator: float | None, denominator: float) -> float | None:
    return None if numerator is None else round(numerator / denominator, 3)


async def measure(
    reactor: Any,
    url: str,
    backends: Sequence[str],
    skipped: dict[str, str],
    concurrency: int,
    count: int,
    rounds: int,
    postgres: str | None,
    emit: Callable[[str], None],
) -> int:
    """Warm up, then run every backend ``rounds`` times; emit the lines. Returns errors."""
    workdir = tempfile.mkdtemp(prefix="twisted-hooks-durable-")
    try:
        warmup = max(10, min(count, 500))
        for name in backends:
            await run_backend(reactor, name, url, concurrency, warmup, workdir, postgres)
        series = {name: Series(name, concurrency, count) for name in backends}
        for round_number in range(rounds):
            shift = round_number % len(backends)
            for name in [*backends[shift:], *backends[:shift]]:
                gc.collect()
                run = await run_backend(reactor, name, url, concurrency, count, workdir, postgres)
                series[name].runs.append(run)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for each in series.values():
        emit(json.dumps(each.line()))
    memory = series[MEMORY]
    rate: dict[str, float | None] = dict.fromkeys(BACKENDS)
    best: dict[str, float | None] = dict.fromkeys(BACKENDS)
    for name, each in series.items():
        rate[name], best[name] = each.rate, each.best
    errors = sum(each.errors for each in series.values())
    summary: dict[str, object] = {
        "benchmark": "durable",
        "name": "summary",
        "concurrency": concurrency,
        "count": count,
        "ratio_sqlite_over_memory": _ratio(rate[SQLITE], memory.rate),
        "ratio_sqlite_over_memory_best": _ratio(best[SQLITE], memory.best),
        "ratio_postgresql_over_memory": _ratio(rate[POSTGRESQL], memory.rate),
        "ratio_postgresql_over_memory_best": _ratio(best[POSTGRESQL], memory.best),
        "deliveries_per_s_memory": _rounded(rate[MEMORY]),
        "deliveries_per_s_sqlite": _rounded(rate[SQLITE]),
        "deliveries_per_s_postgresql": _rounded(rate[POSTGRESQL]),
        "errors": errors,
        "skipped": skipped,
        "target_ratio_sqlite_min": TARGET_RATIO_MIN,
    }
    summary.update(environment())
    emit(json.dumps(summary))
    return errors


def main(argv: Sequence[str] | None = None, emit: Callable[[str], None] = print) -> int:
    """Parse ``argv``, run the benchmark and emit JSON lines; 1 if any delivery failed."""
    parser = argparse.ArgumentParser(
        description="Measure delivery throughput with the memory, SQLite and PostgreSQL "
        "stores; prints JSON lines."
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="attempts under way at once (default 64)"
    )
    parser.add_argument(
        "--count", type=int, default=5000, help="events (deliveries) per timed run (default 5000)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="timed runs of each backend (default 3)"
    )
    parser.add_argument(
        "--postgres",
        help=f"a PostgreSQL DSN to measure in a scratch schema (default: ${POSTGRES_ENV}; "
        "without either, PostgreSQL is skipped)",
    )
    parser.add_argument(
        "--backend",
        action="append",
        choices=BACKENDS,
        help="measure only these (repeatable; memory is always measured, for the ratios)",
    )
    args = parser.parse_args(argv)
    concurrency: int = args.concurrency
    count: int = args.count
    rounds: int = args.rounds
    if count < 1 or rounds < 1 or concurrency < 1:
        parser.error("--count, --rounds and --concurrency must be at least 1")
    postgres: str | None = args.postgres or os.environ.get(POSTGRES_ENV) or None
    wanted = set(args.backend or BACKENDS) | {MEMORY}
    skipped: dict[str, str] = {}
    if POSTGRESQL in wanted and postgres is None:
        skipped[POSTGRESQL] = f"no DSN: give --postgres or set {POSTGRES_ENV}"
    for name, reason in skipped.items():
        print(f"durable.py: skipping {name}: {reason}", file=sys.stderr)
    backends = [name for name in BACKENDS if name in wanted and name not in skipped]
    process, url = start_receiver()
    errors: list[int] = []

    async def run(reactor: Any) -> None:
        errors.append(
            await measure(
                reactor, url, backends, skipped, concurrency, count, rounds, postgres, emit
            )
        )

    try:
        react(lambda reactor: Deferred.fromCoroutine(run(reactor)), [])
    except SystemExit as exit:
        if exit.code:
            raise
    finally:
        stop_receiver(process)
    return 1 if not errors or errors[0] else 0


if __name__ == "__main__":
    sys.exit(main())
