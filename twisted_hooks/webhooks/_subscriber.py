"""
Subscribers as values: :class:`Subscriber`, its fields' rules, and reading them from
Thorn's ``THORN_SUBSCRIBERS`` shapes. Re-exported by :mod:`twisted_hooks.webhooks.subscribers`.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import attrs

from twisted_hooks.webhooks.encoding import CONTENT_TYPES, JSON
from twisted_hooks.webhooks.logs import loggable_url
from twisted_hooks.webhooks.patterns import validate_pattern
from twisted_hooks.webhooks.signing import generate_secret

__all__ = [
    "DIGESTS",
    "MAX_ENDPOINT_CONCURRENCY",
    "MAX_RATE_LIMIT",
    "MIN_RATE_LIMIT",
    "RESERVED_HEADERS",
    "STATIC_NAMESPACE",
    "DuplicateSubscriber",
    "Subscriber",
    "SubscriberNotFound",
    "SubscriberSource",
    "check_limits",
    "limit_range",
    "parse_subscribers",
    "resolve_subscribers",
    "sender_ident",
    "static_id",
]

#: The HMAC digests a subscriber may ask for ``Hook-HMAC`` to use.
DIGESTS: frozenset[str] = frozenset({"sha1", "sha256", "sha512"})


#: Header names (lower case) a subscriber's custom headers may not set: the engine's own.
RESERVED_HEADERS: frozenset[str] = frozenset(
    {
        "hook-event",
        "hook-delivery",
        "hook-hmac",
        "hook-subscription",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "user-agent",
        "content-type",
        "content-length",
        "host",
        "connection",
        "transfer-encoding",
    }
)


#: The slowest ``rate_limit`` a subscriber may be given, in attempts per second: one attempt
#: every 1,000 seconds (about 17 minutes). The gate holds a delivery that finds no token in
#: the bucket until ``1 / rate_limit`` seconds later, so a tinier limit would park
#: deliveries for days or, at the extreme, forever; an endpoint that must hear from us
#: less often than this should be deactivated instead.
MIN_RATE_LIMIT = 0.001


#: The fastest ``rate_limit`` a subscriber may be given, in attempts per second.
MAX_RATE_LIMIT = 1_000_000.0


#: The largest ``max_concurrency`` a subscriber may be given.
MAX_ENDPOINT_CONCURRENCY = 1_000_000


#: The namespace of the stable ids of static subscribers (UUID version 5).
STATIC_NAMESPACE = uuid.UUID("8f0d3c1e-2b7a-5d4e-9c61-7a2f4e5b6c70")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _canonical_id(value: object) -> str:
    """A subscriber id in canonical form: lower-case, hyphenated UUID text."""
    if isinstance(value, uuid.UUID):
        return str(value)
    try:
        return str(uuid.UUID(value))  # type: ignore[arg-type]
    except (TypeError, ValueError, AttributeError):
        raise ValueError(f"subscriber id must be a UUID string, got {value!r}") from None


def _check_bool(instance: object, attribute: attrs.Attribute[bool], value: bool) -> None:
    if not isinstance(value, bool):
        raise ValueError(
            f"subscriber field {attribute.name!r} must be true or false, got {value!r}"
        )


def _check_limit(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(
            f"subscriber field {attribute.name!r} must be a positive number or None, got {value!r}"
        )
    if attribute.name == "max_concurrency" and not isinstance(value, int):
        raise ValueError(
            f"subscriber field 'max_concurrency' must be a whole number, got {value!r}"
        )


def _aware(value: datetime.datetime) -> datetime.datetime:
    """Times are aware; a naive one is taken to be UTC."""
    if not isinstance(value, datetime.datetime):
        raise ValueError(f"subscriber times must be datetimes, got {value!r}")
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.timezone.utc)


def _check_url(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"subscriber url must be a non-empty string, got {value!r}")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as error:
        raise ValueError(f"subscriber url {value!r} is not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"subscriber url {value!r} must use http or https")
    if not parts.hostname:
        raise ValueError(f"subscriber url {value!r} has no host")
    if any(ch.isspace() for ch in value):
        raise ValueError(f"subscriber url {value!r} contains white space")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError(f"subscriber url {value!r} contains a control character")


def _check_pattern(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    validate_pattern(value)


def _check_digest(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in DIGESTS:
        raise ValueError(f"hmac digest must be one of {sorted(DIGESTS)!r}, got {value!r}")


def _check_content_type(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in CONTENT_TYPES:
        raise ValueError(f"content type must be one of {sorted(CONTENT_TYPES)!r}, got {value!r}")


def _check_secret(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError("subscriber secret must be a non-empty string")


def _headers(value: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    pairs = value.items() if isinstance(value, Mapping) else value
    result = []
    for name, text in pairs:
        if not isinstance(name, str) or not isinstance(text, str):
            raise ValueError(f"custom header {name!r} must map a string to a string")
        if not name or any(not (ch.isascii() and (ch.isalnum() or ch in "-_")) for ch in name):
            raise ValueError(f"custom header name {name!r} is not a valid header name")
        if any(ch in text for ch in "\r\n\0"):
            raise ValueError(f"custom header {name!r} has a line break or NUL in its value")
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"custom header {name!r} is set by twisted_hooks itself")
        result.append((name, text))
    return tuple(result)


def _owner(value: object) -> str | None:
    # Compared with the sender's identity, so converted the same way.
    return sender_ident(value)


def _secrets(value: Iterable[str]) -> tuple[str, ...]:
    secrets = tuple(value)
    for secret in secrets:
        if not isinstance(secret, str) or not secret:
            raise ValueError("previous secrets must be non-empty strings")
    return secrets


def _url_repr(url: str) -> str:
    return repr(loggable_url(url))


def _hidden(value: object) -> str:
    return "'<hidden>'"


def _hidden_secrets(value: tuple[str, ...]) -> str:
    return repr(tuple("<hidden>" for _ in value))


def _hidden_values(value: tuple[tuple[str, str], ...]) -> str:
    return repr(tuple((name, "<hidden>") for name, _ in value))


@attrs.frozen
class Subscriber:
    """
    A registration of ``url`` for the events matching ``event``.

    :ivar id: a UUID string, kept in canonical (lower-case, hyphenated) form; stable, it is
        the ``Hook-Subscription`` header.
    :ivar event: the event pattern (``article.*``, ``*.created``, ``order.*.paid``, ``*``).
    :ivar url: where deliveries are POSTed (http or https).
    :ivar secret: signs ``Hook-HMAC`` (as UTF-8, Thorn's rule) and ``webhook-signature``
        (a ``whsec_`` secret is base64-decoded first, the Standard Webhooks rule).
        A new ``whsec_`` secret is generated when none is given.
    :ivar digest: the ``Hook-HMAC`` digest: ``sha1``, ``sha256`` (default) or ``sha512``.
    :ivar content_type: ``application/json`` (default) or
        ``application/x-www-form-urlencoded``.
    :ivar owner: the user this subscription belongs to; it receives only events sent by
        that user. ``None`` receives every matching event. Anything else is converted
        as the sender is (:func:`sender_ident`): a model's ``pk`` or ``id``, as a string.
    :ivar active: inactive subscribers receive nothing (a 410 Gone answer deactivates).
    :ivar headers: extra headers sent with every delivery, as ``(name, value)`` pairs.
    :ivar previous_secrets: older secrets that still sign ``webhook-signature`` while a
        secret rotates, so receivers holding either secret can verify.
    :ivar max_concurrency: the most attempts under way at once to this endpoint, or
        ``None`` for the application's per-host cap only.
    :ivar rate_limit: the most attempts per second to this endpoint (a token bucket whose
        burst is one second's worth), or ``None`` for no limit.

    ``max_concurrency`` and ``rate_limit`` have ranges (:func:`limit_range`), which the
    HTTP API, the configuration and :func:`parse_subscribers` enforce
    (:func:`check_limits`); the class itself only requires positive numbers, so that a
    subscriber stored by an older version is still read. The endpoint gate brings a rate
    limit outside its range into it.
    :ivar created_at: when the subscriber was created (aware; a naive time is taken as UTC).
    :ivar updated_at: when it last changed (aware UTC).
    """

    event: str = attrs.field(validator=_check_pattern)
    # The representation (in logs, tracebacks) shows no secret: the URL's origin and path
    # only, no secret, no custom header value.
    url: str = attrs.field(validator=_check_url, repr=_url_repr)
    id: str = attrs.field(factory=lambda: str(uuid.uuid4()), converter=_canonical_id)
    secret: str = attrs.field(factory=generate_secret, validator=_check_secret, repr=_hidden)
    digest: str = attrs.field(default="sha256", validator=_check_digest)
    content_type: str = attrs.field(default=JSON, validator=_check_content_type)
    owner: str | None = attrs.field(default=None, converter=_owner)
    active: bool = attrs.field(default=True, validator=_check_bool)
    headers: tuple[tuple[str, str], ...] = attrs.field(
        default=(), converter=_headers, repr=_hidden_values
    )
    previous_secrets: tuple[str, ...] = attrs.field(
        default=(), converter=_secrets, repr=_hidden_secrets
    )
    max_concurrency: int | None = attrs.field(
        default=None,
        validator=_check_limit,
        metadata={"minimum": 1, "maximum": MAX_ENDPOINT_CONCURRENCY},
    )
    rate_limit: float | None = attrs.field(
        default=None,
        validator=_check_limit,
        metadata={"minimum": MIN_RATE_LIMIT, "maximum": MAX_RATE_LIMIT},
    )
    created_at: datetime.datetime = attrs.field(factory=_now, converter=_aware)
    updated_at: datetime.datetime = attrs.field(factory=_now, converter=_aware)

    @property
    def hmac_secret(self) -> str:
        """Thorn's name for :attr:`secret`."""
        return self.secret

    @property
    def hmac_digest(self) -> str:
        """Thorn's name for :attr:`digest`."""
        return self.digest

    @property
    def user(self) -> str | None:
        """Thorn's name for :attr:`owner`."""
        return self.owner

    @property
    def uuid(self) -> str:
        """Thorn's name for :attr:`id`."""
        return self.id

    @property
    def signing_secrets(self) -> tuple[str, ...]:
        """Every secret that signs ``webhook-signature``: the current one first."""
        return (self.secret, *self.previous_secrets)

    def receives(self, owner: str | None) -> bool:
        """``True`` when an event sent by ``owner`` reaches this subscriber (Thorn's rule)."""
        return self.active and (self.owner is None or self.owner == owner)

    def as_dict(self) -> dict[str, Any]:
        """
        The subscriber as a JSON-ready dict with Thorn's field names (``hmac_secret``,
        ``hmac_digest``, ``user``) plus this project's (``active``, ``headers``,
        ``previous_secrets``); times are ISO 8601 ending in ``Z``.
        """
        return {
            "id": self.id,
            "event": self.event,
            "url": self.url,
            "content_type": self.content_type,
            "hmac_secret": self.secret,
            "hmac_digest": self.digest,
            "user": self.owner,
            "active": self.active,
            "headers": dict(self.headers),
            "previous_secrets": list(self.previous_secrets),
            "max_concurrency": self.max_concurrency,
            "rate_limit": self.rate_limit,
            "created_at": _isoformat(self.created_at),
            "updated_at": _isoformat(self.updated_at),
        }

    @classmethod
    def from_dict(cls, *args: Any, **kwargs: Any) -> Subscriber:
        """
        Build a subscriber from a dict, accepting the same arguments as :class:`dict`.

        Thorn's names (``hmac_secret``, ``hmac_digest``, ``user``, ``uuid``) and this
        class's names are both accepted; ``url`` and ``event`` are required.

        :raise ValueError: for a missing or unknown field, or an invalid value; the message
            names the field.
        """
        data: dict[str, Any] = dict(*args, **kwargs)
        renames: dict[str, str] = {
            "hmac_secret": "secret",
            "hmac_digest": "digest",
            "user": "owner",
            "uuid": "id",
        }
        fields: dict[str, Any] = {}
        for key, value in data.items():
            name = renames.get(key, key)
            if name in fields:
                raise ValueError(f"subscriber field {name!r} is given twice (as {key!r})")
            fields[name] = value
        allowed = {a.name for a in attrs.fields(cls)}
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise ValueError(f"unknown subscriber field(s) {unknown!r}")
        for required in ("url", "event"):
            if required not in fields:
                raise ValueError(f"subscriber field {required!r} is required")
        for name in ("created_at", "updated_at"):
            if isinstance(fields.get(name), str):
                fields[name] = _parse_time(name, fields[name])
        for name in ("id", "secret", "owner"):
            if fields.get(name) is None:
                fields.pop(name, None)
        if "owner" in fields and not isinstance(fields["owner"], str):
            fields["owner"] = str(fields["owner"])
        return cls(**fields)


def limit_range(name: str) -> tuple[float, float]:
    """
    The range ``(minimum, maximum)`` of a subscriber's limit, ``"max_concurrency"`` or
    ``"rate_limit"``: ``(1, MAX_ENDPOINT_CONCURRENCY)`` and
    ``(MIN_RATE_LIMIT, MAX_RATE_LIMIT)``.

    :raise KeyError: for another name.
    """
    if name not in ("max_concurrency", "rate_limit"):
        raise KeyError(name)
    metadata = attrs.fields_dict(Subscriber)[name].metadata
    return metadata["minimum"], metadata["maximum"]


def check_limits(subscriber: Subscriber) -> Subscriber:
    """
    Refuse a subscriber whose ``max_concurrency`` or ``rate_limit`` is outside its range
    (:func:`limit_range`).

    :return: ``subscriber``.
    :raise ValueError: naming the field, its range and the value.
    """
    for name in ("max_concurrency", "rate_limit"):
        value = getattr(subscriber, name)
        low, high = limit_range(name)
        if value is not None and not low <= value <= high:
            raise ValueError(
                f"subscriber field {name!r} must be from {low:g} to {high:g} (or null), "
                f"got {value!r}"
            )
    return subscriber


def _isoformat(moment: datetime.datetime) -> str:
    text = moment.astimezone(datetime.timezone.utc).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _parse_time(name: str, text: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"subscriber field {name!r} is not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def sender_ident(sender: object) -> str | None:
    """
    The owner identity of an event's sender, compared with :attr:`Subscriber.owner`.

    ``None`` stays ``None``; an object with a ``pk`` (a Django model) or an ``id`` gives
    that attribute; anything else is used as it is. The result is a string.
    """
    if sender is None:
        return None
    for attribute in ("pk", "id"):
        value = getattr(sender, attribute, None)
        if value is not None and not callable(value):
            return str(value)
    return str(sender)


def static_id(event: str, url: str, content_type: str = JSON) -> str:
    """The stable id of a static subscriber: the same configuration gives the same id."""
    return str(uuid.uuid5(STATIC_NAMESPACE, f"{event}\n{url}\n{content_type}"))


#: What static configuration may give for one event: a URL, a dict, a
#: :class:`Subscriber`, a callable returning more of these, or a list of any of them.
SubscriberSource: TypeAlias = "str | Mapping[str, Any] | Subscriber | Callable[..., Any]"


def _one(event: str, item: object, default_secret: str) -> Subscriber:
    if isinstance(item, Subscriber):
        return item
    if isinstance(item, str):
        return Subscriber(event=event, url=item, id=static_id(event, item), secret=default_secret)
    if isinstance(item, Mapping):
        data = dict(item)
        data.setdefault("event", event)
        if "url" not in data:
            raise ValueError(f"static subscriber for {event!r} has no 'url': {item!r}")
        content_type = data.get("content_type", JSON)
        # None or empty counts as absent (and is dropped, so it cannot clash with the
        # value filled in under the other name).
        if not any(data.get(k) for k in ("id", "uuid")):
            data.pop("uuid", None)
            data["id"] = static_id(data["event"], data["url"], content_type)
        if not any(data.get(k) for k in ("secret", "hmac_secret")):
            data.pop("hmac_secret", None)
            data["secret"] = default_secret
        return check_limits(Subscriber.from_dict(data))
    raise ValueError(
        f"static subscriber for {event!r} must be a URL, a dict, a Subscriber or a callable, "
        f"got {type(item).__name__} {item!r}"
    )


def parse_subscribers(
    config: Mapping[str, object], default_secret: str
) -> tuple[tuple[Subscriber, ...], tuple[tuple[str, Callable[..., Any]], ...]]:
    """
    Read static subscribers given in Thorn's ``THORN_SUBSCRIBERS`` shapes.

    ``config`` maps an event pattern to a URL, a dict (see :meth:`Subscriber.from_dict`),
    a :class:`Subscriber`, a callable, or a list of these. Subscribers without an id get a
    stable one (:func:`static_id`); without a secret they get ``default_secret``. A dict's
    ``max_concurrency`` and ``rate_limit`` must be within their ranges (:func:`check_limits`).

    :return: the subscribers, and the ``(pattern, callable)`` pairs to call at send time.
    :raise ValueError: naming the event and the entry that is wrong.
    """
    subscribers: list[Subscriber] = []
    callables: list[tuple[str, Callable[..., Any]]] = []
    for event, value in config.items():
        validate_pattern(event)
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if callable(item) and not isinstance(item, Subscriber):
                callables.append((event, item))
            else:
                subscribers.append(_one(event, item, default_secret))
    return tuple(subscribers), tuple(callables)


def resolve_subscribers(
    event: str,
    produced: object,
    default_secret: str,
) -> list[Subscriber]:
    """
    Turn what a subscriber callable (or an event's ``subscribers`` argument) produced into
    subscribers for ``event``: a URL, dict, :class:`Subscriber`, or an iterable of these.
    """
    if produced is None:
        return []
    if isinstance(produced, str | Mapping | Subscriber):
        produced = [produced]
    if not isinstance(produced, Iterable):
        raise ValueError(
            f"subscribers for {event!r} must be URLs, dicts or Subscribers, got {produced!r}"
        )
    return [_one(event, item, default_secret) for item in produced]


class SubscriberNotFound(KeyError):
    """No subscriber has the id asked for."""

    def __str__(self) -> str:
        return f"no subscriber with id {self.args[0]!r}"


class DuplicateSubscriber(ValueError):
    """A subscriber with that id already exists."""
