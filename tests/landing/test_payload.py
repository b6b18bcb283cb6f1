"""How arrived bytes are split over the raw columns, and how producer lines are parsed."""

from __future__ import annotations

import pytest

from extract.landing.payload import HeaderKeyBytes, could_be_json, headers_json, split_payload
from extract.landing.producer import parse_line


@pytest.mark.parametrize(
    ("data", "text", "raw", "json_candidate"),
    [
        (b'{"a": 1}', '{"a": 1}', None, True),
        (b"[1, 2]", "[1, 2]", None, True),
        (b"42", "42", None, True),
        (b" \r\n\ttrue\n", " \r\n\ttrue\n", None, True),
        (b"not json", "not json", None, False),
        (b'{"a": 1', '{"a": 1', None, True),  # Postgres says no; the raw sink tests show it
        (b'{"a": ', '{"a": ', None, False),
        (b'{"a": NaN}', '{"a": NaN}', None, True),
        (b'{"a": "\\u0000"}', '{"a": "\\u0000"}', None, True),
        (b'{"a": "\\ud800"}', '{"a": "\\ud800"}', None, True),
        (b'{"a": "\\ud83d\\ude00"}', '{"a": "\\ud83d\\ude00"}', None, True),
        (b"\xff\xfe{}", None, b"\xff\xfe{}", False),
        (b'{"a": "x\x00y"}', None, b'{"a": "x\x00y"}', False),
        (b"", "", None, False),
    ],
)
def test_split_payload(data: bytes, text: str | None, raw: bytes | None, json_candidate: bool) -> None:
    payload = split_payload(data)
    assert (payload.text, payload.raw_bytes, payload.json_candidate) == (text, raw, json_candidate)
    assert payload.python_parses <= payload.json_candidate


def test_tombstone_is_all_null() -> None:
    assert split_payload(None) == (None, None, False, False)


def test_what_could_be_json_is_left_to_the_database() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert could_be_json(deep)
    assert could_be_json("1" * 5000)
    assert split_payload(deep.encode())[:3] == (deep, None, True)
    # the extractor's parser gives up on it; the raw sink then asks Postgres (test_real_producers.py)
    assert not split_payload(deep.encode()).python_parses
    assert split_payload(b"1" * 5000).python_parses  # as jsonb does; json.loads stops at 4,300 digits


def test_headers_keep_undecodable_values_as_hex() -> None:
    assert headers_json([("trace", b"abc"), ("bin", b"\xff")]) == (
        '[{"key": "trace", "value": "abc"}, {"key": "bin", "value_hex": "ff"}]'
    )
    assert headers_json([]) is None


def test_headers_keep_undecodable_keys_as_hex() -> None:
    assert headers_json([(HeaderKeyBytes(b"k\xff"), b"v")]) == (
        '[{"key": "k\\ufffd", "key_hex": "6bff", "value": "v"}]'
    )


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


@pytest.mark.parametrize(
    ("data", "parses"),
    [
        (b'{"a": [1, 2.5e3, "x", null, true]}', True),
        (b'{"a": "\\ud83d\\ude00"}', True),
        (b'{"a": NaN}', False),  # json.loads takes NaN and Infinity; jsonb does not
        (b'{"a": "\\ud800"}', False),  # a lone surrogate: json.loads takes it; jsonb does not
        (b'{"a": 1', False),
        (b'{"a": 1} {"b": 2}', False),
    ],
)
def test_the_extractors_json_check_agrees_with_jsonb_where_json_loads_does_not(data: bytes, parses: bool) -> None:
    assert split_payload(data).python_parses is parses
