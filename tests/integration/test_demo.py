"""
The main job of the README's first set-up command: ``python -m twisted_hooks.demo``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_events_through_phases() -> None:
    """
    The demo exits 0 and prints, per fire, each handler's phase and what it did: the
    async handler waited on the reactor, the role filter and times=1 applied, the failing
    handler was recorded as failed, and the fire after stop() was dropped.
    """
    result = subprocess.run(
        [sys.executable, "-m", "twisted_hooks.demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        "user_created bob (user):",
        "  [before] validate returned 'validated bob'",
        "  [during] store returned 'stored bob after 50 ms'",
        "  [ after] welcome_once returned 'welcomed bob (first user only)'",
        "user_created susan (admin):",
        "  [before] validate returned 'validated susan'",
        "  [during] store returned 'stored susan after 50 ms'",
        "  [ after] notify_admins returned 'told the admins about susan'",
        "user_deleted bob (user):",
        "  [before] validate returned 'validated bob'",
        "  [ after] flaky_audit failed: audit log unavailable for bob",
        "user_created late (after stop):",
        "  dropped: the dispatcher was stopped",
    ]
