"""
Tests for the HTTP API (:mod:`twisted_hooks.service.api`) and the token helpers
(:mod:`twisted_hooks.service.tokens`).

In klein's style, requests go through :class:`treq.testing.StubTreq` over the API's
resource, in memory: a :class:`~twisted_hooks.webhooks.app.Hooks` on a
:class:`~twisted_hooks.store.memory.MemoryStore` and a
:class:`~twisted.internet.testing.MemoryReactorClock`, delivering through a
:class:`FakeSender`. The last test class starts the API in a child process on a real port
and runs schemathesis against its ``/openapi.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import uuid
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import attrs
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from treq.testing import StubTreq
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from twisted_hooks.interfaces import IWebhookSender
from twisted_hooks.service._rules import (
    Boolean,
    Count,
    Text,
    load,
    object_schema,
    parameters,
    rule,
)
from twisted_hooks.service._times import isotime as _isotime
from twisted_hooks.service._times import rfc3339 as _rfc3339
from twisted_hooks.service.api import (
    MAX_REQUEST_BODY,
    APIError,
    HooksAPI,
    HooksMetrics,
    openapi_document,
    routes,
)
from twisted_hooks.service.config import ServiceConfig
from twisted_hooks.service.tokens import (
    PREFIX,
    create_token,
    new_token,
    parse_scopes,
    token_hash,
)
from twisted_hooks.store import DuplicateToken, MemoryStore, Token
from twisted_hooks.webhooks.app import Hooks, Settings
from twisted_hooks.webhooks.delivery import (
    DEAD,
    DELIVERED,
    Attempt,
    Delivery,
    DeliveryUpdate,
    ErrorKind,
    MemoryDeliveryStore,
)
from twisted_hooks.webhooks.patterns import MAX_NAME_LENGTH, NAME_GRAMMAR, PATTERN_GRAMMAR
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.subscribers import (
    MAX_ENDPOINT_CONCURRENCY,
    MAX_RATE_LIMIT,
    MIN_RATE_LIMIT,
    Subscriber,
    limit_range,
)

HERE = Path(__file__).resolve().parents[1]
BASE = "http://api.test"


@implementer(IWebhookSender)
class FakeSender:
    """Answers every attempt at once: 200, or the status scripted for the URL."""

    def __init__(self, clock: MemoryReactorClock) -> None:
        self.clock = clock
        self.statuses: dict[str, int] = {}
        self.attempted: list[str] = []

    def attempt(self, delivery: Delivery, subscriber: Subscriber) -> Deferred[Attempt]:
        """Answer with the scripted status for the subscriber's URL (200 by default)."""
        self.attempted.append(delivery.id)
        status = self.statuses.get(subscriber.url, 200)
        failed = not 200 <= status < 300
        return succeed(
            Attempt(
                delivery_id=delivery.id,
                number=delivery.attempts + 1,
                started_at=self.clock.seconds(),
                duration=0.042,
                status_code=status,
                error_kind=ErrorKind.STATUS if failed else None,
                error_message=f"answered {status}" if failed else None,
            )
        )


class _BrokenDeliveries(MemoryDeliveryStore):
    """A delivery store whose database is gone."""

    def next_due(self) -> Deferred[float | None]:
        """Fail, as a store that cannot be reached does."""
        return fail(ConnectionError("the database is unreachable"))


class _HangingDeliveries(MemoryDeliveryStore):
    """A delivery store that never answers."""

    def next_due(self) -> Deferred[float | None]:
        """Never fire."""
        return Deferred()


class _Store(MemoryStore):
    """A memory store with another delivery role."""

    def __init__(self, deliveries: MemoryDeliveryStore) -> None:
        super().__init__()
        self.deliveries = deliveries


class APITestCase(SynchronousTestCase):
    """A running application, its API and tokens for alice, bob, an admin and a
    publisher."""

    max_request_body = 1024 * 1024

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.clock.advance(1_700_000_000)
        self.store = MemoryStore()
        self.sender = FakeSender(self.clock)
        self.hooks = Hooks(
            self.clock,
            settings=Settings(record_delay=0, retry=RetryPolicy(delays=(60.0,), jitter=0)),
            subscribers=self.store.subscribers,
            deliveries=self.store.deliveries,
            health=self.store,
            sender=self.sender,
        )
        self.hooks.startService()
        self.addCleanup(self.stop)
        self.api = HooksAPI(
            self.hooks, self.store, self.clock, max_request_body=self.max_request_body
        )
        self.treq = StubTreq(self.api.resource())
        self.alice = self.token("alice", "subscribe,publish")
        self.bob = self.token("bob", "subscribe,publish")
        self.admin = self.token("root", "admin")
        self.publisher = self.token("backend", "publish")
        self.subscriber_only = self.token("reader", "subscribe", owner="alice")

    def stop(self) -> None:
        self.clock.advance(1)
        self.successResultOf(self.hooks.stopService())

    def token(self, name: str, scopes: str, owner: str | None = None) -> str:
        text, _ = self.successResultOf(
            create_token(self.store, name, scopes, owner, now=self.clock.seconds())
        )
        return text

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: object = None,
        headers: dict[str, list[str]] | None = None,
        data: bytes | None = None,
    ) -> tuple[Any, Any]:
        """Make one request; return the response and its body (parsed when JSON)."""
        sent: dict[str, list[str]] = dict(headers or {})
        if token is not None:
            sent.setdefault("Authorization", [f"Bearer {token}"])
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            sent.setdefault("Content-Type", ["application/json"])
        response = self.successResultOf(
            self.treq.request(method, BASE + path, headers=sent, data=data)
        )
        raw = self.successResultOf(self.treq.content(response))
        kind = response.headers.getRawHeaders(b"content-type", [b""])[0]
        parsed = json.loads(raw) if kind.startswith(b"application/json") else raw
        return response, parsed

    def subscribe(self, token: str, url: str = "https://example.com/h", **fields: Any) -> Any:
        """Subscribe through the API; return the subscription."""
        response, hook = self.call(
            "POST", "/hooks/", token, {"event": "article.*", "url": url, **fields}
        )
        self.assertEqual(response.code, 201, hook)
        return hook

    def publish(self, token: str, **body: Any) -> Any:
        """Publish through the API and let the deliveries be attempted."""
        response, result = self.call(
            "POST", "/events/", token, {"event": "article.created", "data": {"a": 1}, **body}
        )
        self.assertEqual(response.code, 202, result)
        self.clock.advance(0)
        return result

    def assertError(self, response: Any, body: Any, code: int, error: str) -> None:
        """The response is a JSON error with this status and code."""
        self.assertEqual((response.code, body["error"]), (code, error), body)
        self.assertIsInstance(body["detail"], str)


class TokenTests(SynchronousTestCase):
    """The token helpers."""

    def test_new_token(self) -> None:
        """A new token has the recognisable prefix and 43 random URL-safe characters."""
        first, second = new_token(), new_token()
        self.assertTrue(first.startswith(PREFIX))
        self.assertEqual(len(first), len(PREFIX) + 43)
        self.assertNotEqual(first, second)

    def test_token_hash(self) -> None:
        """A token's hash is the SHA-256 hex digest of its UTF-8 text."""
        self.assertEqual(token_hash("thk_x"), hashlib.sha256(b"thk_x").hexdigest())

    def test_create_token(self) -> None:
        """create_token stores the hash only, returns the text once, and the owner is the
        name unless given."""
        store = MemoryStore()
        text, token = self.successResultOf(
            create_token(store, "ci", ["publish", "subscribe"], now=5.0)
        )
        self.assertEqual(token.hash, token_hash(text))
        self.assertEqual((token.owner, token.scopes), ("ci", {"publish", "subscribe"}))
        self.assertEqual(token.created_at, 5.0)
        self.assertEqual(self.successResultOf(store.token_by_hash(token_hash(text))), token)
        _, other = self.successResultOf(create_token(store, "app", "admin", owner="alice"))
        self.assertEqual(other.owner, "alice")

    def test_create_token_refused(self) -> None:
        """A taken name, no scope, an unknown scope or an empty name fail the Deferred."""
        store = MemoryStore()
        self.successResultOf(create_token(store, "ci", "publish"))
        self.failureResultOf(create_token(store, "ci", "publish"), DuplicateToken)
        self.failureResultOf(create_token(store, "x", ""), ValueError)
        self.failureResultOf(create_token(store, "x", "root"), ValueError)
        self.failureResultOf(create_token(store, " ", "publish"), ValueError)

    def test_parse_scopes(self) -> None:
        """Scopes are read from comma-separated text or an iterable."""
        self.assertEqual(parse_scopes("publish, admin"), {"publish", "admin"})
        self.assertEqual(parse_scopes(["subscribe"]), {"subscribe"})
        with self.assertRaises(ValueError) as raised:
            parse_scopes("publish,write")
        self.assertIn("'write'", str(raised.exception))


class HookTests(APITestCase):
    """``/hooks/``: Thorn's subscription API, per user."""

    def test_create(self) -> None:
        """POST /hooks/ answers 201 with Thorn's fields and the subscription's URL as
        Location (on the address the request came in on, 127.0.0.1:80 in memory, never on
        the Host header's api.test); the subscription belongs to the token's owner."""
        response, hook = self.call(
            "POST", "/hooks/", self.alice, {"event": "article.*", "url": "https://e.com/h?u=1"}
        )
        self.assertEqual(response.code, 201)
        thorn = {"id", "url", "event", "content_type", "hmac_digest", "hmac_secret", "user"}
        self.assertLessEqual(thorn | {"created_at", "updated_at", "subscription"}, set(hook))
        self.assertEqual(hook["user"], "alice")
        self.assertEqual(hook["content_type"], "application/json")
        self.assertEqual(hook["hmac_digest"], "sha256")
        self.assertTrue(hook["hmac_secret"])
        self.assertEqual(hook["subscription"], f"http://127.0.0.1/hooks/{hook['id']}/")
        self.assertEqual(
            response.headers.getRawHeaders(b"location"), [hook["subscription"].encode()]
        )
        stored = self.successResultOf(self.store.subscribers.get(hook["id"]))
        self.assertEqual(stored.owner, "alice")

    def test_create_options(self) -> None:
        """content_type, hmac_digest, hmac_secret and the project's own fields are kept."""
        hook = self.subscribe(
            self.alice,
            content_type="application/x-www-form-urlencoded",
            hmac_digest="sha512",
            hmac_secret="s3cret",
            headers={"X-Team": "a"},
            max_concurrency=2,
        )
        self.assertEqual(
            (hook["content_type"], hook["hmac_digest"], hook["hmac_secret"]),
            ("application/x-www-form-urlencoded", "sha512", "s3cret"),
        )
        self.assertEqual((hook["headers"], hook["max_concurrency"]), ({"X-Team": "a"}, 2))

    def test_base_url(self) -> None:
        """With base_url, subscription URLs use it, not the Host header."""
        api = HooksAPI(self.hooks, self.store, self.clock, base_url="https://hooks.example/")
        self.treq = StubTreq(api.resource())
        hook = self.subscribe(self.alice)
        self.assertEqual(hook["subscription"], f"https://hooks.example/hooks/{hook['id']}/")
        self.successResultOf(api.close())

    def test_list_own(self) -> None:
        """GET /hooks/ lists the caller's subscriptions only; admin sees every one."""
        mine = self.subscribe(self.alice)
        theirs = self.subscribe(self.bob)
        _, listed = self.call("GET", "/hooks/", self.alice)
        self.assertEqual([h["id"] for h in listed], [mine["id"]])
        _, listed = self.call("GET", "/hooks/", self.bob)
        self.assertEqual([h["id"] for h in listed], [theirs["id"]])
        _, listed = self.call("GET", "/hooks/", self.admin)
        self.assertEqual({h["id"] for h in listed}, {mine["id"], theirs["id"]})

    def test_get(self) -> None:
        """GET /hooks/{id}/ answers the owner and admin, with or without the slash."""
        hook = self.subscribe(self.alice)
        for token, path in [
            (self.alice, f"/hooks/{hook['id']}/"),
            (self.alice, f"/hooks/{hook['id']}"),
            (self.admin, f"/hooks/{hook['id']}/"),
        ]:
            response, got = self.call("GET", path, token)
            self.assertEqual((response.code, got), (200, hook))

    def test_other_users_hook_is_not_found(self) -> None:
        """Another user's id answers 404 on GET, PATCH, DELETE and recover, as an unknown
        id does, and the subscription is left alone."""
        hook = self.subscribe(self.alice)
        path = f"/hooks/{hook['id']}/"
        for method, where, body in [
            ("GET", path, None),
            ("PATCH", path, {"url": "https://evil.example/"}),
            ("DELETE", path, None),
            ("POST", path + "recover/", {}),
        ]:
            response, error = self.call(method, where, self.bob, body)
            self.assertError(response, error, 404, "not_found")
        _, same = self.call("GET", path, self.alice)
        self.assertEqual(same, hook)

    def test_unknown_ids(self) -> None:
        """A hook id that is unknown, or not a UUID, answers 404."""
        for hook_id in ["9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d", "nope"]:
            response, error = self.call("GET", f"/hooks/{hook_id}/", self.alice)
            self.assertError(response, error, 404, "not_found")

    def test_patch(self) -> None:
        """PATCH /hooks/{id}/ changes the fields given and keeps the others."""
        hook = self.subscribe(self.alice)
        self.clock.advance(5)
        response, changed = self.call(
            "PATCH",
            f"/hooks/{hook['id']}/",
            self.alice,
            {"url": "https://example.com/other", "hmac_digest": "sha1", "user": "ignored"},
        )
        self.assertEqual(response.code, 200, changed)
        self.assertEqual(
            (changed["url"], changed["hmac_digest"], changed["event"], changed["user"]),
            ("https://example.com/other", "sha1", "article.*", "alice"),
        )
        stored = self.successResultOf(self.store.subscribers.get(hook["id"]))
        self.assertEqual(stored.url, "https://example.com/other")

    def test_patch_active(self) -> None:
        """PATCH active=false deactivates; active=true reactivates and forgets the
        endpoint's failures."""
        hook = self.subscribe(self.alice)
        path = f"/hooks/{hook['id']}/"
        _, off = self.call("PATCH", path, self.alice, {"active": False})
        self.assertFalse(off["active"])
        self.assertFalse(self.successResultOf(self.store.subscribers.get(hook["id"])).active)
        _, on = self.call("PATCH", path, self.alice, {"active": True})
        self.assertTrue(on["active"])

    def test_delete(self) -> None:
        """DELETE /hooks/{id}/ answers 204 and the subscription is gone."""
        hook = self.subscribe(self.alice)
        response, body = self.call("DELETE", f"/hooks/{hook['id']}/", self.alice)
        self.assertEqual((response.code, body), (204, b""))
        response, _ = self.call("GET", f"/hooks/{hook['id']}/", self.alice)
        self.assertEqual(response.code, 404)

    def test_recover(self) -> None:
        """POST /hooks/{id}/recover/ revives the subscription's dead deliveries since a
        time (every one without it) and answers how many."""
        hook = self.subscribe(self.alice, url="https://down.example/")
        self.sender.statuses["https://down.example/"] = 500
        self.publish(self.alice)
        self.clock.advance(61)
        _, dead = self.call("GET", "/deliveries/?status=dead", self.alice)
        self.assertEqual(len(dead), 1)
        path = f"/hooks/{hook['id']}/recover/"
        response, result = self.call("POST", path, self.alice, {"since": 1e12})
        self.assertEqual((response.code, result), (202, {"recovered": 0}))
        response, result = self.call("POST", path, self.alice)
        self.assertEqual((response.code, result), (202, {"recovered": 1}))

    def test_invalid_fields(self) -> None:
        """Each bad field of a subscription is a 400 naming it."""
        good = {"event": "article.*", "url": "https://example.com/h"}
        cases: list[tuple[dict[str, Any], str, str]] = [
            ({"url": good["url"]}, "event", "invalid"),
            ({"event": "a.*"}, "url", "invalid"),
            ({**good, "event": "a..b"}, "event", "invalid"),
            ({**good, "event": "ord*.x"}, "event", "invalid"),
            ({**good, "event": 12}, "event", "invalid"),
            ({**good, "url": "not a url"}, "url", "invalid"),
            ({**good, "url": "ftp://example.com/"}, "url", "invalid"),
            ({**good, "url": "http://10.0.0.1/"}, "url", "refused_url"),
            ({**good, "url": "http://127.0.0.1/hook"}, "url", "refused_url"),
            ({**good, "url": "https://example.com:8080/"}, "url", "refused_url"),
            ({**good, "content_type": "text/xml"}, "content_type", "invalid"),
            ({**good, "hmac_digest": "md5"}, "hmac_digest", "invalid"),
            ({**good, "hmac_secret": ""}, "hmac_secret", "invalid"),
            ({**good, "headers": {"Hook-HMAC": "x"}}, "headers", "invalid"),
            ({**good, "headers": ["x"]}, "headers", "invalid"),
            ({**good, "max_concurrency": 0}, "max_concurrency", "invalid"),
            ({**good, "max_concurrency": 10**30}, "max_concurrency", "invalid"),
            ({**good, "rate_limit": "fast"}, "rate_limit", "invalid"),
            ({**good, "active": "yes"}, "active", "invalid"),
            ({**good, "colour": "red"}, "colour", "invalid"),
        ]
        for body, field, code in cases:
            response, error = self.call("POST", "/hooks/", self.alice, body)
            self.assertEqual(
                (response.code, error.get("error"), error.get("field")), (400, code, field), body
            )
        hook = self.subscribe(self.alice)
        response, error = self.call(
            "PATCH", f"/hooks/{hook['id']}/", self.alice, {"url": "http://192.168.1.1/"}
        )
        self.assertEqual((response.code, error["field"]), (400, "url"))
        _, listed = self.call("GET", "/hooks/", self.alice)
        self.assertEqual(len(listed), 1)


class EventTests(APITestCase):
    """``/events/``: publishing."""

    def test_publish(self) -> None:
        """POST /events/ answers 202 with the deliveries made: the token owner's
        subscriptions receive its events, other users' do not."""
        self.subscribe(self.alice, url="https://a.example/1")
        self.subscribe(self.alice, url="https://a.example/2")
        self.subscribe(self.bob, url="https://b.example/")
        response, result = self.call(
            "POST", "/events/", self.alice, {"event": "article.created", "data": {"x": [1]}}
        )
        self.assertEqual(response.code, 202)
        self.assertEqual(
            (result["deliveries"], result["duplicate"], result["skipped"]), (2, False, 0)
        )
        self.assertTrue(result["id"])

    def test_sender(self) -> None:
        """A publisher names the sender; null reaches only subscriptions without owner."""
        self.subscribe(self.bob)
        self.successResultOf(
            self.hooks.subscribe("article.*", "https://everyone.example/", owner=None)
        )
        self.assertEqual(self.publish(self.publisher, sender="bob")["deliveries"], 2)
        self.assertEqual(self.publish(self.publisher, sender=None)["deliveries"], 1)
        self.assertEqual(self.publish(self.publisher)["deliveries"], 1)

    def test_idempotent(self) -> None:
        """Publishing the same id twice delivers once: the second is a duplicate with no
        deliveries."""
        self.subscribe(self.alice)
        first = self.publish(self.alice, id="order-1")
        second = self.publish(self.alice, id="order-1")
        self.assertEqual(
            (first["id"], first["deliveries"], first["duplicate"]), ("order-1", 1, False)
        )
        self.assertEqual(
            (second["id"], second["deliveries"], second["duplicate"]), ("order-1", 0, True)
        )

    def test_invalid(self) -> None:
        """Each bad field of a publication is a 400 naming it."""
        cases: list[tuple[dict[str, Any], str]] = [
            ({"data": {}}, "event"),
            ({"event": "a..b"}, "event"),
            ({"event": ["a"]}, "event"),
            ({"event": "a.b", "id": 7}, "id"),
            ({"event": "a.b", "id": ""}, "id"),
            ({"event": "a.b", "sender": [1]}, "sender"),
            ({"event": "a.b", "sender": 10**40}, "sender"),
            ({"event": "a.b", "extra": 1}, "extra"),
        ]
        for body, field in cases:
            response, error = self.call("POST", "/events/", self.alice, body)
            self.assertEqual((response.code, error.get("field")), (400, field), body)

    def test_deeply_nested(self) -> None:
        """Data nested too deeply for the parser is a 400, not a 500."""
        data = b'{"event": "a.b", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        response, error = self.call(
            "POST",
            "/events/",
            self.alice,
            headers={"Content-Type": ["application/json"]},
            data=data,
        )
        self.assertError(response, error, 400, "malformed_json")

    def test_not_running(self) -> None:
        """Publishing to a stopped application answers 503, not a 500."""
        self.successResultOf(self.hooks.stopService())
        response, error = self.call("POST", "/events/", self.alice, {"event": "a.b"})
        self.assertError(response, error, 503, "unavailable")
        self.hooks.startService()


class DeliveryTests(APITestCase):
    """``/deliveries/``: the delivery log and replay."""

    def setUp(self) -> None:
        super().setUp()
        self.alice_hook = self.subscribe(self.alice, url="https://a.example/")
        self.alice_down = self.subscribe(self.alice, url="https://down.example/")
        self.bob_hook = self.subscribe(self.bob, url="https://b.example/")
        self.sender.statuses["https://down.example/"] = 503
        self.publish(self.alice)
        self.publish(self.bob)
        self.clock.advance(61)

    def test_list_own(self) -> None:
        """A user lists the deliveries of their own hooks; admin lists every one."""
        _, mine = self.call("GET", "/deliveries/", self.alice)
        self.assertEqual({d["hook"] for d in mine}, {self.alice_hook["id"], self.alice_down["id"]})
        _, theirs = self.call("GET", "/deliveries/", self.bob)
        self.assertEqual({d["hook"] for d in theirs}, {self.bob_hook["id"]})
        _, every = self.call("GET", "/deliveries/", self.admin)
        self.assertEqual(len(every), 3)

    def test_filters(self) -> None:
        """status, hook, since and limit filter the list."""
        _, dead = self.call("GET", "/deliveries/?status=dead", self.alice)
        self.assertEqual([(d["hook"], d["status"]) for d in dead], [(self.alice_down["id"], DEAD)])
        _, one = self.call("GET", f"/deliveries/?hook={self.alice_hook['id']}", self.alice)
        self.assertEqual(
            [(d["hook"], d["status"]) for d in one], [(self.alice_hook["id"], DELIVERED)]
        )
        _, none = self.call("GET", "/deliveries/?since=2100-01-01T00:00:00Z", self.alice)
        self.assertEqual(none, [])
        _, since = self.call("GET", "/deliveries/?since=0", self.alice)
        self.assertEqual(len(since), 2)
        _, limited = self.call("GET", "/deliveries/?limit=1", self.admin)
        self.assertEqual(len(limited), 1)

    def test_filter_errors(self) -> None:
        """Bad query parameters are 400s naming them; another user's hook is a 404."""
        for query, field in [
            ("status=lost", "status"),
            ("limit=0", "limit"),
            ("limit=many", "limit"),
            ("since=yesterday", "since"),
            ("hook=nope", "hook"),
        ]:
            response, error = self.call("GET", f"/deliveries/?{query}", self.alice)
            self.assertEqual((response.code, error.get("field")), (400, field), query)
        response, error = self.call("GET", f"/deliveries/?hook={self.bob_hook['id']}", self.alice)
        self.assertError(response, error, 404, "not_found")

    def next_link(self, response: Any) -> str | None:
        """The path and query of a response's Link rel=next, or None without one."""
        links = response.headers.getRawHeaders(b"link") or []
        if not links:
            return None
        (link,) = links
        text = link.decode("ascii")
        self.assertTrue(text.startswith("<") and text.endswith('>; rel="next"'), text)
        url = urlsplit(text[1 : -len('>; rel="next"')])
        self.assertEqual(url.path, "/deliveries/")
        return f"{url.path}?{url.query}"

    def test_pages(self) -> None:
        """A full page has a Link to the next one (keeping the filters); following the
        links gives each of the caller's deliveries exactly once, newest first, and the
        last page has no link."""
        for _ in range(3):
            self.publish(self.alice)
        self.clock.advance(61)
        _, every = self.call("GET", "/deliveries/?limit=1000", self.alice)
        self.assertEqual(len(every), 8)
        seen: list[str] = []
        path: str | None = "/deliveries/?limit=3&since=0"
        pages = 0
        while path is not None and pages < 10:  # bounded: 8 deliveries, 3 a page
            response, page = self.call("GET", path, self.alice)
            self.assertEqual(response.code, 200, page)
            seen.extend(d["id"] for d in page)
            path = self.next_link(response)
            if path is not None:
                self.assertIn("since=0", path)
                self.assertIn("limit=3", path)
            pages += 1
        self.assertEqual(pages, 3)
        self.assertEqual(seen, [d["id"] for d in every])
        self.assertEqual(
            {d["hook"] for d in every}, {self.alice_hook["id"], self.alice_down["id"]}
        )
        response, page = self.call("GET", "/deliveries/?limit=1000", self.alice)
        self.assertIsNone(self.next_link(response))
        response, (dead,) = self.call("GET", "/deliveries/?status=dead&limit=1", self.alice)
        following = self.next_link(response)
        assert following is not None
        self.assertIn("status=dead", following)
        _, rest = self.call("GET", following, self.alice)
        self.assertNotIn(dead["id"], [d["id"] for d in rest])
        self.assertEqual({d["status"] for d in rest}, {DEAD})

    def test_bad_cursor(self) -> None:
        """An after that is no cursor of the delivery log is a 400 naming it."""
        hook = self.alice_hook["id"]
        for cursor in ["yesterday", f"1e3_{hook}x", "1.5", f"inf_{hook}", f"1_{hook}\n", "_"]:
            response, error = self.call(
                "GET", f"/deliveries/?{urlencode({'after': cursor})}", self.alice
            )
            self.assertError(response, error, 400, "invalid")
            self.assertEqual(error["field"], "after", cursor)
            self.assertIn("Link header", error["detail"])

    def test_one_query(self) -> None:
        """The caller's deliveries are asked of the store in one query whatever the
        number of their subscriptions (and their subscriptions in one more)."""
        for number in range(5):
            self.subscribe(self.alice, url=f"https://more{number}.example/")
        asked: list[dict[str, Any]] = []
        listing = self.hooks.deliveries.list

        def counting(*args: Any, **kwargs: Any) -> Any:
            asked.append(kwargs)
            return listing(*args, **kwargs)

        self.hooks.deliveries.list = counting  # type: ignore[method-assign]
        response, mine = self.call("GET", "/deliveries/", self.alice)
        self.assertEqual(response.code, 200)
        self.assertEqual(len(asked), 1)
        self.assertEqual(len(asked[0]["subscriber_ids"]), 7)
        self.assertEqual(len(mine), 2)

    def test_get(self) -> None:
        """GET /deliveries/{id}/ answers the delivery with its attempts; another user's
        delivery is a 404."""
        _, (dead,) = self.call("GET", "/deliveries/?status=dead", self.alice)
        response, detail = self.call("GET", f"/deliveries/{dead['id']}/", self.alice)
        self.assertEqual(response.code, 200)
        self.assertEqual(detail["attempt_count"], 2)
        self.assertEqual([a["status_code"] for a in detail["attempts"]], [503, 503])
        self.assertEqual(detail["attempts"][0]["error_kind"], ErrorKind.STATUS)
        response, error = self.call("GET", f"/deliveries/{dead['id']}/", self.bob)
        self.assertError(response, error, 404, "not_found")
        response, error = self.call("GET", "/deliveries/x/", self.alice)
        self.assertError(response, error, 404, "not_found")

    def test_retry(self) -> None:
        """POST /deliveries/{id}/retry/ revives a dead delivery (202); one that is not dead
        is a 409; another user's is a 404."""
        _, (dead,) = self.call("GET", "/deliveries/?status=dead", self.alice)
        response, error = self.call("POST", f"/deliveries/{dead['id']}/retry/", self.bob)
        self.assertError(response, error, 404, "not_found")
        response, revived = self.call("POST", f"/deliveries/{dead['id']}/retry/", self.alice)
        self.assertEqual((response.code, revived["id"]), (202, dead["id"]))
        self.assertNotEqual(revived["status"], DEAD)
        _, (done,) = self.call("GET", "/deliveries/?status=delivered", self.bob)
        response, error = self.call("POST", f"/deliveries/{done['id']}/retry/", self.bob)
        self.assertError(response, error, 409, "conflict")


class AuthTests(APITestCase):
    """Bearer tokens and scopes."""

    def assertUnauthorized(self, headers: dict[str, list[str]], error: str) -> None:
        """The request is refused with 401 and a Bearer challenge."""
        response, body = self.call("GET", "/hooks/", headers=headers)
        self.assertError(response, body, 401, error)
        (challenge,) = response.headers.getRawHeaders(b"www-authenticate")
        self.assertTrue(challenge.startswith(b"Bearer"))

    def test_no_token(self) -> None:
        """Without an Authorization header: 401 with WWW-Authenticate."""
        self.assertUnauthorized({}, "unauthorized")

    def test_wrong_scheme(self) -> None:
        """Basic credentials, or Bearer without a token: 401."""
        self.assertUnauthorized({"Authorization": ["Basic YWxpY2U6cHc="]}, "unauthorized")
        self.assertUnauthorized({"Authorization": ["Bearer"]}, "unauthorized")

    def test_unknown_token(self) -> None:
        """A token the store does not know: 401 invalid_token."""
        self.assertUnauthorized({"Authorization": [f"Bearer {new_token()}"]}, "invalid_token")

    def test_revoked_token(self) -> None:
        """A revoked token: 401 invalid_token."""
        self.successResultOf(self.store.revoke_token("alice", self.clock.seconds()))
        self.assertUnauthorized({"Authorization": [f"Bearer {self.alice}"]}, "invalid_token")

    def test_missing_scope(self) -> None:
        """A token without the route's scope: 403."""
        response, error = self.call(
            "POST", "/hooks/", self.publisher, {"event": "a.b", "url": "https://e.com/"}
        )
        self.assertError(response, error, 403, "forbidden")
        response, error = self.call("POST", "/events/", self.subscriber_only, {"event": "a.b"})
        self.assertError(response, error, 403, "forbidden")
        response, error = self.call("GET", "/deliveries/", self.publisher)
        self.assertError(response, error, 403, "forbidden")

    def test_owner_of_token(self) -> None:
        """A token acts as its owner: a second token of alice's sees her subscriptions."""
        hook = self.subscribe(self.alice)
        _, listed = self.call("GET", "/hooks/", self.subscriber_only)
        self.assertEqual([h["id"] for h in listed], [hook["id"]])


class HTTPTests(APITestCase):
    """Routes, methods and bodies."""

    max_request_body = 200

    def test_unknown_route(self) -> None:
        """An unknown path is a JSON 404."""
        response, error = self.call("GET", "/nothing/here", self.alice)
        self.assertError(response, error, 404, "not_found")

    def test_method_not_allowed(self) -> None:
        """A known path with another method is a 405 with Allow."""
        response, error = self.call("PUT", "/hooks/", self.alice, {})
        self.assertError(response, error, 405, "method_not_allowed")
        (allow,) = response.headers.getRawHeaders(b"allow")
        self.assertEqual(set(allow.decode().split(", ")), {"GET", "HEAD", "POST"})

    def test_too_large(self) -> None:
        """A body over max_request_body is a 413, with or without a Content-Length."""
        big = {"event": "a.b", "url": "https://example.com/" + "x" * 300}
        response, error = self.call("POST", "/hooks/", self.alice, big)
        self.assertError(response, error, 413, "too_large")

    def test_not_json(self) -> None:
        """A body that is not application/json is a 415."""
        for headers in [{"Content-Type": ["text/plain"]}, {}]:
            response, error = self.call(
                "POST", "/events/", self.alice, headers=headers, data=b'{"event": "a.b"}'
            )
            self.assertError(response, error, 415, "unsupported_media_type")

    def test_malformed_json(self) -> None:
        """Malformed JSON, NaN, deep nesting and a non-object body are 400s."""
        json_type = {"Content-Type": ["application/json; charset=utf-8"]}
        for data, code in [
            (b'{"event": ', "malformed_json"),
            (b'{"event": "a.b", "data": NaN}', "malformed_json"),
            (b"\xff\xfe", "malformed_json"),
            (b"[" * 90 + b"]" * 90, "invalid"),
            (b'["event"]', "invalid"),
        ]:
            response, error = self.call(
                "POST", "/events/", self.alice, headers=json_type, data=data
            )
            self.assertError(response, error, 400, code)

    def test_empty_body(self) -> None:
        """POST /hooks/ without a body is a 400."""
        response, error = self.call("POST", "/hooks/", self.alice)
        self.assertError(response, error, 400, "invalid")

    def test_internal_error(self) -> None:
        """An unexpected failure is a logged JSON 500 without a traceback."""

        def broken(owner: str | None = None) -> Deferred[Sequence[Subscriber]]:
            return fail(RuntimeError("boom"))

        self.patch(self.store.subscribers, "list", broken)
        response, error = self.call("GET", "/hooks/", self.alice)
        self.assertError(response, error, 500, "internal")
        self.assertNotIn("boom", error["detail"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class OperationsTests(APITestCase):
    """``/healthz``, ``/metrics`` and ``/openapi.json``."""

    def test_healthz(self) -> None:
        """/healthz answers 200 without a token while the store answers."""
        response, health = self.call("GET", "/healthz")
        self.assertEqual(
            (response.code, health), (200, {"status": "ok", "store": "ok", "running": True})
        )

    def test_healthz_store_fails(self) -> None:
        """/healthz answers 503 when the store fails."""
        api = HooksAPI(self.hooks, _Store(_BrokenDeliveries()), self.clock)
        self.treq = StubTreq(api.resource())
        response, health = self.call("GET", "/healthz")
        self.assertEqual((response.code, health["store"]), (503, "unavailable"))

    def test_healthz_store_hangs(self) -> None:
        """/healthz answers 503 once the store has not answered for health_timeout."""
        api = HooksAPI(self.hooks, _Store(_HangingDeliveries()), self.clock, health_timeout=2)
        treq = StubTreq(api.resource())
        answered = treq.get(BASE + "/healthz")
        self.assertNoResult(answered)
        self.clock.advance(2)
        treq.flush()
        self.assertEqual(self.successResultOf(answered).code, 503)

    def test_healthz_not_running(self) -> None:
        """/healthz answers 503 while the application is stopped."""
        self.successResultOf(self.hooks.stopService())
        response, health = self.call("GET", "/healthz")
        self.assertEqual((response.code, health["running"]), (503, False))
        self.hooks.startService()

    def test_metrics(self) -> None:
        """/metrics answers the text exposition without a token, with the delivery,
        attempt, queue, circuit and request metrics, fed by the application."""
        self.subscribe(self.alice, url="https://down.example/")
        self.sender.statuses["https://down.example/"] = 500
        self.publish(self.alice)
        self.clock.advance(61)
        response, text = self.call("GET", "/metrics")
        self.assertEqual(response.code, 200)
        (kind,) = response.headers.getRawHeaders(b"content-type")
        self.assertTrue(kind.startswith(b"text/plain"))
        body = text.decode()
        for line in [
            'twisted_hooks_deliveries_total{outcome="dead"} 1.0',
            'twisted_hooks_attempts_total{outcome="status"} 2.0',
            'twisted_hooks_attempt_duration_seconds_count{outcome="failed"} 2.0',
            'twisted_hooks_queue_depth{status="dead"} 1.0',
            "twisted_hooks_oldest_due_age_seconds 0.0",
            "twisted_hooks_open_circuits 0.0",
            'twisted_hooks_api_requests_total{code="201",method="POST"} 1.0',
        ]:
            self.assertIn(line, body)

    def test_metrics_count_successes(self) -> None:
        """Successful attempts and delivered deliveries reach /metrics (through the
        application's update observers), once each."""
        self.subscribe(self.alice, url="https://up.example/")
        self.publish(self.alice)
        self.publish(self.alice)
        self.clock.advance(1)
        _, text = self.call("GET", "/metrics")
        body = text.decode()
        for line in [
            'twisted_hooks_deliveries_total{outcome="delivered"} 2.0',
            'twisted_hooks_attempts_total{outcome="succeeded"} 2.0',
            'twisted_hooks_attempt_duration_seconds_count{outcome="succeeded"} 2.0',
        ]:
            self.assertIn(line, body)

    def test_metrics_registries_are_separate(self) -> None:
        """Each API has a registry of its own: two APIs in one process do not clash."""
        other = HooksAPI(self.hooks, self.store, self.clock)
        self.assertIsNot(other.metrics.registry, self.api.metrics.registry)
        self.successResultOf(other.close())

    def test_metrics_observe(self) -> None:
        """HooksMetrics.observe counts a recorded attempt and a delivered delivery."""
        metrics = HooksMetrics(self.hooks)
        attempt = Attempt("d", 1, 0.0, 0.2, status_code=200)
        metrics.observe(None, DeliveryUpdate("d", DELIVERED, attempt))  # type: ignore[arg-type]
        text = metrics.render().decode()
        self.assertIn('twisted_hooks_deliveries_total{outcome="delivered"} 1.0', text)
        self.assertIn('twisted_hooks_attempts_total{outcome="succeeded"} 1.0', text)

    def test_close(self) -> None:
        """close() removes the metrics' dispatcher handler and update observer: a closed
        API's metrics count no more attempts, while an open one's do."""
        api = HooksAPI(self.hooks, self.store, self.clock)
        handler_id = api.metrics._handler_id
        self.assertIsNotNone(handler_id)
        self.successResultOf(api.close())
        self.failureResultOf(self.hooks.dispatcher.remove_event_handler(handler_id), KeyError)
        self.subscribe(self.alice)
        self.publish(self.alice)
        self.clock.advance(1)
        counted = 'twisted_hooks_attempts_total{outcome="succeeded"} '
        self.assertIn(counted + "1.0", self.api.metrics.render().decode())
        self.assertIn(counted + "0.0", api.metrics.render().decode())

    def test_openapi_valid(self) -> None:
        """/openapi.json answers without a token and is a valid OpenAPI document."""
        response, document = self.call("GET", "/openapi.json")
        self.assertEqual(response.code, 200)
        validate(document)
        self.assertEqual(document, openapi_document())

    def test_openapi_lists_every_route(self) -> None:
        """The document describes exactly the routes Klein serves."""
        document = openapi_document()
        described = sorted(
            (method.upper(), path)
            for path, item in document["paths"].items()
            for method in item
            if method != "parameters"
        )
        served = sorted(
            (method, path)
            for rule in HooksAPI.app.url_map.iter_rules()
            for method in rule.methods or ()
            if method != "HEAD"
            for path in [rule.rule.replace("<string:hook_id>", "{id}")]
            for path in [path.replace("<string:delivery_id>", "{id}")]
        )
        self.assertEqual(described, served)
        self.assertEqual(routes(), served)

    def test_token_store_provided(self) -> None:
        """The memory store provides the token role the API uses."""
        from twisted_hooks.interfaces import ITokenStore

        verifyObject(ITokenStore, self.store)
        self.assertIsInstance(self.successResultOf(self.store.tokens())[0], Token)


class RangeTests(APITestCase):
    """Every number a client sets has a range; no stored value makes an answer fail."""

    def test_limits_out_of_range(self) -> None:
        """rate_limit below MIN_RATE_LIMIT (1e-300 held a delivery for 1e300 s) or above
        its maximum, max_concurrency outside 1..MAX_ENDPOINT_CONCURRENCY or fractional,
        are 400s naming the field and its range, in POST and PATCH."""
        hook = self.subscribe(self.alice)
        for field, value in [
            ("rate_limit", 1e-300),
            ("rate_limit", 0.0009),
            ("rate_limit", 0),
            ("rate_limit", -1),
            ("rate_limit", MAX_RATE_LIMIT * 10),
            ("rate_limit", True),
            ("max_concurrency", 0),
            ("max_concurrency", 1.5),
            ("max_concurrency", MAX_ENDPOINT_CONCURRENCY + 1),
        ]:
            body = {"event": "a.*", "url": "https://example.com/h", field: value}
            response, error = self.call("POST", "/hooks/", self.alice, body)
            self.assertEqual((response.code, error.get("field")), (400, field), body)
            self.assertIn("from", error["detail"])
            response, error = self.call(
                "PATCH", f"/hooks/{hook['id']}/", self.alice, {field: value}
            )
            self.assertEqual((response.code, error.get("field")), (400, field), body)
        response, error = self.call(
            "POST",
            "/hooks/",
            self.alice,
            {"event": "a.*", "url": "https://example.com/h", "rate_limit": 1e-300},
        )
        self.assertIn("0.001", error["detail"])
        self.assertIn("hold deliveries back", error["detail"])

    def test_limits_at_the_ends_of_their_ranges(self) -> None:
        """The ends of the ranges are accepted, and an integral float (295.0, an integer in
        JSON Schema) is a whole max_concurrency."""
        low = self.subscribe(self.alice, rate_limit=MIN_RATE_LIMIT, max_concurrency=1)
        high = self.subscribe(
            self.alice, rate_limit=MAX_RATE_LIMIT, max_concurrency=MAX_ENDPOINT_CONCURRENCY
        )
        whole = self.subscribe(self.alice, max_concurrency=295.0)
        self.assertEqual((low["rate_limit"], low["max_concurrency"]), (0.001, 1))
        self.assertEqual(high["max_concurrency"], MAX_ENDPOINT_CONCURRENCY)
        self.assertEqual(whole["max_concurrency"], 295)
        self.assertIsInstance(whole["max_concurrency"], int)

    def test_stored_limits_shown_as_applied(self) -> None:
        """A subscription stored with a limit outside its range (by an older version) is
        listed with the limit the gate applies, within the range."""
        stored = Subscriber(
            event="a.*",
            url="https://example.com/old",
            owner="alice",
            rate_limit=1e-300,
            max_concurrency=10**9,
        )
        self.successResultOf(self.store.subscribers.add(stored))
        response, (hook,) = self.call("GET", "/hooks/", self.alice)
        self.assertEqual(response.code, 200)
        self.assertEqual((hook["rate_limit"], hook["max_concurrency"]), (0.001, 1_000_000))

    def absurd(self) -> tuple[Any, list[Delivery]]:
        """Deliveries of alice's hook holding every absurd time a store could give back
        (written into the memory store as a corrupted database would return them), and
        absurd attempts for the first."""
        hook = self.subscribe(self.alice)
        subscriber = self.successResultOf(self.store.subscribers.get(hook["id"]))
        deliveries = []
        for number, (created, due, finished) in enumerate(
            [
                (1e300, 1e300, None),
                (math.inf, math.inf, -math.inf),
                (-1e300, math.nan, math.nan),
                (math.nan, -math.inf, 1e20),
                (253402300800.0, -62135596801.0, 0.0),
            ]
        ):
            delivery = Delivery(
                id=str(uuid.UUID(int=number + 1)),
                event="a.b",
                event_id=f"e{number}",
                subscriber=subscriber,
                body=b"{}",
                created_at=created,
                next_attempt_at=due,
                finished_at=finished,
                status=DEAD,
            )
            deliveries.append(delivery)
            self.store.deliveries._deliveries[delivery.id] = delivery
        self.store.deliveries._attempts[deliveries[0].id] = deque(
            [
                Attempt(deliveries[0].id, 1, math.inf, math.nan, 500, retry_after=math.inf),
                Attempt(deliveries[0].id, 2, -1e300, 1e300, None, retry_after=-math.inf),
            ]
        )
        return hook, deliveries

    def test_absurd_stored_times_are_listed(self) -> None:
        """Huge, infinite and NaN times in stored deliveries and attempts never make a
        route answer 5xx: GET /deliveries/ (the owner's and admin's), with filters, and
        GET /deliveries/{id}/ answer strict JSON (no NaN or Infinity), times clamped to
        0001-01-01T00:00:00Z..9999-12-31T23:59:59Z, NaN times and non-finite numbers
        null."""
        hook, deliveries = self.absurd()
        for token, path in [
            (self.alice, "/deliveries/"),
            (self.admin, "/deliveries/"),
            (self.alice, f"/deliveries/?hook={hook['id']}&status=dead&since=0"),
        ]:
            response = self.successResultOf(
                self.treq.get(BASE + path, headers={"Authorization": [f"Bearer {token}"]})
            )
            raw = self.successResultOf(self.treq.content(response))
            self.assertEqual(response.code, 200, raw)
            listed = json.loads(raw, parse_constant=_no_constants)
            self.assertGreaterEqual(len(listed), 1, path)
        _, listed = self.call("GET", "/deliveries/", self.alice)
        by_id = {d["id"]: d for d in listed}
        first = by_id[deliveries[0].id]
        self.assertEqual(first["next_attempt_at"], "9999-12-31T23:59:59Z")
        self.assertEqual(by_id[deliveries[1].id]["finished_at"], "0001-01-01T00:00:00Z")
        self.assertIsNone(by_id[deliveries[2].id]["next_attempt_at"])
        self.assertEqual(by_id[deliveries[3].id]["next_attempt_at"], "0001-01-01T00:00:00Z")
        self.assertEqual(by_id[deliveries[4].id]["created_at"], "9999-12-31T23:59:59Z")
        response, detail = self.call("GET", f"/deliveries/{deliveries[0].id}/", self.alice)
        self.assertEqual(response.code, 200)
        one, two = detail["attempts"]
        self.assertEqual(
            (one["started_at"], one["duration"], one["retry_after"]),
            ("9999-12-31T23:59:59Z", None, None),
        )
        self.assertEqual(
            (two["started_at"], two["duration"], two["retry_after"]),
            ("0001-01-01T00:00:00Z", 1e300, None),
        )
        for delivery in deliveries:
            response, _ = self.call("GET", f"/deliveries/{delivery.id}/", self.admin)
            self.assertEqual(response.code, 200)

    def test_isotime_never_raises(self) -> None:
        """_isotime formats any stored value: numbers in range exactly, out of range
        clamped, huge integers too; NaN, text, bytes and None are null."""
        self.assertEqual(_isotime(0), "1970-01-01T00:00:00Z")
        self.assertEqual(_isotime(1_700_000_000.5), "2023-11-14T22:13:20.500000Z")
        self.assertEqual(_isotime(-1.0), "1969-12-31T23:59:59Z")
        for value in (1e300, math.inf, 10**400, 253402300800):
            self.assertEqual(_isotime(value), "9999-12-31T23:59:59Z")
        for value in (-1e300, -math.inf, -(10**400)):
            self.assertEqual(_isotime(value), "0001-01-01T00:00:00Z")
        for value in (math.nan, "1e300", b"1", None, True):
            self.assertIsNone(_isotime(value))


def _no_constants(name: str) -> object:
    raise AssertionError(f"the answer holds {name}, which is not JSON")


class QueryTests(APITestCase):
    """Query-string numbers and times: ASCII only, RFC 3339, as the OpenAPI document says."""

    def test_limit_ascii_digits_only(self) -> None:
        """limit is a whole number in ASCII digits: a superscript (which answered 500),
        Arabic-Indic or full-width digits (which counted), signs, spaces, underscores,
        fractions and huge numbers are 400s naming limit."""
        for text in (
            "²",
            "٣",
            "\uff15",
            "+5",
            "-1",
            " 5",
            "5 ",
            "1_0",
            "5.0",
            "0x5",
            "9" * 50,
            "",
        ):
            response, error = self.call("GET", "/deliveries/?limit=" + quote(text), self.alice)
            self.assertError(response, error, 400, "invalid")
            self.assertEqual(error["field"], "limit", text)
        response, _ = self.call("GET", "/deliveries/?limit=1000", self.alice)
        self.assertEqual(response.code, 200)

    def test_since_forms(self) -> None:
        """since is seconds (ASCII, with a fraction, sign or exponent) or an RFC 3339
        date-time (any case of T and Z, an offset, a fraction, a leap second, any year);
        anything else is a 400 naming since: empty, other scripts' digits, a naive time, a
        bare date, an impossible date, inf and nan."""
        for text in (
            "0",
            "-5",
            "1.5",
            "1e3",
            "1700000000",
            "2024-01-31T12:00:00Z",
            "2024-01-31t12:00:00z",
            "2024-01-31T12:00:00.123456789+05:30",
            "2016-12-31T23:59:60Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59-23:59",
            "2024-02-29T00:00:00Z",
        ):
            response, listed = self.call("GET", "/deliveries/?since=" + quote(text), self.alice)
            self.assertEqual(response.code, 200, (text, listed))
        for text in (
            "",
            "٣",
            "yesterday",
            "2024-01-31T12:00:00",
            "2024-01-31",
            "2024-01-31 12:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-31T24:00:00Z",
            "2024-01-31T12:00:00+24:00",
            "inf",
            "nan",
            "1e999",
        ):
            response, error = self.call("GET", "/deliveries/?since=" + quote(text), self.alice)
            self.assertEqual((response.code, error.get("field")), (400, "since"), text)

    def test_rfc3339_seconds(self) -> None:
        """RFC 3339 times give the same seconds as datetime, offsets and fractions
        included."""
        self.assertEqual(_rfc3339("1970-01-01T00:00:00Z"), 0)
        self.assertEqual(_rfc3339("2024-01-31T12:00:00+01:00"), 1706698800)
        self.assertEqual(_rfc3339("2024-01-31T12:00:00.25Z"), 1706702400.25)
        self.assertEqual(_rfc3339("1969-12-31T23:59:59Z"), -1)
        self.assertEqual(_rfc3339("0001-01-01T00:00:00Z"), -62135596800)
        self.assertIsNone(_rfc3339("2024-01-31T12:00Z"))

    def test_content_length_unicode_digits(self) -> None:
        """A Content-Length of other scripts' digits is not read as a number (it answered
        500 through str.isdigit): the body is read up to the limit as without one."""
        response, result = self.call(
            "POST",
            "/events/",
            self.alice,
            headers={"Content-Length": ["\u00b2"], "Content-Type": ["application/json"]},
            data=b'{"event": "a.b"}',
        )
        self.assertLess(response.code, 500, result)


class SchemaAgreementTests(APITestCase):
    """The OpenAPI document and the API agree: a body the document's schema accepts is
    accepted, one it refuses is refused (400), for the cases schemathesis found."""

    def verdicts(self, schema_name: str, bodies: Sequence[dict[str, Any]], call: Any) -> None:
        document = openapi_document()
        validator = Draft202012Validator(
            {**document, "$ref": f"#/components/schemas/{schema_name}"},
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        for body in bodies:
            valid = validator.is_valid(body)
            response, answer = call(body)
            if valid:
                self.assertLess(response.code, 300, (body, answer))
            else:
                self.assertEqual(response.code, 400, (body, answer))

    def test_publish(self) -> None:
        """An empty id is refused by both, a null id accepted by both; control characters
        in sender or id refused by both; an integral float sender accepted."""
        bodies: list[dict[str, Any]] = [
            {"event": "a.b", "id": ""},
            {"event": "a.b", "id": None},
            {"event": "a.b", "id": "x\u0001"},
            {"event": "a.b", "sender": "bob\n"},
            {"event": "a.b", "sender": ""},
            {"event": "a.b", "sender": 430.0},
            {"event": "a.b", "sender": 2**63},
            {"event": "a.b", "sender": None},
            {"event": "a.b", "id": "k1"},
        ]
        self.verdicts(
            "Publish", bodies, lambda body: self.call("POST", "/events/", self.alice, body)
        )

    def test_recover(self) -> None:
        """since null (every dead delivery) is accepted by both; an empty string, a
        number in a string and a naive time refused by both."""
        hook = self.subscribe(self.alice)
        bodies: list[dict[str, Any]] = [
            {"since": None},
            {},
            {"since": 0},
            {"since": "2024-01-31T12:00:00Z"},
            {"since": ""},
            {"since": "1700000000"},
            {"since": "2024-01-31T12:00:00"},
            {"since": True},
        ]
        path = f"/hooks/{hook['id']}/recover/"
        self.verdicts("Recover", bodies, lambda body: self.call("POST", path, self.alice, body))

    def test_hook_fields(self) -> None:
        """Control characters in hmac_secret and in header values, header names that are
        not tokens or are the engine's own (in any case) are refused by both."""
        good = {"event": "a.*", "url": "https://example.com/h"}
        bodies: list[dict[str, Any]] = [
            {**good, "hmac_secret": "s\u0001"},
            {**good, "hmac_secret": "s\u0083"},
            {**good, "headers": {"X-A": "\u0004"}},
            {**good, "headers": {"X-A": "\u00c8I1"}},
            {**good, "headers": {'\u0004"': "v"}},
            {**good, "headers": {"X A": "v"}},
            {**good, "headers": {"HOST": "v"}},
            {**good, "headers": {"Webhook-Signature": "v"}},
            {**good, "headers": {"X-Host": "v"}},
            {**good, "rate_limit": 1e-300},
            {**good, "rate_limit": None},
            {**good, "max_concurrency": 295.0},
        ]
        self.verdicts(
            "HookCreate", bodies, lambda body: self.call("POST", "/hooks/", self.alice, body)
        )


class DefinitionTests(APITestCase):
    """Each body is defined once: the rules that check requests are the ones the OpenAPI
    document shows, and names, ranges and patterns come from the webhook layer."""

    def test_patterns_and_lengths_come_from_the_webhook_layer(self) -> None:
        """The event fields' patterns are the grammars of twisted_hooks.webhooks.patterns,
        their length MAX_NAME_LENGTH, and the limits' ranges limit_range()'s."""
        schemas = openapi_document()["components"]["schemas"]
        for body in ("HookCreate", "HookUpdate", "Hook"):
            event = schemas[body]["properties"]["event"]
            self.assertEqual(event["pattern"], f"^{PATTERN_GRAMMAR}$")
            self.assertEqual(event["maxLength"], MAX_NAME_LENGTH)
            for name in ("max_concurrency", "rate_limit"):
                shown = schemas[body]["properties"][name]
                self.assertEqual((shown["minimum"], shown["maximum"]), limit_range(name))
        publish = schemas["Publish"]["properties"]["event"]
        self.assertEqual(publish["pattern"], f"^{NAME_GRAMMAR}$")
        self.assertEqual(publish["maxLength"], MAX_NAME_LENGTH)

    def test_read_only_fields_are_the_representations_others(self) -> None:
        """A body may send back every field of a subscription's representation that it
        cannot write (ignored), and nothing else: the read-only set is the representation
        minus the writable fields, not a list of its own."""
        schemas = openapi_document()["components"]["schemas"]
        read_only = set(schemas["Hook"]["properties"]) - set(schemas["HookUpdate"]["properties"])
        self.assertEqual(
            read_only,
            {"id", "user", "previous_secrets", "created_at", "updated_at", "subscription"},
        )
        hook = self.subscribe(self.alice)
        response, body = self.call("PATCH", f"/hooks/{hook['id']}/", self.alice, hook)
        self.assertEqual(response.code, 200, body)
        response, body = self.call(
            "PATCH", f"/hooks/{hook['id']}/", self.alice, {**hook, "colour": "red"}
        )
        self.assertError(response, body, 400, "invalid")
        self.assertEqual(body["field"], "colour")
        self.assertIn("'colour'", body["detail"])

    def test_answers_have_exactly_their_schema_fields(self) -> None:
        """A subscription, a delivery, its attempts and a publication are answered with
        exactly the properties their schemas list."""
        schemas = openapi_document()["components"]["schemas"]
        hook = self.subscribe(self.alice)
        self.assertEqual(set(hook), set(schemas["Hook"]["properties"]))
        published = self.publish(self.alice)
        self.assertEqual(set(published), set(schemas["Published"]["properties"]))
        _, (delivery,) = self.call("GET", "/deliveries/", self.alice)
        self.assertEqual(set(delivery), set(schemas["Delivery"]["properties"]))
        _, detail = self.call("GET", f"/deliveries/{delivery['id']}/", self.alice)
        (attempt,) = detail["attempts"]
        self.assertEqual(set(attempt), set(schemas["Attempt"]["properties"]))

    def test_required_fields_are_named(self) -> None:
        """A body missing a required field is a 400 naming it, whichever field is
        missing."""
        for body, missing in (
            ({"url": "https://example.com/h"}, "event"),
            ({"event": "a.*"}, "url"),
        ):
            response, error = self.call("POST", "/hooks/", self.alice, body)
            self.assertError(response, error, 400, "invalid")
            self.assertEqual(
                (error["field"], error["detail"]), (missing, f"{missing} is required")
            )
        response, error = self.call("POST", "/events/", self.alice, {"data": 1})
        self.assertEqual((response.code, error["field"]), (400, "event"))

    def test_subscribing_goes_through_hooks_subscribe(self) -> None:
        """POST /hooks/ makes the subscription with Hooks.subscribe (the one path, with
        the application's validation), owned by the token's owner."""
        calls: list[dict[str, Any]] = []
        subscribe = self.hooks.subscribe

        def recording(*args: Any, **fields: Any) -> Any:
            calls.append(fields)
            return subscribe(*args, **fields)

        self.hooks.subscribe = recording  # type: ignore[method-assign]
        hook = self.subscribe(self.alice, hmac_digest="sha512")
        (fields,) = calls
        self.assertEqual(
            (fields["event"], fields["owner"], fields["digest"]), ("article.*", "alice", "sha512")
        )
        stored = self.successResultOf(self.store.subscribers.get(hook["id"]))
        self.assertEqual(stored.digest, "sha512")

    def test_max_request_body_is_the_configuration_default(self) -> None:
        """MAX_REQUEST_BODY is the configuration's default max_request_body (one
        definition), and the API's default limit."""
        self.assertEqual(MAX_REQUEST_BODY, ServiceConfig().max_request_body)
        api = HooksAPI(self.hooks, self.store, self.clock)
        self.addCleanup(api.close)
        self.assertEqual(api._max_body, MAX_REQUEST_BODY)


@attrs.frozen(kw_only=True)
class _Sample:
    """A made-up body for the walker's tests."""

    name: str = rule(Text(8, description="a short name"), required=True)
    flag: bool = rule(Boolean())
    count: int = rule(Count(1, 5, 2), default=2, doc="how many")


class WalkerTests(SynchronousTestCase):
    """The generic walker over attrs classes whose fields carry rules, on a made-up
    body."""

    def test_schema(self) -> None:
        """object_schema lists each field's rule's schema, the required fields, and
        closes the object on demand; parameters gives query parameters with their
        descriptions."""
        self.assertEqual(
            object_schema(_Sample, closed=True),
            {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {
                        "type": "string",
                        "maxLength": 8,
                        "minLength": 1,
                        "not": {"type": "string", "pattern": "[\\u0000-\\u001f\\u007f]"},
                        "description": "a short name",
                    },
                    "flag": {"type": "boolean"},
                    "count": {"type": "integer", "minimum": 1, "maximum": 5, "default": 2},
                },
                "additionalProperties": False,
            },
        )
        self.assertNotIn("additionalProperties", object_schema(_Sample))
        self.assertEqual(object_schema(_Sample, required=["flag"])["required"], ["flag"])
        count = parameters(_Sample)[2]
        self.assertEqual(
            (count["name"], count["in"], count["description"]), ("count", "query", "how many")
        )

    def test_load(self) -> None:
        """load gives the checked values of the fields given (with the defaults when
        asked), and refuses a missing, unknown or invalid field with a 400 naming it."""
        self.assertEqual(load(_Sample, {"name": "ab"}), {"name": "ab"})
        self.assertEqual(
            load(_Sample, {"name": "ab", "count": "3"}, defaults=True),
            {"name": "ab", "count": 3, "flag": None},
        )
        self.assertEqual(load(_Sample, {"name": "ab", "id": 1}, ignored=["id"]), {"name": "ab"})
        for given, field, words in [
            ({}, "name", "name is required"),
            ({"name": "ab", "colour": 1}, "colour", "unknown field 'colour'"),
            ({"name": "abcdefghi"}, "name", "at most 8 characters"),
            ({"name": "a\x00"}, "name", "control characters"),
            ({"name": "ab", "flag": 1}, "flag", "true or false"),
            ({"name": "ab", "count": "9"}, "count", "from 1 to 5"),
            ({"name": "ab", "count": "٣"}, "count", "ASCII digits"),
        ]:
            with self.assertRaises(APIError) as raised:
                load(_Sample, given)
            error = raised.exception
            self.assertEqual((error.status, error.field), (400, field), given)
            self.assertIn(words, error.detail)


class OpenAPIGoldenTests(SynchronousTestCase):
    """The published OpenAPI document against the copy kept in ``tests/golden/``: a change
    to the schema is deliberate, made with the golden file in the same commit."""

    golden = HERE / "golden" / "openapi.json"

    def test_document_is_the_golden_one(self) -> None:
        """openapi_document() is exactly tests/golden/openapi.json (whose info.version is
        the placeholder VERSION, as versions change with every release)."""
        from twisted_hooks import __version__

        document = openapi_document()
        self.assertEqual(document["info"]["version"], __version__)
        document["info"]["version"] = "VERSION"
        expected = json.loads(self.golden.read_text(encoding="utf-8"))
        # Through JSON, as it is served: tuples become lists, keys strings.
        served = json.loads(json.dumps(document))
        self.assertEqual(
            served,
            expected,
            "the OpenAPI document changed; if on purpose, rewrite tests/golden/openapi.json "
            "(info.version as VERSION) in the same commit and say why",
        )

    def test_base_url_is_the_one_server(self) -> None:
        """Only the servers entry depends on base_url; the rest is the golden document."""
        document = openapi_document("https://hooks.example.com")
        self.assertEqual(document["servers"], [{"url": "https://hooks.example.com"}])
        self.assertEqual(
            {k: v for k, v in document.items() if k != "servers"},
            {k: v for k, v in openapi_document().items() if k != "servers"},
        )


class URLTests(APITestCase):
    """The URLs of answers, and URLs that are not UTF-8."""

    def test_non_utf8_path(self) -> None:
        """A path that is not UTF-8 (which Klein answered in plain text) is a JSON 400
        malformed_url, with the JSON content type, counted in the metrics."""
        for path in ("/hooks/%ff/", "/%ff", "/deliveries/%c3%28/", "/healthz%80"):
            response, error = self.call("GET", path, self.alice)
            self.assertError(response, error, 400, "malformed_url")
            self.assertIn("path", error["detail"])
            (kind,) = response.headers.getRawHeaders(b"content-type")
            self.assertTrue(kind.startswith(b"application/json"))
        self.assertIn(
            'twisted_hooks_api_requests_total{code="400",method="GET"} 4.0',
            self.api.metrics.render().decode(),
        )

    def test_non_utf8_host(self) -> None:
        """A Host header that is not UTF-8 is a JSON 400 malformed_url naming it."""
        response, error = self.call(
            "GET", "/hooks/", self.alice, headers={"Host": [b"\xff.example"]}
        )
        self.assertError(response, error, 400, "malformed_url")
        self.assertIn("Host", error["detail"])

    def test_forged_host_never_echoed(self) -> None:
        """Without base_url, a forged Host header appears in no answer: Location,
        subscription and delivery URLs start with the address the request came in on."""
        forged = {"Host": ["evil.example"]}
        response, hook = self.call(
            "POST",
            "/hooks/",
            self.alice,
            {"event": "article.*", "url": "https://example.com/h"},
            headers=forged,
        )
        self.assertEqual(response.code, 201)
        self.assertEqual(hook["subscription"], f"http://127.0.0.1/hooks/{hook['id']}/")
        self.publish(self.alice)
        for path in ("/hooks/", f"/hooks/{hook['id']}/", "/deliveries/"):
            response, answer = self.call("GET", path, self.alice, headers=forged)
            self.assertEqual(response.code, 200)
            self.assertNotIn("evil", json.dumps(answer))
        _, (delivery,) = self.call("GET", "/deliveries/", self.alice, headers=forged)
        self.assertTrue(delivery["delivery"].startswith("http://127.0.0.1/deliveries/"))

    def test_redirect_does_not_echo_host(self) -> None:
        """werkzeug's redirect of a path with doubled slashes goes to the base URL, not to
        the Host header."""
        response, answer = self.call(
            "GET", "//hooks//", self.alice, headers={"Host": ["evil.example"]}
        )
        for value in response.headers.getRawHeaders(b"location", []):
            self.assertNotIn(b"evil", value)
        self.assertNotIn("evil", json.dumps(answer))

    def test_listening_address(self) -> None:
        """listening_on gives the base of the URLs (IPv6 in brackets, default ports
        left out); a wildcard address gives way to the address of the connection."""
        for address, base in [
            (IPv4Address("TCP", "10.0.0.5", 8080), "http://10.0.0.5:8080"),
            (IPv4Address("TCP", "10.0.0.5", 80), "http://10.0.0.5"),
            (IPv6Address("TCP", "::1", 8000), "http://[::1]:8000"),
            (IPv4Address("TCP", "0.0.0.0", 8000), "http://127.0.0.1"),
            (IPv6Address("TCP", "::", 8000), "http://127.0.0.1"),
        ]:
            self.api.listening_on(address)
            hook = self.subscribe(self.alice)
            self.assertEqual(hook["subscription"], f"{base}/hooks/{hook['id']}/")

    def test_base_url_checked(self) -> None:
        """base_url must be an http(s) URL without user info, query or fragment; its
        trailing slash is dropped."""
        for bad in ("ftp://x.example", "https://u:p@x.example", "https://x.example/?q", "x"):
            with self.assertRaises(ValueError, msg=bad) as raised:
                HooksAPI(self.hooks, self.store, self.clock, base_url=bad)
            self.assertIn("base_url", str(raised.exception))
        api = HooksAPI(self.hooks, self.store, self.clock, base_url="https://h.example/api/")
        self.treq = StubTreq(api.resource())
        hook = self.subscribe(self.alice)
        self.assertEqual(hook["subscription"], f"https://h.example/api/hooks/{hook['id']}/")
        self.successResultOf(api.close())


class SchemathesisTests(TestCase):
    """Acceptance: schemathesis, driven by /openapi.json, finds nothing on a real server:
    no 5xx, and the API and its document agree (every check)."""

    def test_every_check(self) -> None:
        """A real server in a child process passes every schemathesis check (--checks
        all): no 5xx, answers as documented, schema-valid requests accepted, invalid ones
        refused."""
        schemathesis = shutil.which("schemathesis", path=os.path.dirname(sys.executable))
        self.assertIsNotNone(schemathesis, "schemathesis is not installed")
        assert schemathesis is not None
        workdir = self.mktemp()
        os.makedirs(workdir)
        log = Path(workdir) / "server.log"
        with log.open("w") as errors:
            # The server's log goes to a file: a pipe nobody reads would fill and block it.
            server = subprocess.Popen(
                [sys.executable, str(HERE / "api_server.py")],
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        try:
            assert server.stdout is not None
            ready = json.loads(server.stdout.readline())
            url = f"http://127.0.0.1:{ready['port']}"
            run = subprocess.run(
                [
                    schemathesis,
                    "run",
                    f"{url}/openapi.json",
                    "--header",
                    f"Authorization: Bearer {ready['token']}",
                    "--checks",
                    "all",
                    "--max-examples",
                    "25",
                    "--seed",
                    "1",
                    "--workers",
                    "1",
                    "--generation-database",
                    "none",
                    "--no-color",
                    "--request-timeout",
                    "10",
                ],
                capture_output=True,
                text=True,
                timeout=300,
                cwd=workdir,
            )
            self.assertEqual(run.returncode, 0, run.stdout[-6000:] + run.stderr[-3000:])
        finally:
            server.terminate()
            server.communicate(timeout=30)
        self.assertNotIn("Traceback", log.read_text())
