"""
Object filters: :class:`Q`, Thorn's query nodes for plain Python objects.

``Q(state__eq="PUBLISHED")`` is a predicate: calling it with an object says whether the
object's ``state`` equals ``"PUBLISHED"``. Conditions name an attribute path and an
operator (``author__account__is_staff__eq=True``); Q objects combine with ``&``, ``|`` and
``~``; the ``now_*`` transitions compare with a previous version of the object. A Q can
filter a dispatcher handler (``add_event_handler(..., where=Q(...))``).

:doc:`/filters` is the reference: every operator, the transitions, and where this
departs from Thorn.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Container, Mapping
from typing import Any, Final

import attrs

__all__ = ["Q"]

#: An operator: ``test(value, argument)``, truthy when it holds.
_Test = Callable[[Any, Any], object]


class _Missing:
    """The value of an attribute path that does not resolve."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


def _truthy(value: object, argument: object) -> bool:
    return bool(value)


def _falsy(value: object, argument: object) -> bool:
    return not value


def _in(value: object, argument: Container[object]) -> bool:
    return value in argument


def _not_in(value: object, argument: Container[object]) -> bool:
    return value not in argument


def _contains(value: Container[object], argument: object) -> bool:
    return argument in value


def _startswith(value: object, argument: str | tuple[str, ...]) -> bool:
    return isinstance(value, str) and value.startswith(argument)


def _endswith(value: object, argument: str | tuple[str, ...]) -> bool:
    return isinstance(value, str) and value.endswith(argument)


# The operators of Thorn's table, by name, in the table's order.
_OPERATORS: Final[Mapping[str, _Test]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "is": operator.is_,
    "is_not": operator.is_not,
    "in": _in,
    "not_in": _not_in,
    "contains": _contains,
    "startswith": _startswith,
    "endswith": _endswith,
}

_CONTAINER_OPERATORS: Final = frozenset({"in", "not_in"})

_TRANSITION_PREFIX: Final = "now_"

_AND: Final = "AND"
_OR: Final = "OR"


def _operator_list() -> str:
    return ", ".join(_OPERATORS)


def _resolve(obj: object, path: tuple[str, ...]) -> object:
    """
    Follow ``path`` from ``obj``: a key of a mapping, otherwise an attribute. Return
    :data:`_MISSING` as soon as a step does not resolve.
    """
    for name in path:
        if isinstance(obj, Mapping):
            try:
                obj = obj[name]
            except KeyError:
                return _MISSING
        else:
            obj = getattr(obj, name, _MISSING)
            if obj is _MISSING:
                return _MISSING
    return obj


def _holds(test: _Test, value: object, argument: object) -> bool:
    """Whether ``test`` holds for ``value``: never for a missing value or a TypeError."""
    if value is _MISSING:
        return False
    try:
        return bool(test(value, argument))
    except TypeError:
        return False


def _parse(key: str, argument: object) -> _Condition:
    """The condition ``key=argument`` stands for, or :class:`ValueError` naming ``key``."""
    path_text, separator, name = key.rpartition("__")
    if not separator:
        raise ValueError(
            f"Q condition {key!r} has no operator: name the attribute then the operator, "
            f"such as {key + '__eq'!r} to test equality; the operators are "
            f"{_operator_list()}, each also as a now_ transition"
        )
    transition = name.startswith(_TRANSITION_PREFIX)
    base = name[len(_TRANSITION_PREFIX) :] if transition else name
    test = _OPERATORS.get(base)
    if test is None:
        if transition:
            raise ValueError(
                f"Q condition {key!r} has an unknown transition {name!r}: a transition is "
                f"now_ followed by one of the operators {_operator_list()}"
            )
        raise ValueError(
            f"Q condition {key!r} ends with {name!r}, which is not an operator; to test "
            f"equality write {key + '__eq'!r}; the operators are {_operator_list()}, each "
            "also as a now_ transition"
        )
    path = tuple(path_text.split("__"))
    if not all(path):
        raise ValueError(
            f"Q condition {key!r} has an empty attribute name in its path {path_text!r}; "
            "separate attribute names with a double underscore, as in "
            "'author__account__is_staff__eq'"
        )
    if base in _CONTAINER_OPERATORS and not isinstance(argument, Container):
        raise ValueError(
            f"Q condition {key!r} needs a container to look the value up in (a set, list, "
            f"tuple, dict, string: anything supporting 'in'), got {type(argument).__name__} "
            f"{argument!r}"
        )
    # eq=True/False test truthiness, and ne=True/False are their negations.
    kind = base
    if argument is True and base in ("eq", "ne"):
        kind = "truthy" if base == "eq" else "falsy"
    elif argument is False and base in ("eq", "ne"):
        kind = "falsy" if base == "eq" else "truthy"
    if kind == "truthy":
        test = _truthy
    elif kind == "falsy":
        test = _falsy
    return _Condition(key, argument, kind, path, test, transition)


@attrs.frozen(repr=False)
class _Condition:
    """One ``path__operator=argument`` condition, ready to test."""

    key: str
    argument: object
    # What the condition tests: the operator's name, or "truthy" / "falsy" for
    # eq=True/False and ne=True/False, so that Q(a__eq=True) != Q(a__eq=1).
    kind: str
    path: tuple[str, ...] = attrs.field(eq=False)
    test: _Test = attrs.field(eq=False)
    transition: bool = attrs.field(eq=False)

    def __repr__(self) -> str:
        return f"Q({self.key}={self.argument!r})"

    def _match(self, instance: object, previous: object) -> bool:
        """Whether this condition holds for ``instance`` (after ``previous``)."""
        test = self.test
        if not _holds(test, _resolve(instance, self.path), self.argument):
            return False
        if not self.transition or previous is None:
            # Without a previous version, a transition's operator did not hold before.
            return True
        return not _holds(test, _resolve(previous, self.path), self.argument)


@attrs.frozen(init=False, repr=False)
class Q:
    """
    A filter on objects: call it with an object to know whether the object matches.

    Each keyword is a condition ``path__operator=B``: ``path`` names an attribute, or a
    chain of them separated by double underscores (``author__account__is_staff``), and
    ``operator`` is one of ``eq``, ``ne``, ``gt``, ``gte``, ``lt``, ``lte``, ``is``,
    ``is_not``, ``in``, ``not_in``, ``contains``, ``startswith`` and ``endswith``, or a
    transition: ``now_`` followed by one of them. A step of the path reads a key when the
    object at that point is a :class:`~collections.abc.Mapping`, an attribute otherwise.

    Conditions, and the Q objects given positionally, must all hold (AND). ``a & b``,
    ``a | b`` and ``~a`` combine Q objects into new ones; ``Q()`` matches everything.
    A Q is immutable, compares equal to a Q of the same structure, and its :func:`repr`
    reads back as Python.

    A path that does not resolve (a missing attribute or key anywhere along it) makes its
    condition false, whatever the operator, ``ne``, ``not_in`` and ``is_not`` included;
    so does an operator that raises :class:`TypeError` (``"a" > 1``). :doc:`/filters`
    gives every rule.

    :param children: other Q objects, AND-ed with the conditions.
    :param conditions: ``path__operator=B`` conditions.
    :raise ValueError: for a condition without an operator, with an unknown operator or
        transition, with an empty attribute name in its path, or an ``in`` / ``not_in``
        (or their transitions) whose ``B`` is not a container. The message names the key.
    :raise TypeError: for a positional argument that is not a Q.
    """

    _connector: str
    _children: tuple[Q | _Condition, ...]
    _negated: bool

    def __init__(self, *children: Q, **conditions: object) -> None:
        for child in children:
            if not isinstance(child, Q):
                raise TypeError(
                    f"Q takes other Q objects positionally and conditions as keywords, got "
                    f"{type(child).__name__} {child!r}"
                )
        nodes: list[Q | _Condition] = []
        for child in children:
            nodes.extend(child._operands(_AND))
        nodes.extend(_parse(key, conditions[key]) for key in sorted(conditions))
        made = _make(_AND, tuple(nodes), False)
        self.__attrs_init__(
            connector=made._connector, children=made._children, negated=made._negated
        )

    def _operands(self, connector: str) -> tuple[Q | _Condition, ...]:
        """This node as operands of a ``connector`` node: its children when that is flat."""
        if not self._negated and (self._connector == connector or len(self._children) == 1):
            return self._children
        return (self,)

    def _combine(self, other: Q, connector: str) -> Q:
        return _make(connector, self._operands(connector) + other._operands(connector), False)

    def __and__(self, other: object) -> Q:
        """A Q matching what both ``self`` and ``other`` match."""
        if not isinstance(other, Q):
            return NotImplemented
        return self._combine(other, _AND)

    def __or__(self, other: object) -> Q:
        """A Q matching what ``self`` or ``other`` (or both) match."""
        if not isinstance(other, Q):
            return NotImplemented
        return self._combine(other, _OR)

    def __invert__(self) -> Q:
        """A Q matching what ``self`` does not match."""
        return _make(self._connector, self._children, not self._negated)

    def __call__(self, instance: object, previous: object = None) -> bool:
        """
        Whether ``instance`` matches.

        :param instance: the object to test.
        :param previous: its previous version, for the ``now_*`` transitions. ``None``
            means ``instance``'s ``_previous_version`` attribute if it has one (Thorn's
            convention), and otherwise that there is no previous version: a transition's
            operator then counts as not having held before.
        :return: ``True`` or ``False``; a missing attribute never raises.
        """
        if previous is None:
            previous = getattr(instance, "_previous_version", None)
        return self._match(instance, previous)

    def _match(self, instance: object, previous: object) -> bool:
        # AND stops at the first child that fails, OR at the first that holds.
        stop = self._connector == _OR
        for child in self._children:
            if child._match(instance, previous) is stop:
                return stop is not self._negated
        return stop is self._negated

    def __repr__(self) -> str:
        children = self._children
        if all(isinstance(child, _Condition) for child in children) and (
            self._connector == _AND or len(children) == 1
        ):
            body = "Q({})".format(
                ", ".join(
                    f"{child.key}={child.argument!r}"
                    for child in children
                    if isinstance(child, _Condition)
                )
            )
        else:
            separator = " & " if self._connector == _AND else " | "
            body = f"({separator.join(repr(child) for child in children)})"
        return f"~{body}" if self._negated else body


def _make(connector: str, children: tuple[Q | _Condition, ...], negated: bool) -> Q:
    """A node; one that would only wrap another Q is that Q (or its negation)."""
    if len(children) == 1 and isinstance(children[0], Q):
        only = children[0]
        return ~only if negated else only
    node = Q.__new__(Q)
    node.__attrs_init__(connector=connector, children=children, negated=negated)
    return node
