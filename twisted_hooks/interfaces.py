"""
The zope interfaces of twisted_hooks.

Each interface names one role. Implementations are checked with
:func:`zope.interface.verify.verifyObject` in the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from twisted_hooks.dispatcher import FireResult


class IEventDispatcher(Interface):
    """
    Fires events to handlers chosen by match-spec keywords, through ordered phases.

    See :class:`twisted_hooks.EventDispatcher` for the semantics.
    """

    running = Attribute("``True`` between :meth:`start` and :meth:`stop`.")

    phases = Attribute("The phase names, in the order they run, as a tuple of str.")

    allowed_match_spec_keywords = Attribute(
        "The keywords a match spec and an event's details may use, as a frozenset of str."
    )

    def add_event_handler(
        handler: Callable[[Any], object],
        phase: str,
        use_weakref: bool = True,
        times: int | None = None,
        **match_spec: object,
    ) -> Deferred[int]:
        """
        Register ``handler`` to be called in ``phase`` for events matching ``match_spec``.

        :return: a :class:`~twisted.internet.defer.Deferred` firing the handler's id.
        :raise ValueError: at once, for an unknown phase or keyword.
        :raise TypeError: at once, for an unhashable match-spec value.
        """

    def remove_event_handler(handler_id: int) -> Deferred[None]:
        """
        Remove the handler registered under ``handler_id``.

        :return: a Deferred firing ``None``; it fails with :class:`KeyError` for an
            unknown id.
        """

    def fire_event(event: object, **details: object) -> Deferred[FireResult]:
        """
        Call every handler whose match spec matches ``details``, phase by phase.

        :return: a Deferred firing a :class:`twisted_hooks.FireResult`.
        :raise ValueError: at once, for a detail keyword that is not allowed.
        """

    def start() -> None:
        """
        Start dispatching events. Returns ``None``.
        """

    def stop() -> Deferred[None]:
        """
        Stop dispatching events.

        :return: a Deferred that fires once every fire in flight has finished.
        """
