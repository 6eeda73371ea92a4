"""
The Django application ``twisted_hooks.contrib.django``: add it to ``INSTALLED_APPS``.

When Django is ready it connects every model decorated with ``webhook_model`` (also the
plain :func:`twisted_hooks.webhooks.models.webhook_model`), registers a system check
(``manage.py check``) that reports wrong ``TWISTED_HOOKS`` settings and the Thorn
settings that have no effect here, and drops the sending backend whenever those settings
change (``override_settings``).
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.core import checks
from django.test.signals import setting_changed

from twisted_hooks.webhooks.models import WebhookCapable

__all__ = ["TwistedHooksConfig", "check_settings"]


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """
    The system check: an error for wrong ``TWISTED_HOOKS`` settings
    (``twisted_hooks.E001``), a warning for each Thorn setting without effect
    (``twisted_hooks.W001``).
    """
    from twisted_hooks.contrib.django.conf import (
        ConfigurationError,
        load_config,
        unsupported_thorn_settings,
    )

    found: list[checks.CheckMessage] = []
    try:
        load_config()
    except ConfigurationError as error:
        found.append(checks.Error(str(error), id="twisted_hooks.E001"))
    for name, advice in unsupported_thorn_settings():
        found.append(
            checks.Warning(
                f"{name} has no effect with twisted_hooks", hint=advice, id="twisted_hooks.W001"
            )
        )
    return found


def _settings_changed(setting: str = "", **kwargs: Any) -> None:
    if setting == "TWISTED_HOOKS" or setting.startswith("THORN_"):
        from twisted_hooks.contrib.django.backends import reset_backend

        reset_backend()


class TwistedHooksConfig(AppConfig):  # type: ignore[misc]
    """The application's configuration (label ``twisted_hooks``)."""

    name = "twisted_hooks.contrib.django"
    label = "twisted_hooks"
    verbose_name = "twisted_hooks webhooks"

    def ready(self) -> None:
        """Connect the decorated models, the system check and the settings receiver."""
        from twisted_hooks.contrib.django.signals import connect_model

        for model in apps.get_models():
            if isinstance(getattr(model, "webhooks", None), WebhookCapable):
                connect_model(model)
        checks.register(check_settings)
        setting_changed.connect(
            _settings_changed, weak=False, dispatch_uid="twisted_hooks:setting_changed"
        )
