"""
Tests for :class:`twisted_hooks.Q`: the operator table of doc/filters.rst, row by row.

Each operator and each ``now_*`` transition has one row, checked over values that make it
hold and fail, a missing attribute, values of other types, no previous version and
previous versions whose value is ``None`` or missing. The tests named
``test_thorn_difference_*`` pin where twisted_hooks departs, on purpose, from Thorn's
implementation (``thorn/utils/functional.py``); the comment in each says what Thorn does.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import attrs
import pytest

import twisted_hooks
from twisted_hooks import Q


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: As a value: the object has no ``x`` attribute at all.
MISSING = _Marker("MISSING")
#: As a previous value: there is no previous version.
NO_PREVIOUS = _Marker("NO_PREVIOUS")

#: Objects compared by identity in the ``is`` rows.
SAME = _Marker("SAME")
OTHER = _Marker("OTHER")
OTHER2 = _Marker("OTHER2")


def subject(value: object) -> SimpleNamespace:
    """An object whose ``x`` is ``value``, or without ``x`` for :data:`MISSING`."""
    return SimpleNamespace() if value is MISSING else SimpleNamespace(x=value)


def evaluate(q: Q, new: object, old: object = NO_PREVIOUS) -> bool:
    """``q`` applied to an object with ``x=new`` after one with ``x=old``."""
    if old is NO_PREVIOUS:
        return q(subject(new))
    return q(subject(new), subject(old))


class Bag:
    """A container that is neither a sequence nor a mapping: it holds what it was given."""

    def __init__(self, *items: object) -> None:
        self.items = items

    def __contains__(self, item: object) -> bool:
        return item in self.items


#: One row per operator: (operator, B, values for which it holds, values for which not).
#: A missing attribute never holds, whatever the operator; each row checks it too.
OPERATOR_TABLE: list[tuple[str, object, list[object], list[object]]] = [
    ("eq", 5, [5, 5.0], [4, "5", None, [5]]),
    ("ne", 5, [4, "5", None, [5]], [5, 5.0]),
    ("gt", 5, [6, 5.5], [5, 4, "6", None]),
    ("gte", 5, [5, 6], [4, "5", None]),
    ("lt", 5, [4, 4.5], [5, 6, "4", None]),
    ("lte", 5, [5, 4], [6, "4", None]),
    ("is", SAME, [SAME], [OTHER, None]),
    ("is_not", SAME, [OTHER, None], [SAME]),
    ("in", {1, 2}, [1, 2, 2.0], [3, None, [1]]),
    ("not_in", {1, 2}, [3, None], [1, [3]]),
    ("contains", "b", ["abc", ["b"], ("a", "b"), {"b": 1}, {"b"}, Bag("b")], ["xyz", [], 5, None]),
    ("startswith", "ab", ["abc", "ab"], ["xab", ["ab"], b"abc", None, 5]),
    ("endswith", "bc", ["abc", "bc"], ["bcx", ["bc"], b"abc", None, 5]),
]


@pytest.mark.parametrize(
    ("name", "argument", "holds", "fails"), OPERATOR_TABLE, ids=[row[0] for row in OPERATOR_TABLE]
)
def test_operator(name: str, argument: object, holds: list[object], fails: list[object]) -> None:
    """
    ``x__<op>=B`` matches exactly the values for which the operator holds; a missing
    ``x``, or a value the operator cannot compare (TypeError), does not match.
    """
    q = Q(**{f"x__{name}": argument})
    for value in holds:
        assert q(subject(value)) is True, value
    for value in [*fails, MISSING]:
        assert q(subject(value)) is False, value


#: One row per transition: (operator, B, [(new, old, matches), ...]). ``now_<op>=B``
#: matches when <op> holds for the new value and did not hold for the previous one; with
#: no previous version (NO_PREVIOUS), or without the attribute in it, it did not hold.
#: The cases marked "Thorn" are those where Thorn answers otherwise.
TRANSITION_TABLE: list[tuple[str, object, list[tuple[object, object, bool]]]] = [
    (
        "now_eq",
        5,
        [
            (5, 4, True),
            (5, 5, False),
            (4, 5, False),
            (4, 3, False),
            (5, NO_PREVIOUS, True),
            (4, NO_PREVIOUS, False),
            (5, MISSING, True),
            (5, None, True),
            (5, "5", True),
            (MISSING, 4, False),
        ],
    ),
    (
        "now_ne",
        5,
        [
            (4, 5, True),  # Thorn: False
            (4, 3, False),  # Thorn: True
            (5, 4, False),
            (5, 5, False),
            (4, NO_PREVIOUS, True),
            (5, NO_PREVIOUS, False),
            (4, MISSING, True),
            (None, 5, True),
            (4, None, False),  # None != 5 held before; Thorn: True
            (MISSING, 5, False),
        ],
    ),
    (
        "now_gt",
        5,
        [
            (6, 4, True),
            (6, 5, True),  # Thorn: False (it asks for previous < B)
            (6, 7, False),
            (4, 6, False),
            (4, 3, False),
            (6, NO_PREVIOUS, True),  # Thorn: TypeError (None < 5)
            (4, NO_PREVIOUS, False),
            (6, MISSING, True),
            (6, None, True),
            (6, "x", True),
            ("x", 4, False),
            (MISSING, 4, False),
        ],
    ),
    (
        "now_gte",
        5,
        [
            (5, 4, True),
            (6, 4, True),
            (5, 5, False),  # Thorn: True (previous <= B)
            (6, 5, False),  # Thorn: True
            (4, 6, False),
            (5, NO_PREVIOUS, True),
            (4, NO_PREVIOUS, False),
            (5, MISSING, True),
            (5, None, True),
            (MISSING, 4, False),
        ],
    ),
    (
        "now_lt",
        5,
        [
            (4, 6, True),
            (4, 5, True),  # Thorn: False (it asks for previous > B)
            (4, 3, False),
            (6, 4, False),
            (6, 7, False),
            (4, NO_PREVIOUS, True),
            (6, NO_PREVIOUS, False),
            (4, MISSING, True),
            (4, None, True),
            (MISSING, 6, False),
        ],
    ),
    (
        "now_lte",
        5,
        [
            (5, 6, True),
            (4, 6, True),
            (5, 5, False),  # Thorn: True (previous >= B)
            (4, 5, False),  # Thorn: True
            (6, 4, False),
            (5, NO_PREVIOUS, True),
            (6, NO_PREVIOUS, False),
            (5, MISSING, True),
            (5, None, True),
            (MISSING, 6, False),
        ],
    ),
    (
        "now_is",
        SAME,
        [
            (SAME, OTHER, True),
            (SAME, SAME, False),
            (OTHER, SAME, False),
            (OTHER, OTHER2, False),
            (SAME, NO_PREVIOUS, True),
            (OTHER, NO_PREVIOUS, False),
            (SAME, MISSING, True),
            (SAME, None, True),
            (MISSING, OTHER, False),
        ],
    ),
    (
        "now_is_not",
        SAME,
        [
            (OTHER, SAME, True),  # Thorn: False (it asks for previous is None)
            (OTHER, OTHER2, False),
            (SAME, OTHER, False),
            (SAME, SAME, False),
            (OTHER, NO_PREVIOUS, True),
            (SAME, NO_PREVIOUS, False),
            (OTHER, MISSING, True),
            (OTHER, None, False),  # None is not SAME held before; Thorn: True
            (MISSING, SAME, False),
        ],
    ),
    (
        "now_in",
        {1, 2},
        [
            (1, 3, True),
            (1, 2, False),
            (3, 1, False),
            (3, 4, False),
            (1, NO_PREVIOUS, True),
            (3, NO_PREVIOUS, False),
            (1, MISSING, True),
            (1, None, True),
            (1, [1], True),  # an unhashable previous value is in no set
            (MISSING, 3, False),
        ],
    ),
    (
        "now_not_in",
        {1, 2},
        [
            (3, 1, True),
            (3, 4, False),
            (1, 3, False),
            (1, 2, False),
            (3, NO_PREVIOUS, True),  # Thorn: False (None in {1, 2} is false)
            (1, NO_PREVIOUS, False),
            (3, MISSING, True),
            (3, None, False),
            ([3], 1, False),  # an unhashable value: not_in raises TypeError, so fails
            (MISSING, 1, False),
        ],
    ),
    (
        "now_contains",
        "b",
        [
            ("abc", "xyz", True),
            (["b"], [], True),
            ("abc", "b", False),
            ("x", "abc", False),
            ("abc", NO_PREVIOUS, True),  # Thorn: TypeError ("b" in None)
            ("x", NO_PREVIOUS, False),
            ("abc", MISSING, True),
            ("abc", None, True),
            ("abc", 5, True),
            (MISSING, "x", False),
        ],
    ),
    (
        "now_startswith",
        "ab",
        [
            ("abc", "xab", True),
            ("abc", "abd", False),
            ("xab", "abc", False),
            ("abc", NO_PREVIOUS, True),  # Thorn: AttributeError (None.startswith)
            ("x", NO_PREVIOUS, False),
            ("abc", MISSING, True),
            ("abc", None, True),
            ("abc", ["ab"], True),
            (["ab"], "x", False),
            (MISSING, "x", False),
        ],
    ),
    (
        "now_endswith",
        "bc",
        [
            ("abc", "bcx", True),
            ("abc", "xbc", False),
            ("bcx", "abc", False),
            ("abc", NO_PREVIOUS, True),  # Thorn: AttributeError (None.endswith)
            ("x", NO_PREVIOUS, False),
            ("abc", MISSING, True),
            ("abc", None, True),
            ("abc", b"abc", True),
            (b"abc", "x", False),
            (MISSING, "x", False),
        ],
    ),
]


@pytest.mark.parametrize(
    ("name", "argument", "cases"), TRANSITION_TABLE, ids=[row[0] for row in TRANSITION_TABLE]
)
def test_transition(name: str, argument: object, cases: list[tuple[object, object, bool]]) -> None:
    """
    ``x__now_<op>=B`` matches when <op> holds for the new ``x`` and did not hold for the
    previous one; no previous version, or a previous version without ``x``, counts as
    "did not hold"; a new version without ``x`` never matches.
    """
    q = Q(**{f"x__{name}": argument})
    for new, old, expected in cases:
        assert evaluate(q, new, old) is expected, (new, old)


def test_every_operator_has_a_row() -> None:
    """The two tables cover every operator of Thorn's table and its transition."""
    operators = [row[0] for row in OPERATOR_TABLE]
    assert operators == [
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "is",
        "is_not",
        "in",
        "not_in",
        "contains",
        "startswith",
        "endswith",
    ]
    assert [row[0] for row in TRANSITION_TABLE] == [f"now_{name}" for name in operators]


#: eq/ne with True or False: (key, B, values that match, values that do not).
TRUTH_TABLE: list[tuple[str, bool, list[object], list[object]]] = [
    ("eq", True, [True, 1, 2.5, "x", [0], SimpleNamespace()], [False, 0, "", [], None, MISSING]),
    ("eq", False, [False, 0, 0.0, "", [], None], [True, 1, "x", [0], MISSING]),
    ("ne", True, [False, 0, "", [], None], [True, 1, "x", [0], MISSING]),
    ("ne", False, [True, 1, "x", [0]], [False, 0, "", None, MISSING]),
]


@pytest.mark.parametrize(
    ("name", "argument", "holds", "fails"),
    TRUTH_TABLE,
    ids=[f"{row[0]}={row[1]}" for row in TRUTH_TABLE],
)
def test_truthiness(name: str, argument: bool, holds: list[object], fails: list[object]) -> None:
    """
    ``eq=True`` matches any truthy value and ``eq=False`` any falsy one; ``ne=True`` and
    ``ne=False`` are their negations (``ne=True`` matches falsy values). A missing
    attribute matches none of them.
    """
    q = Q(**{f"x__{name}": argument})
    for value in holds:
        assert q(subject(value)) is True, value
    for value in fails:
        assert q(subject(value)) is False, value


TRUTH_TRANSITIONS: list[tuple[str, bool, list[tuple[object, object, bool]]]] = [
    ("now_eq", True, [(1, 0, True), ("x", None, True), (1, 2, False), (0, 1, False)]),
    ("now_eq", False, [(0, 1, True), ("", "x", True), (0, None, False), (1, 0, False)]),
    ("now_ne", True, [(0, 1, True), (None, "x", True), (0, "", False), (1, 0, False)]),
    ("now_ne", False, [(1, 0, True), ("x", None, True), (1, 2, False), (0, 1, False)]),
]


@pytest.mark.parametrize(
    ("name", "argument", "cases"),
    TRUTH_TRANSITIONS,
    ids=[f"{row[0]}={row[1]}" for row in TRUTH_TRANSITIONS],
)
def test_truthiness_transitions(
    name: str, argument: bool, cases: list[tuple[object, object, bool]]
) -> None:
    """
    ``now_eq=True`` matches a value that became truthy, ``now_eq=False`` one that became
    falsy; ``now_ne=True`` and ``now_ne=False`` likewise follow ``ne=True``/``ne=False``.
    """
    q = Q(**{f"x__{name}": argument})
    for new, old, expected in cases:
        assert evaluate(q, new, old) is expected, (new, old)
    assert evaluate(q, MISSING, 0) is False


def test_eq_one_is_equality() -> None:
    """Only the objects True and False test truthiness: ``eq=1`` is plain equality."""
    assert Q(x__eq=1)(subject(True)) is True
    assert Q(x__eq=1)(subject("x")) is False
    assert Q(x__eq=True)(subject("x")) is True
    assert Q(x__eq=1) != Q(x__eq=True)


# -- paths -----------------------------------------------------------------------------


def test_nested_attribute_path() -> None:
    """Double underscores chain attributes: ``author__account__is_staff__eq=True``."""
    q = Q(author__account__is_staff__eq=True)
    staff = SimpleNamespace(author=SimpleNamespace(account=SimpleNamespace(is_staff=True)))
    other = SimpleNamespace(author=SimpleNamespace(account=SimpleNamespace(is_staff=False)))
    assert q(staff) is True
    assert q(other) is False


def test_deep_path() -> None:
    """Paths may be arbitrarily deep, as in the manual's ``a__b__...__x__gt=3.03``."""
    q = Q(a__b__c__d__e__f__g__x__gt=3.03)
    obj: object = SimpleNamespace(x=4)
    for name in "gfedcba":
        obj = SimpleNamespace(**{name: obj})
    assert q(obj) is True


@pytest.mark.parametrize(
    "instance",
    [
        SimpleNamespace(),
        SimpleNamespace(author=None),
        SimpleNamespace(author=SimpleNamespace()),
        SimpleNamespace(author=SimpleNamespace(account=5)),
        {"author": {}},
        {},
    ],
    ids=["no-author", "author-None", "no-account", "account-int", "dict-no-account", "empty-dict"],
)
def test_missing_along_the_path(instance: object) -> None:
    """
    A path that breaks anywhere (a missing attribute or key, ``None`` on the way) is no
    match for any operator, the negative ones included, and raises nothing.
    """
    for key, argument in [
        ("author__account__is_staff__eq", True),
        ("author__account__is_staff__ne", True),
        ("author__account__is_staff__is_not", None),
        ("author__account__is_staff__not_in", {1}),
        ("author__account__is_staff__now_ne", 1),
    ]:
        assert Q(**{key: argument})(instance) is False, key
    assert (~Q(author__account__is_staff__eq=True))(instance) is True


def test_mapping_path() -> None:
    """A step into a mapping reads a key: dicts nest in objects and objects in dicts."""
    q = Q(author__account__is_staff__eq=True)
    assert q({"author": {"account": {"is_staff": 1}}}) is True
    assert q({"author": SimpleNamespace(account={"is_staff": 1})}) is True
    assert q(SimpleNamespace(author={"account": SimpleNamespace(is_staff=0)})) is False


def test_mapping_keys_not_attributes() -> None:
    """On a mapping only keys count, not attributes: ``items`` is the key, not the method."""
    assert Q(items__eq=3)({"items": 3}) is True
    assert Q(items__is_not=None)({}) is False
    assert Q(get__is_not=None)({"x": 1}) is False


def test_property_raising_attribute_error_is_missing() -> None:
    """An attribute whose property raises AttributeError counts as missing."""

    class Lazy:
        @property
        def x(self) -> int:
            raise AttributeError("not loaded")

    assert Q(x__ne=1)(Lazy()) is False


def test_other_exceptions_propagate() -> None:
    """
    Only a missing path and TypeError are taken as "does not hold": another exception
    raised by the object's own code propagates.
    """

    class Broken:
        def __eq__(self, other: object) -> bool:
            raise ZeroDivisionError()

        __hash__ = object.__hash__

    with pytest.raises(ZeroDivisionError):
        Q(x__eq=1)(subject(Broken()))


@pytest.mark.parametrize(
    "container",
    [[1, 2], (1, 2), {1, 2}, frozenset({1, 2}), {1: "a", 2: "b"}, range(1, 3), Bag(1, 2)],
    ids=["list", "tuple", "set", "frozenset", "dict", "range", "custom"],
)
def test_in_any_container(container: Any) -> None:
    """``in`` and ``not_in`` accept any container (anything supporting ``in``)."""
    assert Q(x__in=container)(subject(2)) is True
    assert Q(x__in=container)(subject(3)) is False
    assert Q(x__not_in=container)(subject(3)) is True
    assert Q(x__not_in=container)(subject(2)) is False


def test_in_string() -> None:
    """A string is a container too: ``in`` on a string tests for a substring."""
    assert Q(x__in="abcd")(subject("bc")) is True
    assert Q(x__in="abcd")(subject(5)) is False
    assert Q(x__not_in="abcd")(subject(5)) is False


def test_startswith_tuple() -> None:
    """As for :meth:`str.startswith`, B may be a tuple of prefixes."""
    assert Q(x__startswith=("a", "b"))(subject("bc")) is True
    assert Q(x__endswith=("a", "b"))(subject("bc")) is False
    assert Q(x__startswith=5)(subject("5")) is False


def test_is_none() -> None:
    """``x__is=None`` tests for None, and only None (not other falsy values)."""
    assert Q(x__is=None)(subject(None)) is True
    assert Q(x__is=None)(subject(0)) is False
    assert Q(x__is=None)(subject(MISSING)) is False


# -- combining -------------------------------------------------------------------------


def test_keywords_are_and_ed() -> None:
    """Several keywords must all hold."""
    q = Q(state__eq="PUBLISHED", title__startswith="The")
    assert q(SimpleNamespace(state="PUBLISHED", title="The end")) is True
    assert q(SimpleNamespace(state="PUBLISHED", title="An end")) is False
    assert q(SimpleNamespace(state="DRAFT", title="The end")) is False


def test_and_or_invert() -> None:
    """``&`` is AND, ``|`` is OR, ``~`` is NOT, and ``~~q`` is ``q``."""
    a, b = Q(a__eq=1), Q(b__eq=1)
    cases = [({"a": 1, "b": 1}, True, True), ({"a": 1}, False, True), ({}, False, False)]
    for instance, both, either in cases:
        assert (a & b)(instance) is both
        assert (a | b)(instance) is either
        assert (~(a & b))(instance) is not both
        assert (~(a | b))(instance) is not either
    assert (~a)({"a": 2}) is True
    assert ~~a == a


def test_nesting() -> None:
    """Combinations nest to any depth."""
    q = (Q(a__eq=1) | Q(b__eq=1)) & ~(Q(c__eq=1) | (Q(d__eq=1) & ~Q(e__eq=1)))
    assert q({"a": 1}) is True
    assert q({"a": 1, "c": 1}) is False
    assert q({"b": 1, "d": 1}) is False
    assert q({"b": 1, "d": 1, "e": 1}) is True
    assert q({"d": 1, "e": 1}) is False


def test_precedence_of_the_manuals_example() -> None:
    """
    Python binds ``&`` tighter than ``|``: the manual's last example,
    ``Q(state__eq='PUBLISHED') | Q(state__eq='PREVIEW') & ~Q(title__startswith='The')``,
    is PUBLISHED or (PREVIEW and not "The..."), not the manual's pseudo-code.
    """
    q = Q(state__eq="PUBLISHED") | Q(state__eq="PREVIEW") & ~Q(title__startswith="The")
    assert q(SimpleNamespace(state="PUBLISHED", title="The end")) is True
    assert q(SimpleNamespace(state="PREVIEW", title="The end")) is False
    assert q(SimpleNamespace(state="PREVIEW", title="An end")) is True


def test_positional_q() -> None:
    """Q objects given positionally are AND-ed with the keywords, as in Thorn."""
    q = Q(Q(a__eq=1) | Q(b__eq=1), c__eq=1)
    assert q({"a": 1, "c": 1}) is True
    assert q({"a": 1}) is False
    assert Q(Q(a__eq=1), b__eq=2) == Q(a__eq=1, b__eq=2)
    assert Q(Q(a__eq=1)) == Q(a__eq=1)


def test_empty_q() -> None:
    """``Q()`` matches everything, ``~Q()`` nothing; ``Q() & q`` is ``q``."""
    assert Q()(object()) is True
    assert (~Q())(object()) is False
    assert Q() & Q(a__eq=1) == Q(a__eq=1)
    assert (Q() | Q(a__eq=1))({}) is True


def test_transitions_in_combinations() -> None:
    """The previous version reaches every transition of a combination."""
    q = Q(state__now_eq="PUBLISHED") | ~Q(views__now_gt=100)
    new = SimpleNamespace(state="PUBLISHED", views=150)
    assert q(new, SimpleNamespace(state="DRAFT", views=50)) is True
    assert q(new, SimpleNamespace(state="PUBLISHED", views=50)) is False
    assert q(new, SimpleNamespace(state="PUBLISHED", views=120)) is True


def test_previous_version_attribute() -> None:
    """
    Without ``previous``, an instance's ``_previous_version`` attribute is the previous
    version (Thorn's convention); an explicit ``previous`` wins over it.
    """
    q = Q(state__now_eq="PUBLISHED")
    new = SimpleNamespace(state="PUBLISHED", _previous_version=SimpleNamespace(state="DRAFT"))
    assert q(new) is True
    new._previous_version = SimpleNamespace(state="PUBLISHED")
    assert q(new) is False
    assert q(new, SimpleNamespace(state="DRAFT")) is True


def test_combining_with_other_types() -> None:
    """Only Q objects combine with a Q."""
    with pytest.raises(TypeError):
        Q(a__eq=1) & (lambda obj: True)
    with pytest.raises(TypeError):
        Q(a__eq=1) | 1


# -- equality, repr, immutability ------------------------------------------------------


def test_equality() -> None:
    """Q objects compare by structure; keyword order does not matter."""
    assert Q(a__eq=1, b__gt=2) == Q(b__gt=2, a__eq=1)
    assert Q(a__eq=1) != Q(a__eq=2)
    assert Q(a__eq=1) != Q(a__ne=1)
    assert Q(a__eq=1) != ~Q(a__eq=1)
    assert Q(a__eq=1) & Q(b__eq=1) == Q(a__eq=1, b__eq=1)
    assert (Q(a__eq=1) | Q(b__eq=1)) | Q(c__eq=1) == Q(a__eq=1) | (Q(b__eq=1) | Q(c__eq=1))
    assert Q(a__eq=1) & Q(b__eq=1) != Q(a__eq=1) | Q(b__eq=1)
    text: object = "Q(a__eq=1)"
    assert Q(a__eq=1) != text
    assert hash(Q(a__eq=1, b__gt=2)) == hash(Q(b__gt=2, a__eq=1))


REPRS = [
    Q(),
    Q(state__eq="PUBLISHED"),
    Q(a__eq=1, b__in=[1, 2]),
    ~Q(a__eq=1),
    Q(a__eq=1) | Q(b__eq=2),
    ~(Q(a__eq=1) | Q(b__eq=2)),
    Q(Q(a__eq=1) | Q(b__eq=2), c__gt=3),
    (Q(a__is=None) | ~Q(b__now_startswith="x")) & ~Q(c__eq=True, d__not_in={3}),
    Q() | Q(a__eq=1),
]


@pytest.mark.parametrize("q", REPRS, ids=[repr(q) for q in REPRS])
def test_repr_round_trips(q: Q) -> None:
    """A Q's repr is Python that builds an equal Q."""
    assert eval(repr(q), {"Q": Q}) == q


def test_repr_readable() -> None:
    """The repr reads as the expression that built the Q."""
    assert repr(Q(state__eq="PUBLISHED")) == "Q(state__eq='PUBLISHED')"
    assert repr(Q(b__eq=1, a__eq=2)) == "Q(a__eq=2, b__eq=1)"
    assert repr(Q(a__eq=1) | ~Q(b__eq=2)) == "(Q(a__eq=1) | ~Q(b__eq=2))"


def test_immutable() -> None:
    """A Q cannot be changed after it is built."""
    q = Q(a__eq=1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        q._negated = True  # type: ignore[misc]


def test_exported() -> None:
    """Q is exported by the package."""
    assert twisted_hooks.Q is Q
    assert "Q" in twisted_hooks.__all__


# -- build errors ----------------------------------------------------------------------

BUILD_ERRORS: list[tuple[dict[str, object], str]] = [
    (
        {"state": "PUBLISHED"},
        "Q condition 'state' has no operator: name the attribute then the operator, such "
        "as 'state__eq' to test equality; the operators are eq, ne, gt, gte, lt, lte, is, "
        "is_not, in, not_in, contains, startswith, endswith, each also as a now_ transition",
    ),
    (
        {"author__last_name": "Benes"},
        "Q condition 'author__last_name' ends with 'last_name', which is not an operator; "
        "to test equality write 'author__last_name__eq'; the operators are eq, ne",
    ),
    ({"state__equals": 1}, "Q condition 'state__equals' ends with 'equals', which is not"),
    ({"state__true": 1}, "Q condition 'state__true' ends with 'true', which is not"),
    ({"state__not": 1}, "Q condition 'state__not' ends with 'not', which is not"),
    (
        {"state__now_equals": 1},
        "Q condition 'state__now_equals' has an unknown transition 'now_equals': a "
        "transition is now_ followed by one of the operators eq, ne, gt",
    ),
    ({"state__now_": 1}, "Q condition 'state__now_' has an unknown transition 'now_'"),
    ({"state__now_now_eq": 1}, "has an unknown transition 'now_now_eq'"),
    (
        {"__eq": 1},
        "Q condition '__eq' has an empty attribute name in its path ''; separate attribute "
        "names with a double underscore, as in 'author__account__is_staff__eq'",
    ),
    ({"a____b__eq": 1}, "Q condition 'a____b__eq' has an empty attribute name in its path"),
    (
        {"state__in": 5},
        "Q condition 'state__in' needs a container to look the value up in (a set, list, "
        "tuple, dict, string: anything supporting 'in'), got int 5",
    ),
    ({"state__not_in": None}, "Q condition 'state__not_in' needs a container"),
    ({"state__now_in": 1.5}, "Q condition 'state__now_in' needs a container"),
    ({"state__now_not_in": object()}, "Q condition 'state__now_not_in' needs a container"),
    ({"state__in": iter([1])}, "Q condition 'state__in' needs a container"),
]


@pytest.mark.parametrize(
    ("conditions", "message"), BUILD_ERRORS, ids=[next(iter(c)) for c, _ in BUILD_ERRORS]
)
def test_build_errors(conditions: dict[str, object], message: str) -> None:
    """A bad condition raises ValueError when the Q is built, naming the key."""
    with pytest.raises(ValueError) as raised:
        Q(**conditions)
    assert message in str(raised.value)


def test_positional_not_q() -> None:
    """A positional argument that is not a Q is a TypeError."""
    with pytest.raises(TypeError) as raised:
        Q({"state__eq": 1})  # type: ignore[arg-type]
    assert "Q takes other Q objects positionally and conditions as keywords, got dict" in str(
        raised.value
    )


# -- differences from Thorn ------------------------------------------------------------
# Thorn's thorn/utils/functional.py builds each transition with
# wrap_transition(op, did_change), matching when did_change(old, B) and op(new, B), and
# reads the previous version with attrgetter from obj._previous_version (None when absent).


def test_thorn_difference_now_ne() -> None:
    """
    now_ne=B matches a value no longer equal to B that was equal before. Thorn's
    ``wrap_transition(ne, ne)`` asks for "previously NOT equal" instead, so it matches
    4 after 3 (no change of the test at all) and not 4 after 5.
    """
    q = Q(x__now_ne=5)
    assert evaluate(q, 4, 5) is True
    assert evaluate(q, 4, 3) is False


def test_thorn_difference_now_gte() -> None:
    """
    now_gte=B needs a previous value below B. Thorn's ``wrap_transition(ge, le)`` accepts
    a previous value equal to B, so it matches 5 after 5: a "transition" with no change.
    """
    q = Q(x__now_gte=5)
    assert evaluate(q, 5, 5) is False
    assert evaluate(q, 5, 4) is True


def test_thorn_difference_now_lte() -> None:
    """
    now_lte=B needs a previous value above B. Thorn's ``wrap_transition(le, ge)`` accepts
    a previous value equal to B, so it matches 5 after 5.
    """
    q = Q(x__now_lte=5)
    assert evaluate(q, 5, 5) is False
    assert evaluate(q, 5, 6) is True


def test_thorn_difference_now_is_not() -> None:
    """
    now_is_not=B matches a value that is no longer B after being B. Thorn's
    ``wrap_transition(is_not, lambda a, _: a is None)`` asks whether the previous value
    was None, whatever B: it misses SAME -> OTHER and fires on None -> OTHER.
    """
    q = Q(x__now_is_not=SAME)
    assert evaluate(q, OTHER, SAME) is True
    assert evaluate(q, OTHER, None) is False


def test_thorn_difference_now_gt_now_lt_from_b() -> None:
    """
    now_gt=B fires when the value rises above B from B itself, and now_lt=B when it falls
    below B from B: the operator did not hold before. Thorn asks for a previous value
    strictly below (``wrap_transition(gt, lt)``) or above (``wrap_transition(lt, gt)``)
    B, as the manual's wording does, and so misses 5 -> 6 for now_gt=5.
    """
    assert evaluate(Q(x__now_gt=5), 6, 5) is True
    assert evaluate(Q(x__now_lt=5), 4, 5) is True


def test_thorn_difference_no_previous_version() -> None:
    """
    Without a previous version every transition's operator counts as not having held.
    Thorn compares with None instead: it never matches now_eq=None or now_is=None on a
    first version, nor now_not_in, and raises TypeError or AttributeError for now_gt,
    now_gte, now_lt, now_lte, now_contains, now_startswith and now_endswith.
    """
    assert evaluate(Q(x__now_eq=None), None) is True
    assert evaluate(Q(x__now_is=None), None) is True
    assert evaluate(Q(x__now_not_in={1}), 2) is True
    for key, value in [
        ("x__now_gt", 6),
        ("x__now_gte", 6),
        ("x__now_lt", 4),
        ("x__now_lte", 4),
    ]:
        assert evaluate(Q(**{key: 5}), value) is True, key
    assert evaluate(Q(x__now_contains="b"), "abc") is True
    assert evaluate(Q(x__now_startswith="a"), "abc") is True
    assert evaluate(Q(x__now_endswith="c"), "abc") is True


def test_thorn_difference_missing_attribute() -> None:
    """
    A missing attribute is no match, and missing from the previous version it is "did
    not hold". Thorn's ``operator.attrgetter`` raises AttributeError in both cases.
    """
    assert Q(x__eq=1)(SimpleNamespace()) is False
    assert Q(x__now_eq=1)(SimpleNamespace(x=1), SimpleNamespace()) is True
    assert Q(x__now_eq=1)(SimpleNamespace(x=1, _previous_version=SimpleNamespace())) is True


def test_thorn_difference_incomparable_types() -> None:
    """
    An operator that raises TypeError does not hold, and startswith/endswith hold only
    for strings. Thorn lets the TypeError (``"a" > 1``) or AttributeError
    (``[1].startswith``) escape.
    """
    assert Q(x__gt=1)(subject("a")) is False
    assert Q(x__contains=1)(subject(5)) is False
    assert Q(x__startswith="a")(subject(["a"])) is False
    assert Q(x__in={1})(subject([1])) is False


def test_thorn_difference_truthiness_transitions() -> None:
    """
    now_eq=True/False and now_ne=True/False test truthiness, like eq and ne. Thorn turns
    only eq and ne into truth tests: its now_eq=True compares with True, so it misses
    "x" after "" and matches 1 after 2 (2 != True, then 1 == True).
    """
    q = Q(x__now_eq=True)
    assert evaluate(q, "x", "") is True
    assert evaluate(q, 1, 2) is False


def test_thorn_difference_mapping_paths() -> None:
    """A path steps into mappings by key; Thorn's attrgetter reads attributes only."""
    assert Q(a__b__eq=1)({"a": {"b": 1}}) is True


def test_thorn_difference_container_checked_when_built() -> None:
    """
    ``in`` with a B that is not a container is refused when the Q is built; Thorn raises
    TypeError at the first match instead.
    """
    with pytest.raises(ValueError):
        Q(x__in=5)


def test_thorn_difference_no_true_not_operators() -> None:
    """
    Thorn's operator table also accepts its internal ``true`` and ``not`` opcodes as
    keys (``x__true=...``); they are not operators here.
    """
    for key in ("x__true", "x__not", "x__now_true"):
        with pytest.raises(ValueError):
            Q(**{key: 1})


def test_thorn_difference_error_names_the_whole_key() -> None:
    """
    A key without an operator is reported with the whole key: Thorn's message for
    ``author__last_name`` suggests ``'author__eq'``, having cut the last name off.
    """
    with pytest.raises(ValueError) as raised:
        Q(author__last_name="Benes")
    assert "'author__last_name__eq'" in str(raised.value)
    assert "'author__eq'" not in str(raised.value)
