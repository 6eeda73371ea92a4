"""
tools/check_imports.py: the import-cycle check, on made-up packages and on twisted_hooks.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "check_imports.py"


def run(package: Path) -> subprocess.CompletedProcess[str]:
    """Run the check on ``package`` in a new Python process."""
    return subprocess.run(
        [sys.executable, str(TOOL), str(package)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class MadeUpPackageTests(SynchronousTestCase):
    """The check on small packages written for each test."""

    def package(self, files: dict[str, str]) -> Path:
        """A package ``pkg`` with these modules (paths relative to it)."""
        root = Path(self.mktemp()) / "pkg"
        for name, text in {"__init__.py": "", **files}.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        return root

    def test_no_cycle(self) -> None:
        """A package whose imports go one way passes: exit 0, no cycle printed."""
        root = self.package(
            {
                "values.py": "X = 1\n",
                "roles.py": "from pkg.values import X\n",
                "impl.py": "from pkg import roles\nfrom pkg.values import X\n",
            }
        )
        result = run(root)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("no import cycles in pkg (4 modules)", result.stdout)

    def test_type_checking_cycle(self) -> None:
        """An import under ``if TYPE_CHECKING:`` closes a cycle too: exit 1, the cycle
        printed with its modules."""
        root = self.package(
            {
                "a.py": "from pkg.b import B\nclass A: pass\n",
                "b.py": """\
                    from typing import TYPE_CHECKING
                    if TYPE_CHECKING:
                        from pkg.a import A
                    class B: pass
                    """,
            }
        )
        result = run(root)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("import cycle among 2 modules: pkg.a -> pkg.b -> pkg.a", result.stdout)
        self.assertIn("1 import cycle(s) in pkg", result.stdout)

    def test_function_level_and_relative_cycle(self) -> None:
        """An import inside a function, written relative (``from . import``), counts."""
        root = self.package(
            {
                "sub/__init__.py": "",
                "sub/one.py": "def f():\n    from .two import g\n    return g\n",
                "sub/two.py": "import pkg.sub.three\ndef g(): pass\n",
                "sub/three.py": "from pkg.sub import one\n",
            }
        )
        result = run(root)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn(
            "import cycle among 3 modules: pkg.sub.one -> pkg.sub.two -> pkg.sub.three "
            "-> pkg.sub.one",
            result.stdout,
        )

    def test_package_reexports_are_not_cycles(self) -> None:
        """A package ``__init__`` importing its modules, which import each other by full
        name, is no cycle: importing ``pkg.x`` is not counted as importing ``pkg``."""
        root = self.package(
            {
                "__init__.py": "from pkg.x import X\nfrom pkg.y import Y\n",
                "x.py": "X = 1\n",
                "y.py": "from pkg.x import X\nY = X\n",
            }
        )
        result = run(root)
        self.assertEqual(result.returncode, 0, result.stdout)

    def test_name_from_package_init_is_an_edge(self) -> None:
        """``from pkg import name`` where ``name`` is defined in ``__init__`` is an import
        of the package, and can close a cycle."""
        root = self.package(
            {
                "__init__.py": "from pkg.x import X\nNAME = 1\n",
                "x.py": "from pkg import NAME\nX = NAME\n",
            }
        )
        result = run(root)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("pkg -> pkg.x -> pkg", result.stdout)


class PackageTests(SynchronousTestCase):
    """The check on twisted_hooks itself."""

    def test_twisted_hooks_has_no_import_cycle(self) -> None:
        """No module of twisted_hooks imports, even under TYPE_CHECKING or inside a
        function, a module that imports it back; the check's output names any cycle."""
        result = run(ROOT / "twisted_hooks")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("no import cycles in twisted_hooks", result.stdout)
