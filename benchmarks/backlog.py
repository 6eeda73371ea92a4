"""
Resident memory with a large backlog of pending deliveries in an SQLite store.

Run it from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/backlog.py                          # 1,000,000 pending
    .venv/bin/python benchmarks/backlog.py --pending 2000 --seconds 1   # smoke
    .venv/bin/python benchmarks/backlog.py --path /tmp/backlog.db   # keep the file, reuse it

It prints one JSON object per line (and nothing else on standard output; progress goes to
standard error). Three steps, each in a process of its own:

1. the receiver of the delivery benchmark (``benchmarks/_receiver.py``) starts;
2. *fill*: a process opens the SQLite file with
   :func:`~twisted_hooks.store.open_store`, adds one subscriber (the receiver) and stores
   ``--pending`` deliveries of 1 KiB JSON bodies through the store's own
   :meth:`~twisted_hooks.interfaces.IDeliveryStore.enqueue`, ``--batch`` (10,000) per
   call, then closes it. With ``--path`` naming a file that already holds exactly that
   backlog (and nothing else), this step is skipped;
3. *measure*: a **fresh** process reads its resident set size (``VmRSS`` of
   ``/proc/self/status``) after its imports (``rss_mb_start``), opens the store and counts
   the backlog (``rss_mb_before``), then starts a :class:`~twisted_hooks.webhooks.app.Hooks`
   on it (``max_concurrency`` = ``max_per_host`` = ``--concurrency``, 64) and lets it
   drain for ``--seconds`` (10), sampling the RSS every 0.25 s. At the end of the window it
   reads the RSS (``rss_mb_draining``) and the peak (``VmHWM``, ``peak_mb``), stops the
   application (the attempts under way finish and are recorded) and counts the deliveries
   that ended ``delivered``.

The measuring line gives ``pending`` (deliveries due when the store was opened),
``rss_mb_start``, ``rss_mb_before``, ``rss_mb_draining``, ``rss_mb_draining_max`` (the
largest sample), ``peak_mb``, ``delivered_while_measuring``, ``seconds`` and
``deliveries_per_s``. The last line, ``"name": "summary"``, repeats the figures with the
target from the issue (``target_rss_mb_max``: 300). The script exits with status 1 if a
step fails or a delivery did not succeed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater, react

from twisted_hooks.store import SQLiteStore, Store, open_store
from twisted_hooks.webhooks.app import Hooks, Settings
from twisted_hooks.webhooks.delivery import DEAD, DELIVERED, PENDING, Delivery
from twisted_hooks.webhooks.encoding import JSON, encode_body
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.subscribers import Subscriber

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

PENDING_DEFAULT = 1_000_000
#: The issue's target: resident memory with the backlog stays under this many MB.
TARGET_RSS_MB_MAX = 300
#: How often the RSS is sampled while draining, in seconds.
SAMPLE_EVERY = 0.25
SCRIPT = Path(__file__).resolve()


def memory_mb() -> dict[str, float | None]:
    """``VmRSS`` and ``VmHWM`` of this process in MB (``None`` where not available)."""
    found: dict[str, float | None] = {"VmRSS": None, "VmHWM": None}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in found:
                    found[key] = round(int(value.split()[0]) / 1024, 1)  # kB
    except OSError:
        pass
    return found


def rss_mb() -> float | None:
    """The resident set size of this process in MB."""
    return memory_mb()["VmRSS"]


def progress(message: str) -> None:
    """Report progress on standard error."""
    print(f"backlog.py: {message}", file=sys.stderr, flush=True)


# --- fill --------------------------------------------------------------------------------


async def fill(reactor: Any, path: str, url: str, pending: int, batch: int) -> dict[str, Any]:
    """Store ``pending`` due deliveries to one subscriber at ``url`` in the file ``path``."""
    store = await open_store(f"sqlite:{path}", reactor)
    try:
        subscriber = await store.subscribers.add(Subscriber(event=PATTERN, url=url))
        body = encode_body(event_data(0), JSON)
        assert len(body) == BODY_SIZE
        retry = RetryPolicy(delays=())
        started = time.perf_counter()
        made = 0
        while made < pending:
            now = reactor.seconds()
            size = min(batch, pending - made)
            deliveries = [
                Delivery(
                    id=str(uuid.uuid4()),
                    event=EVENT,
                    event_id=str(uuid.uuid4()),
                    subscriber=subscriber,
                    body=body,
                    created_at=now,
                    next_attempt_at=now,
                    retry=retry,
                )
                for _ in range(size)
            ]
            await store.deliveries.enqueue(deliveries)
            made += size
            if made == pending or made % (10 * batch) == 0:
                elapsed = time.perf_counter() - started
                progress(f"filled {made}/{pending} in {elapsed:.0f} s")
        stats = await store.deliveries.stats(reactor.seconds())
        return {
            "pending": stats.counts[PENDING],
            "fill_seconds": round(time.perf_counter() - started, 1),
        }
    finally:
        await store.close()


async def reuse(reactor: Any, path: str, url: str) -> int | None:
    """
    The pending deliveries in an existing file ``path`` if it holds nothing else (its
    subscribers then point at ``url``, this run's receiver), else ``None``.
    """
    if not os.path.exists(path):
        return None
    store = await open_store(f"sqlite:{path}", reactor)
    try:
        stats = await store.deliveries.stats(reactor.seconds())
        others = sum(count for status, count in stats.counts.items() if status != PENDING)
        if others:
            return None
        for subscriber in await store.subscribers.list():
            await store.subscribers.update(attrs.evolve(subscriber, url=url))
    finally:
        await store.close()
    return stats.counts[PENDING]


# --- measure -----------------------------------------------------------------------------


async def measure(reactor: Any, path: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """Open the store, start the application, drain for ``seconds``; the RSS figures."""
    start_rss = rss_mb()
    store: Store = await open_store(f"sqlite:{path}", reactor)
    assert isinstance(store, SQLiteStore)
    try:
        stats = await store.deliveries.stats(reactor.seconds())
        pending = stats.counts[PENDING]
        before = rss_mb()
        progress(f"store opened: {pending} pending, RSS {before} MB; draining for {seconds} s")
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
            health=store,
        )
        samples: list[float] = []
        started = time.perf_counter()
        hooks.startService()
        try:
            while time.perf_counter() - started < seconds:
                await deferLater(reactor, SAMPLE_EVERY, lambda: None)
                sample = rss_mb()
                if sample is not None:
                    samples.append(sample)
            at_end = memory_mb()
        finally:
            await hooks.stopService()
        elapsed = time.perf_counter() - started
        after = await store.deliveries.stats(reactor.seconds())
    finally:
        await store.close()
    delivered = after.counts[DELIVERED]
    return {
        "pending": pending,
        "rss_mb_start": start_rss,
        "rss_mb_before": before,
        "rss_mb_draining": at_end["VmRSS"],
        "rss_mb_draining_max": max(samples) if samples else None,
        "peak_mb": at_end["VmHWM"],
        "delivered_while_measuring": delivered,
        "dead": after.counts[DEAD],
        "seconds": round(elapsed, 2),
        "deliveries_per_s": round(delivered / elapsed, 1),
    }


# --- the steps, each in its own process --------------------------------------------------


def _in_reactor(work: Callable[[Any], Any]) -> None:
    """Run ``await work(reactor)`` in a reactor, print its result as one JSON line."""
    result: list[Any] = []

    async def run(reactor: Any) -> None:
        result.append(await work(reactor))

    try:
        react(lambda reactor: Deferred.fromCoroutine(run(reactor)), [])
    except SystemExit as exit:
        if exit.code:
            raise
    print(json.dumps(result[0]), flush=True)


def _step(arguments: list[str]) -> Any:
    """Run this script with ``arguments`` in a fresh process; its JSON answer."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], stdout=subprocess.PIPE, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"backlog.py {arguments[0]} exited with status {done.returncode}")
    return json.loads(done.stdout.splitlines()[-1])


def main(argv: Sequence[str] | None = None, emit: Callable[[str], None] = print) -> int:
    """Parse ``argv``, run the benchmark and emit JSON lines; 1 if something failed."""
    parser = argparse.ArgumentParser(
        description="Measure resident memory with a backlog of pending deliveries in "
        "SQLite, before and while draining it; prints JSON lines."
    )
    parser.add_argument(
        "--pending",
        type=int,
        default=PENDING_DEFAULT,
        help=f"deliveries in the backlog (default {PENDING_DEFAULT:,})",
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="seconds of draining measured (default 10)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="attempts under way at once (default 64)"
    )
    parser.add_argument(
        "--batch", type=int, default=10_000, help="deliveries per enqueue when filling"
    )
    parser.add_argument(
        "--path",
        help="the SQLite file (kept; reused when it holds exactly the backlog asked for); "
        "default: a temporary file, removed afterwards",
    )
    # The steps run in processes of their own.
    parser.add_argument("--fill", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--reuse", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    pending: int = args.pending
    seconds: float = args.seconds
    concurrency: int = args.concurrency
    batch: int = args.batch
    if pending < 1 or batch < 1 or concurrency < 1 or not seconds > 0:
        parser.error("--pending, --batch, --concurrency and --seconds must be positive")
    if args.fill or args.reuse or args.measure:
        path: str = args.path
        if args.fill:
            url: str = args.fill
            _in_reactor(lambda reactor: fill(reactor, path, url, pending, batch))
        elif args.reuse:
            target: str = args.reuse
            _in_reactor(lambda reactor: reuse(reactor, path, target))
        else:
            _in_reactor(lambda reactor: measure(reactor, path, concurrency, seconds))
        return 0

    workdir = None
    if args.path:
        path = os.path.abspath(args.path)
    else:
        workdir = tempfile.mkdtemp(prefix="twisted-hooks-backlog-")
        path = os.path.join(workdir, "backlog.db")
    process, url = start_receiver()
    try:
        common = ["--path", path, "--pending", str(pending)]
        filled: dict[str, Any] = {"pending": _step(["--reuse", url, *common])}
        if filled["pending"] == pending:
            progress(f"reusing {path}: {pending} pending")
            filled["fill_seconds"] = None
        else:
            if os.path.exists(path):
                raise SystemExit(f"backlog.py: {path} holds another backlog; remove it first")
            progress(f"filling {path} with {pending} deliveries, {batch} per transaction")
            filled = _step(["--fill", url, "--batch", str(batch), *common])
        progress("measuring in a fresh process")
        figures = _step(
            [
                "--measure",
                *common,
                "--seconds",
                str(seconds),
                "--concurrency",
                str(concurrency),
            ]
        )
    finally:
        stop_receiver(process)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    line: dict[str, Any] = {
        "benchmark": "backlog",
        "name": "sqlite",
        "concurrency": concurrency,
        "body_bytes": BODY_SIZE,
        "fill_seconds": filled["fill_seconds"],
        **figures,
    }
    line.update(environment())
    emit(json.dumps(line))
    summary: dict[str, Any] = {
        "benchmark": "backlog",
        "name": "summary",
        "pending": figures["pending"],
        "rss_mb_before": figures["rss_mb_before"],
        "rss_mb_draining": figures["rss_mb_draining"],
        "peak_mb": figures["peak_mb"],
        "deliveries_per_s": figures["deliveries_per_s"],
        "target_rss_mb_max": TARGET_RSS_MB_MAX,
    }
    summary.update(environment())
    emit(json.dumps(summary))
    ok = figures["pending"] == pending and figures["dead"] == 0
    ok = ok and figures["delivered_while_measuring"] > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
