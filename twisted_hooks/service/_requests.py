"""
Reading requests and writing answers: typed calls on :class:`~twisted.web.iweb.IRequest`,
JSON bodies with a size limit, query strings, the base URL of a listening address.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.web.iweb import IRequest

from twisted_hooks._numbers import whole
from twisted_hooks.service._errors import APIError, invalid, too_large
from twisted_hooks.service._rules import fields_of

__all__ = [
    "address_url",
    "header",
    "json_body",
    "origin",
    "query",
    "set_header",
    "set_status",
]

_JSON = b"application/json"


# IRequest's methods are not annotated: these typed helpers call them.
def header(request: IRequest, name: bytes) -> bytes | None:
    """The value of a request header, or ``None``."""
    raw: Any = request
    value: bytes | None = raw.getHeader(name)
    return value


def set_header(request: IRequest, name: bytes, value: bytes) -> None:
    """Set a response header."""
    raw: Any = request
    raw.setHeader(name, value)


def set_status(request: IRequest, code: int) -> None:
    """Set the response's status code."""
    raw: Any = request
    raw.setResponseCode(code)


def origin(request: IRequest) -> tuple[bool, object]:
    """Whether the request came over TLS, and the local address it came in on."""
    raw: Any = request
    return bool(raw.isSecure()), raw.getHost()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_body(request: IRequest, limit: int, required: bool = True) -> dict[str, Any] | None:
    """
    The JSON object a request's body holds, at most ``limit`` bytes long; ``None`` for
    an empty body that is not ``required``.

    :raise APIError: 413 for a longer body, 415 for one that is not JSON, 400 for one
        that is not a JSON object (or a required body that is empty).
    """
    length = header(request, b"content-length")
    declared = length.strip().decode("latin-1") if length is not None else ""
    if (whole(declared) or 0) > limit:
        raise too_large(limit)
    content = request.content
    raw = content.read(limit + 1) if content is not None else b""
    if len(raw) > limit:
        raise too_large(limit)
    if not raw.strip():
        if required:
            raise APIError(400, "invalid", "this request needs a JSON object body")
        return None
    content_type = header(request, b"content-type") or b""
    media = content_type.split(b";", 1)[0].strip().lower()
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


def query(request: IRequest, cls: type) -> dict[str, str]:
    """The query parameters of ``cls`` the request gives (the last of each name), as
    text; other parameters are ignored."""
    args: Mapping[bytes, Sequence[bytes]] = request.args or {}
    given: dict[str, str] = {}
    for name in fields_of(cls):
        values = args.get(name.encode("ascii"))
        if not values:
            continue
        try:
            given[name] = values[-1].decode("utf-8")
        except UnicodeDecodeError:
            raise invalid(name, f"the {name} parameter must be UTF-8 text") from None
    return given


def address_url(address: object, secure: bool) -> str:
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
