"""
The bodies and query parameters of the HTTP API, each defined once, as attrs classes whose
fields carry their rules (:mod:`twisted_hooks.service._rules`): the routes check requests
against them and build answers from them, and the OpenAPI document is made from them.
Patterns, ranges and choices come from the webhook layer; a subscription's fields are then
checked by :class:`~twisted_hooks.webhooks.subscribers.Subscriber`'s own validators.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from twisted_hooks._numbers import DECIMAL
from twisted_hooks.service._errors import invalid
from twisted_hooks.service._rules import (
    Anything,
    Boolean,
    Choice,
    Count,
    Headers,
    Id,
    Limit,
    Sender,
    Shape,
    Text,
    Time,
    fields_of,
    load,
    rule,
    rule_of,
)
from twisted_hooks.webhooks.delivery import STATUSES, Delivery
from twisted_hooks.webhooks.encoding import CONTENT_TYPES
from twisted_hooks.webhooks.patterns import MAX_NAME_LENGTH, NAME_GRAMMAR, PATTERN_GRAMMAR
from twisted_hooks.webhooks.subscribers import DIGESTS, Subscriber

__all__ = [
    "DEFAULT_LIMIT",
    "HOOK_REQUIRED",
    "MAX_LIMIT",
    "AttemptOut",
    "Cursor",
    "DeliveryOut",
    "DeliveryQuery",
    "ErrorOut",
    "Health",
    "HookExtra",
    "HookFields",
    "Publish",
    "Published",
    "Recover",
    "Recovered",
    "next_cursor",
    "subscriber_fields",
    "subscriber_id",
]

#: How many deliveries ``GET /deliveries/`` returns unless ``limit`` says otherwise.
DEFAULT_LIMIT = 100
#: The most deliveries ``GET /deliveries/`` returns.
MAX_LIMIT = 1000

_MAX_URL = 2048
_MAX_TEXT = 255
_MAX_SECRET = 512


def subscriber_fields(given: Mapping[str, object], *, create: bool = False) -> dict[str, Any]:
    """
    The :class:`Subscriber` keyword arguments a subscription body gives (``POST`` or
    ``PATCH /hooks/``): checked by :class:`HookFields`' rules, then each by the
    :class:`Subscriber` attribute's own converter and validator.

    :param create: whether the body makes a subscription (:data:`HOOK_REQUIRED` needed).
    :raise APIError: a 400 naming the field.
    """
    required = HOOK_REQUIRED if create else ()
    checked = load(HookFields, given, ignored=fields_of(HookExtra), required=required)
    model = attrs.fields_dict(Subscriber)
    fields: dict[str, Any] = {}
    for name, value in checked.items():
        attribute = model[rule_of(fields_of(HookFields)[name])[2] or name]
        converted = value
        try:
            converter: Callable[[object], object] | None = attribute.converter  # type: ignore[assignment]
            if converter is not None:
                converted = converter(converted)
            if attribute.validator is not None:
                attribute.validator(None, attribute, converted)
        except (ValueError, TypeError) as error:
            raise invalid(name, f"{name}: {error}") from None
        fields[attribute.name] = converted
    return fields


_STORED_TIME = Shape({"type": ["string", "null"], "format": "date-time"})
_INTEGER = Shape({"type": "integer"})
_STRING = Shape({"type": "string"})
_UUID = Shape({"type": "string", "format": "uuid"})
_URI = Shape({"type": "string", "format": "uri"})
_OPTIONAL_STRING = Shape({"type": ["string", "null"]})


@attrs.frozen(kw_only=True)
class HookFields:
    """The writable fields of a subscription (``POST`` and ``PATCH /hooks/``)."""

    event: str = rule(
        Text(
            MAX_NAME_LENGTH,
            pattern=PATTERN_GRAMMAR,
            description="an event name or pattern: article.*, *.created, article.created",
            example="article.*",
        )
    )
    url: str = rule(
        Text(
            _MAX_URL,
            format="uri",
            description="where events are POSTed; refused if the recipient policy "
            "forbids it (internal addresses, other ports or schemes)",
            example="https://example.com/hooks/article",
        )
    )
    content_type: str = rule(Choice(tuple(sorted(CONTENT_TYPES))))
    hmac_digest: str = rule(Choice(tuple(sorted(DIGESTS))), attribute="digest")
    hmac_secret: str = rule(Text(_MAX_SECRET), attribute="secret")
    active: bool = rule(Boolean())
    headers: Mapping[str, str] = rule(Headers())
    max_concurrency: int | None = rule(
        Limit("max_concurrency", "the most attempts under way at once to it")
    )
    rate_limit: float | None = rule(
        Limit(
            "rate_limit", "the most attempts per second to it; at least one attempt every 1000 s"
        )
    )


#: ``POST /hooks/`` requires these fields.
HOOK_REQUIRED = ("event", "url")


@attrs.frozen(kw_only=True)
class HookExtra:
    """The read-only fields of a subscription's representation (a body may send them back
    unchanged: they are ignored)."""

    id: str = rule(_UUID)
    user: str | None = rule(_OPTIONAL_STRING)
    previous_secrets: Sequence[str] = rule(Shape({"type": "array", "items": {"type": "string"}}))
    created_at: str = rule(Shape({"type": "string", "format": "date-time"}))
    updated_at: str = rule(Shape({"type": "string", "format": "date-time"}))
    subscription: str = rule(_URI)


@attrs.frozen(kw_only=True)
class Recover:
    """``POST /hooks/{id}/recover/``."""

    since: float | None = rule(
        Time(
            nullable=True,
            description="revive the dead deliveries made at or after this time; every one "
            "when absent or null",
        )
    )


@attrs.frozen(kw_only=True)
class Recovered:
    """The answer to ``POST /hooks/{id}/recover/``."""

    recovered: int = rule(_INTEGER, required=True)


@attrs.frozen(kw_only=True)
class Publish:
    """``POST /events/``."""

    event: str = rule(
        Text(MAX_NAME_LENGTH, pattern=NAME_GRAMMAR, example="article.created"), required=True
    )
    data: object = rule(Anything("the payload: any JSON value"))
    sender: str | None = rule(Sender())
    id: str | None = rule(
        Text(
            _MAX_TEXT,
            nullable=True,
            description="the event's id: publishing the same id again delivers nothing "
            "(idempotency key); a new id when absent or null",
        )
    )


@attrs.frozen(kw_only=True)
class Published:
    """The answer to ``POST /events/``."""

    id: str = rule(_STRING, required=True)
    deliveries: int = rule(_INTEGER, required=True)
    duplicate: bool = rule(Shape({"type": "boolean"}), required=True)
    skipped: int = rule(_INTEGER, required=True)


def subscriber_id(text: str) -> str:
    """A subscription id in canonical form, by :class:`Subscriber`'s own rule (its ``id``
    converter); :class:`ValueError` for text that is none."""
    converter: Callable[[object], str] = attrs.fields(Subscriber).id.converter  # type: ignore[assignment]
    return converter(text)


_UUID_TEXT = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_CURSOR = re.compile(f"-?{DECIMAL.pattern}_{_UUID_TEXT}")


def next_cursor(delivery: Delivery) -> str | None:
    """The cursor of the delivery log's page after ``delivery``: its creation time and id;
    ``None`` when its stored time is not a finite number (only a hand-edited row's)."""
    created: object = delivery.created_at
    if isinstance(created, bool) or not isinstance(created, int | float):
        return None
    if not math.isfinite(created):
        return None
    return f"{float(created)!r}_{delivery.id}"


@attrs.frozen
class Cursor:
    """A position in the delivery log (:func:`next_cursor`), read as ``(created_at, id)``."""

    def check(self, value: object, field: str) -> object:
        """The position."""
        found = _CURSOR.fullmatch(value) if isinstance(value, str) else None
        if found is None:
            raise invalid(
                field,
                f"{field} must be a cursor of the delivery log, as the Link header of the "
                f"previous page gives it, got {value!r}",
            )
        created, _, ident = found.group().partition("_")
        return (float(created), ident.lower())

    def schema(self) -> dict[str, Any]:
        """A ``string`` with the cursor's pattern."""
        return {"type": "string", "pattern": f"^{_CURSOR.pattern}$"}


@attrs.frozen(kw_only=True)
class DeliveryQuery:
    """The query parameters of ``GET /deliveries/``."""

    status: str | None = rule(Choice(STATUSES))
    hook: str | None = rule(Id("a subscription id", subscriber_id), doc="a subscription id")
    since: float | None = rule(
        Time(query=True),
        doc="created at or after: seconds since the epoch, or an RFC 3339 date-time",
    )
    limit: int = rule(Count(1, MAX_LIMIT, DEFAULT_LIMIT), default=DEFAULT_LIMIT)
    after: tuple[float, str] | None = rule(
        Cursor(),
        doc="the next page: the cursor the previous page's Link header (rel=next) gives",
    )


@attrs.frozen(kw_only=True)
class DeliveryOut:
    """A delivery, as ``/deliveries/`` answers it."""

    id: str = rule(_UUID, required=True)
    event: str = rule(_STRING, required=True)
    event_id: str = rule(_STRING, required=True)
    hook: str = rule(_STRING, required=True)
    user: str | None = rule(_OPTIONAL_STRING, required=True)
    url: str = rule(_STRING, required=True)
    status: str = rule(Choice(STATUSES), required=True)
    attempt_count: int = rule(_INTEGER, required=True)
    created_at: str | None = rule(_STORED_TIME, required=True)
    next_attempt_at: str | None = rule(_STORED_TIME, required=True)
    finished_at: str | None = rule(_STORED_TIME, required=True)
    last_error: str | None = rule(_OPTIONAL_STRING, required=True)
    delivery: str = rule(_URI, required=True)


@attrs.frozen(kw_only=True)
class AttemptOut:
    """An attempt of a delivery, in ``GET /deliveries/{id}/``."""

    number: int = rule(_INTEGER)
    started_at: str | None = rule(_STORED_TIME)
    duration: float | None = rule(Shape({"type": ["number", "null"]}))
    status_code: int | None = rule(Shape({"type": ["integer", "null"]}))
    error_kind: str | None = rule(_OPTIONAL_STRING)
    error_message: str | None = rule(_OPTIONAL_STRING)
    response_body: str = rule(_STRING)
    retry_after: float | None = rule(Shape({"type": ["number", "null"]}))


_UP = Shape({"type": "string", "enum": ["ok", "unavailable"]})


@attrs.frozen(kw_only=True)
class Health:
    """The answer to ``GET /healthz``."""

    status: str = rule(_UP, required=True)
    store: str = rule(_UP, required=True)
    running: bool = rule(Shape({"type": "boolean"}), required=True)


@attrs.frozen(kw_only=True)
class ErrorOut:
    """An error (:meth:`~twisted_hooks.service._errors.APIError.body`)."""

    error: str = rule(
        Shape({"type": "string", "description": "a stable error code"}), required=True
    )
    detail: str = rule(
        Shape({"type": "string", "description": "what was wrong, for people"}), required=True
    )
    field: str | None = rule(
        Shape(
            {"type": "string", "description": "the body field or query parameter at fault (400)"}
        )
    )
