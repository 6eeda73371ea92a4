"""
End-to-end tests of changing subscriptions and reading the delivery log through the real
``twist hooks`` service (a child process, a temporary SQLite file, tokens made by the
``twisted-hooks`` command, a receiver on ``127.0.0.1``): the HTTP API reaches them through
the application's own methods (:meth:`~twisted_hooks.webhooks.Hooks.update_subscriber`,
:meth:`~twisted_hooks.webhooks.Hooks.list_deliveries` and the rest).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._service import Receiver, Service, wait_for
from twisted_hooks.webhooks.signing import verify


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    service = Service(tmp_path)
    service.start()
    yield service
    service.kill()


def test_patch_deactivate_reactivate_and_read_the_log(
    service: Service, receiver: Receiver
) -> None:
    """
    Through the running service: a PATCH to an internal URL is refused (400, field url)
    and changes nothing; ``active: false`` stops deliveries (a publish makes none);
    ``active: true`` with a new secret makes the subscription receive again, signed with
    that secret; the delivery log lists the delivery, shows its attempt, and another user
    sees neither the subscription nor the delivery.
    """
    alice = service.token("alice", owner="alice")
    bob = service.token("bob", owner="bob")
    status, _, hook = service.request(
        "POST", "/hooks/", alice, {"event": "order.*", "url": receiver.url}
    )
    assert status == 201, hook
    path = f"/hooks/{hook['id']}/"

    status, _, error = service.request("PATCH", path, alice, {"url": "https://10.0.0.1/x"})
    assert (status, error["error"], error["field"]) == (400, "refused_url", "url")
    status, _, error = service.request("PATCH", path, alice, {"headers": {"Hook-Event": "forged"}})
    assert (status, error.get("field")) == (400, "headers"), error
    assert service.request("GET", path, alice)[2] == hook

    status, _, off = service.request("PATCH", path, alice, {"active": False})
    assert (status, off["active"]) == (200, False)
    status, _, published = service.request(
        "POST", "/events/", alice, {"event": "order.paid", "data": 1}
    )
    assert (status, published["deliveries"]) == (202, 0)

    status, _, on = service.request(
        "PATCH", path, alice, {"active": True, "hmac_secret": "a-new-secret-of-alice"}
    )
    assert (status, on["active"], on["hmac_secret"]) == (200, True, "a-new-secret-of-alice")
    assert service.request("PATCH", path, bob, {"active": False})[0] == 404
    status, _, published = service.request(
        "POST", "/events/", alice, {"event": "order.paid", "data": 2}
    )
    assert (status, published["deliveries"]) == (202, 1)
    wait_for(lambda: receiver.bodies() == [2], "the delivery after reactivation")
    [(headers, body)] = receiver.received
    assert verify(headers["hook-hmac"], "sha256", "a-new-secret-of-alice", body)

    def delivered() -> list[dict[str, object]] | None:
        _, _, log = service.request("GET", "/deliveries/?status=delivered", alice)
        return log if len(log) == 1 else None

    [logged] = wait_for(delivered, "the delivery log to say delivered")
    assert (logged["hook"], logged["attempt_count"]) == (hook["id"], 1)
    status, _, shown = service.request("GET", f"/deliveries/{logged['id']}/", alice)
    assert status == 200
    assert [a["status_code"] for a in shown["attempts"]] == [204]
    assert service.request("GET", "/deliveries/", bob)[2] == []
    assert service.request("GET", f"/deliveries/{logged['id']}/", bob)[0] == 404
