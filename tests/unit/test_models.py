"""
Unit tests for :mod:`twisted_hooks.webhooks.models`: Thorn's ``ModelEvent``,
``webhook_model`` and ``model_reverser`` on attrs classes, dataclasses and plain classes.

Events send through a started :class:`~twisted_hooks.webhooks.Hooks` on a
:class:`~twisted.internet.task.Clock`, with the :class:`~twisted_hooks.testing.FakeSender`
of :mod:`twisted_hooks.testing`, which answers every attempt with 200.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_hooks.q import Q
from twisted_hooks.testing import FakeSender
from twisted_hooks.webhooks import set_default_app
from twisted_hooks.webhooks.app import Hooks, HooksNotRunning, Settings
from twisted_hooks.webhooks.events import SendOptions, SendResult, WebhookEvent
from twisted_hooks.webhooks.models import (
    CREATE,
    DELETE,
    UPDATE,
    ModelEvent,
    WebhookCapable,
    default_payload,
    model_reverser,
    webhook_model,
)
from twisted_hooks.webhooks.sender import delivery_headers

URL = "https://example.com/hook"


@attrs.frozen
class User:
    """A user, identified by ``id``."""

    id: int
    username: str


@attrs.frozen
class Account:
    """An account, maybe with a user."""

    user: User | None


class ModelTestCase(SynchronousTestCase):
    """A started Hooks with a subscriber to every ``article.*`` and ``user.*`` event."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000.0)
        self.sender = FakeSender(self.clock)
        self.hooks = Hooks(
            self.clock,
            sender=self.sender,
            settings=Settings(record_delay=0.0),
            default_secret="default-secret",
        )
        self.hooks.startService()
        self.addCleanup(self.stopHooks)
        for pattern in ("article.*", "user.*"):
            self.successResultOf(self.hooks.subscribe(pattern, URL))

    def stopHooks(self) -> None:
        """Stop the application if it runs."""
        if self.hooks.running:
            self.hooks.stopService()

    def event(self, name: str, *filters: Any, **kwargs: Any) -> ModelEvent:
        """A ModelEvent on this test's application."""
        return ModelEvent(name, *filters, app=self.hooks, **kwargs)

    def sent(self, result: Any) -> SendResult:
        """The SendResult a dispatch's Deferred fired with."""
        self.assertIsInstance(result, Deferred)
        value = self.successResultOf(result)
        self.assertIsInstance(value, SendResult)
        assert isinstance(value, SendResult)
        return value

    def not_sent(self, result: Any) -> None:
        """A dispatch's Deferred fired with ``None``: nothing was sent."""
        self.assertIsInstance(result, Deferred)
        self.assertIsNone(self.successResultOf(result))

    def message(self, result: Any) -> dict[str, Any]:
        """The model message a dispatch sent."""
        data = self.sent(result).event.data
        assert isinstance(data, dict)
        return data


def inner_class_attrs() -> type:
    """An attrs article with the inner ``class webhooks:`` form."""

    @webhook_model
    @attrs.frozen
    class Article:
        uuid: str
        state: str = "PENDING"

        class webhooks:
            on_create = ModelEvent("article.created")
            on_change = ModelEvent("article.changed")
            on_delete = ModelEvent("article.removed")
            on_publish = ModelEvent(
                "article.published", state__now_eq="PUBLISHED"
            ).dispatches_on_change()

            def payload(self, article: Any) -> dict[str, Any]:
                return {"uuid": article.uuid, "state": article.state}

    return Article


def inner_class_dataclass() -> type:
    """A frozen dataclass article with the inner ``class webhooks:`` form."""

    @webhook_model
    @dataclasses.dataclass(frozen=True)
    class Article:
        uuid: str
        state: str = "PENDING"

        class webhooks:
            on_create = ModelEvent("article.created")
            on_change = ModelEvent("article.changed")
            on_delete = ModelEvent("article.removed")
            on_publish = ModelEvent(
                "article.published", state__now_eq="PUBLISHED"
            ).dispatches_on_change()

            def payload(self, article: Any) -> dict[str, Any]:
                return {"uuid": article.uuid, "state": article.state}

    return Article


class DecoratorTests(ModelTestCase):
    """Both forms of ``webhook_model``, on attrs classes and dataclasses."""

    def setUp(self) -> None:
        super().setUp()
        set_default_app(self.hooks)
        self.addCleanup(set_default_app, None)

    def check_inner_class(self, Article: Any) -> None:
        """The events of an inner-class article dispatch on create, change and delete."""
        webhooks = Article.webhooks
        self.assertIsInstance(webhooks, WebhookCapable)
        self.assertEqual(
            sorted(webhooks.events), ["on_change", "on_create", "on_delete", "on_publish"]
        )
        self.assertEqual(webhooks["on_create"].dispatches_on, CREATE)
        self.assertEqual(webhooks["on_change"].dispatches_on, UPDATE)
        self.assertEqual(webhooks["on_delete"].dispatches_on, DELETE)
        self.assertEqual(webhooks["on_publish"].dispatches_on, UPDATE)
        self.assertIn(Article, webhooks["on_create"].models)

        article = Article(uuid="a1")
        created = webhooks.dispatch_on_create(article)
        self.assertEqual(list(created), ["on_create"])
        self.assertEqual(
            self.message(created["on_create"]),
            {
                "event": "article.created",
                "ref": None,
                "sender": None,
                "data": {"uuid": "a1", "state": "PENDING"},
            },
        )
        published = Article(uuid="a1", state="PUBLISHED")
        changed = webhooks.dispatch_on_change(published, article)
        self.assertEqual(sorted(changed), ["on_change", "on_publish"])
        self.assertEqual(self.message(changed["on_change"])["event"], "article.changed")
        self.assertEqual(self.message(changed["on_publish"])["event"], "article.published")
        again = webhooks.dispatch_on_change(published, published)
        self.not_sent(again["on_publish"])
        deleted = webhooks.dispatch_on_delete(published)
        self.assertEqual(self.message(deleted["on_delete"])["event"], "article.removed")

    def test_inner_class_attrs(self) -> None:
        """The inner ``class webhooks:`` form works on a frozen attrs class."""
        self.check_inner_class(inner_class_attrs())

    def test_inner_class_dataclass(self) -> None:
        """The inner ``class webhooks:`` form works on a frozen dataclass."""
        self.check_inner_class(inner_class_dataclass())

    def test_inner_class_keeps_other_attributes(self) -> None:
        """The inner class's other attributes (``sender_field``) become defaults."""

        @webhook_model
        @attrs.frozen
        class Post:
            account: Account

            class webhooks:
                sender_field = "account.user"
                on_create = ModelEvent("article.created")

        self.assertEqual(Post.webhooks.sender_field, "account.user")  # type: ignore[attr-defined]
        post = Post(Account(User(7, "alice")))
        result = Post.webhooks.dispatch_on_create(post)  # type: ignore[attr-defined]
        self.assertEqual(self.message(result["on_create"])["sender"], "7")

    def check_argument_form(self, make: Any) -> None:
        """The argument form gives defaults for ``reverse`` and ``sender_field``."""
        reverse = model_reverser("https://shop.example/articles/{uuid}/", uuid="uuid")
        on_archive = ModelEvent("article.archived", archived__now_eq=True)
        Article = webhook_model(
            on_create=ModelEvent("article.created"),
            on_change=ModelEvent("article.changed"),
            on_delete=ModelEvent(
                "article.removed", reverse=lambda article: "https://shop.example/articles/"
            ),
            on_archive=on_archive.dispatches_on_change(),
            sender_field="account.user",
            reverse=reverse,
        )(make())
        article = Article(uuid="a1", account=Account(User(7, "alice")), archived=False)
        message = self.message(Article.webhooks.dispatch_on_create(article)["on_create"])
        self.assertEqual(
            message,
            {
                "event": "article.created",
                "ref": "https://shop.example/articles/a1/",
                "sender": "7",
                "data": {
                    "uuid": "a1",
                    "account": {"user": {"id": 7, "username": "alice"}},
                    "archived": False,
                },
            },
        )
        deleted = self.message(Article.webhooks.dispatch_on_delete(article)["on_delete"])
        self.assertEqual(deleted["ref"], "https://shop.example/articles/")
        archived = Article(uuid="a1", account=article.account, archived=True)
        changed = Article.webhooks.dispatch_on_change(archived, article)
        self.assertEqual(self.message(changed["on_archive"])["event"], "article.archived")
        self.assertIs(Article.webhooks["on_archive"], on_archive)

    def test_argument_form_attrs(self) -> None:
        """``@webhook_model(on_create=..., ...)`` works on an attrs class."""

        def make() -> type:
            @attrs.define
            class Article:
                uuid: str
                account: Account
                archived: bool

            return Article

        self.check_argument_form(make)

    def test_argument_form_dataclass(self) -> None:
        """``@webhook_model(on_create=..., ...)`` works on a frozen dataclass."""

        def make() -> type:
            @dataclasses.dataclass(frozen=True)
            class Article:
                uuid: str
                account: Account
                archived: bool

            return Article

        self.check_argument_form(make)

    def test_both_forms_combined(self) -> None:
        """Decorator arguments add to the inner class's events."""

        @webhook_model(on_delete=ModelEvent("article.removed"))
        @attrs.frozen
        class Article:
            uuid: str

            class webhooks:
                on_create = ModelEvent("article.created")

        self.assertEqual(sorted(Article.webhooks.events), ["on_create", "on_delete"])  # type: ignore[attr-defined]

    def test_first_dispatch_wins(self) -> None:
        """An ``on_create`` event that already dispatches on change keeps doing so (Thorn)."""
        event = ModelEvent("article.changed").dispatches_on_change()

        @webhook_model(on_create=event)
        class Article:
            pass

        self.assertEqual(event.dispatches_on, UPDATE)
        self.assertEqual(Article.webhooks.dispatch_on_create(Article()), {})  # type: ignore[attr-defined]

    def test_custom_event_without_dispatch(self) -> None:
        """A custom ``on_*`` event without ``dispatches_on_*`` is never dispatched."""

        @webhook_model(on_flag=ModelEvent("article.flagged"))
        class Article:
            pass

        webhooks = Article.webhooks  # type: ignore[attr-defined]
        self.assertIsNone(webhooks["on_flag"].dispatches_on)
        for dispatched in (
            webhooks.dispatch_on_create(Article()),
            webhooks.dispatch_on_change(Article(), Article()),
            webhooks.dispatch_on_delete(Article()),
        ):
            self.assertEqual(dispatched, {})

    def test_bad_arguments(self) -> None:
        """The decorator refuses arguments it does not know, and a non-class webhooks."""
        self.assertRaises(TypeError, webhook_model, colour="red")
        self.assertRaises(TypeError, webhook_model, 1)
        self.assertRaises(TypeError, webhook_model, object, object)
        self.assertRaises(TypeError, webhook_model(on_create="article.created"), type("A", (), {}))

        class Article:
            webhooks = 3

        self.assertRaises(TypeError, webhook_model, Article)

    def test_instances_untouched(self) -> None:
        """Dispatching sets nothing on a frozen instance (nor needs to)."""
        Article = inner_class_dataclass()
        article = Article(uuid="a1")
        before = dataclasses.asdict(article)
        self.sent(Article.webhooks.dispatch_on_create(article)["on_create"])  # type: ignore[attr-defined]
        self.assertEqual(dataclasses.asdict(article), before)


class NameTests(ModelTestCase):
    """Name templates."""

    def test_template(self) -> None:
        """``user.{.username}`` is formatted with the instance (Thorn)."""
        event = self.event("user.{.username}")
        message = self.message(event.send(User(1, "alice")))
        self.assertEqual(message["event"], "user.alice")
        self.assertEqual(self.sent(event.send(User(2, "bob"))).event.name, "user.bob")
        self.assertEqual(event.name, "user.{.username}")

    def test_invalid_templates(self) -> None:
        """A malformed template, or one naming a keyword field, fails at once."""
        self.assertRaises(ValueError, ModelEvent, "user.{username}")
        self.assertRaises(ValueError, ModelEvent, "user.{.username")
        self.assertRaises(ValueError, ModelEvent, "user..{.username}")
        self.assertRaises(ValueError, ModelEvent, "user created")

    def test_formatted_name_invalid(self) -> None:
        """A formatted name that is not an event name is an error of the send."""
        event = self.event("user.{.username}")
        self.assertRaises(ValueError, event.send, User(1, "alice smith"))


class FilterTests(ModelTestCase):
    """Keyword filters, Q objects, callables and ``now_*`` transitions."""

    def test_keyword_filters(self) -> None:
        """All keyword filters must hold."""
        event = self.event("article.changed", state__eq="PUBLISHED", title__startswith="The")
        self.assertEqual(set(event.filter_fields), {"state__eq", "title__startswith"})
        self.assertFalse(event.use_transitions)
        ok = {"state": "PUBLISHED", "title": "The end"}
        self.sent(event.on_signal(Article(**ok)))
        self.not_sent(event.on_signal(Article(**{**ok, "state": "DRAFT"})))
        self.not_sent(event.on_signal(Article(**{**ok, "title": "A start"})))

    def test_filter_without_operator(self) -> None:
        """``state="PUBLISHED"`` is refused with the hint ``state__eq`` (Thorn's rule)."""
        with self.assertRaises(TypeError) as caught:
            ModelEvent("article.created", state="PUBLISHED")
        self.assertIn("state__eq", str(caught.exception))
        self.assertRaises(ValueError, ModelEvent, "article.created", state__equals="X")
        self.assertRaises(TypeError, ModelEvent, "article.created", "not a filter")

    def test_q_filters(self) -> None:
        """Positional Q objects combine with ``|``, ``&`` and ``~``, AND-ed with keywords."""
        event = self.event(
            "article.changed",
            (Q(state__eq="PUBLISHED") | Q(state__eq="PREVIEW")) & ~Q(title__startswith="The"),
            title__ne="",
        )
        self.sent(event.on_signal(Article(state="PREVIEW", title="A")))
        self.sent(event.on_signal(Article(state="PUBLISHED", title="A")))
        self.not_sent(event.on_signal(Article(state="PUBLISHED", title="The A")))
        self.not_sent(event.on_signal(Article(state="DRAFT", title="A")))
        self.not_sent(event.on_signal(Article(state="PREVIEW", title="")))

    def test_callable_filter(self) -> None:
        """Any callable ``(instance, previous)`` is a filter."""
        seen: list[tuple[Any, Any]] = []

        def grew(instance: Any, previous: Any) -> bool:
            seen.append((instance, previous))
            return previous is not None and instance.size > previous.size

        event = self.event("article.changed", grew)
        small, big = Article(size=1), Article(size=2)
        self.sent(event.on_signal(big, small))
        self.not_sent(event.on_signal(small, big))
        self.assertEqual(seen, [(big, small), (small, big)])

    def test_now_transition(self) -> None:
        """``now_eq`` holds when the value changed to the argument."""
        event = self.event("article.published", state__now_eq="PUBLISHED")
        self.assertTrue(event.use_transitions)
        pending, published = Article(state="PENDING"), Article(state="PUBLISHED")
        self.sent(event.on_signal(published, pending))
        self.not_sent(event.on_signal(published, published))
        self.not_sent(event.on_signal(pending, published))

    def test_now_transition_without_previous(self) -> None:
        """Without a previous version (on create) a ``now_eq`` holds when it holds now."""

        @webhook_model(on_create=self.event("article.published", state__now_eq="PUBLISHED"))
        @attrs.frozen
        class Post:
            state: str

        self.sent(Post.webhooks.dispatch_on_create(Post("PUBLISHED"))["on_create"])  # type: ignore[attr-defined]
        self.not_sent(Post.webhooks.dispatch_on_create(Post("DRAFT"))["on_create"])  # type: ignore[attr-defined]

    def test_send_ignores_filters(self) -> None:
        """``send`` sends at once, whatever the filters say (Thorn)."""
        event = self.event("article.changed", state__eq="PUBLISHED")
        self.sent(event.send(Article(state="DRAFT")))


class Article:
    """A plain object with the attributes given."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class MessageTests(ModelTestCase):
    """The envelope: ``ref``, ``sender`` and ``data``."""

    def test_model_reverser_template(self) -> None:
        """A template reverser formats attribute paths, by position and by keyword."""
        reverse = model_reverser("https://shop.example/{}/{slug}/", "category.name", slug="slug")
        article = Article(category=Article(name="books"), slug="dune")
        self.assertEqual(reverse(article), "https://shop.example/books/dune/")
        event = self.event("article.created", reverse=reverse)
        self.assertEqual(
            self.message(event.send(article))["ref"], "https://shop.example/books/dune/"
        )

    def test_model_reverser_callable(self) -> None:
        """A callable reverser is called with the attribute values."""
        reverse = model_reverser(lambda uuid: f"https://x.example/{uuid}", uuid="uuid")
        self.assertEqual(reverse(Article(uuid="u1"), app=self.hooks), "https://x.example/u1")
        self.assertRaises(TypeError, model_reverser, 3)

    def test_get_absolute_url(self) -> None:
        """Without a reverser, the instance's ``get_absolute_url()`` is the ref (Thorn)."""

        class Page:
            def get_absolute_url(self) -> str:
                return "https://x.example/page"

        self.assertEqual(
            self.message(self.event("article.created").send(Page()))["ref"],
            "https://x.example/page",
        )

    def test_sender_field(self) -> None:
        """The sender is found along ``sender_field``; a None link gives no sender."""
        event = self.event("article.created", sender_field="account.user")
        owned = Article(account=Account(User(7, "alice")))
        result = self.sent(event.send(owned))
        self.assertEqual(result.event.data["sender"], "7")  # type: ignore[index]
        self.assertEqual(result.event.sender, User(7, "alice"))
        self.assertIsNone(self.message(event.send(Article(account=Account(None))))["sender"])
        self.assertIsNone(self.message(event.send(Article(account=None)))["sender"])

    def test_sender_reaches_owner(self) -> None:
        """A subscriber with an owner receives only its own sender's events."""
        self.successResultOf(self.hooks.subscribe("article.created", URL + "/7", owner="7"))
        self.successResultOf(self.hooks.subscribe("article.created", URL + "/8", owner="8"))
        event = self.event("article.created", sender_field="account.user")
        result = self.sent(event.send(Article(account=Account(User(7, "alice")))))
        urls = sorted(d.subscriber.url for d in result.deliveries)
        self.assertEqual(urls, [URL, URL + "/7"])

    def test_sender_username(self) -> None:
        """A sender with ``get_username()`` (a Django user) is given by its username."""

        class DjangoUser:
            pk = 3

            def get_username(self) -> str:
                return "carol"

        event = self.event("article.created")
        self.assertEqual(
            self.message(event.send(Article(), sender=DjangoUser()))["sender"], "carol"
        )

    def test_default_payloads(self) -> None:
        """The data defaults to the attrs or dataclass fields, and ``{}`` otherwise."""

        @dataclasses.dataclass
        class Point:
            x: int
            y: int

        self.assertEqual(default_payload(User(1, "a")), {"id": 1, "username": "a"})
        self.assertEqual(default_payload(Point(1, 2)), {"x": 1, "y": 2})
        self.assertEqual(default_payload(Article(x=1)), {})
        self.assertEqual(
            self.message(self.event("article.created").send(Point(1, 2)))["data"], {"x": 1, "y": 2}
        )
        self.assertEqual(self.message(self.event("article.created").send(Article()))["data"], {})

    def test_payload_hooks(self) -> None:
        """``webhook_payload()`` on the model, then a ``payload=`` callable, win in turn."""

        class Post:
            def webhook_payload(self) -> dict[str, str]:
                return {"from": "model"}

        self.assertEqual(
            self.message(self.event("article.created").send(Post()))["data"], {"from": "model"}
        )
        event = self.event("article.created", payload=lambda post: {"from": "event"})
        self.assertEqual(self.message(event.send(Post()))["data"], {"from": "event"})
        self.assertEqual(self.message(event.send(Post(), data={"n": 1}))["data"], {"n": 1})

    def test_request_data(self) -> None:
        """``request_data`` is merged into the message, as Event's is into its payload."""
        event = self.event("article.created", request_data={"site": "shop"})
        self.assertEqual(self.message(event.send(Article()))["site"], "shop")


class HeaderTests(ModelTestCase):
    """Per-event headers reach the delivery's request."""

    def attempted_headers(self) -> dict[str, str]:
        """The request headers of the last attempt."""
        self.clock.advance(0)
        delivery, subscriber = self.sender.calls[-1]
        return delivery_headers(delivery, subscriber, int(self.clock.seconds()), "test")

    def test_inner_class_headers(self) -> None:
        """An inner class's ``headers`` method adds request headers."""

        @webhook_model
        @attrs.frozen
        class Post:
            token: str

            class webhooks:
                on_create = ModelEvent("article.created", app=self.hooks)

                def headers(self, post: Any) -> dict[str, str]:
                    return {"Authorization": f"Bearer {post.token}"}

        self.sent(Post.webhooks.dispatch_on_create(Post("t0k"))["on_create"])  # type: ignore[attr-defined]
        self.assertEqual(self.attempted_headers()["Authorization"], "Bearer t0k")

    def test_model_headers_over_subscriber(self) -> None:
        """``webhook_headers()`` replaces a subscriber header of the same name, any case."""
        self.successResultOf(
            self.hooks.subscribe(
                "user.created", URL + "/h", headers={"x-team": "a", "X-Keep": "1"}
            )
        )

        class Member:
            def webhook_headers(self) -> dict[str, str]:
                return {"X-Team": "b"}

        result = self.sent(self.event("user.created").send(Member()))
        self.clock.advance(0)
        calls = [s for d, s in self.sender.calls if d.id in result.delivery_ids]
        custom = next(s for s in calls if s.url == URL + "/h")
        self.assertEqual(dict(custom.headers), {"X-Keep": "1", "X-Team": "b"})

    def test_no_headers_after_delivery(self) -> None:
        """A send without headers leaves the subscriber as it is."""
        self.sent(self.event("article.created").send(Article()))
        self.assertNotIn("Authorization", self.attempted_headers())
        self.assertEqual(self.sender.calls[-1][1].headers, ())

    def test_send_options_headers(self) -> None:
        """SendOptions takes headers as a mapping and refuses the engine's own."""
        self.assertEqual(SendOptions(headers={"X-A": "1"}).headers, (("X-A", "1"),))
        self.assertRaises(ValueError, SendOptions, headers={"Hook-Event": "x"})
        event = self.event("article.created", headers=lambda a: {"webhook-id": "forged"})
        self.assertRaises(ValueError, event.send, Article())


class ErrorTests(ModelTestCase):
    """``propagate_errors``."""

    def test_swallowed(self) -> None:
        """By default an error while dispatching is logged and gives ``None``."""
        event = self.event("article.created", payload=lambda a: 1 / 0)
        self.not_sent(event.on_signal(Article()))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_propagated(self) -> None:
        """With ``propagate_errors=True`` the error reaches the caller."""
        event = self.event("article.created", payload=lambda a: 1 / 0, propagate_errors=True)
        self.assertRaises(ZeroDivisionError, event.on_signal, Article())

    def test_filter_error(self) -> None:
        """An error in a filter is an error of the dispatch too."""

        def broken(instance: Any, previous: Any) -> bool:
            raise KeyError("boom")

        self.not_sent(self.event("article.created", broken).on_signal(Article()))
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
        loud = self.event("article.created", broken, propagate_errors=True)
        self.assertRaises(KeyError, loud.on_signal, Article())

    def test_async_failure(self) -> None:
        """A failed Deferred (application stopped) is swallowed or kept as asked."""
        self.hooks.stopService()
        self.not_sent(self.event("article.created").on_signal(Article()))
        self.assertEqual(len(self.flushLoggedErrors(HooksNotRunning)), 1)
        loud = self.event("article.created", propagate_errors=True)
        self.failureResultOf(loud.on_signal(Article()), HooksNotRunning)

    def test_send_raises(self) -> None:
        """``send`` raises whatever ``propagate_errors`` says (Thorn)."""
        event = self.event("article.created", payload=lambda a: 1 / 0)
        self.assertRaises(ZeroDivisionError, event.send, Article())


class AppTests(ModelTestCase):
    """Which application a ModelEvent sends through."""

    def test_default_app(self) -> None:
        """Without ``app=`` the default application is used."""
        event = ModelEvent("article.created")
        set_default_app(self.hooks)
        self.addCleanup(set_default_app, None)
        self.sent(event.send(Article()))

    def test_blocking_facade(self) -> None:
        """With a blocking facade the result is returned, not a Deferred."""
        hooks = self.hooks

        class Facade:
            """The shape of BlockingHooks: ``hooks`` and a blocking ``send``."""

            def __init__(self) -> None:
                self.hooks = hooks
                self.calls: list[tuple[str, Any, Any, SendOptions]] = []

            def send(
                self, name: str, data: Any, sender: Any = None, *, options: SendOptions
            ) -> SendResult:
                self.calls.append((name, data, sender, options))
                return SendResult(WebhookEvent(name, data, sender, "id", 0.0))

        facade = Facade()
        event = ModelEvent("article.created", app=facade, state__eq="X")  # type: ignore[arg-type]
        self.assertIs(event.app, hooks)
        result = event.on_signal(Article(state="X"))
        self.assertIsInstance(result, SendResult)
        self.assertIsNone(event.on_signal(Article(state="Y")))
        self.assertEqual(facade.calls[0][0], "article.created")
        self.assertEqual(json.loads(json.dumps(facade.calls[0][1]))["event"], "article.created")

    def test_event_arguments(self) -> None:
        """Event's arguments are accepted and reach the send options."""
        event = self.event("article.created", timeout=2.0, retry=False)
        result = self.sent(event.send(Article()))
        self.assertEqual(result.event.options.timeout, 2.0)
        self.assertEqual(repr(event), "<ModelEvent 'article.created'>")
        self.assertFalse(event.signal_honors_transaction)
        self.assertTrue(
            ModelEvent("a.b", signal_honors_transaction=True).signal_honors_transaction
        )


class _Recording:
    """A facade standing for a blocking one: ``send`` returns at once, recording its
    arguments, with the application's settings."""

    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks
        self.settings = hooks.settings
        self.sends: list[tuple[str, object, object, SendOptions]] = []

    def send(self, name: str, data: object, sender: object = None, *, options: SendOptions) -> str:
        self.sends.append((name, data, sender, options))
        return "sent"


class BuildAndSendTests(ModelTestCase):
    """The model layer builds the message; the caller's facade sends it."""

    def test_message_is_built_without_sending(self) -> None:
        """message() gives the name, Thorn's envelope, the sender and the headers, and
        sends nothing."""
        user = User(7, "ann")
        event = self.event(
            "user.{.account.user.username}",
            sender_field="account.user",
            headers=lambda i: {"X-A": "1"},
        )
        article = attrs.make_class("Article", {"account": attrs.field()})(Account(user))
        message = event.message(article, data={"k": 1}, ref="https://example.com/a/1")
        self.assertEqual(message.name, "user.ann")
        self.assertEqual(
            message.payload,
            {
                "event": message.name,
                "ref": "https://example.com/a/1",
                "sender": "7",
                "data": {"k": 1},
            },
        )
        self.assertIs(message.sender, user)
        self.assertEqual(message.headers, {"X-A": "1"})
        self.assertEqual((self.sender.calls, self.hooks.unfinished), ([], 0))

    def test_send_message_through_each_facade(self) -> None:
        """send_message sends one message the same way through an application (a
        Deferred) and through a blocking facade (its result): same name, payload, sender,
        and the event's options with the message's headers."""
        event = self.event("article.created", retry=False, headers=lambda i: {"X-B": "2"})
        message = event.message(User(1, "bob"), data={"a": 1})
        sent = self.sent(event.send_message(self.hooks, message))
        self.assertEqual(sent.event.data, message.payload)
        facade = _Recording(self.hooks)
        self.assertEqual(event.send_message(facade, message), "sent")  # type: ignore[arg-type]
        ((name, data, sender, options),) = facade.sends
        self.assertEqual((name, data, sender), (message.name, message.payload, None))
        self.assertEqual(options.headers, (("X-B", "2"),))
        self.assertEqual(options.retry, sent.event.options.retry)
        self.assertEqual(options.retry.max_attempts, 1)  # type: ignore[union-attr]

    def test_event_send_is_message_then_send_message(self) -> None:
        """ModelEvent.send is message() sent through the event's facade: the envelope a
        facade receives is the one message() builds."""
        facade = _Recording(self.hooks)
        event = ModelEvent("article.created", app=facade)  # type: ignore[arg-type]
        article = User(3, "cy")
        self.assertEqual(event.send(article), "sent")
        ((name, data, _, _),) = facade.sends
        expected = event.message(article)
        self.assertEqual((name, data), (expected.name, expected.payload))
