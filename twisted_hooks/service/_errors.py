"""
The errors of the HTTP API: :class:`APIError`, answered as ``{"error", "detail", "field"?}``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["APIError", "invalid", "not_found", "too_large"]


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


def too_large(limit: int) -> APIError:
    """The 413 ``too_large`` error for a body over ``limit`` bytes."""
    return APIError(413, "too_large", f"the body must be at most {limit} bytes long")


def invalid(field: str, detail: str) -> APIError:
    """The 400 ``invalid`` error for a body field or query parameter."""
    return APIError(400, "invalid", detail, field)


def not_found(what: str, value: str) -> APIError:
    """The 404 ``not_found`` error for an id that names no ``what`` the caller may see."""
    return APIError(404, "not_found", f"no {what} with id {value!r}")
