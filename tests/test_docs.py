"""
The documentation's examples run: the guides' doctests (Sphinx's doctest builder), the
programs the guides include, and the news fragments the changelog shows.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "doc"


def run(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def printed_block(page: str) -> str:
    """The literal block that follows "It prints::" in ``doc/<page>.rst``."""
    text = (DOC / f"{page}.rst").read_text(encoding="utf-8")
    match = re.search(r"It prints::\n\n((?:   .*\n|\n)+)", text)
    assert match is not None, f"doc/{page}.rst has no 'It prints::' block"
    lines = [line[3:] for line in match.group(1).rstrip().splitlines()]
    return "\n".join(lines) + "\n"


def test_sphinx_doctests_pass(tmp_path: Path) -> None:
    """Every ``.. doctest::`` example of the documentation runs and prints what it shows."""
    result = run("-m", "sphinx", "-q", "-b", "doctest", "doc", str(tmp_path))
    report = (tmp_path / "output.txt").read_text(encoding="utf-8")
    assert result.returncode == 0, result.stdout + result.stderr + report
    tests = re.search(r"^\s*(\d+) tests$", report, re.MULTILINE)
    assert tests is not None and int(tests.group(1)) > 100, report
    assert "0 failures in tests" in report, report


@pytest.mark.parametrize(
    ("script", "page"),
    [("first_dispatcher.py", "quickstart"), ("blocking_script.py", "sync")],
)
def test_example_program_prints_what_its_page_says(script: str, page: str) -> None:
    """Each program a guide includes runs (on the real reactor, in its own process) and
    prints what the guide says it prints, line for line."""
    result = run(f"doc/examples/{script}", timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed_block(page)


@pytest.mark.skipif(
    importlib.util.find_spec("towncrier") is None, reason="towncrier (dev extra) is missing"
)
def test_news_fragments_build_with_towncrier() -> None:
    """towncrier accepts the news fragments in changelog.d/ and renders each of them."""
    result = run("-m", "towncrier", "build", "--draft", "--version", "0.0.0", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for fragment in (ROOT / "changelog.d").glob("*.rst"):
        if fragment.name.split(".")[1] == "misc":
            continue
        first_words = " ".join(fragment.read_text(encoding="utf-8").split()[:4])
        assert first_words in " ".join(result.stdout.split()), fragment.name
