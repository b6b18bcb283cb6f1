"""The raw sink's own COPY text (copy_text.py) against real Postgres: every byte of a key or value comes back
exactly, whatever it holds, and every Kafka timestamp lands or is null, never stopping a batch."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import pytest

from extract.core import db
from extract.core.settings import Settings
from extract.landing.payload import HeaderKeyBytes, UnreadableHeaders
from extract.landing.raw_sink import write_batch

TOPIC = "copy_text"


@dataclass
class Record:
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = 1_700_000_000_123
    timestamp_type: int | None = 0
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    topic: str = TOPIC
    partition: int = 0


PAYLOADS: list[bytes | None] = [
    b'{"a": "plain"}',
    b'{"a": "back\\\\slash \\" quote \\n escaped newline"}',
    b'{\n\t"pretty": [1,\r\n 2]\n}',  # JSON whitespace: raw tab, newline, carriage return
    b"line one\nline two\twith tab\\ and backslash\r",
    b"\\.",  # COPY's old end-of-data marker, as a whole value
    b"\\N",  # COPY's null marker, as text
    "ünïcödé ✓ 😀".encode(),
    b'{"a": NaN}',
    b'{"a": "\\ud800"}',
    b'{"broken": ',
    b"\xff\xfe not utf-8",
    b"nul \x00 inside",
    b"",
    None,
]


@pytest.fixture
def raw(settings: Settings, pg: psycopg.Connection) -> psycopg.Connection:
    db.ensure_raw_schema(pg, settings.sources())
    return pg


def land(conn: psycopg.Connection, records: list[Record]) -> int:
    with psycopg.connect(conn.info.dsn, password=conn.info.password) as writer:
        return write_batch(writer, "g", records, {TOPIC: "raw.jobs"}, {}).inserted


def test_every_key_and_value_comes_back_byte_for_byte(raw: psycopg.Connection) -> None:
    records = [Record(offset, payload, payload) for offset, payload in enumerate(PAYLOADS)]
    assert land(raw, records) == len(records)
    rows = raw.execute(
        "select kafka_offset, message_key, message_key_bytes, message_value, message_value_bytes,"
        " message_value_json::text from raw.jobs order by kafka_offset"
    ).fetchall()
    for record, (offset, key, key_bytes, value, value_bytes, value_json) in zip(records, rows, strict=True):
        assert offset == record.offset
        for text, data, sent in ((key, key_bytes, record.key), (value, value_bytes, record.value)):
            landed = text.encode() if text is not None else data
            assert landed == sent, f"offset {offset}"
            assert text is None or data is None
        if value_json is not None:
            assert json.loads(value_json) == json.loads(record.value)  # type: ignore[arg-type]
    by_offset = {row[0]: row[5] for row in rows}
    assert by_offset[PAYLOADS.index(b'{"broken": ')] is None
    assert by_offset[PAYLOADS.index(b'{"a": "\\ud800"}')] is None  # jsonb refuses a lone surrogate
    assert by_offset[PAYLOADS.index(b'{\n\t"pretty": [1,\r\n 2]\n}')] == '{"pretty": [1, 2]}'


@pytest.mark.parametrize(
    ("timestamp", "landed"),
    [
        (1_700_000_000_123, datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (999, datetime(1970, 1, 1, 0, 0, 0, 999000, tzinfo=UTC)),
        (-1, None),  # Kafka's "no timestamp"
        (None, None),
        (253_402_300_800_000, "10000-01-01 00:00:00+00"),  # past Python's datetime, within Postgres'
        (9_224_318_015_999_999, "294276-12-31 23:59:59.999+00"),  # Postgres' last millisecond
        (9_224_318_016_000_000, None),  # past it
        (2**63 - 1, None),  # the largest timestamp Kafka can carry
    ],
)
def test_any_kafka_timestamp_lands_or_is_null(raw: psycopg.Connection, timestamp: int | None, landed: object) -> None:
    assert land(raw, [Record(0, b"k", b"{}", timestamp=timestamp)]) == 1
    column = "kafka_timestamp::text" if isinstance(landed, str) else "kafka_timestamp"
    raw.execute("set timezone = 'UTC'")
    assert raw.execute(f"select {column} from raw.jobs").fetchone() == (landed,)


def test_headers_types_and_unreadable_records_land(raw: psycopg.Connection) -> None:
    records = [
        Record(0, b"k", b"v", timestamp_type=1, headers=[("trace\tid", b"a\\b"), (HeaderKeyBytes(b"k\xff"), b"\xff")]),
        Record(1, None, None, timestamp=None, timestamp_type=None, headers=UnreadableHeaders("Bad\tcrc\\n")),
    ]
    assert land(raw, records) == 2
    rows = raw.execute(
        "select kafka_timestamp_type, message_headers, kafka_read_error, message_value"
        " from raw.jobs order by kafka_offset"
    ).fetchall()
    assert rows == [
        (
            1,
            [{"key": "trace\tid", "value": "a\\b"}, {"key": "k\ufffd", "key_hex": "6bff", "value_hex": "ff"}],
            None,
            "v",
        ),
        (None, None, "Bad\tcrc\\n", None),
    ]
