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

import configparser
import difflib
import ipaddress
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import attrs

from twisted_hooks._fields import Rule, field, rules
from twisted_hooks._numbers import DECIMAL, WHOLE
from twisted_hooks.webhooks.app import OPERATIONAL, WEBHOOK, Settings
from twisted_hooks.webhooks.retry import MAX_RETRIES, RetryPolicy
from twisted_hooks.webhooks.subscribers import parse_subscribers
from twisted_hooks.webhooks.validators import (
    IRecipientValidator,
    RecipientPolicy,
    RefusalAdvice,
    SecurityError,
    block_cidr_network,
    block_internal_ips,
    ensure_port,
    ensure_protocol,
)

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

_SUBSCRIBERS = "subscribers"
_LISTENER = "listener:"
_MATCH = "match."
_KINDS = (WEBHOOK, OPERATIONAL)
_DEFAULT_PHASE = "after"
_DEFAULT_SOURCE = "the defaults"
_SECTION_LIST = "[hooks], [retry], [validators], [health], [subscribers] and [listener:NAME]"
_BOOLEANS = configparser.ConfigParser.BOOLEAN_STATES
_OVERRIDE_KEYS = ("listen", "database", "allow_network")

_T = TypeVar("_T")

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


class ConfigError(ValueError):
    """
    The configuration cannot be used. ``str(error)`` says where the problem is (the file
    or environment variable, the section, the key and the value), what was expected, and
    so what to change.

    :ivar source: the file, environment variable or option the value came from, or
        ``None``.
    :ivar section: the section concerned, or ``None``.
    :ivar key: the key concerned, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        section: str | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.source = source
        self.section = section
        self.key = key


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


def _figure(number: float) -> str:
    return str(int(number)) if number == int(number) else f"{number:g}"


def _default_text(rule: Rule, default: object) -> str:
    if rule.config_default is not None:
        return rule.config_default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = default.factory()  # type: ignore[attr-defined]
    if default is None:
        return ""
    if isinstance(default, tuple):
        return ", ".join(_figure(item) for item in default)
    return _figure(default) if isinstance(default, int | float) else str(default)


def _section_defaults(section: str) -> dict[str, str]:
    keys = dict(_TEXT_KEYS.get(section, {}))
    for (where, key), (rule, default) in _RULES.items():
        if where == section:
            keys[key] = _default_text(rule, default)
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


def _normal(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", text).upper()


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


@attrs.frozen
class _Value:
    text: str
    source: str


class _Parser(configparser.ConfigParser):
    """Keys keep their case; there is no ``[DEFAULT]`` section."""

    def __init__(self) -> None:
        # A section header cannot hold a line break, so no section is the defaults.
        super().__init__(
            interpolation=None,
            delimiters=("=",),
            inline_comment_prefixes=(";",),
            empty_lines_in_values=False,
            default_section="\n",
        )

    def optionxform(self, optionstr: str) -> str:
        return optionstr


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
    values: dict[str, dict[str, _Value]] = {}
    if source is not None:
        values = _read(source)
    for section in DEFAULTS:
        values.setdefault(section, {})
    values.setdefault(_SUBSCRIBERS, {})
    _apply_environment(values, os.environ if environ is None else environ)
    networks = _apply_overrides(values, overrides or {})
    reader = _Reader(values)
    settings = _settings(reader, networks)
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
        static_subscribers=_subscribers(reader, values[_SUBSCRIBERS], settings.policy, secret),
        default_secret=secret,
        **_read_fields(reader, ServiceConfig),
        listeners=tuple(
            _listener(reader, s, source or _DEFAULT_SOURCE) for s in values if _is_listener(s)
        ),
        raw=raw,
        path=source,
    )


def _is_listener(section: str) -> bool:
    return section.startswith(_LISTENER)


def _base_url(reader: _Reader) -> str | None:
    value = reader.get("hooks", "base_url")
    if not value.text.strip():
        return None
    try:
        return check_base_url(value.text)
    except ValueError as error:
        raise _fail(
            "hooks",
            "base_url",
            value,
            f"the API's public URL, such as https://hooks.example.com ({error})",
        ) from None


def _read(path: str) -> dict[str, dict[str, _Value]]:
    parser = _Parser()
    try:
        with open(path, encoding="utf-8") as file:
            parser.read_file(file, source=path)
    except FileNotFoundError:
        raise ConfigError(
            f"the configuration file {path} does not exist; give the path of an existing "
            "file (or no configuration file, to use the defaults)",
            source=path,
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error)
        raise ConfigError(
            f"the configuration file {path} cannot be read ({reason})", source=path
        ) from None
    except configparser.Error as error:
        detail = " ".join(str(error).split())
        raise ConfigError(
            f"{path} is not a valid INI file: {detail}. Every key belongs under a [section] "
            "header, once, as 'key = value'",
            source=path,
        ) from None
    values: dict[str, dict[str, _Value]] = {}
    for section in parser.sections():
        keys = dict(parser.items(section))
        _check_section(path, section, keys)
        values[section] = {key: _Value(text, path) for key, text in keys.items()}
    return values


def _check_section(path: str, section: str, keys: Mapping[str, str]) -> None:
    known = DEFAULTS.get(section)
    if known is not None:
        for key in keys:
            if key not in known:
                raise ConfigError(
                    f"{path}: unknown key {key!r} in section [{section}]{_hint(key, known)}; "
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
    elif section != _SUBSCRIBERS:
        raise ConfigError(
            f"{path}: unknown section [{section}]"
            f"{_hint(section, [*DEFAULTS, _SUBSCRIBERS], brackets=True)}; the sections are "
            f"{_SECTION_LIST}",
            source=path,
            section=section,
        )


def _hint(word: str, choices: Iterable[str], brackets: bool = False) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    if not close:
        return ""
    return f" (did you mean [{close[0]}]?)" if brackets else f" (did you mean {close[0]!r}?)"


def _apply_environment(values: dict[str, dict[str, _Value]], environ: Mapping[str, str]) -> None:
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
        values[section][key] = _Value(environ[variable], f"environment variable {variable}")


def _env_key(variable: str, section: str, normal: str, present: Mapping[str, _Value]) -> str:
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
    values: dict[str, dict[str, _Value]], overrides: Mapping[str, str | Iterable[str] | None]
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
            values["hooks"][option] = _Value(value, source)
        elif option == "allow_network":
            items = [value] if isinstance(value, str) else list(value)
            for item in items:
                _cidr("validators", "allowed_networks", _Value(item, "--allow-network"))
            networks.extend(item.strip() for item in items)
        else:
            raise ConfigError(
                f"unknown command-line override {name!r}; the overrides are "
                f"{', '.join(_OVERRIDE_KEYS)}"
            )
    return tuple(networks)


def _fail(section: str, key: str, value: _Value, expected: str) -> ConfigError:
    return ConfigError(
        f"{value.source}: [{section}] {key} = {value.text!r}: expected {expected}",
        source=value.source,
        section=section,
        key=key,
    )


@attrs.frozen
class _Kind:
    """What a number must be, in the words of the configuration's messages."""

    expected: str
    integer: bool = False
    minimum: float = 0.0
    strict: bool = True
    empty: bool = False
    below: float = math.inf
    maximum: float = math.inf


def _kind(section: str, key: str) -> _Kind:
    """The :class:`_Kind` of the numeric key, from its field's rule."""
    rule, _ = _RULES[section, key]
    low = rule.minimum or 0.0
    high = rule.maximum if rule.maximum is not None else math.inf
    words = {"minimum": _figure(low), "maximum": _figure(high)}
    if rule.below:
        expected = "a fraction of at least {minimum} and below {maximum}, such as 0.2"
        return _Kind(expected.format(**words), minimum=low, strict=False, below=high)
    if key == "schedule":
        expected = (
            "delays in seconds, each from {minimum} to {maximum}, at most "
            f"{MAX_RETRIES} of them, separated by commas, such as 5, 300, 1800 "
            "(nothing: no retries)"
        )
    elif rule.integer and rule.unit == "bytes":
        expected = "a number of bytes, a whole number from {minimum} to {maximum}, such as 65536"
    elif rule.integer:
        expected = "a whole number from {minimum} to {maximum}, such as 16"
    elif rule.above:
        expected = "a number of seconds greater than {minimum} and at most {maximum}, such as 10"
    else:
        expected = "a number of seconds from {minimum} to {maximum}, such as 15"
    return _Kind(
        expected.format(**words),
        integer=rule.integer,
        minimum=low,
        strict=rule.above,
        empty=rule.optional,
        maximum=high,
    )


class _Reader:
    """Reads typed values, raising :class:`ConfigError` naming what is wrong."""

    def __init__(self, values: Mapping[str, Mapping[str, _Value]]) -> None:
        self.values = values

    def get(self, section: str, key: str) -> _Value:
        value = self.values.get(section, {}).get(key)
        if value is None:
            return _Value(DEFAULTS[section][key], _DEFAULT_SOURCE)
        return value

    def text(self, section: str, key: str) -> str:
        return self.get(section, key).text

    def required(self, section: str, key: str, expected: str) -> str:
        value = self.get(section, key)
        if not value.text.strip():
            raise _fail(section, key, value, expected)
        return value.text.strip()

    def number(self, section: str, key: str) -> float | int | None:
        """The numeric key, checked against its field's rule; ``None`` when it is
        optional and empty."""
        value = self.get(section, key)
        kind = _kind(section, key)
        text = value.text.strip()
        if kind.empty and not text:
            return None
        return _number(section, key, value, text, kind)

    def setting(self, section: str, key: str) -> float | int:
        """The numeric key that cannot be empty."""
        number = self.number(section, key)
        assert number is not None
        return number

    def items(self, section: str, key: str, parse: Callable[[str, str, _Value], _T]) -> list[_T]:
        value = self.get(section, key)
        words = [w for w in re.split(r"[,\s]+", value.text.strip()) if w]
        return [parse(section, key, _Value(word, value.source)) for word in words]

    def boolean(self, section: str, key: str) -> bool:
        value = self.get(section, key)
        state = _BOOLEANS.get(value.text.strip().lower())
        if state is None:
            raise _fail(section, key, value, "true or false (or yes/no, on/off, 1/0)")
        return state


def _number(section: str, key: str, value: _Value, text: str, kind: _Kind) -> float | int:
    expected = kind.expected + (" (or nothing)" if kind.empty else "")
    syntax = WHOLE if kind.integer else DECIMAL  # ASCII digits only
    if not syntax.fullmatch(text):
        raise _fail(section, key, value, expected)
    number: float | int = int(text) if kind.integer else float(text)
    too_small = number <= kind.minimum if kind.strict else number < kind.minimum
    if too_small or not math.isfinite(number) or not number < kind.below:
        raise _fail(section, key, value, expected)
    if number > kind.maximum:
        raise _fail(section, key, value, expected)
    return number


def _delay(section: str, key: str, value: _Value) -> float:
    return float(_number(section, key, value, value.text, _kind(section, key)))


def _port(section: str, key: str, value: _Value) -> int:
    expected = "TCP ports from 1 to 65535 separated by commas, such as 80, 443 (nothing: any)"
    if not re.fullmatch(r"[0-9]{1,5}", value.text):
        raise _fail(section, key, value, expected)
    port = int(value.text)
    if not 0 < port < 65536:
        raise _fail(section, key, value, expected)
    return port


def _protocol(section: str, key: str, value: _Value) -> str:
    scheme = value.text.lower().removesuffix("://")
    if scheme not in ("http", "https"):
        raise _fail(section, key, value, "http, https, or both separated by a comma")
    return scheme


def _cidr(section: str, key: str, value: _Value) -> str:
    try:
        ipaddress.ip_network(value.text.strip(), strict=False)
    except ValueError:
        raise _fail(
            section,
            key,
            value,
            "networks in CIDR notation separated by commas, such as 10.0.0.0/8, fd00::/8",
        ) from None
    return value.text.strip()


def _settings(reader: _Reader, extra_networks: tuple[str, ...]) -> Settings:
    protocols = reader.items("validators", "protocols", _protocol)
    if not protocols:
        raise _fail(
            "validators",
            "protocols",
            reader.get("validators", "protocols"),
            "http, https, or both separated by a comma",
        )
    ports = reader.items("validators", "ports", _port)
    blocked = reader.items("validators", "blocked_networks", _cidr)
    validators: list[IRecipientValidator] = []
    if reader.boolean("validators", "block_internal"):
        validators.append(block_internal_ips())
    validators.append(ensure_protocol(*protocols))
    if ports:
        validators.append(ensure_port(*ports))
    if blocked:
        validators.append(block_cidr_network(*blocked))
    allowed = [*reader.items("validators", "allowed_networks", _cidr), *extra_networks]
    policy = RecipientPolicy(
        validators=validators, allowed_networks=allowed, advice=SERVICE_ADVICE
    )

    schedule = reader.items("retry", "schedule", _delay)
    if len(schedule) > MAX_RETRIES:
        raise _fail(
            "retry",
            "schedule",
            reader.get("retry", "schedule"),
            f"at most {MAX_RETRIES} delays (it has {len(schedule)})",
        )
    retry = RetryPolicy(
        delays=tuple(schedule),
        **_read_fields(reader, RetryPolicy),
    )

    values = _read_fields(reader, Settings)
    timeout, lease = values["timeout"], values["lease"]
    if not lease > timeout:
        raise _fail(
            "hooks",
            "lease",
            reader.get("hooks", "lease"),
            f"a number of seconds longer than [hooks] timeout ({timeout:g}), or a delivery "
            "could be claimed twice",
        )
    return Settings(retry=retry, policy=policy, **values)


def _read_fields(reader: _Reader, cls: type) -> dict[str, Any]:
    """The values of the fields of ``cls`` that the fixed sections set (all but
    ``[retry] schedule``, a list), read and checked by their rules."""
    return {
        attribute.name: reader.number(rule.section, rule.key)
        for attribute, rule in rules(cls)
        if rule.section is not None and rule.key is not None and rule.key != "schedule"
    }


#: Stands for "no secret given" while static subscribers are checked.
_NO_SECRET = "whsec_bm8tc2VjcmV0LWdpdmVu"


def _subscribers(
    reader: _Reader,
    section: Mapping[str, _Value],
    policy: RecipientPolicy,
    secret: str | None,
) -> dict[str, object]:
    expected = (
        "one or more URLs separated by spaces, or a JSON object or list in Thorn's "
        'THORN_SUBSCRIBERS shapes, such as {"url": "https://example.com/e", '
        '"content_type": "application/json"}'
    )
    result: dict[str, object] = {}
    for pattern, value in section.items():
        text = value.text.strip()
        entry: object
        if not text:
            raise _fail(_SUBSCRIBERS, pattern, value, expected)
        if text[0] in "{[":
            try:
                entry = json.loads(text)
            except ValueError as error:
                raise ConfigError(
                    f"{value.source}: [{_SUBSCRIBERS}] {pattern} = {value.text!r}: not valid "
                    f"JSON ({error}); expected {expected}",
                    source=value.source,
                    section=_SUBSCRIBERS,
                    key=pattern,
                ) from None
        else:
            urls = text.split()
            entry = urls[0] if len(urls) == 1 else urls
        try:
            subscribers, _ = parse_subscribers({pattern: entry}, secret or _NO_SECRET)
            for subscriber in subscribers:
                policy.check_url(subscriber.url)
        except (ValueError, TypeError, SecurityError) as error:
            raise ConfigError(
                f"{value.source}: [{_SUBSCRIBERS}] {pattern} = {value.text!r}: {error}",
                source=value.source,
                section=_SUBSCRIBERS,
                key=pattern,
            ) from None
        if any(subscriber.secret == _NO_SECRET for subscriber in subscribers):
            # A secret made up at start would differ between processes and restarts: no
            # receiver could verify the signatures.
            raise ConfigError(
                f"{value.source}: [{_SUBSCRIBERS}] {pattern} has no hmac_secret of its own "
                f"and [hooks] secret is empty: set [hooks] secret (for instance to the "
                f"output of python -c 'from twisted_hooks.webhooks import generate_secret; "
                f"print(generate_secret())'), or give the subscriber an hmac_secret",
                source=value.source,
                section=_SUBSCRIBERS,
                key=pattern,
            )
        result[pattern] = entry
    return result


def _listener(reader: _Reader, section: str, path: str) -> ListenerSpec:
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
        raise _fail(
            section, "use", use, "a dotted module name, such as twisted_hooks.listeners.log"
        )
    phase = values.get("phase", _Value(_DEFAULT_PHASE, _DEFAULT_SOURCE))
    if not phase.text.strip():
        raise _fail(section, "phase", phase, "a dispatcher phase: before, during or after")
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
                raise _fail(section, key, value, "webhook, operational, or nothing for every kind")
            if text:
                match[keyword] = text
            else:
                match.pop(keyword, None)
        elif key not in LISTENER_KEYS:
            settings[key] = value.text
    return ListenerSpec(
        name=name, use=module, phase=phase.text.strip(), match_spec=match, settings=settings
    )
