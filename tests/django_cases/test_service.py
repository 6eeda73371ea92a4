"""
The Django integration in ``"service"`` mode: model signals publish to a real
twisted_hooks service (a child process on SQLite, started as the service's own
end-to-end tests start it), which delivers to a real receiver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Receiver
from django.contrib.auth.models import User
from django.test import override_settings

from tests._service import Service
from tests.django_project.blog.models import Article, Tag
from twisted_hooks.contrib.django import ServiceError
from twisted_hooks.webhooks import verify_standard


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """A running service, killed after the test."""
    service = Service(tmp_path)
    service.start()
    yield service
    service.kill()


def test_service_mode_publishes_to_post_events(service: Service, receiver: Receiver) -> None:
    """With MODE "service", creating, changing, tagging and deleting an article publish
    Thorn's envelopes to POST /events/ with the token; the service delivers them, signed,
    to the subscription its owner (the author's pk) made through /hooks/."""
    alice, _ = User.objects.get_or_create(username="alice")
    token = service.token("blog", owner=str(alice.pk))
    status, _, hook = service.request(
        "POST", "/hooks/", token, {"event": "article.*", "url": receiver.url}
    )
    assert status == 201, hook
    settings = {
        "MODE": "service",
        "URL": service.base,
        "TOKEN": token,
        "BASE_URL": "https://blog.example",
    }
    with override_settings(TWISTED_HOOKS=settings):
        article = Article.objects.create(title="Served", author=alice)
        article.state = "published"
        article.save()
        article.tags.add(Tag.objects.create(name="served"))
        pk = article.pk
        article.delete()
        messages = receiver.wait(5)
    assert sorted(m["event"] for m in messages) == [
        "article.changed",
        "article.created",
        "article.published",
        "article.removed",
        "article.tagged",
    ]
    for message in messages:
        assert message["ref"] == f"https://blog.example/articles/{pk}/"
        assert message["sender"] == "alice"
    created = next(m for m in messages if m["event"] == "article.created")
    assert created["data"] == {"title": "Served", "state": "draft", "tags": []}
    for headers, body in receiver.received:
        verify_standard(hook["hmac_secret"], headers, body)
        assert headers["hook-event"] == json.loads(body)["event"]


def test_service_refusal_is_a_clear_error(service: Service) -> None:
    """A token the service does not know makes a propagating event raise ServiceError
    with the status, the service's detail and what to check."""
    alice, _ = User.objects.get_or_create(username="alice")
    settings = {"MODE": "service", "URL": service.base, "TOKEN": "not-a-token"}
    event = Article.webhooks.events["on_create"]
    event.propagate_errors = True
    try:
        with override_settings(TWISTED_HOOKS=settings), pytest.raises(ServiceError) as raised:
            Article.objects.create(title="Refused", author=alice)
    finally:
        event.propagate_errors = False
    assert "answered 401" in str(raised.value)
    assert "TWISTED_HOOKS['TOKEN']" in str(raised.value)
