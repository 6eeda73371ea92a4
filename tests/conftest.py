"""
Shared pytest configuration of the main test session.
"""

from __future__ import annotations

import pytest

# tests/crochet_cases/ runs the reactor in a crochet thread, which cannot share a process
# with the trial tests that use the real reactor; tests/integration/test_sync.py runs it in a
# subprocess of its own.
collect_ignore = ["crochet_cases"]
# tests/durability/ holds the worker program the durability tests run as child processes.
collect_ignore.append("durability")
# tests/django_cases/ configures Django (process-global settings) and runs the reactor in
# crochet's thread; tests/integration/test_django.py runs it in a subprocess of its own.
collect_ignore.append("django_cases")


# tests/unit/: synchronous tests in memory (SynchronousTestCase, Clock, the fakes of
# twisted_hooks.testing); tests/integration/: the real reactor, sockets, files, databases,
# subprocesses, Django and crochet. Each test carries its directory's marker, so that
# ``pytest -m unit`` runs the fast ones alone.
_KINDS = ("unit", "integration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for kind in _KINDS:
            if kind in item.path.parts[-3:-1]:
                item.add_marker(getattr(pytest.mark, kind))
