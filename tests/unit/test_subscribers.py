"""
Tests for :mod:`twisted_hooks.webhooks.subscribers`: the :class:`Subscriber` value and its
validation, Thorn's names and owner rule, static configuration in ``THORN_SUBSCRIBERS``
shapes, and :class:`MemorySubscriberStore`.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_hooks.interfaces import ISubscriberStore
from twisted_hooks.webhooks.encoding import FORM, JSON
from twisted_hooks.webhooks.patterns import InvalidPattern
from twisted_hooks.webhooks.signing import standard_key
from twisted_hooks.webhooks.subscribers import (
    DIGESTS,
    MAX_ENDPOINT_CONCURRENCY,
    MAX_RATE_LIMIT,
    MIN_RATE_LIMIT,
    RESERVED_HEADERS,
    STATIC_NAMESPACE,
    DuplicateSubscriber,
    MemorySubscriberStore,
    Subscriber,
    SubscriberNotFound,
    check_limits,
    limit_range,
    parse_subscribers,
    resolve_subscribers,
    sender_ident,
    static_id,
)

URL = "https://hooks.example.com/receive"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DEFAULT_SECRET = "static-default-secret"
UTC = datetime.timezone.utc
CREATED = datetime.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
UPDATED = datetime.datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)


def make(**kwargs: Any) -> Subscriber:
    kwargs.setdefault("event", "order.created")
    kwargs.setdefault("url", URL)
    kwargs.setdefault("secret", SECRET)
    return Subscriber(**kwargs)


class SubscriberValidationTests(SynchronousTestCase):
    def assertRefused(self, message: str, **kwargs: Any) -> None:
        with self.assertRaises(ValueError, msg=kwargs) as raised:
            make(**kwargs)
        self.assertIn(message, str(raised.exception))

    def test_defaults(self) -> None:
        """A subscriber has a UUID id, a whsec_ secret, sha256, JSON, no owner, is active,
        has no custom headers nor previous secrets, and aware UTC times."""
        subscriber = Subscriber(event="order.*", url=URL)
        self.assertEqual(str(uuid.UUID(subscriber.id)), subscriber.id)
        self.assertTrue(subscriber.secret.startswith("whsec_"))
        self.assertEqual(len(standard_key(subscriber.secret)), 32)
        self.assertEqual(subscriber.digest, "sha256")
        self.assertEqual(subscriber.content_type, JSON)
        self.assertIsNone(subscriber.owner)
        self.assertTrue(subscriber.active)
        self.assertEqual((subscriber.headers, subscriber.previous_secrets), ((), ()))
        self.assertEqual(subscriber.created_at.utcoffset(), datetime.timedelta(0))
        self.assertEqual(subscriber.updated_at.utcoffset(), datetime.timedelta(0))

    def test_generated_values_differ(self) -> None:
        """Each new subscriber gets its own id and secret."""
        one, two = Subscriber(event="a", url=URL), Subscriber(event="a", url=URL)
        self.assertNotEqual(one.id, two.id)
        self.assertNotEqual(one.secret, two.secret)

    def test_bad_id(self) -> None:
        """An id that is not a UUID string is refused."""
        for value in ("42", "", "not-a-uuid", 42, None):
            self.assertRefused("subscriber id must be a UUID string", id=value)

    def test_bad_url(self) -> None:
        """URLs without http(s), without a host, with white space or control characters
        or a bad port are refused with a message naming the URL."""
        cases = [
            ("hooks.example.com/receive", "must use http or https"),
            ("ftp://hooks.example.com/", "must use http or https"),
            ("javascript:alert(1)", "must use http or https"),
            ("http:///receive", "has no host"),
            ("https://", "has no host"),
            ("http://hooks.example.com/a b", "contains white space"),
            ("http://hooks.example.com/a\nb", "contains white space"),
            ("http://hooks.example.com/\tb", "contains white space"),
            ("http://hooks.example.com/a\x00b", "control character"),
            ("http://hooks.example.com/a\x7fb", "control character"),
            ("http://hooks.example.com:99999/", "is not a valid URL"),
            ("http://hooks.example.com:port/", "is not a valid URL"),
            ("http://[::1/", "is not a valid URL"),
            ("", "must be a non-empty string"),
        ]
        for url, message in cases:
            self.assertRefused(message, url=url)
        self.assertRefused("must be a non-empty string", url=b"http://x.example.com/")

    def test_good_urls(self) -> None:
        """http and https URLs with ports, IPv6 hosts, queries and userinfo are kept."""
        for url in (
            "http://hooks.example.com",
            "https://hooks.example.com:8443/a/b?token=x&y=1",
            "http://[2001:db8::1]:8080/hook",
            "https://user:pass@hooks.example.com/",
        ):
            self.assertEqual(make(url=url).url, url)

    def test_bad_pattern(self) -> None:
        """An invalid event pattern is refused with the pattern module's message."""
        for pattern in ("", "order..created", "order*", "order created", "**"):
            with self.assertRaises(InvalidPattern):
                make(event=pattern)

    def test_patterns(self) -> None:
        """Exact names and every wildcard shape are accepted."""
        for pattern in ("order.created", "*", "order.*", "*.created", "order.*.paid"):
            self.assertEqual(make(event=pattern).event, pattern)

    def test_digest(self) -> None:
        """Only sha1, sha256 and sha512 are accepted as the Hook-HMAC digest."""
        self.assertEqual(DIGESTS, {"sha1", "sha256", "sha512"})
        for digest in sorted(DIGESTS):
            self.assertEqual(make(digest=digest).digest, digest)
        for digest in ("md5", "sha384", "SHA256", ""):
            self.assertRefused("hmac digest must be one of", digest=digest)

    def test_content_type(self) -> None:
        """Only the JSON and form content types are accepted."""
        self.assertEqual(make(content_type=FORM).content_type, FORM)
        for content_type in ("text/plain", "application/json; charset=utf-8", ""):
            self.assertRefused("content type must be one of", content_type=content_type)

    def test_secret(self) -> None:
        """An empty or non-string secret is refused; any other string is kept."""
        self.assertRefused("subscriber secret must be a non-empty string", secret="")
        self.assertRefused("subscriber secret must be a non-empty string", secret=None)
        self.assertEqual(make(secret="plain words").secret, "plain words")

    def test_previous_secrets(self) -> None:
        """Previous secrets are kept as a tuple; empty or non-string ones are refused."""
        self.assertEqual(make(previous_secrets=["old"]).previous_secrets, ("old",))
        self.assertRefused("previous secrets must be non-empty strings", previous_secrets=[""])
        self.assertRefused("previous secrets must be non-empty strings", previous_secrets=[1])

    def test_custom_headers(self) -> None:
        """Custom headers are kept as (name, value) pairs, from a mapping or pairs."""
        self.assertEqual(
            make(headers={"X-Tenant": "acme", "Authorization": "Bearer x"}).headers,
            (("X-Tenant", "acme"), ("Authorization", "Bearer x")),
        )
        self.assertEqual(make(headers=[("X-A", "1")]).headers, (("X-A", "1"),))

    def test_reserved_headers_refused(self) -> None:
        """The engine's own headers cannot be set, in any letter case."""
        for name in (
            "Hook-HMAC",
            "hook-event",
            "Hook-Delivery",
            "Hook-Subscription",
            "Content-Type",
            "content-length",
            "User-Agent",
            "Webhook-Signature",
            "webhook-id",
            "webhook-timestamp",
            "Host",
            "Transfer-Encoding",
            "Connection",
        ):
            self.assertIn(name.lower(), RESERVED_HEADERS)
            self.assertRefused("is set by twisted_hooks itself", headers={name: "x"})

    def test_header_values_without_line_breaks(self) -> None:
        """Header values with CR, LF or NUL are refused (no header injection)."""
        for value in ("a\r\nX-Injected: 1", "a\nb", "a\rb", "a\x00b"):
            self.assertRefused("has a line break or NUL", headers={"X-A": value})

    def test_bad_header_names(self) -> None:
        """Header names must be letters, digits, '-' or '_'; names and values strings."""
        for name in ("", "X A", "X:A", "X\nA", "Ünï"):
            self.assertRefused("is not a valid header name", headers={name: "x"})
        self.assertRefused("must map a string to a string", headers={"X-A": 1})
        self.assertRefused("must map a string to a string", headers={1: "x"})

    def test_frozen(self) -> None:
        """A subscriber is immutable; attrs.evolve makes changed copies, validated."""
        subscriber = make()
        with self.assertRaises(attrs.exceptions.FrozenInstanceError):
            subscriber.url = "https://elsewhere.example.com/"  # type: ignore[misc]
        with self.assertRaises(ValueError):
            attrs.evolve(subscriber, url="ftp://x.example.com/")


class ThornNamesTests(SynchronousTestCase):
    def test_aliases(self) -> None:
        """hmac_secret, hmac_digest, user and uuid read secret, digest, owner and id."""
        subscriber = make(digest="sha512", owner="alice")
        self.assertEqual(subscriber.hmac_secret, SECRET)
        self.assertEqual(subscriber.hmac_digest, "sha512")
        self.assertEqual(subscriber.user, "alice")
        self.assertEqual(subscriber.uuid, subscriber.id)

    def test_signing_secrets(self) -> None:
        """The signing secrets are the current one, then the previous ones."""
        subscriber = make(previous_secrets=["old1", "old2"])
        self.assertEqual(subscriber.signing_secrets, (SECRET, "old1", "old2"))
        self.assertEqual(make().signing_secrets, (SECRET,))


class SerializationTests(SynchronousTestCase):
    def full(self) -> Subscriber:
        return make(
            id="9b2d3c5e-0f1a-4b6c-8d7e-1f2a3b4c5d6e",
            event="order.*",
            digest="sha1",
            content_type=FORM,
            owner="alice",
            active=False,
            headers={"X-Tenant": "acme"},
            previous_secrets=["old"],
            created_at=CREATED,
            updated_at=UPDATED,
        )

    def test_as_dict(self) -> None:
        """as_dict uses Thorn's field names, plain JSON types, times in ISO with Z."""
        self.assertEqual(
            self.full().as_dict(),
            {
                "id": "9b2d3c5e-0f1a-4b6c-8d7e-1f2a3b4c5d6e",
                "event": "order.*",
                "url": URL,
                "content_type": FORM,
                "hmac_secret": SECRET,
                "hmac_digest": "sha1",
                "user": "alice",
                "active": False,
                "headers": {"X-Tenant": "acme"},
                "previous_secrets": ["old"],
                "max_concurrency": None,
                "rate_limit": None,
                "created_at": "2024-01-02T03:04:05.678901Z",
                "updated_at": "2024-02-03T04:05:06Z",
            },
        )

    def test_times_in_utc(self) -> None:
        """Times in another zone are written in UTC, with Z."""
        paris = datetime.timezone(datetime.timedelta(hours=1))
        moment = datetime.datetime(2024, 1, 2, 4, 4, 5, tzinfo=paris)
        self.assertEqual(make(created_at=moment).as_dict()["created_at"], "2024-01-02T03:04:05Z")

    def test_round_trip(self) -> None:
        """from_dict(as_dict()) gives an equal subscriber."""
        for subscriber in (self.full(), make(), make(owner=None, headers=[("X-A", "1")])):
            self.assertEqual(Subscriber.from_dict(subscriber.as_dict()), subscriber)

    def test_dict_arguments(self) -> None:
        """from_dict accepts dict()'s arguments: a mapping and/or keywords."""
        subscriber = Subscriber.from_dict({"event": "a"}, url=URL, secret=SECRET)
        self.assertEqual((subscriber.event, subscriber.url), ("a", URL))

    def test_thorn_names(self) -> None:
        """Thorn's hmac_secret, hmac_digest, user and uuid are read."""
        subscriber = Subscriber.from_dict(
            event="a",
            url=URL,
            hmac_secret="s3cret",
            hmac_digest="sha512",
            user="bob",
            uuid="9b2d3c5e-0f1a-4b6c-8d7e-1f2a3b4c5d6e",
        )
        self.assertEqual(subscriber.secret, "s3cret")
        self.assertEqual(subscriber.digest, "sha512")
        self.assertEqual(subscriber.owner, "bob")
        self.assertEqual(subscriber.id, "9b2d3c5e-0f1a-4b6c-8d7e-1f2a3b4c5d6e")

    def test_none_means_generated(self) -> None:
        """A None id or secret is generated; a None owner is no owner; a non-string owner
        becomes a string."""
        subscriber = Subscriber.from_dict(event="a", url=URL, id=None, secret=None, user=None)
        uuid.UUID(subscriber.id)
        self.assertTrue(subscriber.secret.startswith("whsec_"))
        self.assertIsNone(subscriber.owner)
        self.assertEqual(Subscriber.from_dict(event="a", url=URL, user=42).owner, "42")

    def test_naive_times_are_utc(self) -> None:
        """A time without zone or Z is read as UTC."""
        subscriber = Subscriber.from_dict(event="a", url=URL, created_at="2024-01-02T03:04:05")
        self.assertEqual(subscriber.created_at, datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))

    def test_errors(self) -> None:
        """Unknown fields, missing url or event, a field given twice under both names and
        an unreadable time are refused with a message naming the field."""
        cases: list[tuple[dict[str, Any], str]] = [
            (
                {"event": "a", "url": URL, "colour": "red"},
                "unknown subscriber field(s) ['colour']",
            ),
            ({"event": "a"}, "subscriber field 'url' is required"),
            ({"url": URL}, "subscriber field 'event' is required"),
            (
                {"event": "a", "url": URL, "secret": "x", "hmac_secret": "y"},
                "subscriber field 'secret' is given twice (as 'hmac_secret')",
            ),
            (
                {"event": "a", "url": URL, "user": "x", "owner": "y"},
                "subscriber field 'owner' is given twice",
            ),
            (
                {"event": "a", "url": URL, "id": str(uuid.uuid4()), "uuid": str(uuid.uuid4())},
                "subscriber field 'id' is given twice",
            ),
            (
                {"event": "a", "url": URL, "created_at": "yesterday"},
                "subscriber field 'created_at' is not an ISO 8601 time: 'yesterday'",
            ),
            ({"event": "a", "url": "ftp://x.example.com/"}, "must use http or https"),
        ]
        for data, message in cases:
            with self.assertRaises(ValueError, msg=data) as raised:
                Subscriber.from_dict(data)
            self.assertIn(message, str(raised.exception))


class OwnerRuleTests(SynchronousTestCase):
    def test_ownerless_receives_from_everyone(self) -> None:
        """A subscriber without an owner receives every sender's events."""
        subscriber = make()
        for owner in (None, "alice", "bob"):
            self.assertTrue(subscriber.receives(owner))

    def test_owned_receives_only_its_owner(self) -> None:
        """A subscriber with an owner receives only that owner's events, not anonymous
        ones."""
        subscriber = make(owner="alice")
        self.assertTrue(subscriber.receives("alice"))
        self.assertFalse(subscriber.receives("bob"))
        self.assertFalse(subscriber.receives(None))

    def test_inactive_receives_nothing(self) -> None:
        """An inactive subscriber receives nothing."""
        self.assertFalse(make(active=False).receives(None))
        self.assertFalse(make(owner="alice", active=False).receives("alice"))

    def test_owner_given_as_an_object(self) -> None:
        """An owner given as a model instance or a number is compared as the sender is:
        by its pk or id, as a string."""

        class User:
            pk = 7

        self.assertEqual(make(owner=User()).owner, "7")
        self.assertEqual(make(owner=7).owner, "7")
        self.assertTrue(make(owner=7).receives(sender_ident(User())))


class SenderIdentTests(SynchronousTestCase):
    def test_none(self) -> None:
        """No sender has no identity."""
        self.assertIsNone(sender_ident(None))

    def test_pk_first(self) -> None:
        """An object with a pk (a Django model) is its pk, as a string, before its id."""

        class Model:
            pk = 12
            id = 99

        self.assertEqual(sender_ident(Model()), "12")

    def test_id(self) -> None:
        """An object with an id but no pk is its id, as a string."""

        class Account:
            id = uuid.UUID(int=5)

        self.assertEqual(sender_ident(Account()), str(uuid.UUID(int=5)))

    def test_none_or_callable_attributes_skipped(self) -> None:
        """A pk of None (unsaved model) or a callable id is skipped."""

        class Unsaved:
            pk = None
            id = 3

            def __str__(self) -> str:
                return "unsaved"

        class Method:
            def id(self) -> int:
                return 1

            def __str__(self) -> str:
                return "method"

        self.assertEqual(sender_ident(Unsaved()), "3")
        self.assertEqual(sender_ident(Method()), "method")

    def test_plain_values(self) -> None:
        """Plain values are their str()."""
        self.assertEqual(sender_ident("alice"), "alice")
        self.assertEqual(sender_ident(42), "42")
        self.assertEqual(sender_ident(0), "0")
        self.assertEqual(sender_ident(uuid.UUID(int=1)), str(uuid.UUID(int=1)))


class StaticIdTests(SynchronousTestCase):
    def test_stable(self) -> None:
        """The same event, URL and content type always give the same UUID 5 id."""
        first = static_id("order.created", URL)
        self.assertEqual(first, static_id("order.created", URL, JSON))
        self.assertEqual(first, str(uuid.uuid5(STATIC_NAMESPACE, f"order.created\n{URL}\n{JSON}")))
        self.assertEqual(uuid.UUID(first).version, 5)

    def test_distinct(self) -> None:
        """A different event, URL or content type gives a different id."""
        ids = {
            static_id("order.created", URL),
            static_id("order.paid", URL),
            static_id("order.created", URL + "2"),
            static_id("order.created", URL, FORM),
        }
        self.assertEqual(len(ids), 4)


class ParseSubscribersTests(SynchronousTestCase):
    def parse(self, config: dict[str, Any]) -> tuple[tuple[Subscriber, ...], tuple[Any, ...]]:
        return parse_subscribers(config, DEFAULT_SECRET)

    def test_url(self) -> None:
        """A URL gives one subscriber with a stable id and the default secret."""
        (subscriber,), callables = self.parse({"order.created": URL})
        self.assertEqual(callables, ())
        self.assertEqual((subscriber.event, subscriber.url), ("order.created", URL))
        self.assertEqual(subscriber.id, static_id("order.created", URL))
        self.assertEqual(subscriber.secret, DEFAULT_SECRET)
        self.assertIsNone(subscriber.owner)

    def test_list_of_urls(self) -> None:
        """A list of URLs gives one subscriber each, in order."""
        subscribers, _ = self.parse({"order.*": [URL, "https://b.example.com/"]})
        self.assertEqual([s.url for s in subscribers], [URL, "https://b.example.com/"])
        self.assertEqual(len({s.id for s in subscribers}), 2)

    def test_dict(self) -> None:
        """A dict gives a subscriber with its fields (Thorn's names accepted); the event
        is the key, the id stable over content type too."""
        (subscriber,), _ = self.parse(
            {
                "order.created": {
                    "url": URL,
                    "content_type": FORM,
                    "hmac_secret": "own-secret",
                    "hmac_digest": "sha1",
                }
            }
        )
        self.assertEqual(subscriber.event, "order.created")
        self.assertEqual(subscriber.content_type, FORM)
        self.assertEqual(subscriber.secret, "own-secret")
        self.assertEqual(subscriber.digest, "sha1")
        self.assertEqual(subscriber.id, static_id("order.created", URL, FORM))

    def test_dict_with_id(self) -> None:
        """A dict's own id (or Thorn's uuid) is kept."""
        given = "9b2d3c5e-0f1a-4b6c-8d7e-1f2a3b4c5d6e"
        subscribers, _ = self.parse(
            {"a": [{"url": URL, "id": given}, {"url": URL, "uuid": given}]}
        )
        self.assertEqual([s.id for s in subscribers], [given, given])

    def test_dict_with_empty_id_or_secret(self) -> None:
        """A dict whose id/uuid or secret/hmac_secret is None or empty gets the stable id
        and the default secret, as if it were absent."""
        subscribers, _ = self.parse(
            {
                "a": [
                    {"url": URL, "hmac_secret": None, "uuid": None},
                    {"url": URL, "secret": "", "id": None},
                    {"url": URL, "hmac_secret": ""},
                ]
            }
        )
        for subscriber in subscribers:
            self.assertEqual(subscriber.secret, DEFAULT_SECRET)
            self.assertEqual(subscriber.id, static_id("a", URL))

    def test_list_of_dicts(self) -> None:
        """A list of dicts gives a subscriber each."""
        subscribers, _ = self.parse(
            {"a.*": [{"url": URL}, {"url": "https://b.example.com/", "user": "alice"}]}
        )
        self.assertEqual([s.owner for s in subscribers], [None, "alice"])
        self.assertEqual({s.event for s in subscribers}, {"a.*"})

    def test_subscriber_object(self) -> None:
        """A Subscriber is taken as it is."""
        given = make()
        subscribers, _ = self.parse({"order.created": given})
        self.assertEqual(subscribers, (given,))
        subscribers, _ = self.parse({"order.created": [given, URL]})
        self.assertIs(subscribers[0], given)

    def test_callable(self) -> None:
        """A callable, alone or in a list, is returned with its pattern, not called."""
        calls: list[object] = []

        def produce(*args: object) -> list[str]:
            calls.append(args)
            return [URL]

        subscribers, callables = self.parse({"order.*": produce, "user.*": [URL, produce]})
        self.assertEqual(callables, (("order.*", produce), ("user.*", produce)))
        self.assertEqual([s.event for s in subscribers], ["user.*"])
        self.assertEqual(calls, [])

    def test_stable_ids(self) -> None:
        """Parsing the same configuration twice gives the same ids."""
        config = {"a": [URL, {"url": "https://b.example.com/"}]}
        first, _ = self.parse(config)
        again, _ = self.parse(config)
        self.assertEqual([s.id for s in first], [s.id for s in again])

    def test_missing_url(self) -> None:
        """A dict without url is refused, naming the event and the entry."""
        with self.assertRaises(ValueError) as raised:
            self.parse({"order.created": {"hmac_secret": "x"}})
        message = str(raised.exception)
        self.assertIn("static subscriber for 'order.created' has no 'url'", message)
        self.assertIn("hmac_secret", message)

    def test_bad_item(self) -> None:
        """An entry of another type is refused, naming the event, the type and the value."""
        for item in (42, None, b"https://x.example.com/"):
            with self.assertRaises(ValueError) as raised:
                self.parse({"order.created": [item]})
            message = str(raised.exception)
            self.assertIn("static subscriber for 'order.created' must be a URL", message)
            self.assertIn(type(item).__name__, message)

    def test_limits_out_of_range(self) -> None:
        """A dict whose max_concurrency or rate_limit is outside its range is refused,
        naming the field and the range; the ends of the ranges are accepted."""
        for field, value in (
            ("rate_limit", 1e-300),
            ("rate_limit", MAX_RATE_LIMIT * 2),
            ("max_concurrency", MAX_ENDPOINT_CONCURRENCY + 1),
        ):
            with self.assertRaises(ValueError) as raised:
                self.parse({"order.created": {"url": URL, field: value}})
            self.assertIn(f"subscriber field {field!r} must be from", str(raised.exception))
        (low,), _ = self.parse({"a": {"url": URL, "rate_limit": MIN_RATE_LIMIT}})
        (high,), _ = self.parse({"a": {"url": URL, "max_concurrency": MAX_ENDPOINT_CONCURRENCY}})
        self.assertEqual((low.rate_limit, high.max_concurrency), (0.001, 1_000_000))
        self.assertEqual(limit_range("rate_limit"), (MIN_RATE_LIMIT, MAX_RATE_LIMIT))
        self.assertEqual(limit_range("max_concurrency"), (1, MAX_ENDPOINT_CONCURRENCY))
        self.assertRaises(KeyError, limit_range, "timeout")

    def test_stored_limits_out_of_range_are_read(self) -> None:
        """The class itself takes any positive limit, so a subscriber stored before the
        ranges existed is still read; check_limits refuses it."""
        old = Subscriber.from_dict({"event": "a", "url": URL, "rate_limit": 1e-300})
        self.assertEqual(old.rate_limit, 1e-300)
        self.assertRaises(ValueError, check_limits, old)

    def test_bad_pattern_or_url(self) -> None:
        """An invalid event pattern or URL in the configuration is refused."""
        self.assertRaises(InvalidPattern, self.parse, {"order..created": URL})
        self.assertRaises(ValueError, self.parse, {"order.created": "not a url"})

    def test_empty(self) -> None:
        """An empty configuration, or an empty list, gives nothing."""
        self.assertEqual(self.parse({}), ((), ()))
        self.assertEqual(self.parse({"a": []}), ((), ()))


class ResolveSubscribersTests(SynchronousTestCase):
    def test_shapes(self) -> None:
        """None gives nothing; a URL, dict or Subscriber gives one; an iterable gives one
        per item; ids are stable and the default secret applies."""
        given = make()
        self.assertEqual(resolve_subscribers("a", None, DEFAULT_SECRET), [])
        [one] = resolve_subscribers("a", URL, DEFAULT_SECRET)
        self.assertEqual((one.id, one.secret), (static_id("a", URL), DEFAULT_SECRET))
        [two] = resolve_subscribers("a", {"url": URL, "user": "u"}, DEFAULT_SECRET)
        self.assertEqual((two.owner, two.event), ("u", "a"))
        self.assertEqual(resolve_subscribers("a", given, DEFAULT_SECRET), [given])
        many = resolve_subscribers("a", (u for u in [URL, given]), DEFAULT_SECRET)
        self.assertEqual([s.url for s in many], [URL, given.url])

    def test_bad(self) -> None:
        """Something that is not a URL, dict, Subscriber or iterable of them is refused."""
        with self.assertRaises(ValueError) as raised:
            resolve_subscribers("a", 42, DEFAULT_SECRET)
        self.assertIn(
            "subscribers for 'a' must be URLs, dicts or Subscribers", str(raised.exception)
        )
        self.assertRaises(ValueError, resolve_subscribers, "a", [42], DEFAULT_SECRET)


class MemorySubscriberStoreTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = MemorySubscriberStore()

    def add(self, **kwargs: Any) -> Subscriber:
        return self.successResultOf(self.store.add(make(**kwargs)))

    def match(self, event: str, owner: str | None = None) -> set[str]:
        return {s.id for s in self.successResultOf(self.store.match(event, owner))}

    def test_interface(self) -> None:
        """MemorySubscriberStore provides ISubscriberStore."""
        self.assertTrue(verifyObject(ISubscriberStore, self.store))

    def test_add_and_get(self) -> None:
        """An added subscriber is got back by id."""
        subscriber = self.add()
        self.assertIs(self.successResultOf(self.store.get(subscriber.id)), subscriber)

    def test_initial_subscribers(self) -> None:
        """Subscribers given at construction are stored and matched."""
        subscriber = make()
        store = MemorySubscriberStore([subscriber])
        self.assertEqual(self.successResultOf(store.match("order.created", None)), [subscriber])

    def test_duplicate(self) -> None:
        """Adding an id already stored fails with DuplicateSubscriber naming it, and the
        stored subscriber is unchanged."""
        subscriber = self.add()
        other = attrs.evolve(subscriber, url="https://other.example.com/")
        failure = self.failureResultOf(self.store.add(other), DuplicateSubscriber)
        self.assertIn(subscriber.id, str(failure.value))
        self.assertIs(self.successResultOf(self.store.get(subscriber.id)), subscriber)
        self.assertRaises(DuplicateSubscriber, MemorySubscriberStore, [subscriber, subscriber])

    def test_missing(self) -> None:
        """get, update, remove and deactivate of an unknown id fail with
        SubscriberNotFound, a KeyError whose message names the id."""
        missing = make()
        for d in (
            self.store.get(missing.id),
            self.store.update(missing),
            self.store.remove(missing.id),
            self.store.deactivate(missing.id),
        ):
            failure = self.failureResultOf(d, SubscriberNotFound)
            self.assertIsInstance(failure.value, KeyError)
            self.assertEqual(str(failure.value), f"no subscriber with id {missing.id!r}")

    def test_update(self) -> None:
        """update replaces the stored value, keeps created_at and sets updated_at to now."""
        subscriber = self.add(created_at=CREATED, updated_at=UPDATED)
        before = datetime.datetime.now(UTC)
        changed = attrs.evolve(
            subscriber, url="https://new.example.com/", created_at=UPDATED, updated_at=CREATED
        )
        stored = self.successResultOf(self.store.update(changed))
        self.assertEqual(stored.url, "https://new.example.com/")
        self.assertEqual(stored.created_at, CREATED)
        self.assertGreaterEqual(stored.updated_at, before)
        self.assertEqual(self.successResultOf(self.store.get(subscriber.id)), stored)

    def test_update_reindexes(self) -> None:
        """After an update, matching follows the new pattern and owner only."""
        subscriber = self.add(event="order.created")
        self.successResultOf(
            self.store.update(attrs.evolve(subscriber, event="user.*", owner="alice"))
        )
        self.assertEqual(self.match("order.created"), set())
        self.assertEqual(self.match("user.created", "bob"), set())
        self.assertEqual(self.match("user.created", "alice"), {subscriber.id})

    def test_remove(self) -> None:
        """A removed subscriber is gone: not got, listed nor matched."""
        subscriber = self.add(owner="alice")
        self.assertIsNone(self.successResultOf(self.store.remove(subscriber.id)))
        self.failureResultOf(self.store.get(subscriber.id), SubscriberNotFound)
        self.assertEqual(self.successResultOf(self.store.list()), [])
        self.assertEqual(self.match("order.created", "alice"), set())

    def test_deactivate(self) -> None:
        """A deactivated subscriber is kept but no longer matched; deactivating twice
        changes nothing."""
        subscriber = self.add(updated_at=UPDATED)
        inactive = self.successResultOf(self.store.deactivate(subscriber.id))
        self.assertFalse(inactive.active)
        self.assertGreater(inactive.updated_at, UPDATED)
        self.assertEqual(self.match("order.created"), set())
        self.assertEqual(self.successResultOf(self.store.list()), [inactive])
        self.assertIs(self.successResultOf(self.store.deactivate(subscriber.id)), inactive)

    def test_reactivate(self) -> None:
        """Updating an inactive subscriber to active makes it match again."""
        subscriber = self.add(active=False)
        self.assertEqual(self.match("order.created"), set())
        self.successResultOf(self.store.update(attrs.evolve(subscriber, active=True)))
        self.assertEqual(self.match("order.created"), {subscriber.id})

    def test_list(self) -> None:
        """list gives every subscriber, or an owner's only."""
        a = self.add(owner="alice")
        b = self.add(owner="bob")
        shared = self.add()
        self.assertEqual(
            {s.id for s in self.successResultOf(self.store.list())}, {a.id, b.id, shared.id}
        )
        self.assertEqual(self.successResultOf(self.store.list("alice")), [a])
        self.assertEqual(self.successResultOf(self.store.list("carol")), [])

    def test_match_owner_rule(self) -> None:
        """Owned subscribers receive only their owner's events; ownerless ones receive
        everyone's, anonymous events included."""
        alice = self.add(owner="alice")
        bob = self.add(owner="bob")
        shared = self.add()
        self.assertEqual(self.match("order.created", "alice"), {alice.id, shared.id})
        self.assertEqual(self.match("order.created", "bob"), {bob.id, shared.id})
        self.assertEqual(self.match("order.created", "carol"), {shared.id})
        self.assertEqual(self.match("order.created", None), {shared.id})

    def test_match_patterns(self) -> None:
        """Matching follows the patterns: exact, '*', 'topic.*', '*.rest', inner '*'."""
        exact = self.add(event="order.created")
        everything = self.add(event="*")
        topic = self.add(event="order.*")
        rest = self.add(event="*.created")
        inner = self.add(event="order.*.paid")
        self.assertEqual(self.match("order.created"), {exact.id, everything.id, topic.id, rest.id})
        self.assertEqual(self.match("order.eu.paid"), {everything.id, topic.id, inner.id})
        self.assertEqual(self.match("user.created"), {everything.id, rest.id})
        self.assertEqual(self.match("order"), {everything.id})
        self.assertEqual(self.match("Order.created"), {everything.id, rest.id})

    def test_match_inactive(self) -> None:
        """Inactive subscribers are never matched, owned or not."""
        self.add(active=False)
        self.add(owner="alice", active=False)
        self.assertEqual(self.match("order.created", "alice"), set())
        self.assertEqual(self.match("order.created"), set())


class NormalisationTests(SynchronousTestCase):
    """Values that mean the same are stored the same way; values of the wrong type are
    refused."""

    def test_id_is_canonical(self) -> None:
        """An upper-case or brace-less UUID, or a UUID object, becomes canonical text, so
        the same subscriber cannot be stored under two spellings of its id."""
        value = uuid.uuid4()
        for spelling in (str(value).upper(), value.hex, value):
            subscriber = Subscriber(event="a.*", url="https://example.com/", id=spelling)
            self.assertEqual(subscriber.id, str(value))

    def test_bad_id_is_refused(self) -> None:
        """An id that is not a UUID is a ValueError naming the value."""
        with self.assertRaises(ValueError) as caught:
            Subscriber(event="a.*", url="https://example.com/", id="not-a-uuid")
        self.assertIn("'not-a-uuid'", str(caught.exception))

    def test_active_must_be_a_bool(self) -> None:
        """active='false' (a string) is refused rather than taken as true."""
        with self.assertRaises(ValueError) as caught:
            Subscriber.from_dict(url="https://example.com/", event="a.*", active="false")
        self.assertIn("'active' must be true or false", str(caught.exception))

    def test_naive_times_are_utc(self) -> None:
        """A naive created_at is taken as UTC, whatever the local time zone."""
        naive = datetime.datetime(2024, 1, 2, 3, 4, 5)
        subscriber = Subscriber(event="a.*", url="https://example.com/", created_at=naive)
        self.assertEqual(subscriber.created_at.tzinfo, datetime.timezone.utc)
        self.assertEqual(subscriber.as_dict()["created_at"], "2024-01-02T03:04:05Z")
