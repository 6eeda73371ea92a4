"""
Registering dispatchers with the zope component architecture.

An :class:`~twisted_hooks.IEventDispatcher` can be registered as a *utility* in a
:class:`zope.interface.registry.Components`, unnamed or under a name, so that code which
only knows the registry can find it::

    from zope.interface.registry import Components
    from twisted_hooks import EventDispatcher
    from twisted_hooks.registry import get_dispatcher, register_dispatcher

    components = Components("myapp")
    register_dispatcher(components, EventDispatcher(["event_type"]), name="users")
    ...
    dispatcher = get_dispatcher(components, "users")

The registry is always passed in, so two applications (or two tests) never see each
other's dispatchers. To use the global site manager of ``zope.component``, pass
``zope.component.getGlobalSiteManager()``.

The webhook application that :class:`~twisted_hooks.webhooks.Event` objects made without
``app=`` send through is registered the same way, as the utility providing
:class:`~twisted_hooks.interfaces.IWebhookApplication`
(:func:`register_application`); Thorn's ``set_default_app`` and ``get_default_app``
(:mod:`twisted_hooks.webhooks`) register in and look up the process's own registry,
:func:`default_registry`.
"""

from __future__ import annotations

from typing import Any

from zope.interface.interfaces import ComponentLookupError, IComponents
from zope.interface.registry import Components

from twisted_hooks.interfaces import IEventDispatcher, IWebhookApplication

__all__ = [
    "DispatcherLookupError",
    "default_registry",
    "get_dispatcher",
    "query_application",
    "query_dispatcher",
    "register_application",
    "register_dispatcher",
    "registered_dispatchers",
    "unregister_application",
    "unregister_dispatcher",
]

#: The registry :func:`twisted_hooks.webhooks.set_default_app` registers in.
_DEFAULT = Components("twisted_hooks")


class DispatcherLookupError(ComponentLookupError):
    """
    No dispatcher is registered under the name asked for.

    A subclass of :class:`zope.interface.interfaces.ComponentLookupError`, and so of
    :class:`LookupError`.

    :ivar name: the name that was looked up (``""`` for the unnamed dispatcher).
    """

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])


def _describe_name(name: str) -> str:
    return f"named {name!r}" if name else "unnamed"


def _check_registry(registry: object) -> None:
    if not IComponents.providedBy(registry):
        raise TypeError(
            f"registry must be a zope.interface.registry.Components (or another provider of "
            f"IComponents), got {type(registry).__name__} {registry!r}; the arguments are "
            "(registry, dispatcher, name)"
        )


def _check_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(
            f"a dispatcher's name must be a str ('' for the unnamed dispatcher), got "
            f"{type(name).__name__} {name!r}"
        )


def _own_registration(registry: Components, name: str) -> object:
    """The dispatcher registered under ``name`` in ``registry`` itself, not its bases."""
    # Typed loosely: mypy-zope reads the untyped generator as returning None.
    components: Any = registry
    for registration in components.registeredUtilities():
        if registration.provided is IEventDispatcher and registration.name == name:
            return registration.component
    return None


def register_dispatcher(
    registry: Components,
    dispatcher: IEventDispatcher,
    name: str = "",
    replace: bool = False,
) -> None:
    """
    Register ``dispatcher`` in ``registry`` as a utility providing
    :class:`~twisted_hooks.IEventDispatcher`.

    Registering the same dispatcher again under the same name does nothing. A registry
    built on others (zope's ``bases``) may register its own dispatcher under a name a base
    uses: that shadows the base's, which is not a replacement.

    :param registry: the registry to register in, usually a
        :class:`zope.interface.registry.Components`.
    :param dispatcher: an object providing :class:`~twisted_hooks.IEventDispatcher`,
        such as an :class:`~twisted_hooks.EventDispatcher`.
    :param name: the utility name; ``""`` (the default) registers the unnamed dispatcher.
    :param replace: when true, a different dispatcher already registered under ``name``
        is replaced; when false (the default) that is an error.
    :raise TypeError: when ``dispatcher`` does not provide
        :class:`~twisted_hooks.IEventDispatcher`, ``registry`` is not a component
        registry, or ``name`` is not a string.
    :raise ValueError: when another dispatcher is already registered under ``name`` and
        ``replace`` is false.
    """
    _check_registry(registry)
    if not IEventDispatcher.providedBy(dispatcher):
        raise TypeError(
            f"{type(dispatcher).__name__} {dispatcher!r} does not provide IEventDispatcher; "
            "register a twisted_hooks.EventDispatcher, or declare "
            "@implementer(IEventDispatcher) on your own dispatcher class"
        )
    _check_name(name)
    existing = _own_registration(registry, name)
    if existing is dispatcher:
        return
    if existing is not None and not replace:
        raise ValueError(
            f"a different dispatcher ({existing!r}) is already registered as the "
            f"{_describe_name(name)} dispatcher; unregister it first or pass replace=True"
        )
    registry.registerUtility(dispatcher, IEventDispatcher, name)


def get_dispatcher(registry: Components, name: str = "") -> IEventDispatcher:
    """
    Look up the dispatcher registered in ``registry`` under ``name``.

    :param registry: the registry to look in.
    :param name: the utility name; ``""`` (the default) means the unnamed dispatcher.
    :return: the registered :class:`~twisted_hooks.IEventDispatcher` provider.
    :raise DispatcherLookupError: when no dispatcher is registered under ``name``; the
        message names it and lists the names that are registered.
    :raise TypeError: when ``registry`` is not a component registry or ``name`` is not a
        string.
    """
    dispatcher = query_dispatcher(registry, name)
    if dispatcher is None:
        names = [n for n, _ in registered_dispatchers(registry)]
        known = ", ".join(repr(n) for n in names) if names else "none"
        raise DispatcherLookupError(
            name,
            f"no {_describe_name(name)} IEventDispatcher is registered in {registry!r} "
            f"(registered names: {known}); call "
            "twisted_hooks.registry.register_dispatcher() first",
        )
    return dispatcher


def query_dispatcher(
    registry: Components, name: str = "", default: IEventDispatcher | None = None
) -> IEventDispatcher | None:
    """
    Look up the dispatcher registered in ``registry`` under ``name``, if there is one.

    :param registry: the registry to look in.
    :param name: the utility name; ``""`` (the default) means the unnamed dispatcher.
    :param default: what to return when none is registered under ``name``.
    :return: the registered :class:`~twisted_hooks.IEventDispatcher` provider, or
        ``default``.
    :raise TypeError: when ``registry`` is not a component registry or ``name`` is not a
        string.
    """
    _check_registry(registry)
    _check_name(name)
    found: IEventDispatcher | None = registry.queryUtility(IEventDispatcher, name)
    return default if found is None else found


def unregister_dispatcher(registry: Components, name: str = "") -> bool:
    """
    Remove the dispatcher registered in ``registry`` under ``name``.

    :param registry: the registry to remove it from.
    :param name: the utility name; ``""`` (the default) means the unnamed dispatcher.
    :return: ``True`` when a dispatcher was registered and has been removed, ``False``
        when none was registered under ``name``.
    :raise TypeError: when ``registry`` is not a component registry or ``name`` is not a
        string.
    """
    _check_registry(registry)
    _check_name(name)
    removed: bool = registry.unregisterUtility(provided=IEventDispatcher, name=name)
    return removed


def registered_dispatchers(registry: Components) -> list[tuple[str, IEventDispatcher]]:
    """
    List the dispatchers registered in ``registry``.

    :param registry: the registry to look in.
    :return: ``(name, dispatcher)`` pairs sorted by name; the unnamed dispatcher, if any,
        comes first with the name ``""``.
    :raise TypeError: when ``registry`` is not a component registry.
    """
    _check_registry(registry)
    return sorted(registry.getUtilitiesFor(IEventDispatcher), key=lambda pair: pair[0])


def default_registry() -> Components:
    """
    The process's registry of the default webhook application, which
    :func:`twisted_hooks.webhooks.set_default_app` registers in and
    :func:`twisted_hooks.webhooks.get_default_app` looks up.
    """
    return _DEFAULT


def register_application(registry: Components, app: object, name: str = "") -> None:
    """
    Register ``app`` (a :class:`~twisted_hooks.webhooks.Hooks`, or any object with its
    ``settings``, ``send`` and ``buffer_events``) in ``registry`` as the utility providing
    :class:`~twisted_hooks.interfaces.IWebhookApplication`, replacing the one registered
    under ``name``.

    :raise TypeError: when ``registry`` is not a component registry, ``name`` is not a
        string, or ``app`` has no ``send`` method.
    """
    _check_registry(registry)
    _check_name(name)
    if not callable(getattr(app, "send", None)):
        raise TypeError(
            f"{type(app).__name__} {app!r} is not a webhook application (it has no send "
            "method); register a twisted_hooks.webhooks.Hooks"
        )
    registry.registerUtility(app, IWebhookApplication, name)


def query_application(registry: Components, name: str = "") -> Any:
    """
    The webhook application registered in ``registry`` under ``name``, or ``None``.

    :raise TypeError: when ``registry`` is not a component registry or ``name`` is not a
        string.
    """
    _check_registry(registry)
    _check_name(name)
    return registry.queryUtility(IWebhookApplication, name)


def unregister_application(registry: Components, name: str = "") -> bool:
    """
    Remove the webhook application registered in ``registry`` under ``name``.

    :return: ``True`` when one was registered and has been removed.
    :raise TypeError: when ``registry`` is not a component registry or ``name`` is not a
        string.
    """
    _check_registry(registry)
    _check_name(name)
    removed: bool = registry.unregisterUtility(provided=IWebhookApplication, name=name)
    return removed
