"""
The tree's own checks, run as part of the suite: ruff, mypy (with mypy-zope) and the
Sphinx build with warnings as errors.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_check() -> None:
    """ruff finds nothing to complain about in the tree."""
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    """The tree is formatted as ruff formats it."""
    result = run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    """mypy, with the mypy-zope plugin, is clean over the package and the benchmarks."""
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_sphinx_builds_without_warnings(tmp_path: Path) -> None:
    """The documentation builds with warnings turned into errors."""
    result = run("sphinx", "-W", "--keep-going", "-q", "-b", "html", "doc", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
