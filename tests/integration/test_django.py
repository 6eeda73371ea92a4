"""
Runs the Django integration's cases in a process of their own.

Django's settings are process-global, and sending in process runs the reactor in crochet's
thread, which cannot share a process with the trial tests of this session that use the
real reactor. ``tests/django_cases/`` (the test project ``tests/django_project/`` on
SQLite, a real receiver, and a real service for ``"service"`` mode) is therefore left out
of this session's collection (``tests/conftest.py``) and run here by a fresh pytest.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_django_cases() -> None:
    """Create, change, delete, m2m add/remove/clear and a now_eq transition of a real
    Django model each deliver the right envelope, a rolled-back transaction delivers
    nothing, and "service" mode publishes through a real service."""
    pytest.importorskip("django")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/django_cases", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"pytest tests/django_cases exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    assert " passed" in result.stdout, result.stdout
