"""
The crochet cases share one process whose reactor runs in crochet's thread.

This directory is not collected by the main test session (see ``tests/conftest.py``);
``tests/integration/test_sync.py`` runs it in a subprocess.
"""

from __future__ import annotations

import pytest

from twisted_hooks import sync

sync.setup()


def pytest_configure(config: pytest.Config) -> None:
    # crochet 2.1 still calls Event.isSet(); that is crochet's business, not ours.
    config.addinivalue_line(
        "filterwarnings", "ignore:isSet\\(\\) is deprecated:DeprecationWarning:crochet"
    )
