"""
Webhook bodies: JSON with Thorn's encoder rules, or form encoding.

JSON follows Thorn's ``JsonEncoder``: datetimes keep their microseconds, aware UTC
datetimes end in ``Z``, dates and times are ISO 8601, and :class:`~decimal.Decimal` and
:class:`~uuid.UUID` become strings (a Decimal is never rounded through a float). The
encoding is compact (no spaces) and UTF-8. NaN and Infinity floats, which JSON cannot
represent, raise :class:`EncodingError` rather than being written as invalid tokens.

Form bodies (``application/x-www-form-urlencoded``) encode a mapping: each scalar value as
itself (the JSON rules above for datetimes, decimals and UUIDs; ``true``/``false`` and an
empty string for ``None``), each list or tuple as a repeated key, and each nested mapping
(or list inside such a list) as its JSON text. Anything that is not a mapping cannot be
form-encoded and raises :class:`EncodingError`.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Mapping
from urllib.parse import urlencode

__all__ = [
    "CONTENT_TYPES",
    "FORM",
    "JSON",
    "EncodingError",
    "encode_body",
    "encode_form",
    "encode_json",
]

#: The JSON content type.
JSON = "application/json"
#: The form content type.
FORM = "application/x-www-form-urlencoded"
#: The content types a subscriber may ask for.
CONTENT_TYPES: frozenset[str] = frozenset({JSON, FORM})


class EncodingError(TypeError):
    """The event data cannot be encoded in the content type asked for."""


def _default(value: object) -> object:
    if isinstance(value, datetime.datetime):
        text = value.isoformat()
        if value.utcoffset() == datetime.timedelta(0) and text.endswith("+00:00"):
            text = text[:-6] + "Z"
        return text
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise EncodingError(
        f"event data is not JSON serializable: {type(value).__name__} {value!r}; use JSON "
        "types, datetimes, dates, times, Decimal or UUID"
    )


_encoder = json.JSONEncoder(
    default=_default, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def encode_json(data: object) -> bytes:
    """
    Encode ``data`` as a compact UTF-8 JSON body with Thorn's rules.

    :raise EncodingError: for a value JSON cannot represent.
    """
    try:
        return _encoder.encode(data).encode("utf-8")
    except ValueError as error:
        # Circular references and NaN or Infinity floats surface as ValueError.
        hint = (
            " (NaN and Infinity are not valid JSON; send null or a string instead)"
            if "Out of range float" in str(error)
            else ""
        )
        raise EncodingError(f"event data cannot be encoded as JSON: {error}{hint}") from None
    except EncodingError:
        raise
    except TypeError as error:
        # A dict key JSON cannot hold (a tuple, a UUID, bytes) is a bare TypeError.
        raise EncodingError(f"event data cannot be encoded as JSON: {error}") from None


def _form_scalar(value: object) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Mapping | list | tuple):
        # Numbers as JSON writes them (NaN and infinities refused); a nested mapping, or
        # a list inside a list: its JSON text.
        return encode_json(value).decode("utf-8")
    encoded = _default(value)
    return encoded if isinstance(encoded, str) else encode_json(encoded).decode("utf-8")


def encode_form(data: object) -> bytes:
    """
    Encode a mapping as an ``application/x-www-form-urlencoded`` body.

    :raise EncodingError: when ``data`` is not a mapping with string keys, or holds a value
        that cannot be encoded.
    """
    if not isinstance(data, Mapping):
        raise EncodingError(
            f"only a mapping can be form-encoded, got {type(data).__name__}; subscribe with "
            f"content type {JSON!r} to receive other data"
        )
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        if not isinstance(key, str):
            raise EncodingError(f"form field names must be strings, got {key!r}")
        if isinstance(value, list | tuple):
            pairs.extend((key, _form_scalar(item)) for item in value)
        else:
            pairs.append((key, _form_scalar(value)))
    return urlencode(pairs).encode("ascii")


def encode_body(data: object, content_type: str) -> bytes:
    """
    Encode ``data`` for ``content_type``, one of :data:`CONTENT_TYPES`.

    :raise EncodingError: when the data cannot be encoded that way.
    :raise ValueError: for an unknown content type.
    """
    if content_type == JSON:
        return encode_json(data)
    if content_type == FORM:
        return encode_form(data)
    raise ValueError(
        f"unknown content type {content_type!r}; use one of {sorted(CONTENT_TYPES)!r}"
    )
