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

from twisted_hooks.service import _access, _routes, _schemas
from twisted_hooks.service._access import authenticate, needs_token
from twisted_hooks.service._errors import APIError, too_large
from twisted_hooks.service._metrics import HooksMetrics
from twisted_hooks.service._openapi import openapi_document
from twisted_hooks.service._routes import HooksAPI, routes

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

#: The default body limit, in bytes (1 MiB): the configuration's default
#: ``[hooks] max_request_body``, of which this is another name.
MAX_REQUEST_BODY = _routes.MAX_REQUEST_BODY
#: The paths served without a token; every other path needs ``Authorization: Bearer``.
PUBLIC_PATHS = _access.PUBLIC_PATHS
#: How many deliveries ``GET /deliveries/`` returns unless ``limit`` says otherwise.
DEFAULT_LIMIT = _schemas.DEFAULT_LIMIT
#: The most deliveries ``GET /deliveries/`` returns.
MAX_LIMIT = _schemas.MAX_LIMIT
#: Seconds ``/healthz`` waits for the store before answering 503.
HEALTH_TIMEOUT = _routes.HEALTH_TIMEOUT
