"""
The memory stores live in :mod:`twisted_hooks.store` with every other store, and are still
imported from where the documentation tells users to: :mod:`twisted_hooks.webhooks`, its
``delivery`` and ``subscribers`` modules, and :mod:`twisted_hooks.testing`. The webhooks
and store packages import each other's modules, so every order of first import is tried in
a fresh interpreter; and the static subscribers of a real ``twist hooks`` (held in a
:class:`~twisted_hooks.webhooks.MemorySubscriberStore`) still receive events.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._service import CONFIG, DEADLINE, ROOT, Receiver, Service, wait_for
from twisted_hooks.webhooks.signing import verify

#: Where each memory store is defined, and every place it is documented as importable.
HOMES = {
    "twisted_hooks.store._memory_deliveries.MemoryDeliveryStore": [
        "twisted_hooks.webhooks.MemoryDeliveryStore",
        "twisted_hooks.webhooks.delivery.MemoryDeliveryStore",
        "twisted_hooks.testing.MemoryDeliveryStore",
    ],
    "twisted_hooks.store._memory_subscribers.MemorySubscriberStore": [
        "twisted_hooks.webhooks.MemorySubscriberStore",
        "twisted_hooks.webhooks.subscribers.MemorySubscriberStore",
        "twisted_hooks.testing.MemorySubscriberStore",
    ],
}

#: Modules a program may import first; each is imported alone in a fresh interpreter.
FIRST_IMPORTS = [
    "twisted_hooks",
    "twisted_hooks.store",
    "twisted_hooks.store.memory",
    "twisted_hooks.store.cache",
    "twisted_hooks.store.sqlite",
    "twisted_hooks.store._memory_deliveries",
    "twisted_hooks.store._memory_subscribers",
    "twisted_hooks.webhooks",
    "twisted_hooks.webhooks.delivery",
    "twisted_hooks.webhooks.subscribers",
    "twisted_hooks.webhooks._deliveries",
    "twisted_hooks.webhooks._subscriber",
    "twisted_hooks.webhooks.health",
    "twisted_hooks.testing",
    "twisted_hooks.service.cli",
]

#: Run in the child: import the module named by argv[1] first, then check every home.
CHILD = textwrap.dedent(
    """
    import importlib, json, sys
    importlib.import_module(sys.argv[1])
    homes = json.loads(sys.argv[2])

    def find(dotted):
        module, _, name = dotted.rpartition(".")
        return getattr(importlib.import_module(module), name)

    for defined, exported in homes.items():
        cls = find(defined)
        assert cls.__module__ == defined.rpartition(".")[0], (defined, cls.__module__)
        for name in exported:
            assert find(name) is cls, (name, find(name), cls)
    print("ok")
    """
)


@pytest.mark.parametrize("first", FIRST_IMPORTS)
def test_every_first_import_sees_one_class_everywhere(first: str) -> None:
    """Whichever module a fresh interpreter imports first, the import succeeds; each
    memory store is then defined in the store package and is the same class at every
    documented import path."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, first, json.dumps(HOMES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_store_package_stands_on_value_modules_only() -> None:
    """No module of the store package imports the webhooks modules that re-export the
    memory stores (``delivery``, ``subscribers``) or ``health`` (which imports them): the
    store stands on the webhooks value modules, so the re-exports make no import cycle."""
    store = ROOT / "twisted_hooks" / "store"
    offenders = []
    for path in sorted(store.glob("*.py")):
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith("from twisted_hooks.webhooks.") and stripped.split()[1] in (
                "twisted_hooks.webhooks.delivery",
                "twisted_hooks.webhooks.subscribers",
                "twisted_hooks.webhooks.health",
            ):
                offenders.append(f"{path.name}: {stripped}")
    assert offenders == []


SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def test_static_subscribers_of_the_real_service_receive(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A real ``twist hooks`` on an SQLite file, with a static subscriber in its
    configuration (held in a memory subscriber store): an event published through the API
    reaches it, signed with the configured secret; an event its pattern does not match
    makes no delivery."""
    config = CONFIG.replace("[hooks]\n", f"[hooks]\nsecret = {SECRET}\n", 1)
    config += f"\n[subscribers]\nstock.* = {receiver.url}\n"
    service = Service(tmp_path, config=config)
    service.start()
    try:
        token = service.token("ops", scopes="publish")
        status, _, missed = service.request(
            "POST", "/events/", token, {"event": "order.paid", "data": {"n": 1}}
        )
        assert status == 202, missed
        assert missed["deliveries"] == 0
        status, _, published = service.request(
            "POST", "/events/", token, {"event": "stock.low", "data": {"sku": "A-1"}}
        )
        assert status == 202, published
        assert published["deliveries"] == 1
        wait_for(lambda: receiver.received, "the static subscriber's delivery")
        headers, body = receiver.received[0]
        assert json.loads(body) == {"sku": "A-1"}
        assert headers["hook-event"] == "stock.low"
        assert verify(headers["hook-hmac"], "sha256", SECRET, body)
        assert len(receiver.received) == 1
    finally:
        service.kill()
