"""
The tree's own checks, one after the other, as their own step before the tests: ruff, ruff
format, mypy (with mypy-zope), the import-cycle check, the module-size rule and the Sphinx
build with warnings as errors. Exits 1 if any fails, after running them all::

    python tools/checks.py

The README's test command runs it before ``pytest``; each check prints its own findings.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "twisted_hooks"

#: A module longer than this says why in its docstring (a line starting ``Why one module``).
MAX_LINES = 600


def module_sizes() -> list[str]:
    """The modules over :data:`MAX_LINES` lines whose docstring does not say why."""
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > MAX_LINES and "Why one module" not in text:
            long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    return long


def main() -> int:
    python = sys.executable
    with tempfile.TemporaryDirectory() as build:
        checks = [
            ("ruff check", [python, "-m", "ruff", "check", "."]),
            ("ruff format", [python, "-m", "ruff", "format", "--check", "."]),
            ("mypy", [python, "-m", "mypy"]),
            ("import cycles", [python, str(ROOT / "tools" / "check_imports.py")]),
            (
                "sphinx -W",
                [python, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "doc", build],
            ),
        ]
        failed = []
        for name, argv in checks:
            print(f"+ {name}", flush=True)
            if subprocess.run(argv, cwd=ROOT).returncode != 0:
                failed.append(name)
    print("+ module sizes", flush=True)
    long = module_sizes()
    for line in long:
        print(f"{line} (over {MAX_LINES}; split it, or say why in its docstring)")
    if long:
        failed.append("module sizes")
    if failed:
        print(f"checks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
