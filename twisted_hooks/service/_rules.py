"""
Rules for the HTTP API's bodies, and the walker that reads them.

A body is an attrs class whose fields carry a *rule* in their metadata (:func:`rule`): the
rule checks a JSON value (``check``, raising the API's 400 ``invalid`` error naming the
field) and describes it in JSON Schema (``schema``). :func:`load` checks a request body or
a query string against such a class; :func:`object_schema` and :func:`parameters` make the
OpenAPI document's parts from it. Ranges, names and patterns come from the webhook layer
(:func:`~twisted_hooks.webhooks.subscribers.limit_range`, the reserved header names...).
The bodies themselves are in :mod:`twisted_hooks.service._schemas`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs

from twisted_hooks._numbers import whole
from twisted_hooks.service._errors import invalid
from twisted_hooks.service._times import time_value
from twisted_hooks.webhooks.subscribers import RESERVED_HEADERS, limit_range

__all__ = [
    "Anything",
    "Boolean",
    "Choice",
    "Count",
    "Headers",
    "Id",
    "Limit",
    "Rule",
    "Sender",
    "Shape",
    "Text",
    "Time",
    "fields_of",
    "load",
    "object_schema",
    "parameters",
    "rule",
    "rule_of",
    "text",
]

_RULE = "twisted_hooks.service.rule"
_MAX_TEXT = 255
_MAX_HEADERS = 32
_MAX_HEADER_VALUE = 1024
# Text fields hold no control characters (C0 and DEL). Said as "no match anywhere" rather
# than "^[^...]*$", whose $ Python's re (and so Python's JSON Schema validators) also
# matches before a final line break. (text() also refuses lone surrogates, which UTF-8
# cannot encode; a pattern cannot name them.)
_NO_CONTROLS: dict[str, Any] = {"not": {"type": "string", "pattern": "[\\u0000-\\u001f\\u007f]"}}
_HEADER_NAME = "^[A-Za-z0-9_-]+$"


class Rule(Protocol):
    """What a field's value must be: checked in requests, described in the schema."""

    def check(self, value: object, field: str) -> object:
        """The value to use for ``value`` given as ``field``, or a 400 ``invalid`` error."""

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the values this rule accepts (or, for an answer, gives)."""


def rule(
    checks: Rule,
    *,
    required: bool = False,
    attribute: str | None = None,
    doc: str | None = None,
    default: object = None,
) -> Any:
    """
    An attrs field of a body or query class, carrying its rule.

    :param checks: the rule.
    :param required: whether a request must give the field (an answer always has it).
    :param attribute: the :class:`~twisted_hooks.webhooks.subscribers.Subscriber`
        attribute the field sets, for subscription bodies.
    :param doc: the description of a query parameter.
    :param default: the value of a query parameter that is not given.
    """
    metadata = {_RULE: (checks, required, attribute, doc)}
    return attrs.field(default=default, metadata=metadata)


def rule_of(field: attrs.Attribute[Any]) -> tuple[Rule, bool, str | None, str | None]:
    """A field's rule, whether it is required, its model attribute and its description."""
    found: tuple[Rule, bool, str | None, str | None] = field.metadata[_RULE]
    return found


def fields_of(*classes: type) -> dict[str, attrs.Attribute[Any]]:
    """The fields of body classes, by name, in order."""
    found: dict[str, attrs.Attribute[Any]] = {}
    for cls in classes:
        found.update({f.name: f for f in attrs.fields(cls)})
    return found


def text(value: object, field: str, longest: int, *, empty: bool = False) -> str:
    """``value`` if it is a string of at most ``longest`` characters (none of them a
    control character), not empty unless ``empty``; else a 400 naming ``field``."""
    if not isinstance(value, str):
        raise invalid(field, f"{field} must be a string, got {type(value).__name__}")
    if not empty and not value:
        raise invalid(field, f"{field} must not be empty")
    if len(value) > longest:
        raise invalid(field, f"{field} must be at most {longest} characters long")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise invalid(field, f"{field} must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(field, f"{field} must be valid Unicode text") from None
    return value


def _whole_number(value: object) -> object:
    """A JSON number with no fractional part (``295.0``) as an ``int``, as JSON Schema's
    ``integer`` counts it; anything else unchanged."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _described(schema: dict[str, Any], description: str | None) -> dict[str, Any]:
    if description is not None:
        schema["description"] = description
    return schema


# -- rules ----------------------------------------------------------------------------------


@attrs.frozen
class Text:
    """A string of at most ``longest`` characters, not empty (unless ``empty``), with no
    control character; ``null`` too when ``nullable``. The schema states the grammar
    (``pattern``, anchored) or the format when there is one, else the length and the
    absence of control characters."""

    longest: int
    pattern: str | None = None
    format: str | None = None
    empty: bool = False
    nullable: bool = False
    description: str | None = None
    example: str | None = None

    def check(self, value: object, field: str) -> object:
        """The string, or ``None`` for a ``null`` that is allowed."""
        if value is None and self.nullable:
            return None
        return text(value, field, self.longest, empty=self.empty)

    def schema(self) -> dict[str, Any]:
        """A ``string`` schema."""
        schema: dict[str, Any] = {"type": ["string", "null"] if self.nullable else "string"}
        schema["maxLength"] = self.longest
        if self.pattern is not None:
            schema["pattern"] = f"^{self.pattern}$"
        elif self.format is not None:
            schema["format"] = self.format
        else:
            if not self.empty:
                schema["minLength"] = 1
            schema.update(_NO_CONTROLS)
        if self.example is not None:
            schema["example"] = self.example
        return _described(schema, self.description)


@attrs.frozen
class Choice:
    """One string of ``values``."""

    values: tuple[str, ...]

    def check(self, value: object, field: str) -> object:
        """The string, if it is one of the values."""
        if value in self.values:
            return value
        if not isinstance(value, str):
            raise invalid(field, f"{field} must be a string, got {type(value).__name__}")
        raise invalid(field, f"{field} must be one of {list(self.values)}, got {value!r}")

    def schema(self) -> dict[str, Any]:
        """A ``string`` ``enum``."""
        return {"type": "string", "enum": list(self.values)}


@attrs.frozen
class Boolean:
    """``true`` or ``false``."""

    def check(self, value: object, field: str) -> object:
        """The boolean."""
        if not isinstance(value, bool):
            raise invalid(field, f"{field} must be true or false")
        return value

    def schema(self) -> dict[str, Any]:
        """A ``boolean``."""
        return {"type": "boolean"}


@attrs.frozen
class Limit:
    """A subscriber's limit (``max_concurrency``, a whole number, or ``rate_limit``) in
    its range (:func:`~twisted_hooks.webhooks.subscribers.limit_range`), or ``null``."""

    name: str
    description: str

    @property
    def _whole(self) -> bool:
        return self.name == "max_concurrency"

    def check(self, value: object, field: str) -> object:
        """The number (a whole one as an ``int``), or ``None``."""
        if value is None:
            return None
        if self._whole:
            value = _whole_number(value)
        low, high = limit_range(self.name)
        kind = "a whole number" if self._whole else "a number"
        if isinstance(value, bool) or not isinstance(value, int if self._whole else int | float):
            raise invalid(field, f"{field} must be {kind} from {low:g} to {high:g}, or null")
        if not low <= value <= high:
            why = (
                " (a slower limit would hold deliveries back for hours)"
                if self.name == "rate_limit" and value < low
                else ""
            )
            raise invalid(
                field, f"{field} must be from {low:g} to {high:g}, or null, got {value!r}{why}"
            )
        return value

    def schema(self) -> dict[str, Any]:
        """A nullable ``integer`` or ``number`` with its range."""
        low, high = limit_range(self.name)
        kind = "integer" if self._whole else "number"
        return {
            "type": [kind, "null"],
            "minimum": low,
            "maximum": high,
            "description": self.description,
        }


def _reserved_headers() -> str:
    """A pattern matching the engine's own header names, in any case (JSON Schema patterns
    have no flags)."""
    spelled = (
        "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in name)
        for name in sorted(RESERVED_HEADERS)
    )
    return "^(" + "|".join(spelled) + ")$"


@attrs.frozen
class Headers:
    """Extra request headers: an object mapping names to string values. The names'
    grammar and the reserved names are :class:`Subscriber`'s rules."""

    def check(self, value: object, field: str) -> object:
        """The mapping, if its size, names and values are within bounds."""
        if not isinstance(value, dict):
            raise invalid(field, f"{field} must be an object mapping header names to strings")
        if len(value) > _MAX_HEADERS:
            raise invalid(field, f"{field} may set at most {_MAX_HEADERS} headers")
        for key, item in value.items():
            text(key, field, _MAX_TEXT)
            text(item, field, _MAX_HEADER_VALUE, empty=True)
        return value

    def schema(self) -> dict[str, Any]:
        """An ``object`` with ``propertyNames`` and string values."""
        return {
            "type": "object",
            "description": "extra request headers; names other than the engine's own "
            "(Hook-*, webhook-*, Content-Type, Host...)",
            "propertyNames": {
                "maxLength": _MAX_TEXT,
                "pattern": _HEADER_NAME,
                "not": {"pattern": _reserved_headers()},
            },
            "additionalProperties": Text(_MAX_HEADER_VALUE, empty=True).schema(),
            "maxProperties": _MAX_HEADERS,
        }


_TIME_FORMS = [
    {"type": "number", "description": "seconds since the epoch"},
    {"type": "string", "format": "date-time", "description": "RFC 3339"},
]


@attrs.frozen
class Time:
    """A time: seconds since the epoch or an RFC 3339 date-time (in a query string, a
    number in ASCII digits or a date-time); ``null`` too when ``nullable``."""

    nullable: bool = False
    query: bool = False
    description: str | None = None

    def check(self, value: object, field: str) -> object:
        """Seconds since the epoch, or ``None``."""
        if value is None and self.nullable:
            return None
        return time_value(value, field, query=self.query)

    def schema(self) -> dict[str, Any]:
        """``anyOf`` a number and a date-time (and ``null``)."""
        forms = [*_TIME_FORMS, {"type": "null"}] if self.nullable else list(_TIME_FORMS)
        return _described({"anyOf": forms}, self.description)


@attrs.frozen
class Anything:
    """Any JSON value."""

    description: str

    def check(self, value: object, field: str) -> object:
        """``value``."""
        return value

    def schema(self) -> dict[str, Any]:
        """A schema with no constraint."""
        return {"description": self.description}


@attrs.frozen
class Sender:
    """Whose event it is: a string, a 64-bit integer (answered as its text) or ``null``."""

    def check(self, value: object, field: str) -> object:
        """The sender's identity as text, or ``None``."""
        value = _whole_number(value)
        if isinstance(value, bool) or not isinstance(value, str | int | type(None)):
            raise invalid(field, f"{field} must be a string, an integer or null")
        if isinstance(value, int):
            if abs(value) >= 2**63:
                raise invalid(field, f"{field} must be a 64-bit integer")
            return str(value)
        if isinstance(value, str):
            text(value, field, _MAX_TEXT)
        return value

    def schema(self) -> dict[str, Any]:
        """``anyOf`` a string, an integer and ``null``."""
        return {
            "description": "whose event it is (a subscription receives only its "
            "owner's events); the token's owner when absent, nobody when null",
            "anyOf": [
                Text(_MAX_TEXT).schema(),
                {"type": "integer", "minimum": -(2**63) + 1, "maximum": 2**63 - 1},
                {"type": "null"},
            ],
        }


@attrs.frozen
class Count:
    """A whole number from ``low`` to ``high`` in ASCII digits (a query parameter)."""

    low: int
    high: int
    default: int

    def check(self, value: object, field: str) -> object:
        """The number."""
        number = whole(value) if isinstance(value, str) else None
        if number is None or not self.low <= number <= self.high:
            raise invalid(
                field,
                f"{field} must be a whole number from {self.low} to {self.high} in ASCII "
                f"digits, got {value!r}",
            )
        return number

    def schema(self) -> dict[str, Any]:
        """An ``integer`` with its range and default."""
        return {
            "type": "integer",
            "minimum": self.low,
            "maximum": self.high,
            "default": self.default,
        }


@attrs.frozen
class Id:
    """An id, in canonical form: ``canonical`` (a model's own id rule, such as the
    converter of :class:`~twisted_hooks.webhooks.subscribers.Subscriber`'s ``id``) reads
    it, raising :class:`ValueError` for text that is no id."""

    what: str
    canonical: Callable[[str], str]

    def check(self, value: object, field: str) -> object:
        """The canonical id."""
        try:
            return self.canonical(str(value))
        except ValueError:
            raise invalid(field, f"{field} must be {self.what} (a UUID), got {value!r}") from None

    def schema(self) -> dict[str, Any]:
        """A ``uuid`` string."""
        return {"type": "string", "format": "uuid"}


@attrs.frozen
class Shape:
    """A part of an answer, described by ``described`` (answers are not checked)."""

    described: Mapping[str, Any]

    def check(self, value: object, field: str) -> object:
        """``value``."""
        return value

    def schema(self) -> dict[str, Any]:
        """The schema given."""
        return dict(self.described)


# -- the walker -----------------------------------------------------------------------------


def object_schema(
    *classes: type, closed: bool = False, required: Iterable[str] | None = None
) -> dict[str, Any]:
    """
    The JSON Schema of a body made of the fields of ``classes``.

    :param closed: whether other fields are refused (``additionalProperties: false``).
    :param required: the required fields; by default those marked so.
    """
    fields = fields_of(*classes)
    properties = {name: rule_of(f)[0].schema() for name, f in fields.items()}
    schema: dict[str, Any] = {"type": "object"}
    needed = (
        sorted(required)
        if required is not None
        else [name for name, f in fields.items() if rule_of(f)[1]]
    )
    if needed:
        schema["required"] = needed
    schema["properties"] = properties
    if closed:
        schema["additionalProperties"] = False
    return schema


def parameters(cls: type) -> list[dict[str, Any]]:
    """The OpenAPI query parameters of a query class."""
    found = []
    for field in attrs.fields(cls):
        checks, _, _, doc = rule_of(field)
        parameter: dict[str, Any] = {"name": field.name, "in": "query"}
        if doc is not None:
            parameter["description"] = doc
        parameter["schema"] = checks.schema()
        found.append(parameter)
    return found


def load(
    cls: type,
    given: Mapping[str, object],
    *,
    ignored: Iterable[str] = (),
    required: Iterable[str] | None = None,
    defaults: bool = False,
) -> dict[str, Any]:
    """
    Check a request body (or a query string's parameters) against a body class.

    :param given: the JSON object (or the parameters, as text).
    :param ignored: fields accepted and ignored (a representation's read-only fields).
    :param required: the fields a request must give; by default those marked so.
    :param defaults: whether fields not given get their default (query strings).
    :return: the checked values of the fields given, by name (with the defaults).
    :raise APIError: a 400 naming the first field missing, unknown or invalid.
    """
    fields = fields_of(cls)
    skipped = frozenset(ignored)
    needed = (
        list(required)
        if required is not None
        else [name for name, field in fields.items() if rule_of(field)[1]]
    )
    for name in needed:
        if name not in given:
            raise invalid(name, f"{name} is required")
    checked: dict[str, Any] = {}
    for name, value in given.items():
        if name in skipped:
            continue
        field = fields.get(name)
        if field is None:
            also = f" (the read-only {sorted(skipped)} are ignored)" if skipped else ""
            raise invalid(name, f"unknown field {name!r}; use {sorted(fields)}{also}")
        checked[name] = rule_of(field)[0].check(value, name)
    if defaults:
        for name, field in fields.items():
            checked.setdefault(name, field.default)
    return checked
