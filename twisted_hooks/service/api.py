"""
The HTTP API of the service: subscriptions, publishing, the delivery log, health, metrics.

:class:`HooksAPI` is a `Klein <https://klein.readthedocs.io/>`_ application over a running
:class:`~twisted_hooks.webhooks.app.Hooks` and its :class:`~twisted_hooks.store.Store`;
serve :meth:`HooksAPI.resource` with :class:`twisted.web.server.Site`.

=======  ==============================  =========  ==========================================
Method   Path                            Scope      What
=======  ==============================  =========  ==========================================
GET      ``/hooks/``                     subscribe  the caller's subscriptions (admin: all)
POST     ``/hooks/``                     subscribe  subscribe (201, ``Location``)
GET      ``/hooks/{id}/``                subscribe  one subscription
PATCH    ``/hooks/{id}/``                subscribe  change fields; ``active`` reactivates
DELETE   ``/hooks/{id}/``                subscribe  unsubscribe (204)
POST     ``/hooks/{id}/recover/``        subscribe  attempt its dead deliveries again (202)
POST     ``/events/``                    publish    publish an event (202)
GET      ``/deliveries/``                subscribe  the delivery log of the caller's hooks
GET      ``/deliveries/{id}/``           subscribe  one delivery with its attempts
POST     ``/deliveries/{id}/retry/``     subscribe  attempt a dead delivery again (202)
GET      ``/healthz``                    (none)     200 when the store answers, else 503
GET      ``/metrics``                    (none)     Prometheus text exposition
GET      ``/openapi.json``               (none)     the OpenAPI 3.1 description of all this
=======  ==============================  =========  ==========================================

Every request but the last three carries ``Authorization: Bearer TOKEN``; tokens are made
with :func:`twisted_hooks.service.tokens.create_token` (``twisted-hooks token create``) and
stored hashed. The ``admin`` scope allows everything, and sees every user's subscriptions
and deliveries. Subscriptions made through the API belong to the token's ``owner``; a
user never sees another user's: their ids answer 404, as unknown ids do.

Published events are sent as the token's owner unless the body names a ``sender``
(``null`` for none): a subscription receives the events of its owner only (Thorn's rule),
so ``publish`` is a trusted scope, for the applications that publish on behalf of users.

Bodies are JSON (``Content-Type: application/json``), at most ``max_request_body`` bytes.
Errors are ``{"error": CODE, "detail": TEXT}``, plus ``"field"`` naming the offending
field or query parameter for a 400; a request whose URL is not UTF-8 gets one too. Numbers
in query strings are ASCII digits. Times are answered as RFC 3339 text in UTC, clamped to
the years 1 to 9999 (``null`` when a stored time is not a number), and non-finite numbers
as ``null``, so that no stored row can make an answer fail.

The URLs an answer gives (``Location``, ``subscription``, ``delivery``) start with the
``base_url`` given, else with the address the service listens on (the address the
connection came in on, for a wildcard address): never with the request's ``Host``
header, which a client chooses.

``/metrics`` and ``/healthz`` need no token, as Prometheus scrapers and load balancers
expect: they show counts and ages only (no ids, URLs, owners or payloads). Bind the
listener to a private interface, or filter ``/metrics`` at the proxy, to keep even those
private.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

import attrs
from klein import Klein
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from twisted_hooks._numbers import DECIMAL, decimal, whole
from twisted_hooks.interfaces import ITokenStore
from twisted_hooks.service.config import SERVICE_ADVICE, check_base_url
from twisted_hooks.service.tokens import token_hash
from twisted_hooks.store.base import Store
from twisted_hooks.store.tokens import Token
from twisted_hooks.webhooks.app import OPERATIONAL, Hooks, HooksNotRunning, OperationalEvent
from twisted_hooks.webhooks.delivery import (
    DEAD,
    DELIVERED,
    STATUSES,
    Attempt,
    Delivery,
    DeliveryUpdate,
)
from twisted_hooks.webhooks.encoding import CONTENT_TYPES, EncodingError
from twisted_hooks.webhooks.health import OPEN
from twisted_hooks.webhooks.patterns import MAX_NAME_LENGTH
from twisted_hooks.webhooks.subscribers import (
    DIGESTS,
    RESERVED_HEADERS,
    Subscriber,
    SubscriberNotFound,
    limit_range,
)
from twisted_hooks.webhooks.validators import SecurityError

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "MAX_REQUEST_BODY",
    "PUBLIC_PATHS",
    "APIError",
    "HooksAPI",
    "HooksMetrics",
    "authenticate",
    "needs_token",
    "openapi_document",
    "routes",
    "too_large",
]

_log = Logger(namespace="twisted_hooks.service.api")

#: The default body limit, in bytes (1 MiB).
MAX_REQUEST_BODY = 1024 * 1024
#: How many deliveries ``GET /deliveries/`` returns unless ``limit`` says otherwise.
DEFAULT_LIMIT = 100
#: The most deliveries ``GET /deliveries/`` returns.
MAX_LIMIT = 1000
#: Seconds ``/healthz`` waits for the store before answering 503.
HEALTH_TIMEOUT = 5.0
#: The paths served without a token; every other path needs ``Authorization: Bearer``.
PUBLIC_PATHS: frozenset[str] = frozenset({"/healthz", "/metrics", "/openapi.json"})

_JSON = b"application/json"
_BEARER_REALM = 'Bearer realm="twisted_hooks"'
_MAX_URL = 2048
_MAX_TEXT = 255
_MAX_SECRET = 512
_MAX_HEADERS = 32
_MAX_HEADER_VALUE = 1024
# Text fields hold no control characters (C0 and DEL): the rule of _text, in the OpenAPI
# document. Said as "no match anywhere" rather than "^[^...]*$", whose $ Python's re (and
# so Python's JSON Schema validators) also matches before a final line break. (_text also
# refuses lone surrogates, which UTF-8 cannot encode; a pattern cannot name them.)
_NO_CONTROLS: dict[str, Any] = {"not": {"type": "string", "pattern": "[\\u0000-\\u001f\\u007f]"}}
_HEADER_NAME = "^[A-Za-z0-9_-]+$"
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# The times datetime can show: 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
_EARLIEST = -62_135_596_800
_LATEST = 253_402_300_799
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_NAME_PATTERN = r"^[A-Za-z0-9_:\-]+(\.[A-Za-z0-9_:\-]+)*$"
_EVENT_PATTERN = r"^([A-Za-z0-9_:\-]+|\*)(\.([A-Za-z0-9_:\-]+|\*))*$"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Writable subscription fields: API name -> Subscriber attribute.
_WRITABLE: dict[str, str] = {
    "event": "event",
    "url": "url",
    "content_type": "content_type",
    "hmac_digest": "digest",
    "hmac_secret": "secret",
    "active": "active",
    "headers": "headers",
    "max_concurrency": "max_concurrency",
    "rate_limit": "rate_limit",
}
# Fields of a subscription's representation that a body may carry back unchanged (as DRF
# ignores read-only fields): ignored.
_READ_ONLY = frozenset(
    {"id", "user", "created_at", "updated_at", "subscription", "previous_secrets"}
)
_PUBLISH_FIELDS = frozenset({"event", "data", "sender", "id"})


class APIError(Exception):
    """
    A request the API refuses: answered with ``status`` and a JSON error body.

    :param status: the HTTP status code.
    :param code: a stable, machine-readable error code (``"invalid"``, ``"not_found"``...).
    :param detail: what was wrong and what to do, for people.
    :param field: the body field or query parameter at fault (for a 400), or ``None``.
    :param headers: extra response headers, as ``(name, value)`` pairs.
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        field: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.headers = tuple(headers)

    def body(self) -> dict[str, str]:
        """The JSON error body: ``error``, ``detail`` and, when known, ``field``."""
        result = {"error": self.code, "detail": self.detail}
        if self.field is not None:
            result["field"] = self.field
        return result


# IRequest's methods are not annotated: these typed helpers call them.
def _header(request: IRequest, name: bytes) -> bytes | None:
    raw: Any = request
    value: bytes | None = raw.getHeader(name)
    return value


def _set_header(request: IRequest, name: bytes, value: bytes) -> None:
    raw: Any = request
    raw.setHeader(name, value)


def _set_status(request: IRequest, code: int) -> None:
    raw: Any = request
    raw.setResponseCode(code)


def _origin(request: IRequest) -> tuple[bool, object]:
    raw: Any = request
    return bool(raw.isSecure()), raw.getHost()


def needs_token(path: bytes) -> bool:
    """
    Whether a request for ``path`` must carry a valid token: every path but those of
    :data:`PUBLIC_PATHS` (unknown paths included).

    :param path: the request target as sent, with or without its query string.
    """
    target = path.split(b"?", 1)[0]
    return target.decode("ascii", "replace") not in PUBLIC_PATHS


async def authenticate(tokens: ITokenStore, authorization: bytes | None) -> Token:
    """
    The active token an ``Authorization`` header names; its scopes are not checked.

    :param tokens: the store of tokens.
    :param authorization: the header's value, or ``None`` when the request has none.
    :raises APIError: a 401, with ``WWW-Authenticate``: ``unauthorized`` for a missing or
        malformed header, ``invalid_token`` for an unknown or revoked token.
    """
    if authorization is None:
        raise APIError(
            401,
            "unauthorized",
            "this request needs an API token: send 'Authorization: Bearer TOKEN'",
            headers=[("WWW-Authenticate", _BEARER_REALM)],
        )
    scheme, _, text = authorization.partition(b" ")
    text = text.strip()
    if scheme.lower() != b"bearer" or not text:
        raise APIError(
            401,
            "unauthorized",
            "the Authorization header must be 'Bearer TOKEN'",
            headers=[("WWW-Authenticate", _BEARER_REALM)],
        )
    invalid = APIError(
        401,
        "invalid_token",
        "the API token is unknown or revoked; ask the operator for a new one",
        headers=[("WWW-Authenticate", _BEARER_REALM + ', error="invalid_token"')],
    )
    try:
        decoded = text.decode("ascii")
    except UnicodeDecodeError:
        raise invalid from None
    token = await tokens.token_by_hash(token_hash(decoded))
    if token is None or not token.active:
        raise invalid
    return token


def too_large(limit: int) -> APIError:
    """The 413 ``too_large`` error for a body over ``limit`` bytes."""
    return APIError(413, "too_large", f"the body must be at most {limit} bytes long")


def _invalid(field: str, detail: str) -> APIError:
    return APIError(400, "invalid", detail, field)


def _whole(value: object) -> object:
    """A JSON number with no fractional part (``295.0``) as an ``int``, as JSON Schema's
    ``integer`` counts it; anything else unchanged."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _not_found(what: str, value: str) -> APIError:
    return APIError(404, "not_found", f"no {what} with id {value!r}")


def _isotime(seconds: object) -> str | None:
    """
    A stored time (seconds since the epoch) as RFC 3339 text in UTC, whatever was stored:
    a time before the year 1 or after 9999 (infinities included) is shown as the first or
    last second datetime can show; something that is not a number (``None``, NaN, text)
    is ``None``. Never raises.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    if seconds != seconds:  # NaN
        return None
    clamped = min(max(seconds, _EARLIEST), _LATEST)
    moment = _EPOCH + datetime.timedelta(seconds=float(clamped))
    return moment.isoformat().replace("+00:00", "Z")


def _sortable(seconds: object) -> float:
    """A stored time as a number to sort by: what is not a number sorts first."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds != seconds:
        return -math.inf
    return float(min(max(seconds, _EARLIEST), _LATEST))


def _finite(value: object) -> object:
    """``value`` with every non-finite float (which JSON cannot carry) replaced by ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a date of the proleptic Gregorian calendar, any year."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _rfc3339(text: str) -> float | None:
    """
    Seconds since the epoch of an RFC 3339 date-time (``2024-01-31T12:00:00Z``,
    ``2024-01-31t12:00:00.5+01:00``; a leap second ``:60`` is the next second), or
    ``None`` if ``text`` is not one.
    """
    found = _RFC3339.fullmatch(text)
    if found is None:
        return None
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days_in_month = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not 1 <= month <= 12 or not 1 <= day <= days_in_month[month - 1]:
        return None
    if hour > 23 or minute > 59 or second > 60:
        return None
    offset = 0
    zone = found.group(8)
    if zone not in ("Z", "z"):
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            return None
        offset = (hours * 60 + minutes) * 60 * (1 if zone[0] == "+" else -1)
    fraction = float("0" + found.group(7)) if found.group(7) else 0.0
    days = _days_from_civil(year, month, day)
    return days * 86400 + hour * 3600 + minute * 60 + second + fraction - offset


def _time(value: object, field: str, *, query: bool = False) -> float:
    """
    A time given as seconds since the epoch or as an RFC 3339 date-time: in a JSON body, a
    number or a date-time string; in a query string, a number in ASCII digits or a
    date-time.
    """
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
        if not math.isfinite(seconds):
            raise _invalid(field, f"{field} must be a finite number of seconds since the epoch")
        return seconds
    if isinstance(value, str):
        if query and DECIMAL.fullmatch(value.removeprefix("-")):
            seconds = decimal(value, signed=True)
            if seconds is None:
                raise _invalid(
                    field, f"{field} must be a finite number of seconds since the epoch"
                )
            return seconds
        seconds = _rfc3339(value)
        if seconds is not None:
            return seconds
    raise _invalid(
        field,
        f"{field} must be seconds since the epoch (a number) or an RFC 3339 date-time such "
        f"as '2024-01-31T12:00:00Z', got {value!r}",
    )


def _canonical_id(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _text(value: object, field: str, longest: int, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _invalid(field, f"{field} must be a string, got {type(value).__name__}")
    if not empty and not value:
        raise _invalid(field, f"{field} must not be empty")
    if len(value) > longest:
        raise _invalid(field, f"{field} must be at most {longest} characters long")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise _invalid(field, f"{field} must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(field, f"{field} must be valid Unicode text") from None
    return value


def _check_field(name: str, value: object) -> object:
    """Check one writable subscription field with the API's bounds, then
    :class:`Subscriber`'s own converter and validator; return the converted value."""
    if name in ("event", "url", "content_type", "hmac_digest", "hmac_secret"):
        longest = {"url": _MAX_URL, "hmac_secret": _MAX_SECRET}.get(name, MAX_NAME_LENGTH)
        _text(value, name, longest)
    elif name == "active":
        if not isinstance(value, bool):
            raise _invalid(name, "active must be true or false")
    elif name == "headers":
        if not isinstance(value, dict):
            raise _invalid(name, "headers must be an object mapping header names to strings")
        if len(value) > _MAX_HEADERS:
            raise _invalid(name, f"headers may set at most {_MAX_HEADERS} headers")
        for key, text in value.items():
            _text(key, "headers", _MAX_TEXT)
            _text(text, "headers", _MAX_HEADER_VALUE, empty=True)
    elif value is not None:  # max_concurrency, rate_limit
        whole = name == "max_concurrency"
        if whole:
            value = _whole(value)
        low, high = limit_range(name)
        kind = "a whole number" if whole else "a number"
        if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
            raise _invalid(name, f"{name} must be {kind} from {low:g} to {high:g}, or null")
        if not low <= value <= high:
            why = (
                " (a slower limit would hold deliveries back for hours)"
                if name == "rate_limit" and value < low
                else ""
            )
            raise _invalid(
                name, f"{name} must be from {low:g} to {high:g}, or null, got {value!r}{why}"
            )
    attribute = attrs.fields_dict(Subscriber)[_WRITABLE[name]]
    try:
        if attribute.converter is not None:
            value = attribute.converter(value)  # type: ignore[operator]
        if attribute.validator is not None:
            attribute.validator(None, attribute, value)
    except (ValueError, TypeError) as error:
        raise _invalid(name, f"{name}: {error}") from None
    return value


def _subscription_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`Subscriber` keyword arguments a POST or PATCH body gives, checked."""
    fields: dict[str, Any] = {}
    for name, value in body.items():
        if name in _READ_ONLY:
            continue
        if name not in _WRITABLE:
            raise _invalid(
                name,
                f"unknown field {name!r}; a subscription has the fields "
                f"{sorted(_WRITABLE)} (and the read-only {sorted(_READ_ONLY)})",
            )
        fields[_WRITABLE[name]] = _check_field(name, value)
    return fields


def _effective_limit(name: str, value: object) -> object:
    """A stored limit as the gate applies it: brought into its range."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return value
    low, high = limit_range(name)
    return min(max(value, low), high)


def _attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "started_at": _isotime(attempt.started_at),
        "duration": attempt.duration,
        "status_code": attempt.status_code,
        "error_kind": attempt.error_kind,
        "error_message": attempt.error_message,
        "response_body": attempt.response_body.decode("utf-8", "replace"),
        "retry_after": attempt.retry_after,
    }


@attrs.frozen
class _Auth:
    token: Token

    @property
    def admin(self) -> bool:
        return "admin" in self.token.scopes

    def sees(self, owner: str | None) -> bool:
        return self.admin or (owner is not None and owner == self.token.owner)


class HooksMetrics:
    """
    The service's Prometheus metrics, in a :class:`~prometheus_client.CollectorRegistry` of
    their own (never the global one), fed by the application.

    Attempt outcomes come from :meth:`~twisted_hooks.webhooks.app.Hooks.observe_updates`
    (every recorded attempt, successes included); endpoint health changes (circuits opened
    and recovered, endpoints disabled) from the application's operational events, observed
    by a handler on ``hooks.dispatcher`` (``kind="operational"``). Queue depth, the oldest
    due delivery's age and open circuits are read at scrape time (:meth:`refresh`).

    Metrics (every name prefixed ``twisted_hooks_``): ``deliveries_total{outcome}``
    (``delivered``, ``dead``), ``attempts_total{outcome}`` (``succeeded`` or the
    :class:`~twisted_hooks.webhooks.delivery.ErrorKind`), ``attempt_duration_seconds``
    (a histogram, ``outcome`` ``succeeded`` or ``failed``), ``endpoint_events_total{event}``
    (``opened``, ``recovered``, ``disabled``), ``queue_depth{status}`` (deliveries held in
    each status), ``oldest_due_age_seconds``, ``open_circuits``,
    ``api_requests_total{method,code}``.

    :param hooks: the application to observe.
    :ivar registry: the registry to expose.
    """

    #: The histogram's buckets, in seconds: from a fast local receiver to the 10 s deadline.
    BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

    def __init__(self, hooks: Hooks) -> None:
        self._hooks = hooks
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.deliveries = Counter(
            "twisted_hooks_deliveries",
            "Deliveries that ended, by outcome (delivered or dead).",
            ["outcome"],
            registry=registry,
        )
        self.attempts = Counter(
            "twisted_hooks_attempts",
            "HTTP attempts made, by outcome (succeeded, or the kind of failure).",
            ["outcome"],
            registry=registry,
        )
        self.attempt_duration = Histogram(
            "twisted_hooks_attempt_duration_seconds",
            "Duration of HTTP attempts, from start to the end of the body or the failure.",
            ["outcome"],
            buckets=self.BUCKETS,
            registry=registry,
        )
        self.endpoint_events = Counter(
            "twisted_hooks_endpoint_events",
            "Endpoint health changes: circuits opened and recovered, endpoints disabled.",
            ["event"],
            registry=registry,
        )
        self.queue = Gauge(
            "twisted_hooks_queue_depth",
            "Deliveries held by the delivery store, by status (at the last scrape).",
            ["status"],
            registry=registry,
        )
        self.oldest_due = Gauge(
            "twisted_hooks_oldest_due_age_seconds",
            "Seconds since the oldest claimable delivery became due (0 when none is due).",
            registry=registry,
        )
        self.open_circuits = Gauge(
            "twisted_hooks_open_circuits",
            "Endpoints whose circuit breaker is open.",
            registry=registry,
        )
        self.requests = Counter(
            "twisted_hooks_api_requests",
            "HTTP API requests answered, by method and status code.",
            ["method", "code"],
            registry=registry,
        )
        for status in STATUSES:
            self.queue.labels(status=status)
        for outcome in (DELIVERED, DEAD):
            self.deliveries.labels(outcome=outcome)
        self.attempts.labels(outcome="succeeded")
        self._handler_id: int | None = None
        self._unobserve: Callable[[], None] | None = None

    def start(self) -> Deferred[None]:
        """Observe the application's recorded attempts, and its operational events (a
        handler on its dispatcher, in its last phase)."""
        self._unobserve = self._hooks.observe_updates(self.observe)
        dispatcher = self._hooks.dispatcher
        added: Deferred[int] = dispatcher.add_event_handler(
            self._operational, dispatcher.phases[-1], use_weakref=False, kind=OPERATIONAL
        )

        def store(handler_id: int) -> None:
            self._handler_id = handler_id

        return added.addCallback(store)

    def stop(self) -> Deferred[None]:
        """Stop observing the application's attempts and events."""
        unobserve, self._unobserve = self._unobserve, None
        if unobserve is not None:
            unobserve()
        handler_id, self._handler_id = self._handler_id, None
        if handler_id is None:
            return succeed(None)
        removed: Deferred[None] = self._hooks.dispatcher.remove_event_handler(handler_id)
        return removed

    def _operational(self, event: OperationalEvent) -> None:
        if event.name.startswith("webhook.endpoint."):
            self.endpoint_events.labels(event=event.name.rsplit(".", 1)[1]).inc()

    def _attempt(self, attempt: Attempt) -> None:
        outcome = "succeeded" if attempt.succeeded else (attempt.error_kind or "internal")
        self.attempts.labels(outcome=outcome).inc()
        self.attempt_duration.labels(
            outcome="succeeded" if attempt.succeeded else "failed"
        ).observe(max(0.0, attempt.duration))

    def observe(self, delivery: Delivery, update: DeliveryUpdate) -> None:
        """Count one recorded attempt, and the delivery's end if it ended (an observer of
        :meth:`~twisted_hooks.webhooks.app.Hooks.observe_updates`)."""
        self._attempt(update.attempt)
        if update.status in (DELIVERED, DEAD):
            self.deliveries.labels(outcome=update.status).inc()

    def request(self, method: bytes, code: int) -> None:
        """Count one answered API request."""
        name = method.decode("ascii", "replace").upper()
        self.requests.labels(method=name if name in _METHODS else "other", code=str(code)).inc()

    def refresh(self, now: float) -> Deferred[None]:
        """
        Read what is measured at scrape time: the delivery store's counts by status and its
        oldest due age, and the open circuits of the application's endpoint health.

        :return: a Deferred firing once the gauges are set; it fails when the store does.
        """
        circuits = sum(1 for h in self._hooks.endpoint_health.records() if h.circuit == OPEN)
        self.open_circuits.set(circuits)

        def got(stats: Any) -> None:
            for status, count in stats.counts.items():
                self.queue.labels(status=status).set(count)
            self.oldest_due.set(stats.oldest_due_age or 0.0)

        return self._hooks.deliveries.stats(now).addCallback(got)

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)


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
        _set_status(request, status)
        for name, value in headers:
            _set_header(request, name.encode("ascii"), value.encode("ascii"))
        self.metrics.request(request.method, status)
        if body is None:
            return b""
        _set_header(request, b"content-type", b"application/json; charset=utf-8")
        return json.dumps(_finite(body), separators=(",", ":"), allow_nan=False).encode("ascii")

    def _base(self, request: IRequest) -> str:
        if self._base_url is not None:
            return self._base_url
        secure, local = _origin(request)
        address = self._listening
        if address is None or getattr(address, "host", "") in ("", "0.0.0.0", "::"):
            address = local
        return _address_url(address, secure)

    def _hook_json(self, request: IRequest, subscriber: Subscriber) -> dict[str, Any]:
        data = subscriber.as_dict()
        for name in ("max_concurrency", "rate_limit"):
            data[name] = _effective_limit(name, data[name])
        data["subscription"] = f"{self._base(request)}/hooks/{subscriber.id}/"
        return data

    def _delivery_json(self, request: IRequest, delivery: Delivery) -> dict[str, Any]:
        return {
            "id": delivery.id,
            "event": delivery.event,
            "event_id": delivery.event_id,
            "hook": delivery.subscriber.id,
            "user": delivery.subscriber.owner,
            "url": delivery.subscriber.url,
            "status": delivery.status,
            "attempt_count": delivery.attempts,
            "created_at": _isotime(delivery.created_at),
            "next_attempt_at": _isotime(delivery.next_attempt_at),
            "finished_at": _isotime(delivery.finished_at),
            "last_error": delivery.last_error,
            "delivery": f"{self._base(request)}/deliveries/{delivery.id}/",
        }

    async def _authenticate(self, request: IRequest, scope: str) -> _Auth:
        token = await authenticate(self._tokens, _header(request, b"authorization"))
        auth = _Auth(token)
        if scope not in token.scopes and not auth.admin:
            raise APIError(
                403,
                "forbidden",
                f"this token lacks the {scope!r} scope (it has {sorted(token.scopes)})",
            )
        return auth

    def _body(self, request: IRequest, required: bool = True) -> dict[str, Any] | None:
        length = _header(request, b"content-length")
        declared = length.strip().decode("latin-1") if length is not None else ""
        if (whole(declared) or 0) > self._max_body:
            raise self._too_large()
        content = request.content
        raw = content.read(self._max_body + 1) if content is not None else b""
        if len(raw) > self._max_body:
            raise self._too_large()
        if not raw.strip():
            if required:
                raise APIError(400, "invalid", "this request needs a JSON object body")
            return None
        header = _header(request, b"content-type") or b""
        media = header.split(b";", 1)[0].strip().lower()
        if media != _JSON and not (media.startswith(b"application/") and media.endswith(b"+json")):
            raise APIError(
                415,
                "unsupported_media_type",
                "the body must be JSON, sent with 'Content-Type: application/json'",
            )
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, RecursionError) as error:
            raise APIError(400, "malformed_json", f"the body is not valid JSON: {error}") from None
        if not isinstance(data, dict):
            raise APIError(400, "invalid", "the body must be a JSON object")
        return data

    def _too_large(self) -> APIError:
        return too_large(self._max_body)

    def _query(self, request: IRequest, name: str) -> str | None:
        args: Mapping[bytes, Sequence[bytes]] = request.args or {}
        values = args.get(name.encode("ascii"))
        if not values:
            return None
        try:
            return values[-1].decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid(name, f"the {name} parameter must be UTF-8 text") from None

    async def _own_hook(self, auth: _Auth, hook_id: str) -> Subscriber:
        canonical = _canonical_id(hook_id)
        if canonical is None:
            raise _not_found("hook", hook_id)
        try:
            subscriber = await self._hooks.subscribers.get(canonical)
        except SubscriberNotFound:
            raise _not_found("hook", hook_id) from None
        if not auth.sees(subscriber.owner):
            raise _not_found("hook", hook_id)
        return subscriber

    async def _own_delivery(self, auth: _Auth, delivery_id: str) -> Delivery:
        canonical = _canonical_id(delivery_id)
        if canonical is None:
            raise _not_found("delivery", delivery_id)
        try:
            delivery = await self._hooks.deliveries.get(canonical)
        except KeyError:
            raise _not_found("delivery", delivery_id) from None
        if not auth.sees(delivery.subscriber.owner):
            raise _not_found("delivery", delivery_id)
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
        found = await self._hooks.subscribers.list(owner)
        visible = sorted(found, key=lambda s: (s.created_at, s.id))
        return self._respond(request, 200, [self._hook_json(request, s) for s in visible])

    @app.route("/hooks/", methods=["POST"], strict_slashes=False)
    async def create_hook(self, request: IRequest) -> bytes:
        """``POST /hooks/``: subscribe; 201 with the subscription and its ``Location``."""
        auth = await self._authenticate(request, "subscribe")
        body = self._body(request)
        assert body is not None
        for required in ("event", "url"):
            if required not in body:
                raise _invalid(required, f"{required} is required")
        fields = _subscription_fields(body)
        self._check_recipient(fields["url"])
        try:
            subscriber = Subscriber(owner=auth.token.owner, **fields)
        except (ValueError, TypeError) as error:
            raise APIError(400, "invalid", str(error)) from None
        stored = await self._hooks.subscribers.add(subscriber)
        data = self._hook_json(request, stored)
        return self._respond(request, 201, data, [("Location", data["subscription"])])

    def _check_recipient(self, url: str) -> None:
        try:
            self._hooks.settings.policy.check_url(url)
        except SecurityError as error:
            # Worded for the service (its flags and keys), whoever built the policy.
            raise APIError(400, "refused_url", error.explain(SERVICE_ADVICE), "url") from None
        except (ValueError, TypeError, UnicodeError) as error:
            raise _invalid("url", f"url is not a valid URL: {error}") from None

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
        body = self._body(request)
        assert body is not None
        fields = _subscription_fields(body)
        if "url" in fields:
            self._check_recipient(fields["url"])
        reactivate = fields.pop("active", None) is True and not subscriber.active
        deactivate = body.get("active") is False and subscriber.active
        try:
            changed = attrs.evolve(subscriber, **fields)
        except (ValueError, TypeError) as error:
            raise APIError(400, "invalid", str(error)) from None
        try:
            if fields:
                subscriber = await self._hooks.subscribers.update(changed)
            if reactivate:
                subscriber = await self._hooks.reactivate(subscriber.id)
            elif deactivate:
                subscriber = await self._hooks.subscribers.deactivate(subscriber.id)
        except SubscriberNotFound:
            raise _not_found("hook", hook_id) from None
        return self._respond(request, 200, self._hook_json(request, subscriber))

    @app.route("/hooks/<string:hook_id>/", methods=["DELETE"], strict_slashes=False)
    async def delete_hook(self, request: IRequest, hook_id: str) -> bytes:
        """``DELETE /hooks/{id}/``: unsubscribe; 204."""
        auth = await self._authenticate(request, "subscribe")
        subscriber = await self._own_hook(auth, hook_id)
        try:
            await self._hooks.unsubscribe(subscriber.id)
        except SubscriberNotFound:
            raise _not_found("hook", hook_id) from None
        return self._respond(request, 204, None)

    @app.route("/hooks/<string:hook_id>/recover/", methods=["POST"], strict_slashes=False)
    async def recover_hook(self, request: IRequest, hook_id: str) -> bytes:
        """``POST /hooks/{id}/recover/``: attempt again the subscription's dead deliveries
        made at or after ``since`` (every one without it); 202 with how many."""
        auth = await self._authenticate(request, "subscribe")
        subscriber = await self._own_hook(auth, hook_id)
        body = self._body(request, required=False) or {}
        unknown = sorted(set(body) - {"since"})
        if unknown:
            raise _invalid(unknown[0], f"unknown field {unknown[0]!r}; use 'since'")
        since = _time(body["since"], "since") if body.get("since") is not None else 0.0
        count = await self._hooks.recover(subscriber.id, since)
        return self._respond(request, 202, {"recovered": count})

    # -- /events/ -------------------------------------------------------------------------------

    @app.route("/events/", methods=["POST"], strict_slashes=False)
    async def publish(self, request: IRequest) -> bytes:
        """``POST /events/``: publish an event; 202 with how many deliveries it made."""
        auth = await self._authenticate(request, "publish")
        body = self._body(request)
        assert body is not None
        unknown = sorted(set(body) - _PUBLISH_FIELDS)
        if unknown:
            raise _invalid(
                unknown[0], f"unknown field {unknown[0]!r}; use {sorted(_PUBLISH_FIELDS)}"
            )
        if "event" not in body:
            raise _invalid("event", "event is required")
        name = _text(body["event"], "event", MAX_NAME_LENGTH)
        sender: object = auth.token.owner
        if "sender" in body:
            sender = _whole(body["sender"])
            if isinstance(sender, bool) or not isinstance(sender, str | int | type(None)):
                raise _invalid("sender", "sender must be a string, an integer or null")
            if isinstance(sender, int):
                if abs(sender) >= 2**63:
                    raise _invalid("sender", "sender must be a 64-bit integer")
                sender = str(sender)
            if isinstance(sender, str):
                _text(sender, "sender", _MAX_TEXT)
        event_id = None
        if body.get("id") is not None:
            event_id = _text(body["id"], "id", _MAX_TEXT)
        try:
            sent = self._hooks.send(name, body.get("data"), sender, event_id=event_id)
        except EncodingError as error:
            raise _invalid("data", str(error)) from None
        except RecursionError:
            raise _invalid("data", "data is nested too deeply") from None
        except ValueError as error:
            raise _invalid("event", str(error)) from None
        result = await sent
        return self._respond(
            request,
            202,
            {
                "id": result.event.id,
                "deliveries": len(result.deliveries),
                "duplicate": result.duplicate,
                "skipped": len(result.skipped),
            },
        )

    # -- /deliveries/ ---------------------------------------------------------------------------

    @app.route("/deliveries/", methods=["GET"], strict_slashes=False)
    async def list_deliveries(self, request: IRequest) -> bytes:
        """``GET /deliveries/?status=&hook=&since=&limit=``: the delivery log of the
        caller's subscriptions (of every subscription for admin), newest first."""
        auth = await self._authenticate(request, "subscribe")
        status = self._query(request, "status")
        if status is not None and status not in STATUSES:
            raise _invalid("status", f"status must be one of {list(STATUSES)}, got {status!r}")
        since_text = self._query(request, "since")
        since = _time(since_text, "since", query=True) if since_text is not None else None
        limit_text = self._query(request, "limit")
        limit = DEFAULT_LIMIT
        if limit_text is not None:
            if not 1 <= (whole(limit_text) or 0) <= MAX_LIMIT:
                raise _invalid(
                    "limit",
                    f"limit must be a whole number from 1 to {MAX_LIMIT} in ASCII digits, "
                    f"got {limit_text!r}",
                )
            limit = int(limit_text)
        hook = self._query(request, "hook")
        if hook is not None:
            canonical = _canonical_id(hook)
            if canonical is None:
                raise _invalid("hook", f"hook must be a subscription id (a UUID), got {hook!r}")
            if not auth.admin:
                await self._own_hook(auth, canonical)
            hooks: list[str | None] = [canonical]
        elif auth.admin:
            hooks = [None]
        else:
            owned = await self._hooks.subscribers.list(auth.token.owner)
            hooks = [s.id for s in owned]
        found: list[Delivery] = []
        for subscriber_id in hooks:
            found.extend(await self._hooks.deliveries.list(status, subscriber_id, limit, since))
        found.sort(key=lambda d: _sortable(d.created_at), reverse=True)
        visible = [d for d in found if auth.sees(d.subscriber.owner)][:limit]
        return self._respond(request, 200, [self._delivery_json(request, d) for d in visible])

    @app.route("/deliveries/<string:delivery_id>/", methods=["GET"], strict_slashes=False)
    async def get_delivery(self, request: IRequest, delivery_id: str) -> bytes:
        """``GET /deliveries/{id}/``: one delivery with its attempts."""
        auth = await self._authenticate(request, "subscribe")
        delivery = await self._own_delivery(auth, delivery_id)
        attempts = await self._hooks.deliveries.attempts(delivery.id)
        data = self._delivery_json(request, delivery)
        data["attempts"] = [_attempt_json(a) for a in attempts]
        return self._respond(request, 200, data)

    @app.route("/deliveries/<string:delivery_id>/retry/", methods=["POST"], strict_slashes=False)
    async def retry_delivery(self, request: IRequest, delivery_id: str) -> bytes:
        """``POST /deliveries/{id}/retry/``: attempt a dead delivery again; 202 with it,
        409 when it is not dead."""
        auth = await self._authenticate(request, "subscribe")
        delivery = await self._own_delivery(auth, delivery_id)
        self._body(request, required=False)
        try:
            revived = await self._hooks.retry(delivery.id)
        except KeyError:
            raise _not_found("delivery", delivery_id) from None
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
        return self._respond(
            request,
            200 if healthy else 503,
            {
                "status": "ok" if healthy else "unavailable",
                "store": "ok" if store_ok else "unavailable",
                "running": running,
            },
        )

    @app.route("/metrics", methods=["GET"])
    async def metrics_text(self, request: IRequest) -> bytes:
        """``GET /metrics``: the Prometheus text exposition. No token needed."""
        try:
            await self.metrics.refresh(self._reactor.seconds())
        except Exception as error:
            _log.warn("metrics: the store did not answer: {error}", error=repr(error))
        self._respond(request, 200, None)
        _set_header(request, b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return self.metrics.render()

    @app.route("/openapi.json", methods=["GET"])
    def openapi(self, request: IRequest) -> bytes:
        """``GET /openapi.json``: the OpenAPI 3.1 description of the API."""
        return self._respond(request, 200, openapi_document(self._base_url))


def _address_url(address: object, secure: bool) -> str:
    """The base URL of a listening address (an IPv4 or IPv6 address with a port)."""
    scheme = "https" if secure else "http"
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if not isinstance(host, str) or not host:
        return f"{scheme}://localhost"
    if ":" in host:
        host = f"[{host.split('%', 1)[0]}]"
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


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


# -- OpenAPI ----------------------------------------------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_content(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": dict(schema)}}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json_content(_ref("Error"))}


def _responses(ok: Mapping[str, Any], *errors: str) -> dict[str, Any]:
    result: dict[str, Any] = dict(ok)
    for code in errors:
        result[code] = {"$ref": f"#/components/responses/{_ERROR_NAMES[code]}"}
    return result


_ERROR_NAMES = {
    "400": "BadRequest",
    "401": "Unauthorized",
    "403": "Forbidden",
    "404": "NotFound",
    "409": "Conflict",
    "413": "TooLarge",
    "415": "UnsupportedMediaType",
}
_AUTH_ERRORS = ("401", "403")
_BODY_ERRORS = ("400", "413", "415")

_TIME = {
    "anyOf": [
        {"type": "number", "description": "seconds since the epoch"},
        {"type": "string", "format": "date-time", "description": "RFC 3339"},
    ]
}
# A stored time: null only when what is stored is not a number.
_STORED_TIME = {"type": ["string", "null"], "format": "date-time"}


def _reserved_headers() -> str:
    """A pattern matching the engine's own header names, in any case (JSON Schema patterns
    have no flags)."""
    spelled = (
        "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in name)
        for name in sorted(RESERVED_HEADERS)
    )
    return "^(" + "|".join(spelled) + ")$"


def _nullable(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` or ``null`` (OpenAPI 3.1, JSON Schema 2020-12)."""
    result = dict(schema)
    result["type"] = [schema["type"], "null"]
    return result


def _range(name: str, kind: str, description: str) -> dict[str, Any]:
    low, high = limit_range(name)
    return _nullable({"type": kind, "minimum": low, "maximum": high, "description": description})


_HOOK_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "the subscription's id (a UUID)",
    "schema": {"type": "string"},
}
_DELIVERY_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "the delivery's id (a UUID)",
    "schema": {"type": "string"},
}


def _hook_fields() -> dict[str, Any]:
    return {
        "event": {
            "type": "string",
            "maxLength": MAX_NAME_LENGTH,
            "pattern": _EVENT_PATTERN,
            "description": "an event name or pattern: article.*, *.created, article.created",
            "example": "article.*",
        },
        "url": {
            "type": "string",
            "format": "uri",
            "maxLength": _MAX_URL,
            "description": "where events are POSTed; refused if the recipient policy "
            "forbids it (internal addresses, other ports or schemes)",
            "example": "https://example.com/hooks/article",
        },
        "content_type": {"type": "string", "enum": sorted(CONTENT_TYPES)},
        "hmac_digest": {"type": "string", "enum": sorted(DIGESTS)},
        "hmac_secret": {
            "type": "string",
            "minLength": 1,
            "maxLength": _MAX_SECRET,
            **_NO_CONTROLS,
        },
        "active": {"type": "boolean"},
        "headers": {
            "type": "object",
            "description": "extra request headers; names other than the engine's own "
            "(Hook-*, webhook-*, Content-Type, Host...)",
            "propertyNames": {
                "maxLength": _MAX_TEXT,
                "pattern": _HEADER_NAME,
                "not": {"pattern": _reserved_headers()},
            },
            "additionalProperties": {
                "type": "string",
                "maxLength": _MAX_HEADER_VALUE,
                **_NO_CONTROLS,
            },
            "maxProperties": _MAX_HEADERS,
        },
        "max_concurrency": _range(
            "max_concurrency", "integer", "the most attempts under way at once to it"
        ),
        "rate_limit": _range(
            "rate_limit",
            "number",
            "the most attempts per second to it; at least one attempt every 1000 s",
        ),
    }


def _schemas() -> dict[str, Any]:
    writable = _hook_fields()
    hook_properties = {
        "id": {"type": "string", "format": "uuid"},
        **writable,
        "user": {"type": ["string", "null"]},
        "previous_secrets": {"type": "array", "items": {"type": "string"}},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "subscription": {"type": "string", "format": "uri"},
    }
    delivery_properties = {
        "id": {"type": "string", "format": "uuid"},
        "event": {"type": "string"},
        "event_id": {"type": "string"},
        "hook": {"type": "string"},
        "user": {"type": ["string", "null"]},
        "url": {"type": "string"},
        "status": {"type": "string", "enum": list(STATUSES)},
        "attempt_count": {"type": "integer"},
        "created_at": _STORED_TIME,
        "next_attempt_at": _STORED_TIME,
        "finished_at": _STORED_TIME,
        "last_error": {"type": ["string", "null"]},
        "delivery": {"type": "string", "format": "uri"},
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error", "detail"],
            "properties": {
                "error": {"type": "string", "description": "a stable error code"},
                "detail": {"type": "string", "description": "what was wrong, for people"},
                "field": {
                    "type": "string",
                    "description": "the body field or query parameter at fault (400)",
                },
            },
        },
        "HookCreate": {
            "type": "object",
            "required": ["event", "url"],
            "properties": writable,
            "additionalProperties": False,
        },
        "HookUpdate": {
            "type": "object",
            "properties": writable,
            "additionalProperties": False,
        },
        "Hook": {
            "type": "object",
            "required": sorted(hook_properties),
            "properties": hook_properties,
        },
        "Recover": {
            "type": "object",
            "properties": {
                "since": {
                    "anyOf": [*_TIME["anyOf"], {"type": "null"}],
                    "description": "revive the dead deliveries made at or after this "
                    "time; every one when absent or null",
                }
            },
            "additionalProperties": False,
        },
        "Recovered": {
            "type": "object",
            "required": ["recovered"],
            "properties": {"recovered": {"type": "integer"}},
        },
        "Publish": {
            "type": "object",
            "required": ["event"],
            "properties": {
                "event": {
                    "type": "string",
                    "maxLength": MAX_NAME_LENGTH,
                    "pattern": _NAME_PATTERN,
                    "example": "article.created",
                },
                "data": {"description": "the payload: any JSON value"},
                "sender": {
                    "description": "whose event it is (a subscription receives only its "
                    "owner's events); the token's owner when absent, nobody when null",
                    "anyOf": [
                        {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": _MAX_TEXT,
                            **_NO_CONTROLS,
                        },
                        {
                            "type": "integer",
                            "minimum": -(2**63) + 1,
                            "maximum": 2**63 - 1,
                        },
                        {"type": "null"},
                    ],
                },
                "id": {
                    "type": ["string", "null"],
                    "minLength": 1,
                    "maxLength": _MAX_TEXT,
                    **_NO_CONTROLS,
                    "description": "the event's id: publishing the same id again delivers "
                    "nothing (idempotency key); a new id when absent or null",
                },
            },
            "additionalProperties": False,
        },
        "Published": {
            "type": "object",
            "required": ["id", "deliveries", "duplicate", "skipped"],
            "properties": {
                "id": {"type": "string"},
                "deliveries": {"type": "integer"},
                "duplicate": {"type": "boolean"},
                "skipped": {"type": "integer"},
            },
        },
        "Delivery": {
            "type": "object",
            "required": sorted(delivery_properties),
            "properties": delivery_properties,
        },
        "Attempt": {
            "type": "object",
            "properties": {
                "number": {"type": "integer"},
                "started_at": _STORED_TIME,
                "duration": {"type": ["number", "null"]},
                "status_code": {"type": ["integer", "null"]},
                "error_kind": {"type": ["string", "null"]},
                "error_message": {"type": ["string", "null"]},
                "response_body": {"type": "string"},
                "retry_after": {"type": ["number", "null"]},
            },
        },
        "DeliveryDetail": {
            "allOf": [
                _ref("Delivery"),
                {
                    "type": "object",
                    "required": ["attempts"],
                    "properties": {"attempts": {"type": "array", "items": _ref("Attempt")}},
                },
            ]
        },
        "Health": {
            "type": "object",
            "required": ["status", "store", "running"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "store": {"type": "string", "enum": ["ok", "unavailable"]},
                "running": {"type": "boolean"},
            },
        },
    }


def _body(name: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": _json_content(_ref(name))}


def _paths() -> dict[str, Any]:
    hook = {"description": "the subscription", "content": _json_content(_ref("Hook"))}
    delivery = {"description": "the delivery", "content": _json_content(_ref("Delivery"))}
    return {
        "/hooks/": {
            "get": {
                "operationId": "listHooks",
                "summary": "The caller's subscriptions (every one for admin)",
                "responses": _responses(
                    {
                        "200": {
                            "description": "the subscriptions",
                            "content": _json_content({"type": "array", "items": _ref("Hook")}),
                        }
                    },
                    *_AUTH_ERRORS,
                ),
            },
            "post": {
                "operationId": "createHook",
                "summary": "Subscribe a URL to an event pattern",
                "requestBody": _body("HookCreate"),
                "responses": _responses(
                    {
                        "201": {
                            **hook,
                            "headers": {
                                "Location": {
                                    "description": "the subscription's URL",
                                    "schema": {"type": "string"},
                                }
                            },
                        }
                    },
                    *_BODY_ERRORS,
                    *_AUTH_ERRORS,
                ),
            },
        },
        "/hooks/{id}/": {
            "parameters": [_HOOK_ID],
            "get": {
                "operationId": "getHook",
                "summary": "One subscription",
                "responses": _responses({"200": hook}, *_AUTH_ERRORS, "404"),
            },
            "patch": {
                "operationId": "updateHook",
                "summary": "Change a subscription; active=true reactivates it",
                "requestBody": _body("HookUpdate"),
                "responses": _responses({"200": hook}, *_BODY_ERRORS, *_AUTH_ERRORS, "404"),
            },
            "delete": {
                "operationId": "deleteHook",
                "summary": "Unsubscribe",
                "responses": _responses(
                    {"204": {"description": "unsubscribed"}}, *_AUTH_ERRORS, "404"
                ),
            },
        },
        "/hooks/{id}/recover/": {
            "parameters": [_HOOK_ID],
            "post": {
                "operationId": "recoverHook",
                "summary": "Attempt the subscription's dead deliveries again",
                "requestBody": _body("Recover", required=False),
                "responses": _responses(
                    {
                        "202": {
                            "description": "how many deliveries were revived",
                            "content": _json_content(_ref("Recovered")),
                        }
                    },
                    *_BODY_ERRORS,
                    *_AUTH_ERRORS,
                    "404",
                ),
            },
        },
        "/events/": {
            "post": {
                "operationId": "publish",
                "summary": "Publish an event",
                "requestBody": _body("Publish"),
                "responses": _responses(
                    {
                        "202": {
                            "description": "accepted: its deliveries are made",
                            "content": _json_content(_ref("Published")),
                        }
                    },
                    *_BODY_ERRORS,
                    *_AUTH_ERRORS,
                ),
            }
        },
        "/deliveries/": {
            "get": {
                "operationId": "listDeliveries",
                "summary": "The delivery log of the caller's subscriptions, newest first",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(STATUSES)},
                    },
                    {
                        "name": "hook",
                        "in": "query",
                        "description": "a subscription id",
                        "schema": {"type": "string", "format": "uuid"},
                    },
                    {
                        "name": "since",
                        "in": "query",
                        "description": "created at or after: seconds since the epoch, or "
                        "an RFC 3339 date-time",
                        "schema": _TIME,
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_LIMIT,
                            "default": DEFAULT_LIMIT,
                        },
                    },
                ],
                "responses": _responses(
                    {
                        "200": {
                            "description": "the deliveries",
                            "content": _json_content({"type": "array", "items": _ref("Delivery")}),
                        }
                    },
                    "400",
                    *_AUTH_ERRORS,
                    "404",
                ),
            }
        },
        "/deliveries/{id}/": {
            "parameters": [_DELIVERY_ID],
            "get": {
                "operationId": "getDelivery",
                "summary": "One delivery with its attempts",
                "responses": _responses(
                    {
                        "200": {
                            "description": "the delivery",
                            "content": _json_content(_ref("DeliveryDetail")),
                        }
                    },
                    *_AUTH_ERRORS,
                    "404",
                ),
            },
        },
        "/deliveries/{id}/retry/": {
            "parameters": [_DELIVERY_ID],
            "post": {
                "operationId": "retryDelivery",
                "summary": "Attempt a dead delivery again",
                "responses": _responses(
                    {"202": delivery}, *_BODY_ERRORS, *_AUTH_ERRORS, "404", "409"
                ),
            },
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "Whether the service can work (no token needed)",
                "security": [],
                "responses": {
                    "200": {"description": "healthy", "content": _json_content(_ref("Health"))},
                    "503": {
                        "description": "the store does not answer, or the service is not running",
                        "content": _json_content(_ref("Health")),
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (no token needed)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "the text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document (no token needed)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "the OpenAPI document",
                        "content": _json_content({"type": "object"}),
                    }
                },
            }
        },
    }


def openapi_document(base_url: str | None = None) -> dict[str, Any]:
    """
    The OpenAPI 3.1 description of :class:`HooksAPI`: every route, request body, response
    and the error schema.

    :param base_url: the API's public URL, as its one server; ``"/"`` (relative to the
        document) if ``None``.
    """
    from twisted_hooks import __version__

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "twisted_hooks",
            "version": __version__,
            "description": "Webhook subscriptions (Thorn's /hooks/ API), publishing, the "
            "delivery log and replay. Errors are {error, detail, field?}.",
        },
        "servers": [{"url": base_url or "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
            "responses": {
                "BadRequest": _error_response("invalid input; field names it"),
                "Unauthorized": {
                    **_error_response("no token, or an unknown or revoked one"),
                    "headers": {
                        "WWW-Authenticate": {
                            "description": "Bearer",
                            "schema": {"type": "string"},
                        }
                    },
                },
                "Forbidden": _error_response("the token lacks the scope"),
                "NotFound": _error_response("no such route or id (or not the caller's)"),
                "Conflict": _error_response("the delivery is not dead"),
                "TooLarge": _error_response("the body is over the limit"),
                "UnsupportedMediaType": _error_response("the body is not application/json"),
            },
        },
    }


def routes() -> list[tuple[str, str]]:
    """Every ``(METHOD, path)`` :class:`HooksAPI` serves, paths in OpenAPI form."""
    found: list[tuple[str, str]] = []
    for rule in HooksAPI.app.url_map.iter_rules():
        path = re.sub(r"<[^>]+>", "{id}", rule.rule)
        for method in sorted(rule.methods or ()):
            if method not in ("HEAD", "OPTIONS"):
                found.append((method, path))
    return sorted(found)
