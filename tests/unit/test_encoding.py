"""
Tests for :mod:`twisted_hooks.webhooks.encoding`: JSON bodies with Thorn's encoder rules,
form-encoded bodies, and the errors for data neither can carry.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qs

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_hooks.webhooks.encoding import (
    CONTENT_TYPES,
    FORM,
    JSON,
    EncodingError,
    encode_body,
    encode_form,
    encode_json,
)

UTC = datetime.timezone.utc
PLUS_2 = datetime.timezone(datetime.timedelta(hours=2))
ORDER_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


class JSONTests(SynchronousTestCase):
    def test_compact(self) -> None:
        """The JSON is compact: no space after separators, keys in the data's order."""
        self.assertEqual(
            encode_json({"b": 1, "a": [1, 2, {"c": None}], "t": True}),
            b'{"b":1,"a":[1,2,{"c":null}],"t":true}',
        )

    def test_utf8(self) -> None:
        """Non-ASCII text is kept as UTF-8, not escaped."""
        body = encode_json({"name": "Zoë ✓ 東京"})
        self.assertEqual(body, '{"name":"Zoë ✓ 東京"}'.encode())
        self.assertNotIn(b"\\u", body)

    def test_aware_utc_datetime(self) -> None:
        """An aware UTC datetime ends in Z and keeps its microseconds."""
        moment = datetime.datetime(2024, 5, 17, 13, 4, 5, 123456, tzinfo=UTC)
        self.assertEqual(encode_json(moment), b'"2024-05-17T13:04:05.123456Z"')
        whole = datetime.datetime(2024, 5, 17, 13, 4, 5, tzinfo=UTC)
        self.assertEqual(encode_json(whole), b'"2024-05-17T13:04:05Z"')

    def test_zero_offset_is_utc(self) -> None:
        """Any zero offset (not only datetime.timezone.utc) is written Z."""
        gmt = datetime.timezone(datetime.timedelta(0), "GMT")
        moment = datetime.datetime(2024, 1, 1, tzinfo=gmt)
        self.assertEqual(encode_json(moment), b'"2024-01-01T00:00:00Z"')

    def test_naive_datetime(self) -> None:
        """A naive datetime is its isoformat, microseconds kept, no zone added."""
        moment = datetime.datetime(2024, 5, 17, 13, 4, 5, 7)
        self.assertEqual(encode_json(moment), b'"2024-05-17T13:04:05.000007"')

    def test_other_offset(self) -> None:
        """An aware datetime in another zone keeps its offset."""
        moment = datetime.datetime(2024, 5, 17, 13, 4, 5, tzinfo=PLUS_2)
        self.assertEqual(encode_json(moment), b'"2024-05-17T13:04:05+02:00"')

    def test_date_and_time(self) -> None:
        """Dates and times are ISO 8601 (a date stays a date; Thorn wrote midnight)."""
        self.assertEqual(encode_json(datetime.date(2024, 2, 29)), b'"2024-02-29"')
        self.assertEqual(encode_json(datetime.time(8, 30, 0, 250)), b'"08:30:00.000250"')
        self.assertEqual(
            encode_json(datetime.time(8, 30, tzinfo=UTC)),
            b'"08:30:00+00:00"',
        )

    def test_decimal_exact(self) -> None:
        """A Decimal is its exact string, never rounded through a float."""
        self.assertEqual(encode_json(decimal.Decimal("0.1")), b'"0.1"')
        big = decimal.Decimal("12345678901234567890.123456789012345678901234567890")
        self.assertEqual(encode_json(big), b'"' + str(big).encode() + b'"')
        self.assertEqual(encode_json(decimal.Decimal("1.10")), b'"1.10"')
        self.assertEqual(encode_json(decimal.Decimal("-0")), b'"-0"')

    def test_uuid(self) -> None:
        """A UUID is its canonical string."""
        self.assertEqual(encode_json(ORDER_ID), b'"12345678-1234-5678-1234-567812345678"')

    def test_sets(self) -> None:
        """Sets and frozensets become lists, in a stable order."""
        self.assertEqual(encode_json({"tags": {"b", "a", "c"}}), b'{"tags":["a","b","c"]}')
        self.assertEqual(encode_json(frozenset({3, 1, 2})), b"[1,2,3]")
        self.assertEqual(encode_json(set()), b"[]")

    def test_nested(self) -> None:
        """The rules apply at any depth, and the result parses back."""
        data = {
            "event": "order.paid",
            "data": {
                "id": ORDER_ID,
                "total": decimal.Decimal("19.99"),
                "paid_at": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
                "lines": [{"sku": "A1", "qty": 2}],
            },
        }
        self.assertEqual(
            json.loads(encode_json(data)),
            {
                "event": "order.paid",
                "data": {
                    "id": str(ORDER_ID),
                    "total": "19.99",
                    "paid_at": "2024-01-02T03:04:05Z",
                    "lines": [{"sku": "A1", "qty": 2}],
                },
            },
        )

    def test_unencodable(self) -> None:
        """An object JSON cannot hold raises EncodingError naming its type and what to
        use instead."""
        for value, name in ((object(), "object"), (b"raw", "bytes"), ({"x": 1j}, "complex")):
            with self.assertRaises(EncodingError) as raised:
                encode_json(value)
            message = str(raised.exception)
            self.assertIn(f"not JSON serializable: {name}", message)
            self.assertIn("Decimal or UUID", message)

    def test_encoding_error_is_a_type_error(self) -> None:
        """EncodingError is a TypeError, as json's own errors are."""
        self.assertTrue(issubclass(EncodingError, TypeError))

    def test_circular(self) -> None:
        """A circular structure raises EncodingError, not ValueError."""
        data: dict[str, Any] = {}
        data["self"] = data
        with self.assertRaises(EncodingError) as raised:
            encode_json(data)
        self.assertIn("cannot be encoded as JSON", str(raised.exception))

    def test_nan_and_infinity_refused(self) -> None:
        """NaN and ±Infinity are refused with EncodingError: JSON has no such tokens
        (Python would write NaN, which strict parsers reject)."""
        for value in (float("nan"), float("inf"), float("-inf")):
            with self.assertRaises(EncodingError) as raised:
                encode_json({"reading": [1.0, value]})
            self.assertIn("NaN", str(raised.exception))

    def test_bad_keys(self) -> None:
        """A key JSON cannot hold raises EncodingError (not a bare TypeError)."""
        for data in ({(1, 2): "tuple"}, {ORDER_ID: "uuid"}, {b"k": "bytes"}):
            with self.assertRaises(EncodingError) as raised:
                encode_json(data)
            self.assertIn("keys", str(raised.exception))

    def test_scalar_keys(self) -> None:
        """int, float, bool and None keys are written as JSON strings, as json does."""
        self.assertEqual(encode_json({1: "a", None: "b"}), b'{"1":"a","null":"b"}')

    @given(
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(),
            lambda children: st.lists(children) | st.dictionaries(st.text(), children),
            max_leaves=20,
        )
    )
    def test_plain_json_round_trip(self, data: object) -> None:
        """Plain JSON data parses back to itself, and the body is valid UTF-8."""
        body = encode_json(data)
        self.assertEqual(json.loads(body.decode("utf-8")), data)


class FormTests(SynchronousTestCase):
    def test_flat(self) -> None:
        """A flat mapping becomes key=value pairs in order."""
        self.assertEqual(encode_form({"a": "1", "b": "x y&z"}), b"a=1&b=x+y%26z")

    def test_lists_repeat_the_key(self) -> None:
        """A list or tuple gives the key once per item."""
        self.assertEqual(encode_form({"tag": ["a", "b"], "n": (1, 2)}), b"tag=a&tag=b&n=1&n=2")
        self.assertEqual(encode_form({"tag": []}), b"")

    def test_nested_mapping_as_json(self) -> None:
        """A nested mapping is its JSON text, with the JSON rules."""
        body = encode_form({"order": {"id": ORDER_ID, "total": decimal.Decimal("1.5")}})
        self.assertEqual(
            parse_qs(body.decode()),
            {"order": ['{"id":"12345678-1234-5678-1234-567812345678","total":"1.5"}']},
        )

    def test_nested_list_as_json(self) -> None:
        """A list inside a list item (or a list of mappings) is each item's JSON text."""
        body = encode_form({"matrix": [[1, 2], [3]], "lines": [{"sku": "A"}]})
        self.assertEqual(
            parse_qs(body.decode()),
            {"matrix": ["[1,2]", "[3]"], "lines": ['{"sku":"A"}']},
        )

    def test_scalars(self) -> None:
        """None is empty, booleans are true/false, numbers as JSON writes them."""
        body = encode_form({"none": None, "yes": True, "no": False, "i": 42, "f": 2.5})
        self.assertEqual(body, b"none=&yes=true&no=false&i=42&f=2.5")

    def test_json_rule_values(self) -> None:
        """Datetimes, dates, Decimals and UUIDs follow the JSON rules, unquoted."""
        body = encode_form(
            {
                "at": datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
                "day": datetime.date(2024, 1, 2),
                "amount": decimal.Decimal("0.10"),
                "id": ORDER_ID,
            }
        )
        self.assertEqual(
            parse_qs(body.decode()),
            {
                "at": ["2024-01-02T03:04:05.000006Z"],
                "day": ["2024-01-02"],
                "amount": ["0.10"],
                "id": [str(ORDER_ID)],
            },
        )

    def test_utf8(self) -> None:
        """Non-ASCII text is percent-encoded UTF-8 and the body is ASCII."""
        body = encode_form({"name": "Zoë"})
        self.assertEqual(body, b"name=Zo%C3%AB")
        self.assertEqual(parse_qs(body.decode("ascii")), {"name": ["Zoë"]})

    def test_round_trip(self) -> None:
        """parse_qs reads back every field, lists as repeated values, empty values kept."""
        data = OrderedDict(
            [("a", "1"), ("list", ["x", "y"]), ("empty", None), ("flag", True), ("n", 3)]
        )
        parsed = parse_qs(encode_form(data).decode(), keep_blank_values=True)
        self.assertEqual(
            parsed,
            {"a": ["1"], "list": ["x", "y"], "empty": [""], "flag": ["true"], "n": ["3"]},
        )

    @given(st.dictionaries(st.text(min_size=1), st.lists(st.text(min_size=1), min_size=1)))
    def test_round_trip_text(self, data: dict[str, list[str]]) -> None:
        """Any text keys and values survive the round trip through parse_qs."""
        parsed = parse_qs(encode_form(data).decode("ascii"), keep_blank_values=True)
        self.assertEqual(parsed, data)

    def test_not_a_mapping(self) -> None:
        """Only a mapping can be form-encoded; the error says to use JSON instead."""
        for data in (["a", "b"], "a=b", 3, None):
            with self.assertRaises(EncodingError) as raised:
                encode_form(data)
            message = str(raised.exception)
            self.assertIn("only a mapping can be form-encoded", message)
            self.assertIn(JSON, message)

    def test_non_str_key(self) -> None:
        """A key that is not a string raises EncodingError naming it."""
        with self.assertRaises(EncodingError) as raised:
            encode_form({1: "a"})
        self.assertIn("form field names must be strings, got 1", str(raised.exception))

    def test_unencodable_value(self) -> None:
        """A value the rules cannot encode raises EncodingError naming its type."""
        with self.assertRaises(EncodingError) as raised:
            encode_form({"raw": b"bytes"})
        self.assertIn("bytes", str(raised.exception))
        with self.assertRaises(EncodingError):
            encode_form({"deep": {"x": object()}})


class FormNumberTests(SynchronousTestCase):
    """Numbers in form bodies follow the JSON rules."""

    def test_nan_and_infinity_are_refused(self) -> None:
        """A NaN or infinite float cannot be form-encoded, as it cannot be JSON-encoded."""
        for value in (float("nan"), float("inf"), -float("inf")):
            with self.assertRaises(EncodingError):
                encode_form({"x": value})

    def test_numbers(self) -> None:
        """Integers and finite floats are written as JSON writes them."""
        self.assertEqual(encode_form({"i": 3, "f": 0.5}), b"i=3&f=0.5")


class EncodeBodyTests(SynchronousTestCase):
    def test_content_types(self) -> None:
        """The two content types are JSON and form."""
        self.assertEqual(CONTENT_TYPES, {JSON, FORM})
        self.assertEqual(JSON, "application/json")
        self.assertEqual(FORM, "application/x-www-form-urlencoded")

    def test_dispatch(self) -> None:
        """encode_body encodes with the content type's encoder."""
        data = {"a": [1, 2]}
        self.assertEqual(encode_body(data, JSON), encode_json(data))
        self.assertEqual(encode_body(data, FORM), encode_form(data))

    def test_unknown_content_type(self) -> None:
        """An unknown content type is a ValueError listing the known ones."""
        for content_type in ("text/plain", "application/JSON", ""):
            with self.assertRaises(ValueError) as raised:
                encode_body({}, content_type)
            self.assertNotIsInstance(raised.exception, EncodingError)
            self.assertIn("unknown content type", str(raised.exception))
            self.assertIn(FORM, str(raised.exception))

    def test_errors_pass_through(self) -> None:
        """encode_body raises the encoder's EncodingError."""
        self.assertRaises(EncodingError, encode_body, ["a"], FORM)
        self.assertRaises(EncodingError, encode_body, object(), JSON)
