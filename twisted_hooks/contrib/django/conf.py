"""
The Django settings of the integration, read into a :class:`DjangoConfig`.

Everything lives in one ``TWISTED_HOOKS`` dictionary of the Django settings; Thorn's
``THORN_*`` settings are read too where they have a meaning here, and a key of
``TWISTED_HOOKS`` wins over the Thorn setting it replaces:

- ``MODE`` (Thorn: ``THORN_DISPATCHER``): ``"inprocess"`` (the default), ``"service"`` or
  ``"disabled"``;
- ``SUBSCRIBERS`` (``THORN_SUBSCRIBERS``): static subscribers, and ``SECRET``, their
  default secret;
- ``TIMEOUT`` (``THORN_EVENT_TIMEOUT``): the deadline of an attempt, in seconds;
- ``RETRY`` (``THORN_RETRY``, ``THORN_RETRY_MAX``, ``THORN_RETRY_DELAY``): the retry
  policy;
- ``RECIPIENT_VALIDATORS`` (``THORN_RECIPIENT_VALIDATORS``) and ``ALLOWED_NETWORKS``: the
  recipient policy;
- ``SIGNAL_HONORS_TRANSACTION`` (``THORN_SIGNAL_HONORS_TRANSACTION``): send on commit
  (default ``True``);
- ``DATABASE``: a store URL for durable in-process deliveries; ``SETTINGS``: other
  :class:`~twisted_hooks.webhooks.Settings` fields;
- ``URL`` and ``TOKEN``: the service (``"service"`` mode); ``SEND_TIMEOUT``: how long a
  send waits to be accepted; ``BASE_URL``: the base of relative ``ref`` URLs.

See :doc:`/thorn` for each setting in detail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from twisted_hooks.webhooks.app import Settings
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.validators import RecipientPolicy

__all__ = [
    "DISABLED",
    "IGNORED_THORN_SETTINGS",
    "INPROCESS",
    "KEYS",
    "MODES",
    "SERVICE",
    "THORN_SIGNER",
    "ConfigurationError",
    "DjangoConfig",
    "load_config",
    "unsupported_thorn_settings",
]

#: ``MODE``: deliver from this process, through :mod:`twisted_hooks.sync`.
INPROCESS = "inprocess"
#: ``MODE``: publish to a running service's ``POST /events/``.
SERVICE = "service"
#: ``MODE``: send nothing (Thorn's ``"disabled"`` dispatcher).
DISABLED = "disabled"
#: The modes.
MODES = (INPROCESS, SERVICE, DISABLED)

#: The keys ``TWISTED_HOOKS`` may hold.
KEYS = frozenset(
    {
        "MODE",
        "SUBSCRIBERS",
        "SECRET",
        "TIMEOUT",
        "RETRY",
        "RECIPIENT_VALIDATORS",
        "ALLOWED_NETWORKS",
        "SIGNAL_HONORS_TRANSACTION",
        "DATABASE",
        "SETTINGS",
        "URL",
        "TOKEN",
        "SEND_TIMEOUT",
        "BASE_URL",
    }
)

#: Thorn settings that have no effect here, with what to do instead.
IGNORED_THORN_SETTINGS: Mapping[str, str] = {
    "THORN_CHUNKSIZE": "there are no Celery tasks to chunk: deliveries are batched by the "
    "engine (TWISTED_HOOKS['SETTINGS']['batch'])",
    "THORN_CODECS": "bodies are JSON or form-encoded, as the subscriber's content_type says",
    "THORN_EVENT_CHOICES": "subscriptions are made through the service's /hooks/ API, which "
    "accepts any event pattern",
    "THORN_DRF_PERMISSION_CLASSES": "the service's /hooks/ API authenticates bearer tokens "
    "with scopes (twisted-hooks token create)",
    "THORN_SUBSCRIBER_MODEL": "subscribers are kept by the engine's store (memory, SQLite or "
    "PostgreSQL), not by a Django model",
}

#: Thorn's recommended signer, the only one twisted_hooks has.
THORN_SIGNER = "thorn.utils.hmac:sign"

_NOT_SET = object()


class ConfigurationError(ValueError):
    """The Django settings of the integration are wrong; the message says which one."""


@attrs.frozen
class DjangoConfig:
    """
    The integration's settings.

    :ivar mode: ``"inprocess"``, ``"service"`` or ``"disabled"``.
    :ivar settings: the in-process application's settings.
    :ivar static_subscribers: the in-process application's static subscribers.
    :ivar default_secret: their default secret (random when ``None``).
    :ivar database: a store URL (``sqlite:PATH``, ``postgresql://...``) for durable
        in-process deliveries; in memory when ``None``.
    :ivar signal_honors_transaction: the default of the events that do not say.
    :ivar url: the service's base URL (``"service"`` mode).
    :ivar token: the service's bearer token, with the ``publish`` scope.
    :ivar send_timeout: seconds a send waits to be accepted (the facade's timeout, or the
        HTTP timeout of ``POST /events/``).
    :ivar base_url: joined to a relative ``ref`` (such as ``/articles/1/``); relative refs
        are sent as they are when ``None``, as Thorn did.
    """

    mode: str = INPROCESS
    settings: Settings = attrs.field(factory=Settings)
    static_subscribers: Mapping[str, object] | None = None
    default_secret: str | None = None
    database: str | None = None
    signal_honors_transaction: bool = True
    url: str | None = None
    token: str | None = None
    send_timeout: float = 10.0
    base_url: str | None = None


def _setting(
    options: Mapping[str, Any], django_settings: object, key: str, thorn: str | None = None
) -> Any:
    if key in options:
        return options[key]
    if thorn is not None:
        return getattr(django_settings, thorn, _NOT_SET)
    return _NOT_SET


def _mode(options: Mapping[str, Any], django_settings: object) -> tuple[str, str]:
    """The mode and the Settings backend it implies."""
    mode = options.get("MODE", _NOT_SET)
    if mode is _NOT_SET:
        dispatcher = getattr(django_settings, "THORN_DISPATCHER", "default")
        if dispatcher == "default":
            return INPROCESS, "default"
        if dispatcher == "disabled":
            return DISABLED, "disabled"
        if dispatcher == "celery":
            raise ConfigurationError(
                "THORN_DISPATCHER = 'celery' has no equivalent: run the twisted_hooks service "
                "and set TWISTED_HOOKS = {'MODE': 'service', 'URL': ..., 'TOKEN': ...}"
            )
        raise ConfigurationError(
            f"THORN_DISPATCHER = {dispatcher!r} is not supported; set TWISTED_HOOKS['MODE'] "
            f"to one of {list(MODES)}"
        )
    if mode not in MODES:
        raise ConfigurationError(
            f"TWISTED_HOOKS['MODE'] must be one of {list(MODES)}, got {mode!r}"
        )
    return mode, "disabled" if mode == DISABLED else "default"


def _positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _retry(options: Mapping[str, Any], django_settings: object, base: RetryPolicy) -> RetryPolicy:
    retry = options.get("RETRY", _NOT_SET)
    if retry is not _NOT_SET:
        if not isinstance(retry, RetryPolicy):
            raise ConfigurationError(
                f"TWISTED_HOOKS['RETRY'] must be a twisted_hooks.webhooks.RetryPolicy, "
                f"got {retry!r}"
            )
        return retry
    thorn = [
        getattr(django_settings, name, None)
        for name in ("THORN_RETRY", "THORN_RETRY_MAX", "THORN_RETRY_DELAY")
    ]
    if thorn == [None, None, None]:
        return base
    retry_on, retry_max, retry_delay = thorn
    try:
        return RetryPolicy.from_thorn(retry_on, retry_max, retry_delay, default=base)
    except ValueError as error:
        raise ConfigurationError(f"THORN_RETRY_MAX / THORN_RETRY_DELAY: {error}") from None


def _django_settings() -> object:
    from django.conf import settings

    return settings


def load_config(django_settings: object | None = None) -> DjangoConfig:
    """
    Read the integration's settings from the Django settings.

    :param django_settings: the settings object; :data:`django.conf.settings` if ``None``.
    :raise ConfigurationError: for a wrong setting, naming it.
    """
    if django_settings is None:
        django_settings = _django_settings()
    options = getattr(django_settings, "TWISTED_HOOKS", None) or {}
    if not isinstance(options, Mapping):
        raise ConfigurationError(f"TWISTED_HOOKS must be a dict, got {options!r}")
    unknown = sorted(set(options) - KEYS)
    if unknown:
        raise ConfigurationError(
            f"TWISTED_HOOKS has unknown key(s) {unknown!r}; the keys are {sorted(KEYS)}"
        )
    mode, backend = _mode(options, django_settings)

    extra = options.get("SETTINGS", {})
    if not isinstance(extra, Mapping):
        raise ConfigurationError(
            "TWISTED_HOOKS['SETTINGS'] must be a dict of twisted_hooks.webhooks.Settings "
            f"fields, got {extra!r}"
        )
    base = Settings()
    fields: dict[str, Any] = {"backend": backend}
    timeout = _setting(options, django_settings, "TIMEOUT", "THORN_EVENT_TIMEOUT")
    if timeout is not _NOT_SET and timeout is not None:
        fields["timeout"] = _positive(timeout, "TWISTED_HOOKS['TIMEOUT'] (THORN_EVENT_TIMEOUT)")
        if "lease" not in extra and fields["timeout"] + 30 > base.lease:
            fields["lease"] = fields["timeout"] + 30
    fields["retry"] = _retry(options, django_settings, base.retry)
    validators = _setting(
        options, django_settings, "RECIPIENT_VALIDATORS", "THORN_RECIPIENT_VALIDATORS"
    )
    networks = options.get("ALLOWED_NETWORKS", ())
    policy: dict[str, Any] = {"allowed_networks": networks}
    if validators is not _NOT_SET and validators is not None:
        if not isinstance(validators, Sequence) or isinstance(validators, str):
            raise ConfigurationError(
                "TWISTED_HOOKS['RECIPIENT_VALIDATORS'] (THORN_RECIPIENT_VALIDATORS) must be a "
                f"list of validators, got {validators!r}"
            )
        policy["validators"] = tuple(validators)
    try:
        fields["policy"] = RecipientPolicy(**policy)
        settings = Settings(**{**fields, **extra})
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"TWISTED_HOOKS: {error}") from None

    subscribers = _setting(options, django_settings, "SUBSCRIBERS", "THORN_SUBSCRIBERS")
    if subscribers is _NOT_SET:
        subscribers = None
    if subscribers is not None and not isinstance(subscribers, Mapping):
        raise ConfigurationError(
            "TWISTED_HOOKS['SUBSCRIBERS'] (THORN_SUBSCRIBERS) must map event names to "
            f"subscribers, got {subscribers!r}"
        )
    honors = _setting(
        options, django_settings, "SIGNAL_HONORS_TRANSACTION", "THORN_SIGNAL_HONORS_TRANSACTION"
    )
    url = options.get("URL")
    token = options.get("TOKEN")
    if mode == SERVICE:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigurationError(
                "TWISTED_HOOKS['MODE'] is 'service': TWISTED_HOOKS['URL'] must be the "
                f"service's http(s):// base URL, got {url!r}"
            )
        if not isinstance(token, str) or not token:
            raise ConfigurationError(
                "TWISTED_HOOKS['MODE'] is 'service': TWISTED_HOOKS['TOKEN'] must be a token "
                "with the publish scope (twisted-hooks token create NAME --scopes publish)"
            )
    database = options.get("DATABASE")
    if database is not None and not isinstance(database, str):
        raise ConfigurationError(
            f"TWISTED_HOOKS['DATABASE'] must be a store URL, got {database!r}"
        )
    secret = options.get("SECRET")
    if secret is not None and not isinstance(secret, str):
        raise ConfigurationError(f"TWISTED_HOOKS['SECRET'] must be a string, got {secret!r}")
    base_url = options.get("BASE_URL")
    if base_url is not None and not isinstance(base_url, str):
        raise ConfigurationError(f"TWISTED_HOOKS['BASE_URL'] must be a URL, got {base_url!r}")
    return DjangoConfig(
        mode=mode,
        settings=settings,
        static_subscribers=subscribers,
        default_secret=secret,
        database=database,
        signal_honors_transaction=True if honors is _NOT_SET or honors is None else bool(honors),
        url=url.rstrip("/") if isinstance(url, str) else None,
        token=token,
        send_timeout=_positive(options.get("SEND_TIMEOUT", 10.0), "TWISTED_HOOKS['SEND_TIMEOUT']"),
        base_url=base_url,
    )


def unsupported_thorn_settings(django_settings: object | None = None) -> list[tuple[str, str]]:
    """
    The Thorn settings present in the Django settings that have no effect here, each with
    what to do instead (for the system check).
    """
    if django_settings is None:
        django_settings = _django_settings()
    found = [
        (name, advice)
        for name, advice in IGNORED_THORN_SETTINGS.items()
        if hasattr(django_settings, name)
    ]
    signer = getattr(django_settings, "THORN_HMAC_SIGNER", THORN_SIGNER)
    if signer != THORN_SIGNER:
        found.append(
            (
                "THORN_HMAC_SIGNER",
                "deliveries are signed with Thorn's recommended thorn.utils.hmac:sign "
                "(Hook-HMAC) and Standard Webhooks headers; the itsdangerous compat_sign "
                "is not available: tell receivers to verify Hook-HMAC with sign",
            )
        )
    return found
