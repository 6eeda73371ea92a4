"""
Thorn's Django integration: webhooks sent when Django models are created, changed,
deleted, or their many-to-many relations change.

Install the extra (``pip install twisted_hooks[django]``), add
``"twisted_hooks.contrib.django"`` to ``INSTALLED_APPS``, and decorate models as with
Thorn::

    from django.db import models
    from twisted_hooks.contrib.django import ModelEvent, webhook_model

    @webhook_model(sender_field="author")
    class Article(models.Model):
        title = models.CharField(max_length=100)
        state = models.CharField(max_length=20, default="draft")
        author = models.ForeignKey("auth.User", on_delete=models.CASCADE)
        tags = models.ManyToManyField("Tag")

        class webhooks:
            on_create = ModelEvent("article.created")
            on_change = ModelEvent("article.changed")
            on_delete = ModelEvent("article.removed")
            on_publish = ModelEvent(
                "article.published", state__now_eq="published"
            ).dispatches_on_change()
            on_tag = ModelEvent("article.tagged").dispatches_on_m2m_add("tags")

            def payload(self, article):
                return {"title": article.title, "state": article.state}

        def get_absolute_url(self):
            return f"/articles/{self.pk}/"

Each event sends Thorn's message ``{"event", "ref", "sender", "data"}``: ``ref`` is the
event's ``reverse`` or the model's ``get_absolute_url()`` (joined to
``TWISTED_HOOKS["BASE_URL"]`` when relative and that is set), ``sender`` the user at
``sender_field``. The signals and what they dispatch are listed in
:mod:`twisted_hooks.contrib.django.signals`; the settings (``TWISTED_HOOKS`` and Thorn's
``THORN_*``) in :mod:`twisted_hooks.contrib.django.conf`; where messages go (in process
or to a running service) in :mod:`twisted_hooks.contrib.django.backends`. Importing this
package does not need Django to be configured; sending does.
"""

from __future__ import annotations

from typing import Any, TypeVar

from twisted_hooks.contrib.django.backends import (
    ServiceError,
    get_backend,
    get_hooks,
    reset_backend,
)
from twisted_hooks.contrib.django.conf import ConfigurationError
from twisted_hooks.contrib.django.signals import (
    M2M_ADD,
    M2M_CLEAR,
    M2M_REMOVE,
    connect_model,
)
from twisted_hooks.q import Q
from twisted_hooks.webhooks import models as _models

__all__ = [
    "ConfigurationError",
    "ModelEvent",
    "Q",
    "ServiceError",
    "connect_model",
    "get_backend",
    "get_hooks",
    "model_reverser",
    "reset_backend",
    "webhook_model",
]


class ModelEvent(_models.ModelEvent):
    """
    :class:`twisted_hooks.webhooks.models.ModelEvent` with Thorn's many-to-many dispatch
    for Django models (:meth:`dispatches_on_m2m_add` and friends). Its arguments are those
    of the base class; ``signal_honors_transaction`` defaults to the
    ``SIGNAL_HONORS_TRANSACTION`` setting (``True`` unless set).
    """

    #: The many-to-many field an ``m2m`` event is about (``"tags"``), once set.
    related_field: str | None = None

    @property
    def signal_honors_transaction(self) -> bool:
        """Whether the event is sent when the transaction commits: the
        ``signal_honors_transaction`` argument, else the setting."""
        from twisted_hooks.contrib.django.conf import load_config

        given = self._signal_honors_transaction
        return load_config().signal_honors_transaction if given is None else bool(given)

    def _dispatches_on_m2m(self: _Event, kind: str, related_field: str) -> _Event:
        if not isinstance(related_field, str) or not related_field:
            raise TypeError(
                f"dispatches_on_{kind}() takes the name of the many-to-many field, such as "
                f"'tags', got {related_field!r}"
            )
        if self.dispatches_on is None:
            self.related_field = related_field
        self._set_default_dispatch(kind)
        return self

    def dispatches_on_m2m_add(self: _Event, related_field: str) -> _Event:
        """Send this event when objects are added to ``related_field``
        (``article.tags.add(tag)``); returns the event."""
        return self._dispatches_on_m2m(M2M_ADD, related_field)

    def dispatches_on_m2m_remove(self: _Event, related_field: str) -> _Event:
        """Send this event when objects are removed from ``related_field``
        (``article.tags.remove(tag)``); returns the event."""
        return self._dispatches_on_m2m(M2M_REMOVE, related_field)

    def dispatches_on_m2m_clear(self: _Event, related_field: str) -> _Event:
        """Send this event when ``related_field`` is cleared (``article.tags.clear()``);
        returns the event."""
        return self._dispatches_on_m2m(M2M_CLEAR, related_field)


#: What the ``dispatches_on_m2m_*`` methods return: the event they were called on.
_Event = TypeVar("_Event", bound=ModelEvent)


class model_reverser(_models.model_reverser):
    """
    Thorn's ``model_reverser`` for Django: the ``ref`` is
    ``django.urls.reverse(view_name, args=..., kwargs=...)`` with values taken from the
    instance (dotted attribute paths)::

        model_reverser("article:detail", uuid="uuid")
        model_reverser("category:detail", "category.name")

    A callable ``view_name`` is called with the values instead, as in the base class.
    """

    def reverse(self, view_name: Any, args: list[Any], kwargs: dict[str, Any]) -> str:
        """Resolve ``view_name`` with Django's URL resolver."""
        if callable(view_name):
            return str(view_name(*args, **kwargs))
        from django.urls import reverse

        return str(reverse(view_name, args=args or None, kwargs=kwargs or None))


def webhook_model(*args: Any, **kwargs: Any) -> Any:
    """
    :func:`twisted_hooks.webhooks.models.webhook_model` for Django models: decorates the
    model (same arguments: ``on_*`` events, ``sender_field``, ``reverse``, or an inner
    ``class webhooks:``) and connects its signals (:func:`connect_model`).

    Models decorated with the plain ``webhook_model`` are connected too when the
    ``twisted_hooks.contrib.django`` app is installed (in ``AppConfig.ready``).
    """
    decorated = _models.webhook_model(*args, **kwargs)
    if len(args) == 1 and not kwargs:
        return connect_model(decorated)

    def decorate(model: type) -> type:
        return connect_model(decorated(model))

    return decorate
