"""
twisted_hooks: the event and webhook engine for Twisted.

The public names of the in-process layer live here; the webhook layer is
:mod:`twisted_hooks.webhooks`, the blocking facade :mod:`twisted_hooks.sync`.
"""

from twisted_hooks._version import __version__
from twisted_hooks.dispatcher import (
    DEFAULT_PHASES,
    EventDispatcher,
    FireResult,
    Handler,
    HandlerOutcome,
)
from twisted_hooks.interfaces import IEventDispatcher
from twisted_hooks.q import Q
from twisted_hooks.registry import (
    DispatcherLookupError,
    get_dispatcher,
    query_dispatcher,
    register_dispatcher,
    registered_dispatchers,
    unregister_dispatcher,
)

__all__ = [
    "DEFAULT_PHASES",
    "DispatcherLookupError",
    "EventDispatcher",
    "FireResult",
    "Handler",
    "HandlerOutcome",
    "IEventDispatcher",
    "Q",
    "__version__",
    "get_dispatcher",
    "query_dispatcher",
    "register_dispatcher",
    "registered_dispatchers",
    "unregister_dispatcher",
]
