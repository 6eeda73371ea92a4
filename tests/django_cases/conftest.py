"""
The Django cases share one process: Django configured with ``tests.django_project`` and,
once a webhook is sent in process, the reactor running in crochet's thread.

This directory is not collected by the main test session (see ``tests/conftest.py``);
``tests/integration/test_django.py`` runs it in a subprocess.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests import _service
from tests._service import wait_for

os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django_project.settings"

import django

django.setup()

from django.core.management import call_command  # noqa: E402

call_command("migrate", run_syncdb=True, verbosity=0)

from twisted_hooks import sync  # noqa: E402

sync.setup()


def pytest_configure(config: pytest.Config) -> None:
    # crochet 2.1 still calls Event.isSet(); that is crochet's business, not ours.
    config.addinivalue_line(
        "filterwarnings", "ignore:isSet\\(\\) is deprecated:DeprecationWarning:crochet"
    )


class Receiver(_service.Receiver):
    """A webhook receiver on 127.0.0.1 recording each POST (header names in lower
    case, raw body); answers 200, or ``status`` when set."""

    def __init__(self) -> None:
        super().__init__(status=200)

    def messages(self) -> list[Any]:
        """The decoded bodies received so far."""
        return self.bodies()

    def events(self) -> list[str]:
        """The ``event`` of each message received so far."""
        return [message["event"] for message in self.messages()]

    def wait(self, count: int) -> list[Any]:
        """Wait until ``count`` messages arrived; return them."""
        wait_for(lambda: len(self.received) >= count, f"{count} webhook(s)")
        return self.messages()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver, closed after the test."""
    receiver = Receiver()
    yield receiver
    receiver.close()
