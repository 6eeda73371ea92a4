"""
Attrs fields that carry their rule.

A setting's range, its help text and its configuration key are written once, in the
metadata of its attrs field (:func:`field`). The same :class:`Rule` validates the value
when the class is made, and tells the service's configuration reader
(:mod:`twisted_hooks.service.config`) which section and key the setting has, its default
as written in the file and its range::

    timeout: float = field(10.0, above=0.0, maximum=3600.0, unit="seconds",
                           config=("hooks", "timeout"), help="the deadline of one attempt")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import attrs

__all__ = ["Rule", "check_field", "field", "rule_of", "rules"]

#: The metadata key under which :func:`field` stores a field's :class:`Rule`.
RULE = "twisted_hooks.rule"


def _figure(number: float) -> str:
    return str(int(number)) if number == int(number) and abs(number) < 1e15 else f"{number:g}"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@attrs.frozen
class Rule:
    """
    What one setting may be.

    :ivar integer: the value is a whole number (else any real number; both refuse
        booleans).
    :ivar minimum: the smallest value allowed, or ``None``.
    :ivar above: the minimum itself is refused (the value must be greater than it).
    :ivar maximum: the largest value allowed, or ``None``.
    :ivar below: the maximum itself is refused (the value must be less than it).
    :ivar optional: ``None`` is allowed too.
    :ivar choices: the only values allowed, if not empty (text settings).
    :ivar unit: the unit of the number (``"seconds"``, ``"bytes"``), for messages.
    :ivar help: what the setting means, for people.
    :ivar section: the configuration section the setting is read from, or ``None`` when
        it cannot be configured in the file.
    :ivar key: the key of the setting in that section.
    :ivar config_default: the default as written in the configuration file, when the
        service's differs from the class's; else ``None``.
    """

    integer: bool = False
    minimum: float | None = None
    above: bool = False
    maximum: float | None = None
    below: bool = False
    optional: bool = False
    choices: tuple[str, ...] = ()
    unit: str = ""
    help: str = ""
    section: str | None = None
    key: str | None = None
    config_default: str | None = None

    def check(self, name: str, value: object) -> None:
        """
        Check ``value`` for the setting ``name``.

        :raise ValueError: naming the setting, what it must be and the value given.
        """
        if value is None and self.optional:
            return
        if self.choices:
            if value not in self.choices:
                raise ValueError(f"{name} must be one of {sorted(self.choices)!r}, got {value!r}")
            return
        unit = f" of {self.unit}" if self.unit else ""
        if self.integer:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be a whole number{unit}, got {value!r}")
        elif not _is_number(value):
            raise ValueError(f"{name} must be a number{unit}, got {value!r}")
        number: float = value  # type: ignore[assignment]
        if not self.in_range(number):
            raise ValueError(f"{name} must be {self._words_for(number)}, got {value!r}")

    def _words_for(self, number: float) -> str:
        """The part of the range ``number`` is outside of, in words."""
        high = self.maximum
        if high is None or self.below or not number > high:
            low_words = Rule(minimum=self.minimum, above=self.above).range_words()
            return self.range_words() if self.below or self.minimum is None else low_words
        unit = f" {self.unit}" if self.unit else ""
        return f"at most {_figure(high)}{unit}"

    def in_range(self, number: float) -> bool:
        """Whether the finite ``number`` is within the range."""
        if not math.isfinite(number):
            return False
        low, high = self.minimum, self.maximum
        if low is not None and (number < low or (self.above and number == low)):
            return False
        return high is None or not (number > high or (self.below and number == high))

    def range_words(self) -> str:
        """The range in words: ``positive``, ``at least 1``, ``from 0 to 3600 seconds``..."""
        low, high = self.minimum, self.maximum
        unit = f" {self.unit}" if self.unit else ""
        if high is None:
            if low is None:
                return "finite"
            if low == 0:
                return "positive" if self.above else "finite and not negative"
            return f"greater than {_figure(low)}" if self.above else f"at least {_figure(low)}"
        top = f"below {_figure(high)}" if self.below else f"at most {_figure(high)}"
        if low is None:
            return f"{top}{unit}"
        if self.above:
            return f"greater than {_figure(low)} and {top}{unit}"
        if self.below:
            return f"at least {_figure(low)} and {top}{unit}"
        return f"from {_figure(low)} to {_figure(high)}{unit}"


def field(
    default: Any = attrs.NOTHING,
    *,
    factory: Callable[[], Any] | None = None,
    integer: bool = False,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
    optional: bool = False,
    choices: tuple[str, ...] = (),
    unit: str = "",
    help: str = "",
    config: tuple[str, str] | None = None,
    config_default: str | None = None,
) -> Any:
    """
    An attrs field whose value is checked by its :class:`Rule`, which it keeps in its
    metadata (:func:`rule_of`).

    :param default: the default value.
    :param factory: makes the default value instead.
    :param integer: the value is a whole number.
    :param minimum: the smallest value allowed.
    :param above: the value must be greater than this (instead of ``minimum``).
    :param maximum: the largest value allowed.
    :param below: the value must be less than this (instead of ``maximum``).
    :param optional: ``None`` is allowed too.
    :param choices: the only values allowed (text settings).
    :param unit: the unit of the number, for messages.
    :param help: what the setting means.
    :param config: the configuration ``(section, key)`` it is read from.
    :param config_default: the service's default in the file, if not the class's.
    """
    rule = Rule(
        integer=integer,
        minimum=above if above is not None else minimum,
        above=above is not None,
        maximum=below if below is not None else maximum,
        below=below is not None,
        optional=optional,
        choices=choices,
        unit=unit,
        help=help,
        section=config[0] if config else None,
        key=config[1] if config else None,
        config_default=config_default,
    )

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        rule.check(attribute.name, value)

    if factory is not None:
        return attrs.field(factory=factory, validator=check, metadata={RULE: rule})
    return attrs.field(default=default, validator=check, metadata={RULE: rule})


def rule_of(attribute: attrs.Attribute[Any]) -> Rule | None:
    """The :class:`Rule` of a field made by :func:`field`, or ``None``."""
    rule = attribute.metadata.get(RULE)
    return rule if isinstance(rule, Rule) else None


def rules(cls: type) -> Iterator[tuple[attrs.Attribute[Any], Rule]]:
    """The fields of the attrs class ``cls`` that have a :class:`Rule`, in order."""
    for attribute in attrs.fields(cls):
        rule = rule_of(attribute)
        if rule is not None:
            yield attribute, rule


def check_field(cls: type, field_name: str, value: object, name: str | None = None) -> None:
    """
    Check ``value`` against the rule of the field ``field_name`` of the attrs class
    ``cls``: the check ``cls(field_name=value)`` makes, for an argument that takes the
    same setting elsewhere.

    :param name: the name the message gives (the argument's); ``field_name`` if ``None``.
    :raise ValueError: as the class would.
    """
    rule = rule_of(getattr(attrs.fields(cls), field_name))
    if rule is None:
        raise TypeError(f"{cls.__name__}.{field_name} has no rule")
    rule.check(name or field_name, value)
