"""
The Django integration end to end, in process: a real Django project on SQLite, its
model signals, the crochet reactor thread, and a real receiver on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Receiver, wait_for
from django.contrib.auth.models import User
from django.core import checks
from django.db import transaction
from django.test import override_settings

from tests.django_project.blog.models import Article, Note, Tag
from twisted_hooks.contrib.django import get_hooks, reset_backend
from twisted_hooks.contrib.django.apps import check_settings
from twisted_hooks.webhooks import verify, verify_standard
from twisted_hooks.webhooks.subscribers import Subscriber

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def subscribed(receiver: Receiver) -> Iterator[Receiver]:
    """The receiver, subscribed to ``article.*`` and ``note.*`` in process."""
    hooks = get_hooks()
    subscribers: list[Subscriber] = [
        hooks.subscribe(pattern, receiver.url, secret=SECRET)
        for pattern in ("article.*", "note.*")
    ]
    yield receiver
    for subscriber in subscribers:
        hooks.unsubscribe(subscriber.id)


@pytest.fixture
def alice() -> User:
    """The author of the articles."""
    user, _ = User.objects.get_or_create(username="alice")
    return user


def expected(article: Article, event: str, **data: Any) -> dict[str, Any]:
    """The envelope of ``event`` for ``article``, with its data overridden by ``data``."""
    return {
        "event": event,
        "ref": f"https://blog.example/articles/{article.pk}/",
        "sender": "alice",
        "data": {"title": article.title, "state": article.state, "tags": [], **data},
    }


def test_create_delivers_signed_envelope(subscribed: Receiver, alice: User) -> None:
    """Creating an article delivers article.created with Thorn's envelope (ref from
    get_absolute_url joined to BASE_URL, the author's username as sender, the payload as
    data), a valid Standard Webhooks signature and a valid Hook-HMAC."""
    article = Article.objects.create(title="Hello", author=alice)
    [message] = subscribed.wait(1)
    assert message == expected(article, "article.created")
    headers, body = subscribed.received[0]
    assert headers["hook-event"] == "article.created"
    verify_standard(SECRET, headers, body)
    assert verify(headers["hook-hmac"], "sha256", SECRET, body)


def test_change_delivers_changed(subscribed: Receiver, alice: User) -> None:
    """Saving an existing article delivers article.changed with the new data (and no
    article.published while the state is not published)."""
    article = Article.objects.create(title="Draft", author=alice)
    subscribed.wait(1)
    article.title = "Better"
    article.save()
    messages = subscribed.wait(2)
    assert messages[1] == expected(article, "article.changed", title="Better")
    time.sleep(0.3)
    assert subscribed.events() == ["article.created", "article.changed"]


def test_now_eq_transition(subscribed: Receiver, alice: User) -> None:
    """article.published (state__now_eq="published") is delivered on the save that
    changes the state to published, beside article.changed, and not on a later save
    that leaves it published."""
    article = Article.objects.create(title="News", author=alice)
    subscribed.wait(1)
    article.state = "published"
    article.save()
    messages = subscribed.wait(3)
    assert sorted(m["event"] for m in messages[1:]) == ["article.changed", "article.published"]
    published = next(m for m in messages if m["event"] == "article.published")
    assert published == expected(article, "article.published")
    article.title = "News, again"
    article.save()
    subscribed.wait(4)
    time.sleep(0.3)
    assert subscribed.events().count("article.published") == 1
    assert subscribed.events()[-1] == "article.changed"


def test_delete_delivers_removed(subscribed: Receiver, alice: User) -> None:
    """Deleting an article delivers article.removed, whose ref is the URL the article
    had (the message is made when the signal fires, before Django clears the pk)."""
    article = Article.objects.create(title="Gone soon", author=alice)
    subscribed.wait(1)
    ref = f"https://blog.example/articles/{article.pk}/"
    article.delete()
    message = subscribed.wait(2)[1]
    assert message["event"] == "article.removed"
    assert message["ref"] == ref
    assert message["sender"] == "alice"
    assert message["data"]["title"] == "Gone soon"


def test_m2m_add_remove_clear(subscribed: Receiver, alice: User) -> None:
    """tags.add, tags.remove and tags.clear deliver article.tagged, article.untagged and
    article.tags_cleared, each with the tags as they are after the change."""
    article = Article.objects.create(title="Tagged", author=alice)
    python = Tag.objects.create(name="python")
    twisted = Tag.objects.create(name="twisted")
    subscribed.wait(1)
    article.tags.add(python, twisted)
    tagged = subscribed.wait(2)[1]
    assert tagged == expected(article, "article.tagged", tags=["python", "twisted"])
    article.tags.remove(python)
    untagged = subscribed.wait(3)[2]
    assert untagged == expected(article, "article.untagged", tags=["twisted"])
    article.tags.clear()
    cleared = subscribed.wait(4)[3]
    assert cleared == expected(article, "article.tags_cleared", tags=[])


def test_m2m_from_the_other_side(subscribed: Receiver, alice: User) -> None:
    """Changes made from the tag's side (tag.articles.add/remove/clear) deliver the
    events of each article concerned, not of the tag."""
    first = Article.objects.create(title="First", author=alice)
    second = Article.objects.create(title="Second", author=alice)
    tag = Tag.objects.create(name="reverse")
    subscribed.wait(2)
    tag.articles.add(first, second)
    messages = subscribed.wait(4)[2:]
    assert sorted((m["event"], m["data"]["title"]) for m in messages) == [
        ("article.tagged", "First"),
        ("article.tagged", "Second"),
    ]
    tag.articles.remove(first)
    assert subscribed.wait(5)[4] == expected(first, "article.untagged")
    tag.articles.clear()
    assert subscribed.wait(6)[5] == expected(second, "article.tags_cleared")


def test_rolled_back_transaction_delivers_nothing(subscribed: Receiver, alice: User) -> None:
    """Webhooks of a transaction that rolls back are discarded: nothing is delivered for
    the article created, changed, tagged and deleted in it; an article created after it
    is the only delivery."""

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        article = Article.objects.create(title="Never", author=alice)
        article.state = "published"
        article.save()
        article.tags.add(Tag.objects.create(name="never"))
        article.delete()
        raise Rollback()
    after = Article.objects.create(title="After", author=alice)
    subscribed.wait(1)
    time.sleep(0.3)
    assert subscribed.messages() == [expected(after, "article.created")]


def test_committed_transaction_delivers_on_commit(subscribed: Receiver, alice: User) -> None:
    """Inside transaction.atomic the webhooks wait for the commit, then all go, each
    with the data of its moment."""
    with transaction.atomic():
        article = Article.objects.create(title="First title", author=alice)
        article.title = "Second title"
        article.save()
        time.sleep(0.3)
        assert subscribed.received == []
    messages = subscribed.wait(2)
    assert sorted((m["event"], m["data"]["title"]) for m in messages) == [
        ("article.changed", "Second title"),
        ("article.created", "First title"),
    ]


def test_signal_honors_transaction_false(subscribed: Receiver) -> None:
    """An event with signal_honors_transaction=False is sent at once, inside the
    transaction (and so also when it rolls back); its name is a template, its ref a
    Django model_reverser."""
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        Note.objects.create(kind="memo")
        wait_for(lambda: subscribed.received, "the note's webhook, before the commit")
        1 / 0  # noqa: B018
    [message] = subscribed.messages()
    assert message == {
        "event": "note.memo",
        "ref": "https://blog.example/tags/memo/",
        "sender": None,
        "data": {},
    }


def test_owner_rule_uses_the_user_pk(receiver: Receiver, alice: User) -> None:
    """A subscriber owned by a user (owner = the user's pk) receives the webhooks of that
    user's articles only."""
    bob, _ = User.objects.get_or_create(username="bob")
    hooks = get_hooks()
    subscriber = hooks.subscribe("article.created", receiver.url, owner=str(bob.pk))
    try:
        Article.objects.create(title="Alice's", author=alice)
        Article.objects.create(title="Bob's", author=bob)
        [message] = receiver.wait(1)
        time.sleep(0.3)
        assert [m["data"]["title"] for m in receiver.messages()] == ["Bob's"]
        assert message["sender"] == "bob"
    finally:
        hooks.unsubscribe(subscriber.id)


def test_raw_saves_dispatch_nothing(subscribed: Receiver, alice: User) -> None:
    """Saves with raw=True (fixtures being loaded) send nothing, as in Thorn."""
    article = Article(title="Fixture", author=alice)
    article.save_base(raw=True)
    Article.objects.create(title="Real", author=alice)
    subscribed.wait(1)
    time.sleep(0.3)
    assert [m["data"]["title"] for m in subscribed.messages()] == ["Real"]


def test_disabled_mode_sends_nothing(subscribed: Receiver, alice: User) -> None:
    """THORN_DISPATCHER = "disabled" (no MODE) sends nothing; the in-process backend is
    built again when the settings change back."""
    with override_settings(TWISTED_HOOKS={}, THORN_DISPATCHER="disabled"):
        Article.objects.create(title="Silent", author=alice)
    time.sleep(0.3)
    assert subscribed.received == []
    reset_backend()


def test_errors_are_logged_unless_propagated(alice: User) -> None:
    """A send that fails (here: no service listening) is logged and the save succeeds
    (propagate_errors=False, Thorn's default); with propagate_errors=True it is raised,
    with a message naming the service URL."""
    from twisted.logger import LogLevel, formatEvent, globalLogPublisher

    from twisted_hooks.contrib.django import ServiceError

    # Observed on twisted.logger itself: its observers are called in the logging thread,
    # whereas the copy crochet sends to the logging module arrives from another thread.
    logged: list[dict[str, object]] = []
    globalLogPublisher.addObserver(logged.append)
    unreachable = {"MODE": "service", "URL": "http://127.0.0.1:9", "TOKEN": "t", "SEND_TIMEOUT": 2}
    try:
        with override_settings(TWISTED_HOOKS=unreachable):
            article = Article.objects.create(title="Logged", author=alice)
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert Article.objects.filter(pk=article.pk).exists()
    failures = [e for e in logged if e.get("log_level") == LogLevel.critical]
    assert any("was not sent" in (formatEvent(e) or "") for e in failures), logged
    with override_settings(TWISTED_HOOKS=unreachable):
        event = Article.webhooks.events["on_create"]
        event.propagate_errors = True
        try:
            with pytest.raises(ServiceError, match=r"127\.0\.0\.1:9/events/"):
                Article.objects.create(title="Raised", author=alice)
        finally:
            event.propagate_errors = False


def test_system_check() -> None:
    """The system check reports wrong TWISTED_HOOKS settings as errors and Thorn settings
    without effect as warnings."""
    with override_settings(
        TWISTED_HOOKS={"MODE": "celery"}, THORN_CHUNKSIZE=10, THORN_HMAC_SIGNER="x:compat_sign"
    ):
        found = check_settings()
    ids = sorted((type(m).__name__, m.id, m.msg.split(" ")[0]) for m in found)
    assert ids == [
        ("Error", "twisted_hooks.E001", "TWISTED_HOOKS['MODE']"),
        ("Warning", "twisted_hooks.W001", "THORN_CHUNKSIZE"),
        ("Warning", "twisted_hooks.W001", "THORN_HMAC_SIGNER"),
    ]
    assert all(isinstance(m, checks.CheckMessage) for m in found)
