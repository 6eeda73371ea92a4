"""
Numbers written as text, read in ASCII digits only.

:func:`int` and :func:`float` also read the digits of other scripts (Arabic-Indic ``٣``,
full-width digits), underscores (``1_000``), surrounding white space, ``inf`` and ``nan``;
``str.isdigit`` accepts superscripts (``²``) that :func:`int` then refuses. Every number a
user writes (query parameters, headers, configuration values, command-line options) is read
here instead, so that all of them follow one rule: ``[0-9]`` digits, an optional fraction
and exponent for decimals, nothing else.
"""

from __future__ import annotations

import argparse
import math
import re

__all__ = ["DECIMAL", "WHOLE", "argument_decimal", "argument_whole", "decimal", "whole"]

#: A whole number: one to eighteen ASCII digits (it fits in a signed 64-bit integer).
WHOLE = re.compile(r"[0-9]{1,18}")
#: A decimal number without a sign: ASCII digits, an optional fraction and exponent.
DECIMAL = re.compile(r"([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def whole(text: str) -> int | None:
    """The whole number ``text`` writes in ASCII digits, or None if it writes none."""
    return int(text) if WHOLE.fullmatch(text) else None


def decimal(text: str, *, signed: bool = False) -> float | None:
    """The finite number ``text`` writes in ASCII digits (with a leading ``-`` when
    ``signed``), or None if it writes none or one too large for a float."""
    digits = text[1:] if signed and text.startswith("-") else text
    if not DECIMAL.fullmatch(digits):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def argument_whole(text: str) -> int:
    """An :mod:`argparse` ``type=`` for whole numbers in ASCII digits."""
    number = whole(text)
    if number is None:
        raise argparse.ArgumentTypeError(f"expected a whole number in digits 0-9, not {text!r}")
    return number


def argument_decimal(text: str) -> float:
    """An :mod:`argparse` ``type=`` for numbers (``2``, ``0.5``, ``1e3``) in ASCII digits."""
    number = decimal(text)
    if number is None:
        raise argparse.ArgumentTypeError(f"expected a number in digits 0-9, not {text!r}")
    return number
