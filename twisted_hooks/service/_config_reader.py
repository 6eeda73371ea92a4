"""
The reader of typed configuration values: text from the INI file, the environment or the
command line, checked against the rules of attrs fields (:mod:`twisted_hooks._fields`),
with messages naming the source, the section, the key and what was expected.

Nothing here knows the service's sections; :mod:`twisted_hooks.service.config` gives the
defaults and the rules.
"""

from __future__ import annotations

import configparser
import difflib
import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs

from twisted_hooks._fields import Rule, rules
from twisted_hooks._numbers import DECIMAL, WHOLE
from twisted_hooks.webhooks.retry import MAX_RETRIES

__all__ = [
    "DEFAULT_SOURCE",
    "ConfigError",
    "Reader",
    "Value",
    "cidr",
    "default_text",
    "fail",
    "figure",
    "hint",
    "normal",
    "port",
    "protocol",
    "read_fields",
    "read_ini",
]

#: The source named for a value nobody gave.
DEFAULT_SOURCE = "the defaults"

_BOOLEANS = configparser.ConfigParser.BOOLEAN_STATES

_T = TypeVar("_T")


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

    # Its documented home, the name tracebacks show.
    __module__ = "twisted_hooks.service.config"

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
class Value:
    """One value as text, and where it came from (a file, a variable, an option)."""

    text: str
    source: str


def figure(number: float) -> str:
    """A number as the file would hold it: ``10``, not ``10.0``."""
    return str(int(number)) if number == int(number) else f"{number:g}"


def default_text(rule: Rule, default: object) -> str:
    """The default of a field with ``rule``, as it would be written in the file."""
    if rule.config_default is not None:
        return rule.config_default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = default.factory()  # type: ignore[attr-defined]
    if default is None:
        return ""
    if isinstance(default, tuple):
        return ", ".join(figure(item) for item in default)
    return figure(default) if isinstance(default, int | float) else str(default)


def normal(text: str) -> str:
    """``text`` upper-cased, each character but letters and digits turned into ``_``."""
    return re.sub(r"[^A-Za-z0-9]", "_", text).upper()


def hint(word: str, choices: Iterable[str], brackets: bool = False) -> str:
    """`` (did you mean 'x'?)`` for the choice closest to ``word``, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    if not close:
        return ""
    return f" (did you mean [{close[0]}]?)" if brackets else f" (did you mean {close[0]!r}?)"


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


def read_ini(path: str) -> dict[str, dict[str, str]]:
    """
    The sections of the INI file ``path`` and their keys, in the file's order.

    :raise ConfigError: for a missing or unreadable file, or one that is not INI.
    """
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
    return {section: dict(parser.items(section)) for section in parser.sections()}


def fail(section: str, key: str, value: Value, expected: str) -> ConfigError:
    """The error for ``value`` of ``[section] key``, which is not ``expected``."""
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


def _kind(rule: Rule, key: str) -> _Kind:
    """The :class:`_Kind` of the numeric key, from its field's rule."""
    low = rule.minimum or 0.0
    high = rule.maximum if rule.maximum is not None else math.inf
    words = {"minimum": figure(low), "maximum": figure(high)}
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


class Reader:
    """
    Reads typed values, raising :class:`ConfigError` naming what is wrong.

    :param values: the values given, by section and key.
    :param defaults: the default text of every key of the fixed sections.
    :param field_rules: ``(section, key)`` to the rule of its field and the field's
        default, for the numeric keys.
    """

    def __init__(
        self,
        values: Mapping[str, Mapping[str, Value]],
        defaults: Mapping[str, Mapping[str, str]],
        field_rules: Mapping[tuple[str, str], tuple[Rule, object]],
    ) -> None:
        self.values = values
        self.defaults = defaults
        self.field_rules = field_rules

    def get(self, section: str, key: str) -> Value:
        """The value of the key, or its default."""
        value = self.values.get(section, {}).get(key)
        if value is None:
            return Value(self.defaults[section][key], DEFAULT_SOURCE)
        return value

    def text(self, section: str, key: str) -> str:
        """The text of the key."""
        return self.get(section, key).text

    def required(self, section: str, key: str, expected: str) -> str:
        """The text of the key, which cannot be empty."""
        value = self.get(section, key)
        if not value.text.strip():
            raise fail(section, key, value, expected)
        return value.text.strip()

    def number(self, section: str, key: str) -> float | int | None:
        """The numeric key, checked against its field's rule; ``None`` when it is
        optional and empty."""
        value = self.get(section, key)
        kind = self._kind(section, key)
        text = value.text.strip()
        if kind.empty and not text:
            return None
        return _number(section, key, value, text, kind)

    def setting(self, section: str, key: str) -> float | int:
        """The numeric key that cannot be empty."""
        number = self.number(section, key)
        assert number is not None
        return number

    def delay(self, section: str, key: str, value: Value) -> float:
        """One delay of a list of delays (``[retry] schedule``), checked by its rule."""
        return float(_number(section, key, value, value.text, self._kind(section, key)))

    def items(self, section: str, key: str, parse: Callable[[str, str, Value], _T]) -> list[_T]:
        """The words of the key (separated by commas or spaces), each read by ``parse``."""
        value = self.get(section, key)
        words = [w for w in re.split(r"[,\s]+", value.text.strip()) if w]
        return [parse(section, key, Value(word, value.source)) for word in words]

    def boolean(self, section: str, key: str) -> bool:
        """The key as a boolean: true/false, yes/no, on/off or 1/0."""
        value = self.get(section, key)
        state = _BOOLEANS.get(value.text.strip().lower())
        if state is None:
            raise fail(section, key, value, "true or false (or yes/no, on/off, 1/0)")
        return state

    def _kind(self, section: str, key: str) -> _Kind:
        rule, _ = self.field_rules[section, key]
        return _kind(rule, key)


def _number(section: str, key: str, value: Value, text: str, kind: _Kind) -> float | int:
    expected = kind.expected + (" (or nothing)" if kind.empty else "")
    syntax = WHOLE if kind.integer else DECIMAL  # ASCII digits only
    if not syntax.fullmatch(text):
        raise fail(section, key, value, expected)
    number: float | int = int(text) if kind.integer else float(text)
    too_small = number <= kind.minimum if kind.strict else number < kind.minimum
    if too_small or not math.isfinite(number) or not number < kind.below:
        raise fail(section, key, value, expected)
    if number > kind.maximum:
        raise fail(section, key, value, expected)
    return number


def read_fields(reader: Reader, cls: type) -> dict[str, Any]:
    """The values of the fields of ``cls`` that the fixed sections set (all but
    ``[retry] schedule``, a list), read and checked by their rules."""
    return {
        attribute.name: reader.number(rule.section, rule.key)
        for attribute, rule in rules(cls)
        if rule.section is not None and rule.key is not None and rule.key != "schedule"
    }


def port(section: str, key: str, value: Value) -> int:
    """A TCP port."""
    expected = "TCP ports from 1 to 65535 separated by commas, such as 80, 443 (nothing: any)"
    if not re.fullmatch(r"[0-9]{1,5}", value.text):
        raise fail(section, key, value, expected)
    number = int(value.text)
    if not 0 < number < 65536:
        raise fail(section, key, value, expected)
    return number


def protocol(section: str, key: str, value: Value) -> str:
    """``http`` or ``https``."""
    scheme = value.text.lower().removesuffix("://")
    if scheme not in ("http", "https"):
        raise fail(section, key, value, "http, https, or both separated by a comma")
    return scheme


def cidr(section: str, key: str, value: Value) -> str:
    """A network in CIDR notation."""
    try:
        ipaddress.ip_network(value.text.strip(), strict=False)
    except ValueError:
        raise fail(
            section,
            key,
            value,
            "networks in CIDR notation separated by commas, such as 10.0.0.0/8, fd00::/8",
        ) from None
    return value.text.strip()
