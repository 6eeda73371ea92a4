"""
Smoke tests of the benchmark scripts in ``benchmarks/``: they run, with tiny counts, and
print what their README says. Nothing here is timed or compares figures.
"""

from __future__ import annotations

import functools
import json
import platform
import subprocess
import sys
from pathlib import Path

import twisted
import twisted_hooks

ROOT = Path(__file__).resolve().parent.parent

DISPATCH_CONFIGURATIONS = {
    "registered-1": (1, 1),
    "registered-100": (100, 1),
    "registered-10000": (10_000, 1),
    "matching-1": (101, 1),
    "matching-10": (110, 10),
    "matching-100": (200, 100),
}


@functools.cache
def dispatch_quick() -> tuple[dict[str, object], ...]:
    """Run ``benchmarks/dispatch.py --quick`` once and parse every line it prints."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "dispatch.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return tuple(json.loads(line) for line in result.stdout.splitlines())


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
