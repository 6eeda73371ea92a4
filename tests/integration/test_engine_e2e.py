"""
End-to-end test of the delivery engine's fast paths (ids made from random bytes, signing
from cached HMAC keys, results of already-fired Deferreds read at once) through the real
``twist hooks`` in a child process, on a temporary SQLite file, with a real receiver on
``127.0.0.1``: a burst of events to two subscribers with different digests and secrets
arrives once each, every request signed as the one-shot signing functions would sign it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from tests._service import Receiver, Service, wait_for
from twisted_hooks.webhooks.signing import generate_secret, verify, verify_standard

#: Events published in the burst.
EVENTS = 12


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


def test_burst_to_two_subscribers_signed_once_each(service: Service, receiver: Receiver) -> None:
    """Each event of a burst reaches each of two subscribers (sha1 with a plain secret,
    sha512 with a ``whsec_`` secret) exactly once, with a Hook-HMAC of its subscriber's
    digest and secret and a Standard Webhooks signature that verify_standard accepts (and
    the standardwebhooks package too, for the ``whsec_`` secret); every delivery id is a
    distinct canonical version 4 UUID, the same in Hook-Delivery and webhook-id, and the
    deliveries of one event share its event's id; the delivery log says every one was
    delivered. An event name the engine refuses is a 400 naming it."""
    token = service.token("alice")
    secrets = {"sha1": "plain-secret-1", "sha512": generate_secret()}
    hooks = {}
    for digest, secret in secrets.items():
        status, _, hook = service.request(
            "POST",
            "/hooks/",
            token,
            {
                "event": "burst.*",
                "url": f"{receiver.url}?{digest}",
                "hmac_digest": digest,
                "hmac_secret": secret,
            },
        )
        assert status == 201, hook
        hooks[hook["id"]] = (digest, secret)

    status, _, refused = service.request(
        "POST", "/events/", token, {"event": "burst..bad", "data": {}}
    )
    assert status == 400, refused
    assert "burst..bad" in json.dumps(refused)

    for n in range(EVENTS):
        status, _, published = service.request(
            "POST", "/events/", token, {"event": "burst.item", "data": {"n": n}}
        )
        assert status == 202, published
        assert published["deliveries"] == 2

    wait_for(lambda: len(receiver.received) >= 2 * EVENTS, "every delivery of the burst")
    received = receiver.received
    assert len(received) == 2 * EVENTS
    seen: set[tuple[str, int]] = set()
    delivery_ids: set[str] = set()
    for headers, body in received:
        digest, secret = hooks[headers["hook-subscription"]]
        n = json.loads(body)["n"]
        assert (headers["hook-subscription"], n) not in seen
        seen.add((headers["hook-subscription"], n))
        assert verify(headers["hook-hmac"], digest, secret, body)
        verify_standard(secret, headers, body)
        if secret.startswith("whsec_"):
            Webhook(secret).verify(body, headers)
        delivery_id = headers["hook-delivery"]
        assert headers["webhook-id"] == delivery_id
        parsed = uuid.UUID(delivery_id)
        assert (parsed.version, str(parsed)) == (4, delivery_id)
        delivery_ids.add(delivery_id)
    assert len(seen) == len(delivery_ids) == 2 * EVENTS

    def all_delivered() -> bool:
        _, _, log = service.request("GET", "/deliveries/?status=delivered", token)
        return len(log) == 2 * EVENTS

    wait_for(all_delivered, "the delivery log to say delivered for every delivery")
    _, _, log = service.request("GET", "/deliveries/?status=delivered", token)
    by_event: dict[str, set[str]] = {}
    for entry in log:
        by_event.setdefault(entry["event_id"], set()).add(entry["id"])
    assert len(by_event) == EVENTS
    assert all(len(ids) == 2 for ids in by_event.values())
    for event_id in by_event:
        assert str(uuid.UUID(event_id)) == event_id
