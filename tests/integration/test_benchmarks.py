"""
Smoke tests of the benchmark scripts in ``benchmarks/``: they run, with tiny counts, and
print what their README says. Nothing here is timed or compares figures.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import twisted
import twisted_hooks

ROOT = Path(__file__).resolve().parents[2]

DISPATCH_CONFIGURATIONS = {
    "registered-1": (1, 1),
    "registered-100": (100, 1),
    "registered-10000": (10_000, 1),
    "matching-1": (101, 1),
    "matching-10": (110, 10),
    "matching-100": (200, 100),
}


def run_benchmark(script: str, *options: str) -> tuple[dict[str, object], ...]:
    """Run ``benchmarks/SCRIPT`` with ``options``; every JSON line it prints, parsed (it must
    exit 0)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return tuple(json.loads(line) for line in result.stdout.splitlines())


@functools.cache
def dispatch_quick() -> tuple[dict[str, object], ...]:
    """Run ``benchmarks/dispatch.py --quick`` once and parse every line it prints."""
    return run_benchmark("dispatch.py", "--quick")


def test_dispatch_prints_every_configuration_then_a_summary() -> None:
    """dispatch.py prints one JSON line per configuration, in order, then the summary."""
    names = [line["name"] for line in dispatch_quick()]
    assert names == [*DISPATCH_CONFIGURATIONS, "summary"]
    assert all(line["benchmark"] == "dispatch" for line in dispatch_quick())


def test_dispatch_lines_describe_their_configuration() -> None:
    """Each configuration line gives its handler counts, three phases and its method."""
    for line in dispatch_quick()[:-1]:
        assert (line["registered"], line["matching"]) == DISPATCH_CONFIGURATIONS[str(line["name"])]
        assert line["phases"] == 3
        assert line["repeats"] == 2
        assert isinstance(line["fires"], int) and line["fires"] > 0
        assert line["timer"] == "perf_counter"
        assert line["gc"] == "enabled"


def test_dispatch_rates_are_positive() -> None:
    """Every rate printed is a positive number; matching-M lines also give handler calls/s."""
    for line in dispatch_quick()[:-1]:
        rates = ["events_per_s", "events_per_s_best"]
        if str(line["name"]).startswith("matching-"):
            rates += ["handler_calls_per_s", "handler_calls_per_s_best"]
        for key in rates:
            value = line[key]
            assert isinstance(value, int | float) and value > 0, (key, line)


def test_dispatch_summary_gives_the_ratio() -> None:
    """The summary line gives the N=10000 over N=1 slowdown as a positive number."""
    summary = dispatch_quick()[-1]
    for key in ("ratio_n10000_over_n1", "ratio_n10000_over_n1_best"):
        value = summary[key]
        assert isinstance(value, int | float) and value > 0, (key, summary)


def test_dispatch_records_the_environment() -> None:
    """Every line records the Python, Twisted and twisted_hooks versions and the platform."""
    for line in dispatch_quick():
        assert line["python"] == platform.python_version()
        assert line["twisted"] == twisted.__version__
        assert line["twisted_hooks"] == twisted_hooks.__version__
        assert line["implementation"] == platform.python_implementation()
        assert line["machine"] == platform.machine()


# -- benchmarks/delivery.py ------------------------------------------------------------------

DELIVERY_NAMES = ["raw-treq", "twisted-hooks", "summary"]


@functools.cache
def delivery_smoke() -> tuple[dict[str, object], ...]:
    """
    Run ``benchmarks/delivery.py`` once with tiny counts (its own receiver in a
    subprocess, one concurrency, one round) and parse every line it prints.
    """
    return run_benchmark("delivery.py", "--count", "50", "--concurrency", "8", "--rounds", "1")


def test_delivery_prints_both_clients_then_a_summary() -> None:
    """delivery.py prints raw-treq, twisted-hooks and a summary line for the concurrency."""
    lines = delivery_smoke()
    assert [line["name"] for line in lines] == DELIVERY_NAMES
    assert all(line["benchmark"] == "delivery" for line in lines)
    assert all(line["concurrency"] == 8 for line in lines)
    assert all(line["receiver"] == "subprocess" for line in lines)


def test_delivery_every_request_succeeded() -> None:
    """Both clients delivered every request: no errors, ``ok`` equals the count."""
    for line in delivery_smoke()[:2]:
        assert line["errors"] == 0, line
        assert line["count"] == 50
        assert line["ok"] == 50
        assert line["rounds"] == 1
        assert line["body_bytes"] == 1024
    assert delivery_smoke()[2]["errors"] == 0


def test_delivery_rates_and_ratio_are_positive() -> None:
    """Rates, times and the engine/raw ratio are positive numbers."""
    for line in delivery_smoke()[:2]:
        for key in ("rps", "rps_best", "seconds", "cpu_us_per_request"):
            value = line[key]
            assert isinstance(value, int | float) and value > 0, (key, line)
    summary = delivery_smoke()[2]
    for key in ("ratio", "ratio_best", "rps_raw", "rps_engine"):
        value = summary[key]
        assert isinstance(value, int | float) and value > 0, (key, summary)


def test_delivery_records_the_environment() -> None:
    """Every line records the Python, Twisted, treq and twisted_hooks versions."""
    import treq

    for line in delivery_smoke():
        assert line["python"] == platform.python_version()
        assert line["twisted"] == twisted.__version__
        assert line["treq"] == treq.__version__
        assert line["twisted_hooks"] == twisted_hooks.__version__


# -- benchmarks/durable.py -------------------------------------------------------------------


@functools.cache
def durable_smoke() -> tuple[dict[str, object], ...]:
    """
    Run ``benchmarks/durable.py`` once with tiny counts (one round, concurrency 8) and parse
    every line it prints. PostgreSQL is measured only when ``TWISTED_HOOKS_TEST_POSTGRES``
    is set (the script reads it).
    """
    return run_benchmark("durable.py", "--count", "30", "--concurrency", "8", "--rounds", "1")


def test_durable_prints_every_backend_then_a_summary() -> None:
    """durable.py prints memory, sqlite (and postgresql when a DSN is set), then a summary."""
    names = [line["name"] for line in durable_smoke()]
    expected = ["memory", "sqlite"]
    if os.environ.get("TWISTED_HOOKS_TEST_POSTGRES"):
        expected.append("postgresql")
    assert names == [*expected, "summary"]
    assert all(line["benchmark"] == "durable" for line in durable_smoke())
    assert all(line["concurrency"] == 8 for line in durable_smoke())


def test_durable_every_delivery_succeeded() -> None:
    """Every backend delivered every event: no errors, ``delivered`` equals the count."""
    for line in durable_smoke()[:-1]:
        assert line["errors"] == 0, line
        assert line["count"] == 30
        assert line["delivered"] == 30
        assert line["rounds"] == 1
        assert line["body_bytes"] == 1024
        for key in ("deliveries_per_s", "deliveries_per_s_best", "cpu_us_per_delivery"):
            value = line[key]
            assert isinstance(value, int | float) and value > 0, (key, line)
        assert line["twisted_hooks"] == twisted_hooks.__version__


def test_durable_summary_gives_the_ratios() -> None:
    """The summary gives the SQLite/memory ratio, and the PostgreSQL one or why it skipped."""
    summary = durable_smoke()[-1]
    assert summary["errors"] == 0
    for key in ("ratio_sqlite_over_memory", "ratio_sqlite_over_memory_best"):
        value = summary[key]
        assert isinstance(value, int | float) and value > 0, (key, summary)
    skipped = summary["skipped"]
    assert isinstance(skipped, dict)
    if os.environ.get("TWISTED_HOOKS_TEST_POSTGRES"):
        assert skipped == {}
        value = summary["ratio_postgresql_over_memory"]
        assert isinstance(value, int | float) and value > 0, summary
    else:
        assert "postgresql" in skipped
        assert summary["ratio_postgresql_over_memory"] is None


# -- benchmarks/backlog.py -------------------------------------------------------------------


@functools.cache
def backlog_smoke() -> tuple[dict[str, object], ...]:
    """Run ``benchmarks/backlog.py`` once with a small backlog and a short window."""
    return run_benchmark("backlog.py", "--pending", "3000", "--batch", "1000", "--seconds", "1")


def test_backlog_prints_the_measurement_then_a_summary() -> None:
    """backlog.py prints one sqlite line with the backlog asked for, then a summary."""
    lines = backlog_smoke()
    assert [line["name"] for line in lines] == ["sqlite", "summary"]
    assert all(line["benchmark"] == "backlog" for line in lines)
    assert all(line["pending"] == 3000 for line in lines)
    assert lines[-1]["target_rss_mb_max"] == 300


def test_backlog_reports_memory_and_draining() -> None:
    """The RSS figures are positive, and some deliveries were made, none dead."""
    line = backlog_smoke()[0]
    for key in (
        "rss_mb_start",
        "rss_mb_before",
        "rss_mb_draining",
        "rss_mb_draining_max",
        "peak_mb",
        "deliveries_per_s",
        "seconds",
    ):
        value = line[key]
        assert isinstance(value, int | float) and value > 0, (key, line)
    delivered = line["delivered_while_measuring"]
    assert isinstance(delivered, int) and 0 < delivered <= 3000
    assert line["dead"] == 0
    assert line["python"] == platform.python_version()


def test_engine_prints_one_line_with_a_positive_cost() -> None:
    """engine.py --quick prints one JSON line: the engine's cost per event (median and
    best, positive microseconds) over its events and rounds, with no errors."""
    (line,) = run_benchmark("engine.py", "--quick")
    assert (line["benchmark"], line["name"]) == ("engine", "engine")
    assert (line["events"], line["rounds"], line["errors"]) == (50, 2, 0)
    for key in ("us_per_event", "us_per_event_best", "cpu_us_per_event"):
        assert isinstance(line[key], int | float) and line[key] > 0, (key, line)
    assert line["us_per_event_best"] <= line["us_per_event"]


def test_engine_refuses_a_zero_count() -> None:
    """engine.py --count 0 is refused with a message naming the option."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "engine.py"), "--count", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--count" in result.stderr
    assert result.stdout == ""
