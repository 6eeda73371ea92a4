"""
Webhook delivery throughput: the engine against plain treq, over real local HTTP.

Run it from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/delivery.py                     # full run, about a minute
    .venv/bin/python benchmarks/delivery.py --count 50 --concurrency 8 --rounds 1  # smoke
    .venv/bin/python benchmarks/delivery.py --url http://127.0.0.1:8080/hook --concurrency 64

It prints one JSON object per line (and nothing else on standard output). For each
concurrency (``--concurrency``, repeatable; 8, 64 and 256 by default) it measures two
clients POSTing ``--count`` 1 KiB JSON bodies to one receiver:

* ``raw-treq``: plain treq usage, the floor. A :class:`treq.client.HTTPClient` on an
  :class:`~twisted.web.client.Agent` with a persistent
  :class:`~twisted.web.client.HTTPConnectionPool` (``maxPersistentPerHost`` = the
  concurrency), a :class:`~twisted.internet.defer.DeferredSemaphore` of the concurrency,
  each request POSTing the same body with ``Content-Type: application/json`` through treq's
  default body producer and reading the whole response body.
* ``twisted-hooks``: the engine. A started :class:`~twisted_hooks.webhooks.app.Hooks`
  (``max_concurrency`` and ``max_per_host`` = the concurrency, the default in-memory
  backend, a recipient policy allow-listing ``127.0.0.0/8`` on any port) with one
  subscriber of ``bench.*``; ``--count`` calls of ``hooks.send("bench.created", data)``
  then ``hooks.drain()``. Each send goes through the whole path: the dispatcher, pattern
  matching, JSON encoding of the data (1 KiB once encoded), a delivery enqueued, claimed,
  both signature schemes (``Hook-HMAC`` and ``webhook-signature``) computed at the attempt,
  the recipient checks of the safe agent on new connections, the capped body read, the
  attempt recorded. Retries are off, so a failure shows as an error at once.

Every run counts its successes (a 2xx answer; for the engine, deliveries that ended
``delivered``); ``errors`` must be 0, and the script exits with status 1 otherwise, after
printing every line.

Fairness: each concurrency runs ``--rounds`` rounds (3 by default); a round runs both
clients, raw first in even rounds and the engine first in odd ones, so load from
elsewhere on the machine does not favour one. ``rps`` is the median over rounds,
``rps_best`` the best. Each run builds a fresh pool (or application) and closes it, so
both pay for their connections alike. Both clients are warmed up once, untimed, first.

The receiver: with ``--url`` the given one (``"receiver": "url"``); otherwise
``benchmarks/_receiver.py``, a raw-protocol HTTP/1.1 server answering ``200 ok`` with
keep-alive, started in a separate process (``"receiver": "subprocess"``) so that its work
is not done by the reactor thread being measured; on a 2-core machine the sender and the
receiver then each have a core. ``--in-process-receiver`` serves it from the measured
reactor instead (``"receiver": "in-process"``), for comparison.

After the two lines of each concurrency comes a ``summary`` line with ``ratio`` (engine
median rps over raw median rps) and ``ratio_best``. The target from the issue is a ratio of
at least 0.8 at concurrency 64.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import treq
from treq.client import HTTPClient
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.internet.protocol import ServerFactory
from twisted.internet.task import react
from twisted.web.client import Agent, HTTPConnectionPool

import twisted
import twisted_hooks
from twisted_hooks.webhooks.app import Hooks, Settings
from twisted_hooks.webhooks.delivery import DELIVERED, MemoryDeliveryStore
from twisted_hooks.webhooks.encoding import JSON, encode_body
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.validators import (
    RecipientPolicy,
    block_internal_ips,
    ensure_protocol,
)

# The receiver's protocol, for --in-process-receiver (this directory is not a package).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _receiver import Answering

RAW = "raw-treq"
ENGINE = "twisted-hooks"
CONCURRENCY = (8, 64, 256)
#: The size of every request body, in bytes.
BODY_SIZE = 1024
EVENT = "bench.created"
PATTERN = "bench.*"
RECEIVER = Path(__file__).resolve().with_name("_receiver.py")


def event_data(n: int) -> dict[str, object]:
    """The data of event ``n``: JSON-encoded, exactly :data:`BODY_SIZE` bytes."""
    data: dict[str, object] = {"id": f"{n:012d}", "kind": EVENT, "padding": ""}
    padding = BODY_SIZE - len(encode_body(data, JSON))
    data["padding"] = "x" * padding
    return data


def body() -> bytes:
    """The raw client's body: the first event's, so both send the same bytes."""
    encoded = encode_body(event_data(0), JSON)
    assert len(encoded) == BODY_SIZE, len(encoded)
    return encoded


def local_policy() -> RecipientPolicy:
    """http(s) on any port; internal addresses blocked except 127.0.0.0/8."""
    return RecipientPolicy(
        validators=(ensure_protocol("http", "https"), block_internal_ips()),
        allowed_networks=["127.0.0.0/8"],
    )


@attrs.frozen
class Run:
    """One timed run of one client."""

    seconds: float
    cpu_seconds: float
    ok: int
    errors: int


async def run_raw(reactor: Any, url: str, concurrency: int, count: int) -> Run:
    """POST ``count`` copies of the body with plain treq, ``concurrency`` at once."""
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = concurrency
    client = HTTPClient(Agent(reactor, pool=pool))
    semaphore = DeferredSemaphore(concurrency)
    payload = body()
    headers: dict[bytes | str, bytes | str] = {"Content-Type": "application/json"}
    outcomes = {"ok": 0, "errors": 0}

    async def one() -> None:
        try:
            response = await client.post(url, data=payload, headers=headers)
            await treq.content(response)
        except Exception:
            outcomes["errors"] += 1
            return
        outcomes["ok" if 200 <= response.code < 300 else "errors"] += 1

    def request() -> Deferred[None]:
        return Deferred.fromCoroutine(one())

    cpu = time.process_time()
    started = time.perf_counter()
    await gatherResults([semaphore.run(request) for _ in range(count)])
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    await pool.closeCachedConnections()
    return Run(seconds, cpu, outcomes["ok"], outcomes["errors"])


async def run_engine(reactor: Any, url: str, concurrency: int, count: int) -> Run:
    """Send ``count`` events through a started :class:`Hooks` with one subscriber."""
    settings = Settings(
        policy=local_policy(),
        max_concurrency=concurrency,
        max_per_host=concurrency,
        retry=RetryPolicy(delays=()),
    )
    store = MemoryDeliveryStore(keep_finished=count)
    hooks = Hooks(reactor, settings=settings, deliveries=store)
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
    ok = len(await store.list(status=DELIVERED, limit=count))
    return Run(seconds, cpu, ok, count - ok)


RUNNERS: dict[str, Callable[[Any, str, int, int], Any]] = {RAW: run_raw, ENGINE: run_engine}


@attrs.define
class Series:
    """The runs of one client at one concurrency."""

    name: str
    concurrency: int
    count: int
    runs: list[Run] = attrs.field(factory=list)

    @property
    def rates(self) -> list[float]:
        return [self.count / run.seconds for run in self.runs]

    @property
    def rps(self) -> float:
        return statistics.median(self.rates)

    @property
    def rps_best(self) -> float:
        return max(self.rates)

    @property
    def errors(self) -> int:
        return sum(run.errors for run in self.runs)

    def line(self, receiver: str) -> dict[str, object]:
        """The JSON-able line reporting this series."""
        cpu = statistics.median(run.cpu_seconds for run in self.runs)
        line: dict[str, object] = {
            "benchmark": "delivery",
            "name": self.name,
            "concurrency": self.concurrency,
            "count": self.count,
            "rps": round(self.rps, 1),
            "rps_best": round(self.rps_best, 1),
            "seconds": round(statistics.median(run.seconds for run in self.runs), 4),
            "cpu_us_per_request": round(cpu / self.count * 1e6, 1),
            "rounds": len(self.runs),
            "errors": self.errors,
            "ok": sum(run.ok for run in self.runs),
            "body_bytes": BODY_SIZE,
            "receiver": receiver,
        }
        line.update(environment())
        return line


def environment() -> dict[str, object]:
    """The versions and platform the figures were measured on."""
    return {
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "treq": treq.__version__,
        "twisted_hooks": twisted_hooks.__version__,
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
    }


async def measure(
    reactor: Any,
    url: str,
    receiver: str,
    concurrencies: Sequence[int],
    count: int,
    rounds: int,
    emit: Callable[[str], None],
) -> int:
    """Warm up, then measure every concurrency; emit its lines. Returns the error count."""
    warmup = max(10, min(count, 500))
    for name in (RAW, ENGINE):
        await RUNNERS[name](reactor, url, min(concurrencies), warmup)
    errors = 0
    for concurrency in concurrencies:
        series = {name: Series(name, concurrency, count) for name in (RAW, ENGINE)}
        for round_number in range(rounds):
            order = (RAW, ENGINE) if round_number % 2 == 0 else (ENGINE, RAW)
            for name in order:
                gc.collect()
                run: Run = await RUNNERS[name](reactor, url, concurrency, count)
                series[name].runs.append(run)
        for each in series.values():
            errors += each.errors
            emit(json.dumps(each.line(receiver)))
        raw, engine = series[RAW], series[ENGINE]
        summary: dict[str, object] = {
            "benchmark": "delivery",
            "name": "summary",
            "concurrency": concurrency,
            "ratio": round(engine.rps / raw.rps, 3),
            "ratio_best": round(engine.rps_best / raw.rps_best, 3),
            "rps_raw": round(raw.rps, 1),
            "rps_engine": round(engine.rps, 1),
            "errors": raw.errors + engine.errors,
            "target_ratio_min": 0.8,
            "receiver": receiver,
        }
        summary.update(environment())
        emit(json.dumps(summary))
    return errors


def start_receiver() -> tuple[subprocess.Popen[str], str]:
    """Start ``_receiver.py`` in its own process; return it and its URL."""
    process = subprocess.Popen(
        [sys.executable, str(RECEIVER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(10)
        raise RuntimeError(f"the receiver exited with status {process.returncode}")
    port = json.loads(line)["port"]
    return process, f"http://127.0.0.1:{port}/hook"


def stop_receiver(process: subprocess.Popen[str]) -> None:
    """Close the receiver's standard input (it exits), killing it if it lingers."""
    assert process.stdin is not None
    process.stdin.close()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(argv: Sequence[str] | None = None, emit: Callable[[str], None] = print) -> int:
    """Parse ``argv``, run the benchmark and emit JSON lines; 1 if any request failed."""
    parser = argparse.ArgumentParser(
        description="Measure webhook delivery throughput against plain treq; prints JSON lines."
    )
    parser.add_argument(
        "--url", help="the receiver to POST to (default: start a local one in a subprocess)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        action="append",
        help="requests under way at once; repeatable (default: 8, 64 and 256)",
    )
    parser.add_argument(
        "--in-process-receiver",
        action="store_true",
        help="serve the local receiver from the measured reactor instead of a subprocess "
        "(to compare; it then takes CPU from the clients)",
    )
    parser.add_argument(
        "--count", type=int, default=5000, help="requests per timed run (default 5000)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="timed runs of each client (default 3)"
    )
    args = parser.parse_args(argv)
    concurrencies: list[int] = args.concurrency or list(CONCURRENCY)
    count: int = args.count
    rounds: int = args.rounds
    if count < 1 or rounds < 1 or min(concurrencies) < 1:
        parser.error("--count, --rounds and --concurrency must be at least 1")
    process = None
    url = ""
    if args.url:
        url = args.url
        receiver = "url"
    elif args.in_process_receiver:
        receiver = "in-process"
    else:
        process, url = start_receiver()
        receiver = "subprocess"
    errors: list[int] = []

    async def run(reactor: Any) -> None:
        target = url
        listening = None
        if receiver == "in-process":
            factory = ServerFactory()
            factory.protocol = Answering
            listening = reactor.listenTCP(0, factory, backlog=1024, interface="127.0.0.1")
            target = f"http://127.0.0.1:{listening.getHost().port}/hook"
        try:
            errors.append(
                await measure(reactor, target, receiver, concurrencies, count, rounds, emit)
            )
        finally:
            if listening is not None:
                await listening.stopListening()

    try:
        react(lambda reactor: Deferred.fromCoroutine(run(reactor)), [])
    except SystemExit as exit:
        if exit.code:
            raise
    finally:
        if process is not None:
            stop_receiver(process)
    return 1 if not errors or errors[0] else 0


if __name__ == "__main__":
    sys.exit(main())
