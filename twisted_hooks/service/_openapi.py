"""
The OpenAPI 3.1 document of the HTTP API, made from the bodies of
:mod:`twisted_hooks.service._schemas` and the routes' list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted_hooks.service._rules import fields_of, object_schema, parameters
from twisted_hooks.service._schemas import (
    HOOK_REQUIRED,
    AttemptOut,
    DeliveryOut,
    DeliveryQuery,
    ErrorOut,
    Health,
    HookExtra,
    HookFields,
    Publish,
    Published,
    Recover,
    Recovered,
)

__all__ = ["openapi_document"]


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


def _components() -> dict[str, Any]:
    """The schemas of the bodies, from their one definition."""
    hook = object_schema(HookFields, HookExtra)
    return {
        "Error": object_schema(ErrorOut),
        "HookCreate": object_schema(HookFields, closed=True, required=HOOK_REQUIRED),
        "HookUpdate": object_schema(HookFields, closed=True),
        "Hook": object_schema(HookFields, HookExtra, required=hook["properties"]),
        "Recover": object_schema(Recover, closed=True),
        "Recovered": object_schema(Recovered),
        "Publish": object_schema(Publish, closed=True),
        "Published": object_schema(Published),
        "Delivery": object_schema(DeliveryOut, required=fields_of(DeliveryOut)),
        "Attempt": object_schema(AttemptOut),
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
        "Health": object_schema(Health),
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
                "parameters": parameters(DeliveryQuery),
                "responses": _responses(
                    {
                        "200": {
                            "description": "the deliveries",
                            "headers": {
                                "Link": {
                                    "description": "on a full page, the next page's URL: "
                                    '<URL>; rel="next"',
                                    "schema": {"type": "string"},
                                }
                            },
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
            "schemas": _components(),
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
