"""Kafka messages as lines of PostgreSQL's COPY text format, in the raw tables' column order, built from
the message's bytes as they arrived.

psycopg's write_row turns each value back into bytes, escapes it and looks up a dumper per field: with the
value decoded to text first, that was a third of the extractor's own time per message. Here a line is a
join of byte strings: a payload that is UTF-8 without NUL goes into its text column as it arrived (escaped
only when it holds a backslash, tab, newline or carriage return), the same bytes again into the jsonb
column when it is a JSON candidate, and the timestamp is formatted once per second of the batch.

Columns: topic, partition, offset, timestamp, timestamp type, key (text), key (bytes), value (text), value
(bytes), value (jsonb), headers (jsonb), read error."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Protocol

from extract.landing.payload import UnreadableHeaders, could_be_json, headers_json, python_parses


class Message(Protocol):
    """The part of kafka-python's ConsumerRecord the sink reads (other clients can adapt to it)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


NULL = b"\\N"

# The last second PostgreSQL's timestamptz holds (294276-12-31 23:59:59 UTC); a Kafka timestamp is any
# int64 of milliseconds, and past that a message lands with a null timestamp rather than stop the batch.
_LAST_TIMESTAMP_S = 9_224_318_015_999


# Byte values, not one-byte strings: `92 in data` is a memchr, `b"\\" in data` a general search 15x slower.
_NUL, _TAB, _NEWLINE, _RETURN, _BACKSLASH = 0, 9, 10, 13, 92


def escape(data: bytes) -> bytes:
    """A value for COPY text: backslash, and the three characters that end a field or a line, escaped."""
    if _BACKSLASH in data:
        data = data.replace(b"\\", b"\\\\")
    if _TAB in data:
        data = data.replace(b"\t", b"\\t")
    if _NEWLINE in data:
        data = data.replace(b"\n", b"\\n")
    if _RETURN in data:
        data = data.replace(b"\r", b"\\r")
    return data


def escape_text(text: str | None) -> bytes:
    return NULL if text is None else escape(text.encode())


def bytea(data: bytes) -> bytes:
    # bytea's hex input form; its leading backslash is escaped like any other
    return b"\\\\x" + data.hex().encode()


def _is_text(data: bytes) -> bool:
    """Whether Postgres text can hold the bytes: UTF-8 without NUL (text cannot hold NUL at all)."""
    if _NUL in data:
        return False
    if data.isascii():  # most payloads: a scan, where decoding would build a str to throw away
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def copy_lines(messages: Iterable[Message], unsure: list[str] | None = None) -> Iterator[bytes]:  # noqa: PLR0912
    """One COPY text line per message. Given `unsure` (the direct COPY), a JSON candidate the extractor's
    parser refused goes in null instead and its text to `unsure` (Payload.python_parses); without it every
    candidate goes to the jsonb column. A placeholder for a record the client could not read
    (kafka_records) is a line of nulls and its reason.

    One loop with the per-message work inlined: this runs for every message on the writer thread, where
    each helper call cost about a tenth of a microsecond."""
    topics: dict[str, bytes] = {}
    # messages of a batch share few seconds: the timestamp's text is formatted once per second
    second, second_text = -1, b""
    for message in messages:
        topic = topics.get(message.topic)
        if topic is None:
            topic = topics[message.topic] = escape_text(message.topic)
        headers = message.headers
        if type(headers) is UnreadableHeaders:
            position = b"%s\t%d\t%d\t" % (topic, message.partition, message.offset)
            yield position + b"\\N\t" * 8 + escape_text(headers.reason) + b"\n"
            continue
        milliseconds = message.timestamp
        if milliseconds is None or milliseconds < 0 or (moment := milliseconds // 1000) > _LAST_TIMESTAMP_S:
            timestamp = NULL
        else:
            if moment != second:
                second = moment
                second_text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second)).encode()
            timestamp = b"%s.%03d+00" % (second_text, milliseconds % 1000)
        kind = message.timestamp_type
        key, value = message.key, message.value
        if key is None:
            key_columns = b"\\N\t\\N"
        elif _is_text(key):
            key_columns = escape(key) + b"\t\\N"
        else:
            key_columns = b"\\N\t" + bytea(key)
        if value is None:
            value_columns = b"\\N\t\\N\t\\N"
        elif not _is_text(value):
            value_columns = b"\\N\t" + bytea(value) + b"\t\\N"
        else:
            text = escape(value)
            if not could_be_json(value):
                json = NULL
            elif unsure is None or python_parses(value):
                json = text
            else:
                unsure.append(value.decode())
                json = NULL
            value_columns = b"%s\t\\N\t%s" % (text, json)
        yield b"%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\\N\n" % (
            topic,
            message.partition,
            message.offset,
            timestamp,
            NULL if kind is None else b"%d" % kind,
            key_columns,
            value_columns,
            escape_text(headers_json(headers)) if headers else NULL,
        )
