"""
Event names, event patterns, and an index that finds the patterns matching a name.

Subscribers ask for events by *pattern*; :class:`PatternIndex` finds, for one event name,
every subscriber whose pattern matches it.

Event names
-----------

An event name is one or more *segments* separated by dots: ``order``, ``order.created``,
``shop:eu.order.item-added``. A segment is one or more ASCII letters, digits, ``_``, ``-``
or ``:``. Nothing else is allowed: no empty segment (``a..b``, a leading or trailing dot),
no whitespace or control characters, no ``*`` (that is for patterns), no ``/`` and no
non-ASCII characters, because names travel in HTTP headers, URL paths and log lines. A
name is at most 255 characters long. Names are compared exactly, case included:
``Order.created`` is not ``order.created``.

Patterns
--------

A pattern is written like an event name, except that a segment may be a lone ``*``. The
rule:

* A segment other than ``*`` matches exactly that segment (case-sensitive).
* A ``*`` that is the **last** segment matches **one or more** segments: ``order.*``
  matches ``order.created`` and ``order.item.added``, but not ``order`` itself.
* Any other ``*`` matches **exactly one** segment: ``*.created`` matches
  ``order.created`` but not ``shop.order.created``; ``order.*.completed`` matches
  ``order.x.completed`` and nothing deeper.
* The lone pattern ``*`` is the second rule with nothing before it: it matches every event.

So ``*.*`` matches every name of two or more segments, and ``a.*.*`` every name of three
or more segments starting with ``a``. Wildcards are whole segments only: ``ord*`` and
``**`` are invalid.

Indexing
--------

:class:`PatternIndex` keeps its patterns in a trie over segments. Each node has a child
per exact segment, at most one child for a one-segment ``*``, a bucket of patterns that end
at the node, and a bucket of patterns whose trailing ``*`` starts at the node (the lone
``*`` is that bucket on the root). :meth:`PatternIndex.match` walks only the branches the
name's segments lead to, so its cost is proportional to the number of segments times the
wildcard branches taken, plus the number of matches; patterns that cannot match are never
looked at.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Hashable, Iterator
from operator import itemgetter
from typing import Generic, TypeVar

__all__ = [
    "MAX_NAME_LENGTH",
    "NAME_GRAMMAR",
    "PATTERN_GRAMMAR",
    "WILDCARD",
    "InvalidEventName",
    "InvalidPattern",
    "PatternIndex",
    "pattern_matches",
    "validate_event_name",
    "validate_pattern",
]

T = TypeVar("T")

#: The longest event name or pattern accepted, in characters.
MAX_NAME_LENGTH = 255

#: The wildcard segment.
WILDCARD = "*"

_SEGMENT = r"[A-Za-z0-9_:\-]+"
_PATTERN_SEGMENT = rf"({_SEGMENT}|\*)"
#: The grammar of an event name: a regular expression a whole valid name matches, written
#: in the syntax Python's :mod:`re` and JSON Schema's ``pattern`` (ECMA-262) share (the
#: HTTP API's OpenAPI document anchors it). Length is checked apart
#: (:data:`MAX_NAME_LENGTH`).
NAME_GRAMMAR = rf"{_SEGMENT}(\.{_SEGMENT})*"
#: The grammar of an event pattern (a name whose segments may be a lone ``*``), as
#: :data:`NAME_GRAMMAR` gives a name's.
PATTERN_GRAMMAR = rf"{_PATTERN_SEGMENT}(\.{_PATTERN_SEGMENT})*"
_NAME_RE = re.compile(NAME_GRAMMAR)
_PATTERN_RE = re.compile(PATTERN_GRAMMAR)
_SEGMENT_CHAR_RE = re.compile(r"[A-Za-z0-9_:\-]")
_ALLOWED = "ASCII letters, digits, '_', '-' and ':'"


class InvalidEventName(ValueError):
    """
    An event name is not valid; the message says what is wrong with it.

    Raised by :func:`validate_event_name`, :func:`pattern_matches` and
    :meth:`PatternIndex.match`.
    """


class InvalidPattern(ValueError):
    """
    An event pattern is not valid; the message says what is wrong with it.

    Raised by :func:`validate_pattern`, :func:`pattern_matches` and
    :meth:`PatternIndex.add`.
    """


def _is_space_or_control(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("C")


def _diagnose(value: object, what: str, wildcards: bool) -> str:
    """
    Say what is wrong with ``value``, known not to be a valid name (or pattern).
    """
    if not isinstance(value, str):
        return f"{what} must be a str, not {type(value).__name__}"
    if not value:
        return f"{what} is empty; give one or more dot-separated segments, like 'order.created'"
    if len(value) > MAX_NAME_LENGTH:
        return (
            f"{what} {value[:40]!r}... is {len(value)} characters long; "
            f"the limit is {MAX_NAME_LENGTH}"
        )
    for position, char in enumerate(value):
        if _is_space_or_control(char):
            return (
                f"{what} {value!r} contains whitespace or a control character "
                f"({char!r} at position {position})"
            )
    if value.startswith("."):
        return f"{what} {value!r} has an empty segment: it starts with '.'"
    if value.endswith("."):
        return f"{what} {value!r} has an empty segment: it ends with '.'"
    if ".." in value:
        return f"{what} {value!r} has an empty segment: it contains '..'"
    for char in value:
        if char not in ".*" and not _SEGMENT_CHAR_RE.fullmatch(char):
            return (
                f"{what} {value!r} contains {char!r}, which is not allowed; "
                f"segments are made of {_ALLOWED}"
            )
    for segment in value.split("."):
        if WILDCARD in segment:
            if not wildcards:
                return (
                    f"{what} {value!r} contains '*'; wildcards belong in patterns, "
                    "not in event names"
                )
            if segment != WILDCARD:
                return (
                    f"{what} {value!r} has a partial wildcard in segment {segment!r}; "
                    "'*' must be a whole segment, as in 'order.*'"
                )
    # Every rule above holds, so the value is valid; callers only ask about invalid ones.
    raise AssertionError(f"{value!r} is a valid {what}")  # pragma: no cover


def validate_event_name(name: str) -> str:
    """
    Check that ``name`` is a valid event name, and return it.

    :param name: an event name such as ``"order.created"``.

    :return: ``name``, unchanged.

    :raises InvalidEventName: when ``name`` is not a ``str``, is empty or longer than
        :data:`MAX_NAME_LENGTH`, has an empty segment, or contains a character other than
        ASCII letters, digits, ``_``, ``-``, ``:`` and the dots between segments (``*``
        included). The message says which.
    """
    if (
        isinstance(name, str)
        and len(name) <= MAX_NAME_LENGTH
        and _NAME_RE.fullmatch(name) is not None
    ):
        return name
    raise InvalidEventName(_diagnose(name, "event name", wildcards=False))


def validate_pattern(pattern: str) -> str:
    """
    Check that ``pattern`` is a valid event pattern, and return it.

    :param pattern: an event pattern such as ``"order.*"`` or ``"*.created"``.

    :return: ``pattern``, unchanged.

    :raises InvalidPattern: when ``pattern`` is not a ``str``, is empty or longer than
        :data:`MAX_NAME_LENGTH`, has an empty segment, has a segment mixing ``*`` with
        other characters (``ord*``), or contains a character not allowed in event names.
        The message says which.
    """
    if (
        isinstance(pattern, str)
        and len(pattern) <= MAX_NAME_LENGTH
        and _PATTERN_RE.fullmatch(pattern) is not None
    ):
        return pattern
    raise InvalidPattern(_diagnose(pattern, "pattern", wildcards=True))


def _split_pattern(pattern: str) -> tuple[tuple[str, ...], bool]:
    """
    Split a valid pattern into the segments its trie path is made of, and whether it ends
    in a trailing (one-or-more) wildcard, which is not part of the path.
    """
    segments = tuple(pattern.split("."))
    if segments[-1] == WILDCARD:
        return segments[:-1], True
    return segments, False


def pattern_matches(pattern: str, name: str) -> bool:
    """
    Say whether ``pattern`` matches the event ``name``, by the rule in the module
    documentation.

    This is the reference implementation: it looks at one pattern only. Use
    :class:`PatternIndex` to match a name against many patterns.

    :param pattern: a valid event pattern.
    :param name: a valid event name.

    :return: ``True`` when ``pattern`` matches ``name``.

    :raises InvalidPattern: when ``pattern`` is not valid.
    :raises InvalidEventName: when ``name`` is not valid.
    """
    prefix, trailing = _split_pattern(validate_pattern(pattern))
    segments = validate_event_name(name).split(".")
    if trailing:
        if len(segments) <= len(prefix):
            return False
    elif len(segments) != len(prefix):
        return False
    return all(
        wanted in (WILDCARD, actual) for wanted, actual in zip(prefix, segments, strict=False)
    )


# What a bucket holds for a key: its insertion sequence number and its value.
_Slot = tuple[int, T]
_by_sequence = itemgetter(0)


class _Node(Generic[T]):
    """
    One trie node: the patterns whose path (all segments but a trailing ``*``) leads here.
    """

    __slots__ = ("children", "star", "tail", "terminal")

    def __init__(self) -> None:
        #: Child per exact segment.
        self.children: dict[str, _Node[T]] = {}
        #: Child for a one-segment ``*``.
        self.star: _Node[T] | None = None
        #: Patterns that end here: they match names with no segments left.
        self.terminal: dict[Hashable, _Slot[T]] = {}
        #: Patterns with a trailing ``*`` here: they match names with 1+ segments left.
        self.tail: dict[Hashable, _Slot[T]] = {}

    def is_empty(self) -> bool:
        return not (self.children or self.star or self.terminal or self.tail)


class _Registration(Generic[T]):
    __slots__ = ("path", "pattern", "sequence", "trailing", "value")

    def __init__(
        self, sequence: int, pattern: str, path: tuple[str, ...], trailing: bool, value: T
    ) -> None:
        self.sequence = sequence
        self.pattern = pattern
        self.path = path
        self.trailing = trailing
        self.value = value


class PatternIndex(Generic[T]):
    """
    A mapping from keys to ``(pattern, value)`` that finds, for an event name, the values
    of every key whose pattern matches it.

    Keys are any hashable (a subscriber id, say). Like a ``dict``, the index remembers the
    order keys were first added in, and adding a key again replaces its pattern and value
    without moving it. :meth:`match` answers in that order.

    Matching walks a trie over segments (see the module documentation), so its cost does
    not grow with the number of registered patterns that do not match. Removing keys prunes
    the nodes they no longer need, so memory follows the live patterns, not the churn.
    """

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._registrations: dict[Hashable, _Registration[T]] = {}
        self._next_sequence = 0
        # How many trie nodes the last match() visited; tests use it to check indexing.
        self._last_visits = 0

    def __len__(self) -> int:
        """
        :return: the number of keys registered.
        """
        return len(self._registrations)

    def __contains__(self, key: object) -> bool:
        """
        :return: ``True`` when ``key`` is registered.
        """
        return key in self._registrations

    def __iter__(self) -> Iterator[Hashable]:
        """
        :return: an iterator over the registered keys, in the order they were first added.
        """
        return iter(self._registrations)

    def items(self) -> Iterator[tuple[Hashable, str, T]]:
        """
        :return: an iterator of ``(key, pattern, value)`` for each registered key, in the
            order the keys were first added.
        """
        for key, registration in self._registrations.items():
            yield key, registration.pattern, registration.value

    def add(self, pattern: str, key: Hashable, value: T) -> None:
        """
        Register ``value`` under ``key`` for the events ``pattern`` matches.

        If ``key`` is already registered, its pattern and value are replaced and it keeps
        its place in the order :meth:`match` answers in.

        :param pattern: a valid event pattern.
        :param key: identifies this registration, for :meth:`remove` and replacement.
        :param value: what :meth:`match` returns for this registration.

        :raises InvalidPattern: when ``pattern`` is not valid; the index is unchanged.
        """
        path, trailing = _split_pattern(validate_pattern(pattern))
        previous = self._registrations.get(key)
        if previous is None:
            sequence = self._next_sequence
            self._next_sequence += 1
        else:
            sequence = previous.sequence
            if previous.path != path or previous.trailing != trailing:
                self._unlink(key, previous)
        node = self._root
        for segment in path:
            if segment == WILDCARD:
                if node.star is None:
                    node.star = _Node()
                node = node.star
            else:
                child = node.children.get(segment)
                if child is None:
                    child = node.children[segment] = _Node()
                node = child
        bucket = node.tail if trailing else node.terminal
        bucket[key] = (sequence, value)
        self._registrations[key] = _Registration(sequence, pattern, path, trailing, value)

    def remove(self, key: Hashable) -> bool:
        """
        Forget the registration under ``key``.

        :param key: a key given to :meth:`add`.

        :return: ``True`` if ``key`` was registered, ``False`` if there was nothing to
            remove.
        """
        registration = self._registrations.pop(key, None)
        if registration is None:
            return False
        self._unlink(key, registration)
        return True

    def _unlink(self, key: Hashable, registration: _Registration[T]) -> None:
        """
        Take ``key`` out of the trie and prune the nodes left empty.
        """
        node = self._root
        trail: list[tuple[_Node[T], str]] = []
        for segment in registration.path:
            trail.append((node, segment))
            child = node.star if segment == WILDCARD else node.children.get(segment)
            assert child is not None, "registered path missing from the trie"
            node = child
        bucket = node.tail if registration.trailing else node.terminal
        del bucket[key]
        for parent, segment in reversed(trail):
            if not node.is_empty():
                break
            if segment == WILDCARD:
                parent.star = None
            else:
                del parent.children[segment]
            node = parent

    def match(self, name: str) -> list[T]:
        """
        Find the values whose patterns match the event ``name``.

        :param name: a valid event name.

        :return: the value of every key whose pattern matches ``name``, each key once, in
            the order the keys were first added. Values are not compared: two keys with
            equal values both appear.

        :raises InvalidEventName: when ``name`` is not valid.
        """
        segments = validate_event_name(name).split(".")
        remaining = len(segments)
        found: list[_Slot[T]] = []
        pending: list[tuple[_Node[T], int]] = [(self._root, 0)]
        visits = 0
        while pending:
            node, depth = pending.pop()
            visits += 1
            if depth == remaining:
                found.extend(node.terminal.values())
                continue
            if node.tail:
                found.extend(node.tail.values())
            child = node.children.get(segments[depth])
            if child is not None:
                pending.append((child, depth + 1))
            if node.star is not None:
                pending.append((node.star, depth + 1))
        self._last_visits = visits
        # Each bucket is (nearly always) already in sequence order, so this sort merges
        # a few sorted runs rather than sorting from scratch.
        found.sort(key=_by_sequence)
        return [value for _, value in found]

    def _node_count(self) -> int:
        """
        Count the trie nodes below the root, for tests of pruning.
        """
        count = 0
        pending = [self._root]
        while pending:
            node = pending.pop()
            children = list(node.children.values())
            if node.star is not None:
                children.append(node.star)
            count += len(children)
            pending.extend(children)
        return count
