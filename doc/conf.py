"""
Sphinx configuration for the twisted_hooks documentation.

Build it with ``python -m sphinx -W --keep-going -b html doc doc/_build/html``; run its
examples with ``python -m sphinx -b doctest doc doc/_build/doctest``. Nothing here needs the
network: there is no intersphinx, and the changelog's unreleased section is rendered from
the news fragments in ``changelog.d/`` by :func:`unreleased_news` below.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import re
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles
from zope.interface.interface import Attribute, InterfaceClass, Method

import twisted_hooks

ROOT = Path(__file__).resolve().parent.parent

project = "twisted_hooks"
author = "The twisted_hooks developers"
copyright = "the twisted_hooks developers"
release = twisted_hooks.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build"]
templates_path: list[str] = []
html_static_path = ["_static"]

# Docstrings are reST with :param: fields (treq style); no napoleon.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# zope interfaces in annotations would otherwise show as "<InterfaceClass ...>".
autodoc_type_aliases = {
    "IEventDispatcher": "twisted_hooks.IEventDispatcher",
    "IReactorTime": "twisted.internet.interfaces.IReactorTime",
    "IReactorFromThreads": "twisted.internet.interfaces.IReactorFromThreads",
    "IReactorTCP": "twisted.internet.interfaces.IReactorTCP",
    "IStreamClientEndpoint": "twisted.internet.interfaces.IStreamClientEndpoint",
    "IAgent": "twisted.web.iweb.IAgent",
    "IPolicyForHTTPS": "twisted.web.iweb.IPolicyForHTTPS",
    "ISubscriberStore": "twisted_hooks.interfaces.ISubscriberStore",
    "IDeliveryStore": "twisted_hooks.interfaces.IDeliveryStore",
    "IWebhookSender": "twisted_hooks.interfaces.IWebhookSender",
    "IRecipientValidator": "twisted_hooks.webhooks.validators.IRecipientValidator",
}
nitpicky = False

# Django is an extra (``twisted_hooks[django]``): without it, the Django integration's
# modules are documented against stand-ins, so that the API reference is the same whichever
# extras the documentation is built with.
try:
    import django  # noqa: F401
except ImportError:
    autodoc_mock_imports = ["django"]

# furo (the ``docs`` extra): readable on a phone and in the dark, and its code blocks
# scroll sideways instead of clipping long lines.
html_theme = "furo"
html_title = f"twisted_hooks {release}"
html_theme_options = {
    "navigation_with_keys": True,
}
html_css_files = ["custom.css"]

# Examples marked with ``.. doctest::`` / ``.. testcode::`` run under ``-b doctest``.
doctest_test_doctest_blocks = ""
# Unlike Sphinx's default, compare exception messages too: the guide quotes them.
doctest_default_flags = doctest.ELLIPSIS | doctest.DONT_ACCEPT_TRUE_FOR_1
# The service guide's listener example (doc/examples/tally_listener.py) is imported by name.
doctest_path = [str(ROOT / "doc" / "examples")]


# -- zope interfaces -------------------------------------------------------------------------


def _resolve(dotted: str) -> object:
    """Import ``package.module`` or ``package.module.Name``."""
    try:
        return importlib.import_module(dotted)
    except ImportError:
        module, _, name = dotted.rpartition(".")
        return getattr(importlib.import_module(module), name)


def _indent(text: str, prefix: str) -> list[str]:
    return [(prefix + line).rstrip() for line in inspect.cleandoc(text).splitlines()]


def interface_lines(interface: InterfaceClass, module: str) -> list[str]:
    """reST describing ``interface``, documented as ``module.<its name>``, and its members."""
    lines = [f".. py:class:: {interface.__name__}", f"   :module: {module}"]
    canonical = f"{interface.__module__}.{interface.__name__}"
    if canonical != f"{module}.{interface.__name__}":
        lines.append(f"   :canonical: {canonical}")
    lines += ["", "   A :class:`zope.interface.Interface`.", ""]
    lines += [*_indent(interface.__doc__ or "", "   "), ""]
    for name, description in interface.namesAndDescriptions():
        if isinstance(description, Method):
            lines.append(f"   .. py:method:: {name}{description.getSignatureString()}")
        elif isinstance(description, Attribute):
            lines.append(f"   .. py:attribute:: {name}")
        else:  # pragma: no cover - zope has no other kinds of member
            continue
        lines += ["", *_indent(description.__doc__ or "", "      "), ""]
    return lines


class ZopeInterfaceDirective(SphinxDirective):
    """
    ``.. zope-interface:: package.module.IName`` documents one zope interface with its
    attributes and methods; ``.. zope-interface:: package.module`` documents every interface
    defined in that module (``:exclude:`` names some to leave out). autodoc cannot: an
    interface is not a class.
    """

    required_arguments = 1
    option_spec: ClassVar[dict[str, Any]] = {"exclude": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        target = _resolve(self.arguments[0])
        if isinstance(target, InterfaceClass):
            module = self.arguments[0].rpartition(".")[0]
            found = [target]
        else:
            module = self.arguments[0]
            excluded = set(self.options.get("exclude", "").replace(",", " ").split())
            found = [
                value
                for name, value in vars(target).items()
                if isinstance(value, InterfaceClass)
                and value.__module__ == module
                and name not in excluded
            ]
        lines: list[str] = []
        for interface in found:
            lines += [*interface_lines(interface, module), ""]
        container = nodes.section()
        nested_parse_with_titles(
            self.state, StringList(lines, self.get_source_info()[0]), container
        )
        return container.children


# -- the changelog's unreleased section ------------------------------------------------------

#: towncrier's default fragment types, in the order towncrier renders them.
NEWS_TYPES = {
    "feature": "Features",
    "bugfix": "Bugfixes",
    "doc": "Improved Documentation",
    "removal": "Deprecations and Removals",
    "misc": "Misc",
}
UNRELEASED_MARKER = ".. unreleased-news::"
_FRAGMENT = re.compile(r"^(?P<issue>[^.]+)\.(?P<type>[a-z]+)(?:\.(?P<counter>\d+))?\.rst$")


def unreleased_news(directory: Path) -> str:
    """
    Render the news fragments in ``directory`` as reST, grouped as towncrier groups them.

    Each fragment is one bullet followed by its issue reference; ``misc`` fragments show
    only their issue, as towncrier shows them.
    """
    sections: dict[str, dict[str, list[str]]] = {kind: {} for kind in NEWS_TYPES}
    for path in sorted(directory.glob("*.rst")):
        match = _FRAGMENT.match(path.name)
        if match is None or match["type"] not in NEWS_TYPES:
            continue
        text = path.read_text(encoding="utf-8").strip()
        issue = match["issue"]
        issues = sections[match["type"]].setdefault(text, [])
        if not issue.startswith("+"):
            issues.append(f"`#{issue}`")
    lines: list[str] = []
    for kind, entries in sections.items():
        if not entries:
            continue
        title = NEWS_TYPES[kind]
        lines += [title, "-" * len(title), ""]
        if kind == "misc":
            lines += ["- " + ", ".join(sorted({i for ids in entries.values() for i in ids})), ""]
            continue
        for text, issues in sorted(entries.items()):
            suffix = f" ({', '.join(issues)})" if issues else ""
            body = (text + suffix).splitlines()
            lines.append("- " + body[0])
            lines += [("  " + line).rstrip() for line in body[1:]]
            lines.append("")
    if not lines:
        lines = ["No unreleased changes.", ""]
    return "\n".join(lines)


def _insert_unreleased_news(app: Any, docname: str, source: list[str]) -> None:
    if docname == "changelog" and UNRELEASED_MARKER in source[0]:
        source[0] = source[0].replace(UNRELEASED_MARKER, unreleased_news(ROOT / "changelog.d"))


def _changelog_always_outdated(
    app: Any, env: Any, added: set[str], changed: set[str], removed: set[str]
) -> list[str]:
    # The fragments are not Sphinx sources: reread the changelog on every build.
    return ["changelog"]


# -- the theme ------------------------------------------------------------------------------


def _drop_local_contents(app: Any, doctree: nodes.document) -> None:
    """
    Remove the pages' own ``.. contents::`` lists: furo shows every page's contents in its
    sidebar, and marks a contents list in the page as an error.
    """
    for topic in list(doctree.findall(nodes.topic)):
        if "contents" in topic["classes"] and topic.parent is not None:
            topic.parent.remove(topic)


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("zope-interface", ZopeInterfaceDirective)
    app.connect("doctree-read", _drop_local_contents)
    app.connect("source-read", _insert_unreleased_news)
    app.connect("env-get-outdated", _changelog_always_outdated)
    return {"parallel_read_safe": True}
