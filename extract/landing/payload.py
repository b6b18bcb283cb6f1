"""How one arrived payload is split over the raw columns: text when Postgres text can hold it, bytes
otherwise, and a jsonb copy when Postgres jsonb accepts it (the database decides; see could_be_json)."""

from __future__ import annotations

import json
from typing import NamedTuple

import msgspec


class HeaderKeyBytes(str):
    """A record header key that is not UTF-8: its text (U+FFFD for what does not decode) and its bytes."""

    raw: bytes

    def __new__(cls, raw: bytes) -> HeaderKeyBytes:
        key = super().__new__(cls, raw.decode("utf-8", "replace"))
        key.raw = raw
        return key


class Payload(NamedTuple):
    text: str | None
    raw_bytes: bytes | None
    # Text offered to the jsonb column; the database has the only say on whether it is JSON.
    json_candidate: bool
    # Whether Python's parser takes it too: a hint for the order of work, never the verdict. The raw sink
    # casts these in its COPY (Postgres refusing one sends the batch to the staged path) and asks the
    # server about the other candidates on the side (mostly broken JSON, sometimes JSON beyond Python).
    python_parses: bool


# JSON's whitespace (RFC 8259, and Postgres' JSON lexer), and how a JSON value can begin and end, as
# characters of a str and as bytes (ints) of a bytes.
_JSON_WHITESPACE = " \t\n\r"
_JSON_WHITESPACE_BYTES = _JSON_WHITESPACE.encode()
_JSON_FIRST = frozenset('{["-0123456789tfn') | frozenset(b'{["-0123456789tfn')
_JSON_LAST = frozenset('}]"0123456789el') | frozenset(b'}]"0123456789el')


def could_be_json(data: str | bytes) -> bool:
    """False only for text that no JSON parser accepts: empty, or not beginning and ending the way a JSON
    value does. Everything else goes to Postgres, whose jsonb cast alone decides what is JSON (a Python
    parser disagrees with it on huge integers, deep nesting, lone surrogates and \\u0000). Skipping the
    obvious non-JSON keeps batches of plain text on the fast direct COPY."""
    stripped = data.strip(_JSON_WHITESPACE_BYTES if isinstance(data, bytes) else _JSON_WHITESPACE)  # type: ignore[arg-type]
    return bool(stripped) and stripped[0] in _JSON_FIRST and stripped[-1] in _JSON_LAST


# Checks a whole JSON text in C without building its Python objects (decoding into Raw only validates):
# about a tenth of json.loads' cost, which was a tenth of the extractor's time. It is closer to jsonb than
# json.loads too: it refuses NaN and lone surrogates and takes integers of more than 4,300 digits.
_JSON_CHECK = msgspec.json.Decoder(msgspec.Raw)


def python_parses(text: str | bytes) -> bool:
    try:
        _JSON_CHECK.decode(text)
    except (msgspec.DecodeError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        return False
    return True


def split_payload(data: bytes | None, *, check_json: bool = True) -> Payload:
    if data is None:
        return Payload(None, None, False, False)
    if 0 in data:  # NUL, which text cannot hold (an int: a memchr, unlike the one-byte string b"\\x00")
        return Payload(None, data, False, False)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Payload(None, data, False, False)
    candidate = check_json and could_be_json(data)
    return Payload(text, None, candidate, candidate and python_parses(data))


def headers_json(headers: list[tuple[str, bytes | None]] | None) -> str | None:
    if not headers:
        return None
    rendered = []
    for key, value in headers:
        entry: dict[str, str | None] = {"key": str(key)}
        if isinstance(key, HeaderKeyBytes):
            entry["key_hex"] = key.raw.hex()
        payload = split_payload(value)
        if payload.raw_bytes is not None:
            entry["value_hex"] = payload.raw_bytes.hex()
        else:
            entry["value"] = payload.text
        rendered.append(entry)
    return json.dumps(rendered)


class UnreadableHeaders(list[tuple[str, bytes | None]]):
    """The (empty) headers of a placeholder for a record the Kafka client could not read, and why: the raw
    sink lands it as a row with a null key and value and the reason in kafka_read_error."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason
