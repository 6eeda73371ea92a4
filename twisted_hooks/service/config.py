"""
The service's configuration: one INI file, environment overrides, command-line options.

:func:`load_config` reads an INI file (``configparser`` with no interpolation; ``;``
starts a comment, also at the end of a line after white space), applies the environment
and the command line, checks every value and returns a :class:`ServiceConfig`::

    [hooks]
    listen = tcp:8000:interface=127.0.0.1     ; a strports description
    database = sqlite:twisted_hooks.sqlite3    ; or postgresql://...
    base_url = https://hooks.example.com       ; the API's public URL
    timeout = 10

    [retry]
    schedule = 5, 300, 1800, 7200, 18000, 36000, 36000

    [validators]
    allowed_networks = 127.0.0.0/8, ::1/128

    [subscribers]
    user.created = https://example.com/hooks/user

    [listener:audit]
    use = twisted_hooks.listeners.log
    level = info

The sections are ``[hooks]``, ``[retry]``, ``[validators]``, ``[health]`` (see
:data:`DEFAULTS` for their keys and defaults), ``[subscribers]`` (static subscribers in
Thorn's ``THORN_SUBSCRIBERS`` shapes: ``pattern = URL [URL ...]`` or ``pattern = JSON``)
and one ``[listener:NAME]`` section per listener (see :mod:`twisted_hooks.listeners`).
An unknown section or key is an error, except inside ``[listener:NAME]`` sections, whose
keys belong to the listener. Keys are case-sensitive.

Every number has a range (:data:`RANGES`), and is written in ASCII digits (``10``,
``0.5``, ``1e3``): other scripts' digits, signs where none is expected, ``inf`` and
``nan`` are errors naming the file, section and key.

Every key can be overridden by an environment variable
``TWISTED_HOOKS_<SECTION>_<KEY>``: the section and the key upper-cased, with every
character that is not a letter or a digit turned into ``_`` (``[hooks] timeout`` is
``TWISTED_HOOKS_HOOKS_TIMEOUT``, ``[listener:audit] level`` is
``TWISTED_HOOKS_LISTENER_AUDIT_LEVEL``). A variable applies to a section known by default
or present in the file; when several section names fit, the longest wins. Inside
``[subscribers]`` and ``[listener:NAME]`` a variable naming no key of the file adds one:
the rest of its name in lower case. Variables that fit no section are ignored.

The command line (``--listen``, ``--database``, ``--allow-network``) wins over both: see
the ``overrides`` of :func:`load_config`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import attrs

from twisted_hooks._fields import Rule, field, rules
from twisted_hooks.service import _config_sections
from twisted_hooks.service._config_reader import (
    DEFAULT_SOURCE,
    ConfigError,
    Reader,
    Value,
    cidr,
    default_text,
    fail,
    hint,
    read_fields,
    read_ini,
)
from twisted_hooks.service._config_reader import (
    normal as _normal,
)
from twisted_hooks.service._config_sections import SUBSCRIBERS
from twisted_hooks.webhooks.app import OPERATIONAL, WEBHOOK, Settings
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.validators import RefusalAdvice

__all__ = [
    "DEFAULTS",
    "DEFAULT_DATABASE",
    "DEFAULT_LISTEN",
    "ENV_PREFIX",
    "LISTENER_KEYS",
    "RANGES",
    "SERVICE_ADVICE",
    "ConfigError",
    "ListenerSpec",
    "ServiceConfig",
    "check_base_url",
    "env_name",
    "load_config",
]

#: The prefix of the environment variables that override the file.
ENV_PREFIX = "TWISTED_HOOKS_"

#: The endpoint the API listens on by default (a strports description).
DEFAULT_LISTEN = "tcp:8000:interface=127.0.0.1"

#: The database used by default.
DEFAULT_DATABASE = "sqlite:twisted_hooks.sqlite3"

#: The keys of a ``[listener:NAME]`` section that the service reads itself; the others
#: are the listener's own settings.
LISTENER_KEYS: tuple[str, ...] = ("use", "phase", "match.name", "match.kind", "match.owner")

_LISTENER = "listener:"
_MATCH = "match."
_KINDS = (WEBHOOK, OPERATIONAL)
_DEFAULT_PHASE = "after"
_SECTION_LIST = "[hooks], [retry], [validators], [health], [subscribers] and [listener:NAME]"
_OVERRIDE_KEYS = ("listen", "database", "allow_network")

SERVICE_ADVICE = RefusalAdvice(
    allow_network=(
        "start the service with --allow-network {network}, or add {network} to "
        "[validators] allowed_networks in its configuration"
    ),
    allow_list="--allow-network or [validators] allowed_networks",
    add_port="add {port} to [validators] ports in the service's configuration",
    add_protocol="add {scheme} to [validators] protocols in the service's configuration",
    unblock_network=(
        "take {network} out of [validators] blocked_networks in the service's configuration"
    ),
)
"""How the service's refusals of recipient URLs (HTTP API, static subscribers, failed
attempts) word their fix: its command-line flags and configuration keys."""


@attrs.frozen
class ListenerSpec:
    """
    One ``[listener:NAME]`` section.

    :ivar name: the listener's name (``audit`` for ``[listener:audit]``).
    :ivar use: the dotted name of the module whose ``load_from_config(config, prefix)``
        makes the handler.
    :ivar phase: the dispatcher phase the handler runs in (default ``"after"``).
    :ivar match_spec: the dispatcher match spec, from the ``match.name``, ``match.kind``
        and ``match.owner`` keys; ``{"kind": "webhook"}`` unless ``match.kind`` is given
        (an empty ``match.kind`` matches every kind).
    :ivar settings: the listener's own keys and values (every key but ``use``, ``phase``
        and ``match.*``), without prefix.
    """

    name: str
    use: str
    phase: str = _DEFAULT_PHASE
    match_spec: Mapping[str, str] = attrs.field(factory=lambda: {"kind": WEBHOOK})
    settings: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def section(self) -> str:
        """The section name, ``listener:NAME``."""
        return _LISTENER + self.name

    @property
    def prefix(self) -> str:
        """The prefix of the listener's keys in :attr:`ServiceConfig.raw`: ``listener.NAME.``."""
        return f"listener.{self.name}."


@attrs.frozen
class ServiceConfig:
    """
    Everything the service was configured with.

    :ivar listen: the API's endpoint, a strports description.
    :ivar database: the store URL (``sqlite:PATH``, ``postgresql://...``).
    :ivar base_url: the API's public URL (``[hooks] base_url``, without a trailing
        ``/``), for the URLs its answers give; ``None`` for the address it listens on.
    :ivar settings: the application's settings, from ``[hooks]``, ``[retry]``,
        ``[validators]`` and ``[health]``.
    :ivar static_subscribers: the ``[subscribers]`` section in Thorn's
        ``THORN_SUBSCRIBERS`` shapes: each pattern maps to a URL, a list of URLs, a dict or
        a list of dicts (for :class:`~twisted_hooks.webhooks.Hooks`'s
        ``static_subscribers``).
    :ivar default_secret: the secret of static subscribers given without one; ``None``
        when ``[hooks] secret`` is empty (the application generates one).
    :ivar max_request_body: the largest request body the HTTP API reads, in bytes.
    :ivar shutdown_timeout: seconds attempts under way get to finish when the service
        stops.
    :ivar listeners: the ``[listener:NAME]`` sections, in the file's order.
    :ivar raw: every value as text, flat: ``{"hooks.timeout": "10", ...,
        "subscribers.PATTERN": ..., "listener.NAME.KEY": ...}``, defaults included, after
        the environment and the command line. Listeners read their keys from it.
    :ivar path: the file read, or ``None``.
    """

    listen: str = DEFAULT_LISTEN
    database: str = DEFAULT_DATABASE
    base_url: str | None = None
    settings: Settings = attrs.field(factory=lambda: Settings(poll_interval=1.0))
    static_subscribers: Mapping[str, object] = attrs.field(factory=dict)
    default_secret: str | None = None
    max_request_body: int = field(
        1024 * 1024,
        integer=True,
        minimum=1,
        maximum=64 * 1024 * 1024,
        unit="bytes",
        config=("hooks", "max_request_body"),
        help="the largest request body the HTTP API reads",
    )
    shutdown_timeout: float = field(
        15.0,
        minimum=0.0,
        maximum=3600.0,
        unit="seconds",
        config=("hooks", "shutdown_timeout"),
        help="seconds attempts under way get to finish when the service stops",
    )
    listeners: tuple[ListenerSpec, ...] = ()
    raw: Mapping[str, str] = attrs.field(factory=dict)
    path: str | None = None


#: The text keys of ``[hooks]`` and ``[validators]``, which no settings class holds, and
#: their defaults as written in the file.
_TEXT_KEYS: Mapping[str, Mapping[str, str]] = {
    "hooks": {
        "listen": DEFAULT_LISTEN,
        "database": DEFAULT_DATABASE,
        "base_url": "",
        "secret": "",
    },
    "validators": {
        "protocols": "http, https",
        "ports": "80, 443",
        "block_internal": "true",
        "blocked_networks": "",
        "allowed_networks": "",
    },
}

#: The classes whose fields the fixed sections set, through their fields' rules
#: (:func:`twisted_hooks._fields.field`).
_CLASSES: tuple[type, ...] = (Settings, ServiceConfig, RetryPolicy)

#: Every configurable field: ``(section, key)`` to its :class:`~twisted_hooks._fields.Rule`
#: and its default value, in the order of the classes' fields.
_RULES: Mapping[tuple[str, str], tuple[Rule, object]] = {
    (rule.section, rule.key): (rule, attribute.default)
    for cls in _CLASSES
    for attribute, rule in rules(cls)
    if rule.section is not None and rule.key is not None
}


def _section_defaults(section: str) -> dict[str, str]:
    keys = dict(_TEXT_KEYS.get(section, {}))
    for (where, key), (rule, default) in _RULES.items():
        if where == section:
            keys[key] = default_text(rule, default)
    return keys


#: The keys of the fixed sections and their defaults, as they would be written in the
#: file, read from the fields of :class:`~twisted_hooks.webhooks.Settings`,
#: :class:`~twisted_hooks.webhooks.RetryPolicy` and :class:`ServiceConfig`. They give a
#: :class:`~twisted_hooks.webhooks.Settings` equal to ``Settings()``, except
#: ``poll_interval``: the service polls its store every second, so that events enqueued by
#: the ``twisted-hooks`` command and by other nodes are seen.
DEFAULTS: Mapping[str, Mapping[str, str]] = {
    section: _section_defaults(section) for section in ("hooks", "retry", "validators", "health")
}

#: The range of every numeric key, ``(section, key): (minimum, maximum)``, both included
#: (except a minimum of 0 for keys that must be greater than 0), read from the fields'
#: rules. Each maximum is far beyond any useful setting; it is there so that no value
#: makes a time the service computes overflow, or a buffer or a loop unbounded.
RANGES: Mapping[tuple[str, str], tuple[float, float]] = {
    place: (rule.minimum or 0.0, rule.maximum if rule.maximum is not None else math.inf)
    for place, (rule, _) in _RULES.items()
}


def env_name(section: str, key: str | None = None) -> str:
    """
    The environment variable that overrides ``key`` of ``section`` (or the prefix of the
    section's variables when ``key`` is ``None``): ``env_name("listener:audit", "level")``
    is ``"TWISTED_HOOKS_LISTENER_AUDIT_LEVEL"``.
    """
    name = ENV_PREFIX + _normal(section)
    return name + "_" if key is None else f"{name}_{_normal(key)}"


def check_base_url(url: str) -> str:
    """
    Check a public base URL (``[hooks] base_url``): an absolute ``http`` or ``https`` URL
    with a host, an optional port and path, and no user name, password, query or
    fragment, in printable ASCII (an international domain name in its ``xn--`` form).

    :return: the URL without its trailing ``/``.
    :raise ValueError: saying what is wrong.
    """
    text = url.strip()
    if not text or any(not (" " < ch < "\x7f") for ch in text):
        raise ValueError("the URL must be printable ASCII without spaces")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as error:
        raise ValueError(f"not a valid URL ({error})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("the URL must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if "@" in parts.netloc:
        raise ValueError("the URL must not hold a user name or password")
    if parts.query or "?" in text:
        raise ValueError("the URL must not have a query (?...)")
    if parts.fragment or "#" in text:
        raise ValueError("the URL must not have a fragment (#...)")
    return text.rstrip("/")


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str | Iterable[str] | None] | None = None,
) -> ServiceConfig:
    """
    Read the configuration.

    :param path: the INI file; ``None`` reads none (defaults and environment only).
    :param environ: the environment; :data:`os.environ` if ``None``.
    :param overrides: the command-line options, which win over the file and the
        environment: ``"listen"`` and ``"database"`` (text) replace ``[hooks] listen``
        and ``database``; ``"allow_network"`` (a CIDR network or several) is appended to
        ``[validators] allowed_networks``. ``None`` values (options not given) are
        ignored.
    :return: the checked configuration.
    :raise ConfigError: for a missing or unreadable file, an unknown section or key, or a
        value that is not what its key expects; the message names them.
    """
    source = os.fspath(path) if path is not None else None
    values: dict[str, dict[str, Value]] = {}
    if source is not None:
        values = _read(source)
    for section in DEFAULTS:
        values.setdefault(section, {})
    values.setdefault(SUBSCRIBERS, {})
    _apply_environment(values, os.environ if environ is None else environ)
    networks = _apply_overrides(values, overrides or {})
    reader = Reader(values, DEFAULTS, _RULES)
    settings = _config_sections.settings(reader, networks, SERVICE_ADVICE)
    secret = reader.text("hooks", "secret").strip() or None
    raw: dict[str, str] = {}
    for section, keys in values.items():
        prefix = "listener." + section[len(_LISTENER) :] if _is_listener(section) else section
        defaults = DEFAULTS.get(section, {})
        for key in (*defaults, *(k for k in keys if k not in defaults)):
            raw[f"{prefix}.{key}"] = reader.get(section, key).text
    if networks:
        raw["validators.allowed_networks"] = ", ".join(
            n for n in (raw["validators.allowed_networks"].strip(), *networks) if n
        )
    return ServiceConfig(
        listen=reader.required(
            "hooks", "listen", f"a strports endpoint description, such as {DEFAULT_LISTEN}"
        ),
        database=reader.required(
            "hooks", "database", "a database URL: 'sqlite:PATH' or 'postgresql://...'"
        ),
        base_url=_base_url(reader),
        settings=settings,
        static_subscribers=_config_sections.subscribers(
            reader, values[SUBSCRIBERS], settings.policy, secret
        ),
        default_secret=secret,
        **read_fields(reader, ServiceConfig),
        listeners=tuple(
            _listener(reader, s, source or DEFAULT_SOURCE) for s in values if _is_listener(s)
        ),
        raw=raw,
        path=source,
    )


def _is_listener(section: str) -> bool:
    return section.startswith(_LISTENER)


def _base_url(reader: Reader) -> str | None:
    value = reader.get("hooks", "base_url")
    if not value.text.strip():
        return None
    try:
        return check_base_url(value.text)
    except ValueError as error:
        raise fail(
            "hooks",
            "base_url",
            value,
            f"the API's public URL, such as https://hooks.example.com ({error})",
        ) from None


def _read(path: str) -> dict[str, dict[str, Value]]:
    values: dict[str, dict[str, Value]] = {}
    for section, keys in read_ini(path).items():
        _check_section(path, section, keys)
        values[section] = {key: Value(text, path) for key, text in keys.items()}
    return values


def _check_section(path: str, section: str, keys: Mapping[str, str]) -> None:
    known = DEFAULTS.get(section)
    if known is not None:
        for key in keys:
            if key not in known:
                raise ConfigError(
                    f"{path}: unknown key {key!r} in section [{section}]{hint(key, known)}; "
                    f"the keys of [{section}] are {', '.join(known)}",
                    source=path,
                    section=section,
                    key=key,
                )
    elif _is_listener(section):
        if not section[len(_LISTENER) :].strip():
            raise ConfigError(
                f"{path}: the section [{section}] has no listener name; name it "
                "[listener:NAME], such as [listener:audit]",
                source=path,
                section=section,
            )
    elif section != SUBSCRIBERS:
        raise ConfigError(
            f"{path}: unknown section [{section}]"
            f"{hint(section, [*DEFAULTS, SUBSCRIBERS], brackets=True)}; the sections are "
            f"{_SECTION_LIST}",
            source=path,
            section=section,
        )


def _apply_environment(values: dict[str, dict[str, Value]], environ: Mapping[str, str]) -> None:
    targets: dict[str, list[str]] = {}
    for section in values:
        targets.setdefault(_normal(section), []).append(section)
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX):
            continue
        rest = variable[len(ENV_PREFIX) :]
        fits = [n for n in targets if rest.startswith(n + "_") and len(rest) > len(n) + 1]
        if not fits:
            continue
        normal = max(fits, key=len)
        sections = targets[normal]
        if len(sections) > 1:
            names = " and ".join(f"[{s}]" for s in sections)
            raise ConfigError(
                f"environment variable {variable}: the sections {names} have the same "
                "variable names; rename one of them",
                source=variable,
            )
        section = sections[0]
        key = _env_key(variable, section, rest[len(normal) + 1 :], values[section])
        values[section][key] = Value(environ[variable], f"environment variable {variable}")


def _env_key(variable: str, section: str, normal: str, present: Mapping[str, Value]) -> str:
    known = DEFAULTS.get(section)
    if known is not None:
        candidates: Iterable[str] = known
    elif _is_listener(section):
        candidates = (*present, *LISTENER_KEYS)
    else:
        candidates = present
    for key in candidates:
        if _normal(key) == normal:
            return key
    if known is not None:
        names = ", ".join(env_name(section, k) for k in known)
        raise ConfigError(
            f"environment variable {variable}: [{section}] has no key {normal.lower()!r}; "
            f"its variables are {names}",
            source=variable,
            section=section,
            key=normal.lower(),
        )
    return normal.lower()


def _apply_overrides(
    values: dict[str, dict[str, Value]], overrides: Mapping[str, str | Iterable[str] | None]
) -> tuple[str, ...]:
    networks: list[str] = []
    for name, value in overrides.items():
        if value is None:
            continue
        option = name.replace("-", "_")
        if option in ("listen", "database"):
            if not isinstance(value, str):
                raise ConfigError(f"the {name!r} override must be text, got {value!r}")
            source = f"the command line (--{option})"
            values["hooks"][option] = Value(value, source)
        elif option == "allow_network":
            items = [value] if isinstance(value, str) else list(value)
            for item in items:
                cidr("validators", "allowed_networks", Value(item, "--allow-network"))
            networks.extend(item.strip() for item in items)
        else:
            raise ConfigError(
                f"unknown command-line override {name!r}; the overrides are "
                f"{', '.join(_OVERRIDE_KEYS)}"
            )
    return tuple(networks)


def _listener(reader: Reader, section: str, path: str) -> ListenerSpec:
    values = reader.values[section]
    name = section[len(_LISTENER) :]
    use = values.get("use")
    if use is None or not use.text.strip():
        where = use.source if use is not None else path
        raise ConfigError(
            f"{where}: [{section}] has no 'use'; set use = the dotted name of a module with "
            "load_from_config(config, prefix), such as twisted_hooks.listeners.log",
            source=where,
            section=section,
            key="use",
        )
    module = use.text.strip()
    if not all(part.isidentifier() for part in module.split(".")):
        raise fail(
            section, "use", use, "a dotted module name, such as twisted_hooks.listeners.log"
        )
    phase = values.get("phase", Value(_DEFAULT_PHASE, DEFAULT_SOURCE))
    if not phase.text.strip():
        raise fail(section, "phase", phase, "a dispatcher phase: before, during or after")
    match: dict[str, str] = {"kind": WEBHOOK}
    settings: dict[str, str] = {}
    for key, value in values.items():
        if key.startswith(_MATCH):
            if key not in LISTENER_KEYS:
                raise ConfigError(
                    f"{value.source}: unknown key {key!r} in section [{section}]; a listener "
                    "matches on match.name, match.kind and match.owner",
                    source=value.source,
                    section=section,
                    key=key,
                )
            keyword = key[len(_MATCH) :]
            text = value.text.strip()
            if keyword == "kind" and text not in ("", *_KINDS):
                raise fail(section, key, value, "webhook, operational, or nothing for every kind")
            if text:
                match[keyword] = text
            else:
                match.pop(keyword, None)
        elif key not in LISTENER_KEYS:
            settings[key] = value.text
    return ListenerSpec(
        name=name, use=module, phase=phase.text.strip(), match_spec=match, settings=settings
    )
