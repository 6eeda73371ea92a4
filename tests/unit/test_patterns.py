"""
Tests for :mod:`twisted_hooks.webhooks.patterns`.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twisted_hooks.webhooks.patterns import (
    MAX_NAME_LENGTH,
    InvalidEventName,
    InvalidPattern,
    PatternIndex,
    pattern_matches,
    validate_event_name,
    validate_pattern,
)

# (pattern, name, expected)
MATCH_TABLE: list[tuple[str, str, bool]] = [
    # exact
    ("order.created", "order.created", True),
    ("order.created", "order.updated", False),
    ("order.created", "order", False),
    ("order.created", "order.created.late", False),
    ("order", "order", True),
    ("order", "order.created", False),
    # the lone wildcard
    ("*", "order", True),
    ("*", "order.created", True),
    ("*", "a.b.c.d", True),
    # topic.* at any depth, not the bare topic
    ("order.*", "order.created", True),
    ("order.*", "order.item.added", True),
    ("order.*", "order.item.added.twice", True),
    ("order.*", "order", False),
    ("order.*", "orders.created", False),
    ("order.*", "shop.order.created", False),
    # *.rest: one first segment, then exactly rest
    ("*.created", "order.created", True),
    ("*.created", "user.created", True),
    ("*.created", "shop.order.created", False),
    ("*.created", "created", False),
    ("*.created", "order.created.late", False),
    # * inside a longer pattern: exactly one segment
    ("order.*.completed", "order.x.completed", True),
    ("order.*.completed", "order.completed", False),
    ("order.*.completed", "order.x.y.completed", False),
    ("order.*.completed", "order.x.completed.y", False),
    ("order.*.completed", "shop.x.completed", False),
    # *.*: two or more segments
    ("*.*", "a.b", True),
    ("*.*", "a.b.c", True),
    ("*.*", "a", False),
    # a.*.*: a, one segment, then one or more
    ("a.*.*", "a.b.c", True),
    ("a.*.*", "a.b.c.d", True),
    ("a.*.*", "a.b", False),
    ("a.*.*", "b.b.c", False),
    # combinations
    ("*.b.*", "a.b.c", True),
    ("*.b.*", "a.b.c.d", True),
    ("*.b.*", "a.b", False),
    ("*.b.*", "a.c.d", False),
    ("*.*.c", "a.b.c", True),
    ("*.*.c", "a.b.d", False),
    ("*.*.c", "x.a.b.c", False),
    ("a.*.c.*", "a.b.c.d.e", True),
    ("a.*.c.*", "a.b.c", False),
    # case sensitivity
    ("Order.created", "order.created", False),
    ("order.*", "Order.created", False),
    ("*.Created", "order.Created", True),
    ("*.Created", "order.created", False),
    # the whole charset
    ("shop:eu.order_line-item.*", "shop:eu.order_line-item.x", True),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), MATCH_TABLE)
def test_pattern_matches_table(pattern: str, name: str, expected: bool) -> None:
    """pattern_matches follows the documented rule on each row of the table."""
    assert pattern_matches(pattern, name) is expected


@pytest.mark.parametrize(("pattern", "name", "expected"), MATCH_TABLE)
def test_index_matches_table(pattern: str, name: str, expected: bool) -> None:
    """A PatternIndex holding one pattern agrees with each row of the table."""
    index: PatternIndex[str] = PatternIndex()
    index.add(pattern, "key", "value")
    assert index.match(name) == (["value"] if expected else [])


INVALID_NAMES: list[tuple[object, str]] = [
    ("", "event name is empty"),
    ("a..b", "has an empty segment: it contains '..'"),
    (".a", "has an empty segment: it starts with '.'"),
    ("a.", "has an empty segment: it ends with '.'"),
    (".", "has an empty segment: it starts with '.'"),
    ("a b", "contains whitespace or a control character (' ' at position 1)"),
    ("a.b\n", "contains whitespace or a control character ('\\n' at position 3)"),
    ("a\tb", "whitespace or a control character"),
    ("a\x00b", "whitespace or a control character"),
    ("a\u200bb", "whitespace or a control character"),
    ("order.*", "wildcards belong in patterns, not in event names"),
    ("*", "wildcards belong in patterns, not in event names"),
    ("ord*", "wildcards belong in patterns, not in event names"),
    ("a/b", "contains '/', which is not allowed; segments are made of ASCII letters"),
    ("caf\u00e9", "contains 'é', which is not allowed"),
    ("a.b?", "contains '?', which is not allowed"),
    ("a" * (MAX_NAME_LENGTH + 1), "is 256 characters long; the limit is 255"),
    (None, "event name must be a str, not NoneType"),
    (b"order", "event name must be a str, not bytes"),
]


@pytest.mark.parametrize(("name", "message"), INVALID_NAMES)
def test_invalid_event_names(name: Any, message: str) -> None:
    """Each invalid event name raises InvalidEventName saying what is wrong."""
    with pytest.raises(InvalidEventName) as raised:
        validate_event_name(name)
    assert message in str(raised.value)
    assert isinstance(raised.value, ValueError)


INVALID_PATTERNS: list[tuple[object, str]] = [
    ("", "pattern is empty"),
    ("a..*", "has an empty segment: it contains '..'"),
    (".*", "has an empty segment: it starts with '.'"),
    ("order.", "has an empty segment: it ends with '.'"),
    ("order. *", "contains whitespace or a control character (' ' at position 6)"),
    ("ord*", "has a partial wildcard in segment 'ord*'; '*' must be a whole segment"),
    ("order.*d", "partial wildcard in segment '*d'"),
    ("**", "partial wildcard in segment '**'"),
    ("order.#", "contains '#', which is not allowed"),
    ("order/*", "contains '/', which is not allowed"),
    ("*." * 128, "is 256 characters long; the limit is 255"),
    (42, "pattern must be a str, not int"),
]


@pytest.mark.parametrize(("pattern", "message"), INVALID_PATTERNS)
def test_invalid_patterns(pattern: Any, message: str) -> None:
    """Each invalid pattern raises InvalidPattern saying what is wrong."""
    with pytest.raises(InvalidPattern) as raised:
        validate_pattern(pattern)
    assert message in str(raised.value)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    "name", ["order", "order.created", "shop:eu.order_line-item.x", "A1.b2", "a" * 255]
)
def test_valid_event_names(name: str) -> None:
    """Valid event names (the whole charset, up to the length limit) are returned as is."""
    assert validate_event_name(name) is name


@pytest.mark.parametrize("pattern", ["*", "order.*", "*.created", "a.*.b", "*.*", "a:b-c_d"])
def test_valid_patterns(pattern: str) -> None:
    """Valid patterns, with wildcards as whole segments, are returned as is."""
    assert validate_pattern(pattern) is pattern


def test_pattern_matches_validates() -> None:
    """pattern_matches rejects an invalid pattern and an invalid name with their errors."""
    with pytest.raises(InvalidPattern):
        pattern_matches("ord*", "order")
    with pytest.raises(InvalidEventName):
        pattern_matches("order", "order.*")


def test_add_rejects_invalid_pattern() -> None:
    """add() raises InvalidPattern for a bad pattern and leaves the index unchanged."""
    index: PatternIndex[int] = PatternIndex()
    index.add("a", "k", 1)
    with pytest.raises(InvalidPattern):
        index.add("a..b", "k", 2)
    assert list(index.items()) == [("k", "a", 1)]
    assert "k2" not in index


def test_match_rejects_invalid_name() -> None:
    """match() raises InvalidEventName for a bad name, rather than matching nothing."""
    index: PatternIndex[int] = PatternIndex()
    index.add("*", "k", 1)
    with pytest.raises(InvalidEventName):
        index.match("a b")


def test_add_len_contains_remove() -> None:
    """len() and `in` follow add() and remove(); remove() says whether there was a key."""
    index: PatternIndex[str] = PatternIndex()
    assert len(index) == 0
    index.add("order.*", 1, "one")
    index.add("*.created", 2, "two")
    assert len(index) == 2
    assert 1 in index
    assert 3 not in index
    assert index.remove(1) is True
    assert index.remove(1) is False
    assert 1 not in index
    assert len(index) == 1
    assert index.match("order.created") == ["two"]


def test_readd_replaces_in_place() -> None:
    """Adding a key again replaces its pattern and value, keeping its place in the order."""
    index: PatternIndex[str] = PatternIndex()
    index.add("a.b", "first", "1")
    index.add("a.b", "second", "2")
    index.add("a.*", "first", "1b")
    assert len(index) == 2
    assert list(index.items()) == [("first", "a.*", "1b"), ("second", "a.b", "2")]
    assert index.match("a.b") == ["1b", "2"]
    assert index.match("a.c") == ["1b"]
    index.add("a.b", "first", "1c")
    assert index.match("a.b") == ["1c", "2"]
    assert index.match("a.c") == []


def test_match_in_insertion_order() -> None:
    """match() answers in the order keys were first added, whichever branch matched."""
    index: PatternIndex[str] = PatternIndex()
    patterns = ["order.created", "*", "*.created", "order.*", "*.*", "order.created", "*"]
    for number, pattern in enumerate(patterns):
        index.add(pattern, number, f"{number}:{pattern}")
    assert index.match("order.created") == [f"{n}:{p}" for n, p in enumerate(patterns)]
    assert index.match("order") == ["1:*", "6:*"]


def test_each_key_once() -> None:
    """
    A key appears once in match() even when its wildcard pattern could be read as
    matching several ways; distinct keys with equal values each appear.
    """
    index: PatternIndex[str] = PatternIndex()
    index.add("*.*", "k1", "v")
    index.add("*.*.*", "k2", "w")
    index.add("a.*", "k3", "v")
    assert index.match("a.b.c.d") == ["v", "w", "v"]


def test_iteration_and_items() -> None:
    """Iterating gives the keys, items() gives (key, pattern, value), in insertion order."""
    index: PatternIndex[int] = PatternIndex()
    index.add("b", "y", 2)
    index.add("a", "x", 1)
    assert list(index) == ["y", "x"]
    assert list(index.items()) == [("y", "b", 2), ("x", "a", 1)]


def test_remove_prunes_trie() -> None:
    """Removing every key leaves no trie nodes behind, whatever the patterns were."""
    index: PatternIndex[int] = PatternIndex()
    patterns = ["a.b.c", "a.*.c", "*", "a.*", "*.b", "a.b", "x.y.z.*", "*.*.*.w"]
    for number, pattern in enumerate(patterns):
        index.add(pattern, number, number)
    assert index._node_count() > 0
    for number in range(len(patterns)):
        assert index.remove(number)
    assert index._node_count() == 0
    assert index.match("a.b.c") == []


def test_remove_prunes_only_unused_nodes() -> None:
    """Removing one key prunes its private branch but keeps nodes other keys still need."""
    index: PatternIndex[int] = PatternIndex()
    index.add("a.b", 1, 1)
    index.add("a.b.c.d", 2, 2)
    assert index._node_count() == 4
    index.remove(2)
    assert index._node_count() == 2
    assert index.match("a.b") == [1]


def test_replace_prunes_old_path() -> None:
    """Re-adding a key with another pattern prunes the nodes its old pattern used."""
    index: PatternIndex[int] = PatternIndex()
    index.add("a.b.c.d", 1, 1)
    index.add("x", 1, 1)
    assert index._node_count() == 1


def test_churn_does_not_grow_memory() -> None:
    """Adding and removing many distinct patterns leaves the trie no larger than before."""
    index: PatternIndex[int] = PatternIndex()
    index.add("keep.*", "keep", 0)
    before = index._node_count()
    for number in range(1000):
        index.add(f"churn{number}.*.x{number}", number, number)
        index.remove(number)
    assert index._node_count() == before


def test_match_is_indexed() -> None:
    """
    With 10,000 exact patterns registered, matching a name visits only the nodes on its
    own path (plus the wildcard branches that exist), not one node per pattern.
    """
    index: PatternIndex[int] = PatternIndex()
    for number in range(10_000):
        index.add(f"event{number}.created", number, number)
    assert index.match("event5000.created") == [5000]
    # root, event5000, created
    assert index._last_visits == 3
    assert index.match("event5000.deleted") == []
    assert index._last_visits <= 3
    assert index.match("unknown.created") == []
    assert index._last_visits == 1

    index.add("*.created", "star", -1)
    index.add("event1.*", "tail", -2)
    assert index.match("event5000.created") == [5000, -1]
    # root, event5000, created, *, *.created
    assert index._last_visits == 5


SEGMENTS = st.sampled_from(["a", "b", "c", "*"])
PATTERNS = st.lists(SEGMENTS, min_size=1, max_size=4).map(".".join)
NAMES = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=4).map(".".join)
OPERATIONS = st.lists(
    st.tuples(st.integers(0, 7), st.none() | PATTERNS),
    max_size=40,
)


@given(operations=OPERATIONS, names=st.lists(NAMES, min_size=1, max_size=10))
def test_index_agrees_with_reference(
    operations: list[tuple[int, str | None]], names: list[str]
) -> None:
    """
    After any sequence of adds, replacements and removals, match() gives exactly the
    values of the keys whose pattern_matches, in insertion order, and removing everything
    leaves no trie nodes.
    """
    index: PatternIndex[tuple[int, str]] = PatternIndex()
    model: dict[int, str] = {}
    for key, pattern in operations:
        if pattern is None:
            assert index.remove(key) is (key in model)
            model.pop(key, None)
        else:
            index.add(pattern, key, (key, pattern))
            model[key] = pattern
    assert len(index) == len(model)
    assert [(k, p) for k, p, _ in index.items()] == list(model.items())
    for name in names:
        expected = [(k, p) for k, p in model.items() if pattern_matches(p, name)]
        assert index.match(name) == expected
    for key in list(model):
        index.remove(key)
    assert index._node_count() == 0
