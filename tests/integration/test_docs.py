"""
The documentation's examples run: the guides' doctests (Sphinx's doctest builder) and the
news fragments the changelog shows. The programs of ``doc/examples/`` run against the
installed wheel, in tests/integration/test_wheel.py.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "doc"


def run(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_sphinx_doctests_pass(tmp_path: Path) -> None:
    """Every ``.. doctest::`` example of the documentation runs and prints what it shows."""
    result = run("-m", "sphinx", "-q", "-b", "doctest", "doc", str(tmp_path))
    report = (tmp_path / "output.txt").read_text(encoding="utf-8")
    assert result.returncode == 0, result.stdout + result.stderr + report
    tests = re.search(r"^\s*(\d+) tests$", report, re.MULTILINE)
    assert tests is not None and int(tests.group(1)) > 100, report
    assert "0 failures in tests" in report, report


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


def guide_section(page: str, title: str) -> str:
    """The text of the section titled ``title`` in ``doc/<page>.rst``, up to the next title
    (of any level)."""
    text = (DOC / f"{page}.rst").read_text(encoding="utf-8")
    match = re.search(rf"^{re.escape(title)}\n[~\-=^]{{3,}}\n", text, re.MULTILINE)
    assert match is not None, f"doc/{page}.rst has no section {title!r}"
    rest = text[match.end() :]
    following = re.search(r"^\S.*\n[~\-=^]{3,}\n", rest, re.MULTILINE)
    return rest if following is None else rest[: following.start()]


def test_every_configuration_key_is_in_the_service_guide() -> None:
    """Every key of :data:`twisted_hooks.service.config.DEFAULTS` has a row, with its
    default, in its section's table of doc/service.rst."""
    from twisted_hooks.service.config import DEFAULTS

    missing = []
    for section, keys in DEFAULTS.items():
        table = guide_section("service", f"``[{section}]``")
        for key, default in keys.items():
            shown = re.escape(f"``{default}``") if default else r"\(empty\)"
            if not re.search(rf"^``{re.escape(key)}``\s+{shown}(\s|$)", table, re.MULTILINE):
                missing.append(f"[{section}] {key} = {default!r}")
    assert not missing, f"not in doc/service.rst with their defaults: {missing}"


def test_every_api_route_is_in_the_service_guide() -> None:
    """Every route the HTTP API serves is in the route table of doc/service.rst."""
    from twisted_hooks.service.api import routes

    table = guide_section("service", "The HTTP API")
    missing = [
        f"{method} {path}"
        for method, path in routes()
        if not re.search(rf"^{method}\s+``{re.escape(path)}``\s", table, re.MULTILINE)
    ]
    assert not missing, f"not in the route table of doc/service.rst: {missing}"


#: The modules the API reference covers. A name a package exports is documented once, as
#: ``<package>.<name>``, wherever it is defined: ``twisted_hooks.EventDispatcher``,
#: ``twisted_hooks.webhooks.Hooks``, ``twisted_hooks.store.open_store``.
API_MODULES = [
    "twisted_hooks",
    "twisted_hooks.dispatcher",
    "twisted_hooks.q",
    "twisted_hooks.interfaces",
    "twisted_hooks.sync",
    "twisted_hooks.registry",
    "twisted_hooks.demo",
    "twisted_hooks.webhooks",
    "twisted_hooks.webhooks.app",
    "twisted_hooks.webhooks.buffer",
    "twisted_hooks.webhooks.delivery",
    "twisted_hooks.webhooks.encoding",
    "twisted_hooks.webhooks.events",
    "twisted_hooks.webhooks.models",
    "twisted_hooks.webhooks.health",
    "twisted_hooks.webhooks.logs",
    "twisted_hooks.webhooks.patterns",
    "twisted_hooks.webhooks.retry",
    "twisted_hooks.webhooks.safe_agent",
    "twisted_hooks.webhooks.scheduler",
    "twisted_hooks.webhooks.sender",
    "twisted_hooks.webhooks.signing",
    "twisted_hooks.webhooks.subscribers",
    "twisted_hooks.webhooks.validators",
    "twisted_hooks.store",
    "twisted_hooks.store.base",
    "twisted_hooks.store.memory",
    "twisted_hooks.store.sql",
    "twisted_hooks.store.cache",
    "twisted_hooks.store.sqlite",
    "twisted_hooks.store.postgres",
    "twisted_hooks.store.schema",
    "twisted_hooks.store.tokens",
    "twisted_hooks.service",
    "twisted_hooks.service.config",
    "twisted_hooks.service.api",
    "twisted_hooks.service.tokens",
    "twisted_hooks.service.tap",
    "twisted_hooks.service.cli",
    "twisted_hooks.listeners",
    "twisted_hooks.listeners.log",
    "twisted_hooks.listeners.redis",
    "twisted_hooks.contrib.django",
    "twisted_hooks.contrib.django.apps",
    "twisted_hooks.contrib.django.backends",
    "twisted_hooks.contrib.django.conf",
    "twisted_hooks.contrib.django.signals",
]

#: The packages whose exported names are documented under the package's own name.
API_PACKAGES = ["twisted_hooks", "twisted_hooks.webhooks", "twisted_hooks.store"]


def public_names(module_name: str) -> list[str]:
    """``__all__``, or else the public classes, functions and interfaces defined there."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module_name
    ]


def test_every_public_name_is_in_the_api_reference(tmp_path: Path) -> None:
    """Every public name of the covered modules has an entry in doc/api.rst's output."""
    result = run("-m", "sphinx", "-q", "-b", "html", "doc", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    page = (tmp_path / "api.html").read_text(encoding="utf-8")
    exported = {package: set(public_names(package)) for package in API_PACKAGES}
    missing = []
    for module_name in API_MODULES:
        assert f'id="module-{module_name}"' in page, module_name
        for name in public_names(module_name):
            anchors = {f'id="{module_name}.{name}"'}
            for package, names in exported.items():
                inside = module_name == package or module_name.startswith(package + ".")
                if name in names and inside:
                    anchors.add(f'id="{package}.{name}"')
            if not any(anchor in page for anchor in anchors):
                missing.append(f"{module_name}.{name}")
    assert not missing, f"not in the API reference: {missing}"
