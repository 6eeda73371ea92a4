"""
Subscribers: who receives which events, and where they are kept.

A :class:`Subscriber` registers a URL for an event pattern (see
:mod:`twisted_hooks.webhooks.patterns`). Subscribers come from a store
(:class:`MemorySubscriberStore`, importable from here, and the durable ones, all defined
in :mod:`twisted_hooks.store`),
from static configuration in Thorn's ``THORN_SUBSCRIBERS`` shapes
(:func:`parse_subscribers`), or from an event's own ``subscribers`` argument.

Thorn's owner rule holds everywhere: a subscriber with an owner receives only the events
sent by that owner; one without an owner receives every matching event.
"""

from __future__ import annotations

from twisted_hooks.store._memory_subscribers import MemorySubscriberStore
from twisted_hooks.webhooks import _subscriber as _values
from twisted_hooks.webhooks._subscriber import (
    DuplicateSubscriber,
    Subscriber,
    SubscriberNotFound,
    check_limits,
    limit_range,
    parse_subscribers,
    resolve_subscribers,
    sender_ident,
    static_id,
)

__all__ = [
    "DIGESTS",
    "MAX_ENDPOINT_CONCURRENCY",
    "MAX_RATE_LIMIT",
    "MIN_RATE_LIMIT",
    "RESERVED_HEADERS",
    "STATIC_NAMESPACE",
    "DuplicateSubscriber",
    "MemorySubscriberStore",
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
DIGESTS: frozenset[str] = _values.DIGESTS
#: Header names (lower case) a subscriber's custom headers may not set: the engine's own.
RESERVED_HEADERS: frozenset[str] = _values.RESERVED_HEADERS
#: The slowest ``rate_limit`` a subscriber may be given, in attempts per second: one attempt
#: every 1,000 seconds (about 17 minutes). The gate holds a delivery that finds no token in
#: the bucket until ``1 / rate_limit`` seconds later, so a tinier limit would park
#: deliveries for days or, at the extreme, forever; an endpoint that must hear from us
#: less often than this should be deactivated instead.
MIN_RATE_LIMIT = _values.MIN_RATE_LIMIT
#: The fastest ``rate_limit`` a subscriber may be given, in attempts per second.
MAX_RATE_LIMIT = _values.MAX_RATE_LIMIT
#: The largest ``max_concurrency`` a subscriber may be given.
MAX_ENDPOINT_CONCURRENCY = _values.MAX_ENDPOINT_CONCURRENCY
#: The namespace of the stable ids of static subscribers (UUID version 5).
STATIC_NAMESPACE = _values.STATIC_NAMESPACE
#: What static configuration may give for one event: a URL, a dict, a
#: :class:`Subscriber`, a callable returning more of these, or a list of any of them.
SubscriberSource = _values.SubscriberSource
