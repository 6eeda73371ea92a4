"""
The optional dependencies: what needs an extra says which one, and the rest needs none.

Each case runs a new Python in which the packages of the extras are made unimportable
(``sys.modules[name] = None``), as if they were not installed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tomllib
from twisted.trial.unittest import SynchronousTestCase

from twisted_hooks._extras import EXTRAS

ROOT = Path(__file__).resolve().parents[2]


def without(names: tuple[str, ...], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new Python where the packages ``names`` cannot be imported."""
    prelude = f"import sys\nfor name in {names!r}:\n    sys.modules[name] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


ALL = tuple(name for names in EXTRAS.values() for name in names)


class ExtrasTests(SynchronousTestCase):
    """Importing a module whose extra is missing, and everything else."""

    def test_core_needs_no_extra(self) -> None:
        """Without any extra's packages, the dispatcher, the webhook engine, model events,
        the registry and the testing fakes import and work."""
        result = without(
            ALL,
            "import twisted_hooks, twisted_hooks.webhooks, twisted_hooks.webhooks.models\n"
            "import twisted_hooks.registry, twisted_hooks.testing\n"
            "d = twisted_hooks.EventDispatcher(['user'])\n"
            "d.start()\n"
            "seen = []\n"
            "d.add_event_handler(seen.append, 'during', use_weakref=False)\n"
            "d.fire_event('e')\n"
            "print('fired', seen)\n",
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("fired ['e']", result.stdout)

    def assertNeeds(self, missing: str, module: str, extra: str) -> None:
        """Importing ``module`` without ``missing`` fails with one ImportError naming the
        package and the extra, and the command that installs it."""
        result = without((missing,), f"import {module}\n")
        self.assertNotEqual(result.returncode, 0)
        last = result.stderr.strip().splitlines()[-1]
        self.assertRegex(
            last,
            rf"^ImportError: .* needs {re.escape(missing)}, which is not installed: install "
            rf"the \[{extra}\] extra, as in pip install 'twisted_hooks\[{extra}\]'$",
        )

    def test_service_needs_service_extra(self) -> None:
        """The service (its plugin module, its API, its command) without klein or
        prometheus-client names the [service] extra."""
        self.assertNeeds("klein", "twisted_hooks.service.tap", "service")
        self.assertNeeds("prometheus_client", "twisted_hooks.service.cli", "service")

    def test_sync_needs_sync_extra(self) -> None:
        """The blocking facade without crochet names the [sync] extra."""
        self.assertNeeds("crochet", "twisted_hooks.sync", "sync")

    def test_redis_listener_needs_redis_extra(self) -> None:
        """The Redis listener without redis names the [redis] extra."""
        self.assertNeeds("redis", "twisted_hooks.listeners.redis", "redis")

    def test_pyproject_extras_match(self) -> None:
        """pyproject.toml's extras install the packages the messages name, none of them is
        a requirement of the core, and the test extra takes every one."""
        project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
        optional = project["project"]["optional-dependencies"]

        def names(requirements: list[str]) -> set[str]:
            return {
                re.split(r"[<>=\[ ;@]", r, maxsplit=1)[0].lower().replace("-", "_")
                for r in requirements
            }

        core = names(project["project"]["dependencies"])
        for extra, packages in EXTRAS.items():
            self.assertEqual(names(optional[extra]), set(packages), extra)
            self.assertFalse(core & set(packages), extra)
        self.assertIn(f"twisted_hooks[{','.join(EXTRAS)}]", optional["test"])
