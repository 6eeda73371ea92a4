"""
``twist hooks`` finds the plugin after the installs the README and the guides use:
``pip install .`` and ``pip install -e .``.

Each test makes a new virtual environment, installs a copy of the project into it with
the environment's own pip, offline (``--no-index --no-deps --no-build-isolation``; the
dependencies and the build backend are those of the running interpreter, reached through
a ``.pth`` file), and runs ``python -m twisted`` (what the ``twist`` script runs) from a
directory that is neither the project nor the environment.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: The longest one step (making the environment, installing, running twist) may take.
DEADLINE = 120

_NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "__pycache__",
    "_build",
    "build",
    "dist",
    "*.egg-info",
    "tests.*",
    "*.sqlite3*",
    "dropin.cache",
)


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIP_", "PYTHON")) and key != "VIRTUAL_ENV"
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=DEADLINE)


def _environment(tmp_path: Path) -> Path:
    """A new virtual environment that sees this interpreter's packages (after its own)."""
    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        tmp_path,
    ).stdout.strip()
    ours = {*site.getsitepackages(), sysconfig.get_paths()["purelib"]}
    Path(purelib, "_the_test_dependencies.pth").write_text(
        "".join(f"{path}\n" for path in sorted(ours))
    )
    return python


def _install(python: Path, project: Path, *mode: str) -> None:
    missing = [name for name in ("pip", "setuptools", "wheel") if not _importable(name)]
    assert not missing, (
        f"{', '.join(missing)} missing: install the test extra (pip install -e '.[test]')"
    )
    installed = _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-deps",
            "--no-build-isolation",
            *mode,
            str(project),
        ],
        project.parent,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.mark.parametrize("mode", [["-e"], []], ids=["editable", "regular"])
def test_twist_finds_the_plugin_from_another_directory(tmp_path: Path, mode: list[str]) -> None:
    """After ``pip install -e .`` (the README's test command) or ``pip install .`` (its
    main command), ``twist --help`` lists ``hooks`` and ``twist hooks --help`` shows the
    plugin's options, run from a directory unrelated to the project; the editable
    install serves the project's own files."""
    project = tmp_path / "twisted_hooks-checkout"
    shutil.copytree(ROOT, project, ignore=_NOT_COPIED)
    python = _environment(tmp_path)
    _install(python, project, *mode)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    listed = _run([str(python), "-m", "twisted", "--help"], elsewhere)
    assert listed.returncode == 0, listed.stderr
    assert "hooks" in listed.stdout.split(), listed.stdout

    helped = _run([str(python), "-m", "twisted", "hooks", "--help"], elsewhere)
    assert helped.returncode == 0, helped.stdout + helped.stderr
    assert "Unknown command" not in helped.stdout + helped.stderr
    for option in ("--listen", "--database", "--config", "--allow-network"):
        assert option in helped.stdout, helped.stdout

    where = _run(
        [str(python), "-c", "import twisted_hooks; print(twisted_hooks.__file__)"], elsewhere
    )
    location = Path(where.stdout.strip())
    if mode:
        assert location.is_relative_to(project), location
    else:
        assert not location.is_relative_to(project), location
