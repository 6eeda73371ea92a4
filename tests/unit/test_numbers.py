"""
Numbers written as text are read in ASCII digits only, everywhere a user writes one.
"""

from __future__ import annotations

import argparse

from twisted.trial.unittest import SynchronousTestCase

from twisted_hooks._numbers import argument_decimal, argument_whole, decimal, whole

#: Text that int() or float() reads (or str.isdigit() accepts) but that is not ASCII digits.
NOT_ASCII = ("\u0663", "\uff15", "\u00b2", "1_000", " 5", "5 ", "+5", "inf", "nan", "", "1e")


class WholeTests(SynchronousTestCase):
    def test_ascii_digits(self) -> None:
        """Whole numbers in ASCII digits are read, leading zeros included."""
        self.assertEqual(whole("0"), 0)
        self.assertEqual(whole("0042"), 42)
        self.assertEqual(whole("9" * 18), int("9" * 18))

    def test_anything_else_is_none(self) -> None:
        """Other scripts' digits, superscripts, underscores, signs, spaces, fractions and
        numbers too long for 64 bits are not whole numbers."""
        for text in (*NOT_ASCII, "-1", "1.5", "9" * 19):
            with self.subTest(text=text):
                self.assertIsNone(whole(text))

    def test_argument_type(self) -> None:
        """As an argparse type, a refusal names the text and the rule."""
        self.assertEqual(argument_whole("12"), 12)
        with self.assertRaises(argparse.ArgumentTypeError) as raised:
            argument_whole("\u0663")
        self.assertIn("digits 0-9", str(raised.exception))
        self.assertIn("'\u0663'", str(raised.exception))


class DecimalTests(SynchronousTestCase):
    def test_ascii_decimals(self) -> None:
        """Decimals with fractions and exponents are read; a sign only when allowed."""
        self.assertEqual(decimal("2"), 2.0)
        self.assertEqual(decimal("0.5"), 0.5)
        self.assertEqual(decimal(".5"), 0.5)
        self.assertEqual(decimal("1e3"), 1000.0)
        self.assertIsNone(decimal("-1.5"))
        self.assertEqual(decimal("-1.5", signed=True), -1.5)

    def test_anything_else_is_none(self) -> None:
        """Non-ASCII digits, inf, nan and numbers too large for a float are refused."""
        for text in (*NOT_ASCII, "1e400", "--1"):
            with self.subTest(text=text):
                self.assertIsNone(decimal(text, signed=True))

    def test_argument_type(self) -> None:
        """As an argparse type, a refusal names the text and the rule."""
        self.assertEqual(argument_decimal("0.25"), 0.25)
        with self.assertRaises(argparse.ArgumentTypeError):
            argument_decimal("\uff15")
