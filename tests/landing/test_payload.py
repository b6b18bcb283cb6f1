"""How arrived bytes are split over the raw columns, and how producer lines are parsed."""

from __future__ import annotations

import pytest

from extract.landing.payload import headers_json, jsonb_accepts, split_payload
from extract.landing.producer import parse_line


@pytest.mark.parametrize(
    ("data", "text", "raw", "is_json"),
    [
        (b'{"a": 1}', '{"a": 1}', None, True),
        (b"[1, 2]", "[1, 2]", None, True),
        (b"42", "42", None, True),
        (b"not json", "not json", None, False),
        (b'{"a": 1', '{"a": 1', None, False),
        (b'{"a": NaN}', '{"a": NaN}', None, False),
        (b'{"a": "\\u0000"}', '{"a": "\\u0000"}', None, False),
        (b'{"a": "\\ud800"}', '{"a": "\\ud800"}', None, False),
        (b'{"a": "\\ud83d\\ude00"}', '{"a": "\\ud83d\\ude00"}', None, True),
        (b"\xff\xfe{}", None, b"\xff\xfe{}", False),
        (b'{"a": "x\x00y"}', None, b'{"a": "x\x00y"}', False),
        (b"", "", None, False),
    ],
)
def test_split_payload(data: bytes, text: str | None, raw: bytes | None, is_json: bool) -> None:
    payload = split_payload(data)
    assert (payload.text, payload.raw_bytes, payload.is_json) == (text, raw, is_json)


def test_tombstone_is_all_null() -> None:
    assert split_payload(None) == (None, None, False)


def test_nesting_too_deep_for_python_is_left_to_the_database() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert jsonb_accepts(deep)
    assert split_payload(deep.encode()).text == deep


def test_headers_keep_undecodable_values_as_hex() -> None:
    assert headers_json([("trace", b"abc"), ("bin", b"\xff")]) == (
        '[{"key": "trace", "value": "abc"}, {"key": "bin", "value_hex": "ff"}]'
    )
    assert headers_json([]) is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'42|{"a": 1}\n', (b"42", b'{"a": 1}')),
        (b'42|{"a": "x|y"}\r\n', (b"42", b'{"a": "x|y"}')),
        (b"|value\n", (b"", b"value")),
        (b"novalue|", (b"novalue", b"")),
        (b'{"no": "key"}\n', (None, b'{"no": "key"}')),
        (b"\n", None),
        (b"   \r\n", None),
        (b"last-line-without-newline|v", (b"last-line-without-newline", b"v")),
    ],
)
def test_parse_line_matches_console_producer(line: bytes, expected: tuple[bytes | None, bytes] | None) -> None:
    assert parse_line(line) == expected
