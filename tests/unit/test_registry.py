"""
Tests for :mod:`twisted_hooks.registry`.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.interfaces import ComponentLookupError
from zope.interface.registry import Components

from twisted_hooks.dispatcher import EventDispatcher
from twisted_hooks.interfaces import IEventDispatcher, IWebhookApplication
from twisted_hooks.registry import (
    DispatcherLookupError,
    default_registry,
    get_dispatcher,
    query_application,
    query_dispatcher,
    register_application,
    register_dispatcher,
    registered_dispatchers,
    unregister_application,
    unregister_dispatcher,
)


def make_dispatcher() -> EventDispatcher:
    return EventDispatcher(["event_type", "user"])


@implementer(IEventDispatcher)
class DeclaredDispatcher:
    """A minimal class declaring IEventDispatcher; the registry checks the declaration."""


class RegisterAndGetTests(SynchronousTestCase):
    """
    Registering a dispatcher, then finding it again.
    """

    def setUp(self) -> None:
        self.registry = Components("test")

    def test_unnamed(self) -> None:
        """A dispatcher registered without a name is found without a name."""
        dispatcher = make_dispatcher()
        register_dispatcher(self.registry, dispatcher)
        self.assertIs(get_dispatcher(self.registry), dispatcher)
        self.assertIs(query_dispatcher(self.registry), dispatcher)

    def test_registered_as_utility(self) -> None:
        """The registration is an ordinary zope utility providing IEventDispatcher."""
        dispatcher = make_dispatcher()
        register_dispatcher(self.registry, dispatcher, name="users")
        self.assertIs(self.registry.getUtility(IEventDispatcher, "users"), dispatcher)

    def test_named(self) -> None:
        """A dispatcher registered under a name is found under that name only."""
        dispatcher = make_dispatcher()
        register_dispatcher(self.registry, dispatcher, name="users")
        self.assertIs(get_dispatcher(self.registry, "users"), dispatcher)
        self.assertIsNone(query_dispatcher(self.registry))
        self.assertIsNone(query_dispatcher(self.registry, "orders"))

    def test_named_and_unnamed_are_distinct(self) -> None:
        """The unnamed dispatcher and named ones live side by side."""
        unnamed, users, orders = make_dispatcher(), make_dispatcher(), make_dispatcher()
        register_dispatcher(self.registry, unnamed)
        register_dispatcher(self.registry, users, "users")
        register_dispatcher(self.registry, orders, name="orders")
        self.assertIs(get_dispatcher(self.registry), unnamed)
        self.assertIs(get_dispatcher(self.registry, "users"), users)
        self.assertIs(get_dispatcher(self.registry, name="orders"), orders)

    def test_any_provider(self) -> None:
        """Any object declaring IEventDispatcher can be registered, not only ours."""
        dispatcher = DeclaredDispatcher()
        register_dispatcher(self.registry, dispatcher)  # type: ignore[arg-type]
        self.assertIs(get_dispatcher(self.registry), dispatcher)

    def test_same_dispatcher_twice(self) -> None:
        """Registering the same dispatcher again under the same name does nothing."""
        dispatcher = make_dispatcher()
        register_dispatcher(self.registry, dispatcher, "users")
        register_dispatcher(self.registry, dispatcher, "users")
        self.assertEqual(registered_dispatchers(self.registry), [("users", dispatcher)])

    def test_same_dispatcher_two_names(self) -> None:
        """One dispatcher may be registered under several names."""
        dispatcher = make_dispatcher()
        register_dispatcher(self.registry, dispatcher)
        register_dispatcher(self.registry, dispatcher, "alias")
        self.assertIs(get_dispatcher(self.registry), get_dispatcher(self.registry, "alias"))

    def test_other_dispatcher_same_name(self) -> None:
        """
        Registering a different dispatcher under a taken name is a ValueError naming the
        name, and the first registration stays.
        """
        first = make_dispatcher()
        register_dispatcher(self.registry, first, "users")
        error = self.assertRaises(
            ValueError, register_dispatcher, self.registry, make_dispatcher(), "users"
        )
        self.assertIn("'users'", str(error))
        self.assertIn("replace=True", str(error))
        self.assertIs(get_dispatcher(self.registry, "users"), first)

    def test_replace(self) -> None:
        """With replace=True a different dispatcher takes over the name."""
        register_dispatcher(self.registry, make_dispatcher())
        second = make_dispatcher()
        register_dispatcher(self.registry, second, replace=True)
        self.assertIs(get_dispatcher(self.registry), second)

    def test_registered_dispatchers(self) -> None:
        """registered_dispatchers lists (name, dispatcher) pairs sorted by name."""
        unnamed, users, orders = make_dispatcher(), make_dispatcher(), make_dispatcher()
        register_dispatcher(self.registry, users, "users")
        register_dispatcher(self.registry, unnamed)
        register_dispatcher(self.registry, orders, "orders")
        self.assertEqual(
            registered_dispatchers(self.registry),
            [("", unnamed), ("orders", orders), ("users", users)],
        )

    def test_registered_dispatchers_empty(self) -> None:
        """An empty registry lists no dispatchers."""
        self.assertEqual(registered_dispatchers(self.registry), [])


class RegisterErrorTests(SynchronousTestCase):
    """
    Registering something that is not a dispatcher, or not into a registry.
    """

    def setUp(self) -> None:
        self.registry = Components("test")

    def test_not_a_dispatcher(self) -> None:
        """
        An object that does not provide IEventDispatcher is a TypeError that says how to
        fix it, and nothing is registered.
        """
        error = self.assertRaises(TypeError, register_dispatcher, self.registry, object())
        self.assertIn("does not provide IEventDispatcher", str(error))
        self.assertIn("@implementer(IEventDispatcher)", str(error))
        self.assertEqual(registered_dispatchers(self.registry), [])

    def test_look_alike_is_not_a_dispatcher(self) -> None:
        """Having the methods is not enough: the interface must be declared."""

        class LookAlike:
            def fire_event(self, event: object, **details: object) -> None:
                pass

        self.assertRaises(TypeError, register_dispatcher, self.registry, LookAlike())

    def test_arguments_swapped(self) -> None:
        """Passing the dispatcher where the registry goes is a TypeError naming the order."""
        dispatcher: Any = make_dispatcher()
        error = self.assertRaises(TypeError, register_dispatcher, dispatcher, self.registry)
        self.assertIn("(registry, dispatcher, name)", str(error))

    def test_name_not_a_string(self) -> None:
        """A name that is not a str is a TypeError."""
        name: Any = 1
        error = self.assertRaises(
            TypeError, register_dispatcher, self.registry, make_dispatcher(), name
        )
        self.assertIn("must be a str", str(error))
        self.assertRaises(TypeError, get_dispatcher, self.registry, name)
        self.assertRaises(TypeError, query_dispatcher, self.registry, name)
        self.assertRaises(TypeError, unregister_dispatcher, self.registry, name)

    def test_lookup_in_something_else(self) -> None:
        """Looking up in an object that is not a registry is a TypeError."""
        registry: Any = {}
        self.assertRaises(TypeError, get_dispatcher, registry)
        self.assertRaises(TypeError, query_dispatcher, registry)
        self.assertRaises(TypeError, unregister_dispatcher, registry)
        self.assertRaises(TypeError, registered_dispatchers, registry)


class LookupErrorTests(SynchronousTestCase):
    """
    Looking up a dispatcher that is not there.
    """

    def setUp(self) -> None:
        self.registry = Components("test")

    def test_missing_named(self) -> None:
        """
        get_dispatcher for a missing name raises DispatcherLookupError, which is a zope
        ComponentLookupError and a LookupError, naming the name and the known names.
        """
        register_dispatcher(self.registry, make_dispatcher(), "orders")
        error = self.assertRaises(DispatcherLookupError, get_dispatcher, self.registry, "users")
        self.assertIsInstance(error, ComponentLookupError)
        self.assertIsInstance(error, LookupError)
        self.assertEqual(error.name, "users")
        self.assertIn("'users'", str(error))
        self.assertIn("'orders'", str(error))
        self.assertIn("register_dispatcher", str(error))

    def test_missing_unnamed(self) -> None:
        """get_dispatcher without a name, when none is registered, says 'unnamed'."""
        error = self.assertRaises(LookupError, get_dispatcher, self.registry)
        self.assertIn("unnamed", str(error))
        self.assertIn("registered names: none", str(error))

    def test_query_default(self) -> None:
        """query_dispatcher returns the default when nothing is registered."""
        default = make_dispatcher()
        self.assertIs(query_dispatcher(self.registry, "users", default), default)
        self.assertIs(query_dispatcher(self.registry, default=default), default)


class UnregisterTests(SynchronousTestCase):
    """
    Removing a registration.
    """

    def setUp(self) -> None:
        self.registry = Components("test")

    def test_unregister_unnamed(self) -> None:
        """Unregistering the unnamed dispatcher returns True and it is gone."""
        register_dispatcher(self.registry, make_dispatcher())
        self.assertTrue(unregister_dispatcher(self.registry))
        self.assertIsNone(query_dispatcher(self.registry))

    def test_unregister_named_only(self) -> None:
        """Unregistering a name leaves the other registrations alone."""
        unnamed, users = make_dispatcher(), make_dispatcher()
        register_dispatcher(self.registry, unnamed)
        register_dispatcher(self.registry, users, "users")
        self.assertTrue(unregister_dispatcher(self.registry, "users"))
        self.assertIsNone(query_dispatcher(self.registry, "users"))
        self.assertIs(get_dispatcher(self.registry), unnamed)

    def test_unregister_missing(self) -> None:
        """Unregistering a name with no dispatcher returns False."""
        register_dispatcher(self.registry, make_dispatcher(), "users")
        self.assertFalse(unregister_dispatcher(self.registry))
        self.assertFalse(unregister_dispatcher(self.registry, "orders"))

    def test_unregister_twice(self) -> None:
        """The second unregistration of a name returns False."""
        register_dispatcher(self.registry, make_dispatcher(), "users")
        self.assertTrue(unregister_dispatcher(self.registry, "users"))
        self.assertFalse(unregister_dispatcher(self.registry, "users"))

    def test_register_after_unregister(self) -> None:
        """A name freed by unregistering can take another dispatcher without replace."""
        register_dispatcher(self.registry, make_dispatcher(), "users")
        unregister_dispatcher(self.registry, "users")
        second = make_dispatcher()
        register_dispatcher(self.registry, second, "users")
        self.assertIs(get_dispatcher(self.registry, "users"), second)


class IsolationTests(SynchronousTestCase):
    """
    Registries do not share state.
    """

    def test_two_registries(self) -> None:
        """A dispatcher registered in one registry is not seen in another."""
        first, second = Components("first"), Components("second")
        one, two = make_dispatcher(), make_dispatcher()
        register_dispatcher(first, one)
        register_dispatcher(second, two, "users")
        self.assertIs(get_dispatcher(first), one)
        self.assertIsNone(query_dispatcher(second))
        self.assertIsNone(query_dispatcher(first, "users"))
        self.assertIs(get_dispatcher(second, "users"), two)
        self.assertTrue(unregister_dispatcher(first))
        self.assertIs(get_dispatcher(second, "users"), two)

    def test_same_name_in_two_registries(self) -> None:
        """The same name can hold different dispatchers in different registries."""
        first, second = Components("first"), Components("second")
        one, two = make_dispatcher(), make_dispatcher()
        register_dispatcher(first, one, "users")
        register_dispatcher(second, two, "users")
        self.assertIs(get_dispatcher(first, "users"), one)
        self.assertIs(get_dispatcher(second, "users"), two)

    def test_fresh_registry_is_empty(self) -> None:
        """
        Nothing leaks from other tests: a new registry has no dispatcher (the module keeps
        no registry of its own).
        """
        self.assertEqual(registered_dispatchers(Components("fresh")), [])

    def test_child_registry_inherits(self) -> None:
        """
        A registry built on another (zope's ``bases``) finds the base's dispatchers, and
        its own registrations shadow them without changing the base.
        """
        base = Components("base")
        child = Components("child", bases=(base,))
        in_base, in_child = make_dispatcher(), make_dispatcher()
        register_dispatcher(base, in_base)
        self.assertIs(get_dispatcher(child), in_base)
        register_dispatcher(child, in_child)
        self.assertIs(get_dispatcher(child), in_child)
        self.assertIs(get_dispatcher(base), in_base)


class _App:
    """Stands for a webhook application: only ``send`` is looked at."""

    settings = None

    def send(self, *args: object, **kwargs: object) -> None:
        """Nothing."""

    def buffer_events(self, *args: object) -> None:
        """Nothing."""


class ApplicationTests(SynchronousTestCase):
    """
    The default webhook application lives in a zope registry, as the utility providing
    IWebhookApplication.
    """

    def test_register_query_unregister(self) -> None:
        """An application registered in a registry is found there, under its name, and
        nowhere else; unregistering removes it and says whether there was one."""
        registry, other = Components("one"), Components("other")
        app, named = _App(), _App()
        register_application(registry, app)
        register_application(registry, named, "shop")
        self.assertIs(query_application(registry), app)
        self.assertIs(query_application(registry, "shop"), named)
        self.assertIs(registry.getUtility(IWebhookApplication), app)
        self.assertIsNone(query_application(other))
        self.assertTrue(unregister_application(registry))
        self.assertIsNone(query_application(registry))
        self.assertFalse(unregister_application(registry))
        self.assertIs(query_application(registry, "shop"), named)

    def test_register_replaces(self) -> None:
        """Registering another application under the same name replaces the first."""
        registry = Components("one")
        first, second = _App(), _App()
        register_application(registry, first)
        register_application(registry, second)
        self.assertIs(query_application(registry), second)

    def test_bad_arguments(self) -> None:
        """Something that cannot send, a registry that is none and a name that is not text
        are refused with a TypeError naming the problem."""
        with self.assertRaises(TypeError) as caught:
            register_application(Components("one"), object())
        self.assertIn("is not a webhook application", str(caught.exception))
        with self.assertRaises(TypeError) as caught:
            register_application({}, _App())  # type: ignore[arg-type]
        self.assertIn(
            "registry must be a zope.interface.registry.Components", str(caught.exception)
        )
        with self.assertRaises(TypeError):
            query_application(Components("one"), 3)  # type: ignore[arg-type]

    def test_default_app_is_the_default_registrys(self) -> None:
        """set_default_app registers in default_registry(), and get_default_app reads it
        back from there: an application registered there directly is the default; no module
        global holds it."""
        from twisted_hooks.webhooks import events
        from twisted_hooks.webhooks.events import NoApplication

        app = _App()
        self.addCleanup(events.set_default_app, None)
        events.set_default_app(app)  # type: ignore[arg-type]
        self.assertIs(query_application(default_registry()), app)
        other = _App()
        register_application(default_registry(), other)
        self.assertIs(events.get_default_app(), other)
        unregister_application(default_registry())
        self.assertRaises(NoApplication, events.get_default_app)
        self.assertFalse(hasattr(events, "_default_app"))


class HooksProvidesApplicationTests(SynchronousTestCase):
    """Hooks is a webhook application in the registry's sense."""

    def test_verify_object(self) -> None:
        """A Hooks provides IWebhookApplication (settings, send, buffer_events), and is
        what get_default_app gives after set_default_app."""
        from twisted.internet.task import Clock
        from zope.interface.verify import verifyObject

        from twisted_hooks.testing import FakeSender
        from twisted_hooks.webhooks import Hooks, get_default_app, set_default_app

        clock = Clock()
        hooks = Hooks(clock, sender=FakeSender(clock))
        self.assertTrue(verifyObject(IWebhookApplication, hooks))
        self.addCleanup(set_default_app, None)
        set_default_app(hooks)
        self.assertIs(get_default_app(), hooks)
        self.assertIs(default_registry().getUtility(IWebhookApplication), hooks)
