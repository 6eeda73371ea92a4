"""
The routes of the HTTP API: :class:`HooksAPI`, a Klein application over a running
:class:`~twisted_hooks.webhooks.app.Hooks`. Requests are checked against the bodies of
:mod:`twisted_hooks.service._schemas`, and the work is done by the application's public
methods.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import attrs
from klein import Klein
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from twisted_hooks.interfaces import ITokenStore
from twisted_hooks.service._access import Access, authenticate
from twisted_hooks.service._errors import APIError, invalid, not_found
from twisted_hooks.service._metrics import HooksMetrics
from twisted_hooks.service._openapi import openapi_document
from twisted_hooks.service._requests import (
    address_url,
    header,
    json_body,
    origin,
    query,
    set_header,
    set_status,
)
from twisted_hooks.service._rules import fields_of, load
from twisted_hooks.service._schemas import (
    AttemptOut,
    DeliveryOut,
    DeliveryQuery,
    Health,
    HookExtra,
    HookFields,
    Publish,
    Published,
    Recover,
    Recovered,
    next_cursor,
    subscriber_fields,
    subscriber_id,
)
from twisted_hooks.service._times import finite, isotime
from twisted_hooks.service.config import SERVICE_ADVICE, ServiceConfig, check_base_url
from twisted_hooks.store.base import Store
from twisted_hooks.webhooks.app import Hooks, HooksNotRunning
from twisted_hooks.webhooks.delivery import Attempt, Delivery
from twisted_hooks.webhooks.encoding import EncodingError
from twisted_hooks.webhooks.subscribers import Subscriber, SubscriberNotFound, limit_range
from twisted_hooks.webhooks.validators import SecurityError

__all__ = ["HEALTH_TIMEOUT", "MAX_REQUEST_BODY", "HooksAPI", "routes"]

_log = Logger(namespace="twisted_hooks.service.api")

#: The default body limit, in bytes: the configuration's default ``max_request_body``.
MAX_REQUEST_BODY: int = attrs.fields(ServiceConfig).max_request_body.default or 0
#: Seconds ``/healthz`` waits for the store before answering 503.
HEALTH_TIMEOUT = 5.0

_HOOK_FIELDS = frozenset(fields_of(HookFields, HookExtra))


def _canonical_id(value: str) -> str | None:
    """An id (of a subscription or a delivery: both are UUIDs) in canonical form, by the
    subscriptions' id rule; ``None`` for text that is no id."""
    try:
        return subscriber_id(value)
    except ValueError:
        return None


def _effective_limit(name: str, value: object) -> object:
    """A stored limit as the gate applies it: brought into its range."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return value
    low, high = limit_range(name)
    return min(max(value, low), high)


def _attempt_json(attempt: Attempt) -> dict[str, Any]:
    shown = AttemptOut(
        number=attempt.number,
        started_at=isotime(attempt.started_at),
        duration=attempt.duration,
        status_code=attempt.status_code,
        error_kind=attempt.error_kind,
        error_message=attempt.error_message,
        response_body=attempt.response_body.decode("utf-8", "replace"),
        retry_after=attempt.retry_after,
    )
    return attrs.asdict(shown, recurse=False)


class HooksAPI:
    """
    The HTTP API (see the module's documentation for the routes).

    :param hooks: the application (running, to publish).
    :param store: the store: its tokens authenticate requests, its delivery role answers
        ``/healthz``.
    :param reactor: the reactor (its clock); the global one if ``None``.
    :param max_request_body: the largest request body accepted, in bytes (413 above).
    :param base_url: the public URL of the API (``https://hooks.example.com``), for the
        ``subscription``, ``delivery`` and ``Location`` URLs (see
        :func:`~twisted_hooks.service.config.check_base_url`); if ``None`` they start with
        the address given to :meth:`listening_on`, else with the address each request
        came in on. Never with the request's ``Host`` header.
    :param health_timeout: seconds ``/healthz`` waits for the store.

    :ivar metrics: the :class:`HooksMetrics` served at ``/metrics``.
    """

    app = Klein()

    def __init__(
        self,
        hooks: Hooks,
        store: Store,
        reactor: IReactorTime | None = None,
        max_request_body: int = MAX_REQUEST_BODY,
        base_url: str | None = None,
        health_timeout: float = HEALTH_TIMEOUT,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        assert reactor is not None
        if isinstance(max_request_body, bool) or max_request_body < 1:
            raise ValueError(f"max_request_body must be at least 1, got {max_request_body!r}")
        if base_url is not None:
            try:
                base_url = check_base_url(base_url)
            except ValueError as error:
                raise ValueError(f"base_url {base_url!r}: {error}") from None
        self._hooks = hooks
        self._store = store
        self._tokens = ITokenStore(store)
        self._reactor = reactor
        self._max_body = max_request_body
        self._base_url = base_url
        self._listening: object = None
        self._health_timeout = health_timeout
        self.metrics = HooksMetrics(hooks)
        self.metrics.start()

    def resource(self) -> IResource:
        """The API as a :class:`twisted.web.resource.IResource`, to serve with a
        :class:`~twisted.web.server.Site`. A request whose path or ``Host`` is not UTF-8
        gets a JSON ``400`` (``malformed_url``) there, as every other error is JSON."""
        return _Decoded(self, self.app.resource())

    def listening_on(self, address: object) -> None:
        """
        Tell the API the address it listens on (the listening port's ``getHost()``), which
        starts the URLs its answers give when no ``base_url`` was given. A wildcard
        address (``0.0.0.0``, ``::``) is replaced, request by request, by the address the
        connection came in on.
        """
        self._listening = address

    def malformed_url(self, request: IRequest) -> bytes | None:
        """
        Answer a request whose path or ``Host`` header is not UTF-8 (which Klein cannot
        route) with a JSON ``400`` (``malformed_url``), and return the body; ``None``
        (and nothing done) for any other request. Request-level wrappers may call it
        before routing.
        """
        parts: list[str] = []
        raw: Any = request
        try:
            bytes(raw.getRequestHostname()).decode("utf-8")
        except UnicodeDecodeError:
            parts.append("the Host header")
        segments = [*(raw.prepath or []), *(raw.postpath or [])]
        try:
            for segment in segments:
                bytes(segment).decode("utf-8")
        except UnicodeDecodeError:
            parts.append("the path")
        if not parts:
            return None
        return self._respond(
            request,
            400,
            {
                "error": "malformed_url",
                "detail": f"{' and '.join(parts)} of the request must be UTF-8 "
                "(percent-encode UTF-8 bytes only)",
            },
        )

    def close(self) -> Deferred[None]:
        """Stop feeding the metrics (remove the dispatcher handler)."""
        return self.metrics.stop()

    # -- plumbing -----------------------------------------------------------------------------

    def _respond(
        self,
        request: IRequest,
        status: int,
        body: object,
        headers: Sequence[tuple[str, str]] = (),
    ) -> bytes:
        set_status(request, status)
        for name, value in headers:
            set_header(request, name.encode("ascii"), value.encode("ascii"))
        self.metrics.request(request.method, status)
        if body is None:
            return b""
        set_header(request, b"content-type", b"application/json; charset=utf-8")
        return json.dumps(finite(body), separators=(",", ":"), allow_nan=False).encode("ascii")

    def _base(self, request: IRequest) -> str:
        if self._base_url is not None:
            return self._base_url
        secure, local = origin(request)
        address = self._listening
        if address is None or getattr(address, "host", "") in ("", "0.0.0.0", "::"):
            address = local
        return address_url(address, secure)

    def _hook_json(self, request: IRequest, subscriber: Subscriber) -> dict[str, Any]:
        data = subscriber.as_dict()
        for name in ("max_concurrency", "rate_limit"):
            data[name] = _effective_limit(name, data[name])
        data["subscription"] = f"{self._base(request)}/hooks/{subscriber.id}/"
        return {name: value for name, value in data.items() if name in _HOOK_FIELDS}

    def _delivery_json(self, request: IRequest, delivery: Delivery) -> dict[str, Any]:
        shown = DeliveryOut(
            id=delivery.id,
            event=delivery.event,
            event_id=delivery.event_id,
            hook=delivery.subscriber.id,
            user=delivery.subscriber.owner,
            url=delivery.subscriber.url,
            status=delivery.status,
            attempt_count=delivery.attempts,
            created_at=isotime(delivery.created_at),
            next_attempt_at=isotime(delivery.next_attempt_at),
            finished_at=isotime(delivery.finished_at),
            last_error=delivery.last_error,
            delivery=f"{self._base(request)}/deliveries/{delivery.id}/",
        )
        return attrs.asdict(shown, recurse=False)

    async def _authenticate(self, request: IRequest, scope: str) -> Access:
        token = await authenticate(self._tokens, header(request, b"authorization"))
        access = Access(token)
        access.check_scope(scope)
        return access

    async def _own_hook(self, auth: Access, hook_id: str) -> Subscriber:
        canonical = _canonical_id(hook_id)
        if canonical is None:
            raise not_found("hook", hook_id)
        try:
            subscriber = await self._hooks.get_subscriber(canonical)
        except SubscriberNotFound:
            raise not_found("hook", hook_id) from None
        if not auth.sees(subscriber.owner):
            raise not_found("hook", hook_id)
        return subscriber

    async def _own_delivery(self, auth: Access, delivery_id: str) -> Delivery:
        canonical = _canonical_id(delivery_id)
        if canonical is None:
            raise not_found("delivery", delivery_id)
        try:
            delivery = await self._hooks.get_delivery(canonical)
        except KeyError:
            raise not_found("delivery", delivery_id) from None
        if not auth.sees(delivery.subscriber.owner):
            raise not_found("delivery", delivery_id)
        return delivery

    # -- errors ---------------------------------------------------------------------------------

    @app.handle_errors(Exception)
    def _failed(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        if isinstance(error, APIError):
            return self._respond(request, error.status, error.body(), error.headers)
        if isinstance(error, RequestRedirect):
            # werkzeug builds new_url from the Host header: keep its path and query only.
            moved = urlsplit(error.new_url)
            target = self._base(request) + moved.path + (f"?{moved.query}" if moved.query else "")
            return self._respond(
                request,
                error.code,
                {"error": "moved", "detail": f"use {target}"},
                [("Location", target)],
            )
        if isinstance(error, MethodNotAllowed):
            allowed = ", ".join(sorted(error.valid_methods or ()))
            return self._respond(
                request,
                405,
                {"error": "method_not_allowed", "detail": f"use one of: {allowed}"},
                [("Allow", allowed)],
            )
        if isinstance(error, NotFound):
            path = request.path.decode("ascii", "replace")
            return self._respond(
                request,
                404,
                {"error": "not_found", "detail": f"no such route {path!r}; see /openapi.json"},
            )
        if isinstance(error, HTTPException):
            code = error.code or 400
            return self._respond(
                request, code, {"error": "http_error", "detail": error.description or ""}
            )
        if isinstance(error, HooksNotRunning):
            return self._respond(
                request,
                503,
                {"error": "unavailable", "detail": "the service is not running; try later"},
                [("Retry-After", "5")],
            )
        _log.failure(
            "the API failed answering {method} {path}",
            failure,
            method=request.method.decode("ascii", "replace"),
            path=request.path.decode("ascii", "replace"),
        )
        return self._respond(
            request, 500, {"error": "internal", "detail": "an internal error; it was logged"}
        )

    # -- /hooks/ --------------------------------------------------------------------------------

    @app.route("/hooks/", methods=["GET"], strict_slashes=False)
    async def list_hooks(self, request: IRequest) -> bytes:
        """``GET /hooks/``: the caller's subscriptions (every one for admin)."""
        auth = await self._authenticate(request, "subscribe")
        owner = None if auth.admin else auth.token.owner
        found = await self._hooks.list_subscribers(owner)
        visible = sorted(found, key=lambda s: (s.created_at, s.id))
        return self._respond(request, 200, [self._hook_json(request, s) for s in visible])

    @app.route("/hooks/", methods=["POST"], strict_slashes=False)
    async def create_hook(self, request: IRequest) -> bytes:
        """``POST /hooks/``: subscribe; 201 with the subscription and its ``Location``."""
        auth = await self._authenticate(request, "subscribe")
        body = json_body(request, self._max_body)
        assert body is not None
        fields = subscriber_fields(body, create=True)
        self._check_recipient(fields["url"])
        fields["owner"] = auth.token.owner
        try:
            subscribed = self._hooks.subscribe(**fields)
        except (ValueError, TypeError) as error:
            raise APIError(400, "invalid", str(error)) from None
        data = self._hook_json(request, await subscribed)
        return self._respond(request, 201, data, [("Location", data["subscription"])])

    def _check_recipient(self, url: str) -> None:
        try:
            self._hooks.settings.policy.check_url(url)
        except SecurityError as error:
            # Worded for the service (its flags and keys), whoever built the policy.
            raise APIError(400, "refused_url", error.explain(SERVICE_ADVICE), "url") from None
        except (ValueError, TypeError, UnicodeError) as error:
            raise invalid("url", f"url is not a valid URL: {error}") from None

    @app.route("/hooks/<string:hook_id>/", methods=["GET"], strict_slashes=False)
    async def get_hook(self, request: IRequest, hook_id: str) -> bytes:
        """``GET /hooks/{id}/``: one subscription."""
        auth = await self._authenticate(request, "subscribe")
        subscriber = await self._own_hook(auth, hook_id)
        return self._respond(request, 200, self._hook_json(request, subscriber))

    @app.route("/hooks/<string:hook_id>/", methods=["PATCH"], strict_slashes=False)
    async def update_hook(self, request: IRequest, hook_id: str) -> bytes:
        """``PATCH /hooks/{id}/``: change some fields; ``"active": true`` reactivates a
        deactivated subscription and forgets its endpoint's failures."""
        auth = await self._authenticate(request, "subscribe")
        subscriber = await self._own_hook(auth, hook_id)
        body = json_body(request, self._max_body)
        assert body is not None
        fields = subscriber_fields(body)
        if "url" in fields:
            self._check_recipient(fields["url"])
        try:
            updated = self._hooks.update_subscriber(subscriber, **fields)
        except (ValueError, TypeError) as error:
            raise APIError(400, "invalid", str(error)) from None
        try:
            subscriber = await updated
        except SubscriberNotFound:
            raise not_found("hook", hook_id) from None
        return self._respond(request, 200, self._hook_json(request, subscriber))

    @app.route("/hooks/<string:hook_id>/", methods=["DELETE"], strict_slashes=False)
    async def delete_hook(self, request: IRequest, hook_id: str) -> bytes:
        """``DELETE /hooks/{id}/``: unsubscribe; 204."""
        auth = await self._authenticate(request, "subscribe")
        subscriber = await self._own_hook(auth, hook_id)
        try:
            await self._hooks.unsubscribe(subscriber.id)
        except SubscriberNotFound:
            raise not_found("hook", hook_id) from None
        return self._respond(request, 204, None)

    @app.route("/hooks/<string:hook_id>/recover/", methods=["POST"], strict_slashes=False)
    async def recover_hook(self, request: IRequest, hook_id: str) -> bytes:
        """``POST /hooks/{id}/recover/``: attempt again the subscription's dead deliveries
        made at or after ``since`` (every one without it); 202 with how many."""
        auth = await self._authenticate(request, "subscribe")
        subscriber = await self._own_hook(auth, hook_id)
        body = load(Recover, json_body(request, self._max_body, required=False) or {})
        since = body.get("since")
        count = await self._hooks.recover(subscriber.id, 0.0 if since is None else since)
        return self._respond(request, 202, attrs.asdict(Recovered(recovered=count)))

    # -- /events/ -------------------------------------------------------------------------------

    @app.route("/events/", methods=["POST"], strict_slashes=False)
    async def publish(self, request: IRequest) -> bytes:
        """``POST /events/``: publish an event; 202 with how many deliveries it made."""
        auth = await self._authenticate(request, "publish")
        given = json_body(request, self._max_body)
        assert given is not None
        body = load(Publish, given)
        name = body["event"]
        sender = body.get("sender", auth.token.owner)
        event_id = body.get("id")
        try:
            sent = self._hooks.send(name, body.get("data"), sender, event_id=event_id)
        except EncodingError as error:
            raise invalid("data", str(error)) from None
        except RecursionError:
            raise invalid("data", "data is nested too deeply") from None
        except ValueError as error:
            raise invalid("event", str(error)) from None
        result = await sent
        published = Published(
            id=result.event.id,
            deliveries=len(result.deliveries),
            duplicate=result.duplicate,
            skipped=len(result.skipped),
        )
        return self._respond(request, 202, attrs.asdict(published))

    # -- /deliveries/ ---------------------------------------------------------------------------

    @app.route("/deliveries/", methods=["GET"], strict_slashes=False)
    async def list_deliveries(self, request: IRequest) -> bytes:
        """``GET /deliveries/?status=&hook=&since=&limit=&after=``: the delivery log of the
        caller's subscriptions (of every subscription for admin), newest first, one query;
        a full page has a ``Link`` header to the next one."""
        auth = await self._authenticate(request, "subscribe")
        given = query(request, DeliveryQuery)
        asked = load(DeliveryQuery, given, defaults=True)
        hook, limit = asked["hook"], asked["limit"]
        among: list[str] | None = None
        if hook is not None and not auth.admin:
            await self._own_hook(auth, hook)
        elif hook is None and not auth.admin:
            among = [s.id for s in await self._hooks.list_subscribers(auth.token.owner)]
        found = await self._hooks.list_deliveries(
            asked["status"],
            hook,
            limit,
            asked["since"],
            subscriber_ids=among,
            after=asked["after"],
        )
        headers = []
        cursor = next_cursor(found[-1]) if len(found) >= limit else None
        if cursor is not None:
            following = urlencode({**given, "after": cursor})
            headers.append(
                ("Link", f'<{self._base(request)}/deliveries/?{following}>; rel="next"')
            )
        visible = [self._delivery_json(request, d) for d in found if auth.sees(d.subscriber.owner)]
        return self._respond(request, 200, visible, headers)

    @app.route("/deliveries/<string:delivery_id>/", methods=["GET"], strict_slashes=False)
    async def get_delivery(self, request: IRequest, delivery_id: str) -> bytes:
        """``GET /deliveries/{id}/``: one delivery with its attempts."""
        auth = await self._authenticate(request, "subscribe")
        delivery = await self._own_delivery(auth, delivery_id)
        attempts = await self._hooks.delivery_attempts(delivery.id)
        data = self._delivery_json(request, delivery)
        data["attempts"] = [_attempt_json(a) for a in attempts]
        return self._respond(request, 200, data)

    @app.route("/deliveries/<string:delivery_id>/retry/", methods=["POST"], strict_slashes=False)
    async def retry_delivery(self, request: IRequest, delivery_id: str) -> bytes:
        """``POST /deliveries/{id}/retry/``: attempt a dead delivery again; 202 with it,
        409 when it is not dead."""
        auth = await self._authenticate(request, "subscribe")
        delivery = await self._own_delivery(auth, delivery_id)
        json_body(request, self._max_body, required=False)
        try:
            revived = await self._hooks.retry(delivery.id)
        except KeyError:
            raise not_found("delivery", delivery_id) from None
        except ValueError as error:
            raise APIError(409, "conflict", str(error)) from None
        return self._respond(request, 202, self._delivery_json(request, revived))

    # -- operations -----------------------------------------------------------------------------

    @app.route("/healthz", methods=["GET"])
    async def healthz(self, request: IRequest) -> bytes:
        """``GET /healthz``: 200 when the store answers within the health timeout and the
        application runs; 503 otherwise. No token needed."""
        store_ok = True
        asked: Deferred[float | None] = self._store.deliveries.next_due()
        asked.addTimeout(self._health_timeout, self._reactor)
        try:
            await asked
        except Exception as error:
            store_ok = False
            _log.warn("health check: the store did not answer: {error}", error=repr(error))
        running = bool(self._hooks.running)
        healthy = store_ok and running
        health = Health(
            status="ok" if healthy else "unavailable",
            store="ok" if store_ok else "unavailable",
            running=running,
        )
        return self._respond(request, 200 if healthy else 503, attrs.asdict(health))

    @app.route("/metrics", methods=["GET"])
    async def metrics_text(self, request: IRequest) -> bytes:
        """``GET /metrics``: the Prometheus text exposition. No token needed."""
        try:
            await self.metrics.refresh(self._reactor.seconds())
        except Exception as error:
            _log.warn("metrics: the store did not answer: {error}", error=repr(error))
        self._respond(request, 200, None)
        set_header(request, b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return self.metrics.render()

    @app.route("/openapi.json", methods=["GET"])
    def openapi(self, request: IRequest) -> bytes:
        """``GET /openapi.json``: the OpenAPI 3.1 description of the API."""
        return self._respond(request, 200, openapi_document(self._base_url))


class _Decoded(Resource):
    """The API's resource, behind a check that the request's path and ``Host`` are UTF-8
    (Klein answers a plain-text 400 otherwise)."""

    isLeaf = True

    def __init__(self, api: HooksAPI, routed: IResource) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._api = api
        self._routed = routed

    def render(self, request: IRequest) -> Any:
        """Answer a malformed URL; hand every other request to the routes."""
        refused = self._api.malformed_url(request)
        if refused is not None:
            return refused
        routed: Any = self._routed
        return routed.render(request)


def routes() -> list[tuple[str, str]]:
    """Every ``(METHOD, path)`` :class:`HooksAPI` serves, paths in OpenAPI form."""
    found: list[tuple[str, str]] = []
    for rule in HooksAPI.app.url_map.iter_rules():
        path = re.sub(r"<[^>]+>", "{id}", rule.rule)
        for method in sorted(rule.methods or ()):
            if method not in ("HEAD", "OPTIONS"):
                found.append((method, path))
    return sorted(found)
