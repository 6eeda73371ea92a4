"""
Runs the crochet cases of :mod:`twisted_hooks.sync` in a process of their own.

Crochet runs the reactor in a background thread, which cannot share a process with the
trial tests of this session that use the real reactor. ``tests/crochet_cases/`` (the
facade's tests and the seed README's doctest) is therefore left out of this session's
collection (``tests/conftest.py``) and run here by a fresh pytest.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_crochet_cases() -> None:
    """The blocking facade's tests and the seed README doctest pass under crochet."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/crochet_cases", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"pytest tests/crochet_cases exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    assert " passed" in result.stdout, result.stdout
