"""What independent producers send, through the real extractor: every compression codec, header keys that
are not UTF-8, and values only Postgres can judge as JSON. Each lands at its exact (partition, offset)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
from aiokafka import AIOKafkaProducer
from kafka import KafkaProducer

from extract.core.settings import Settings
from extract.landing.file_loader import load_file
from extract.landing.kafka_extractor import KafkaExtractor
from extract.landing.producer import ensure_topic

CODECS = (None, "gzip", "snappy", "lz4", "zstd")


def positions(pg: psycopg.Connection, topic: str) -> set[tuple[int, int]]:
    rows = pg.execute("select kafka_partition, kafka_offset from raw.jobs where kafka_topic = %s", (topic,))
    return set(rows.fetchall())


def test_every_compression_codec_lands(settings: Settings, pg: psycopg.Connection) -> None:
    ensure_topic(settings)

    async def send_all() -> dict[tuple[int, int], bytes]:
        sent: dict[tuple[int, int], bytes] = {}
        for codec in CODECS:
            producer = AIOKafkaProducer(
                bootstrap_servers=settings.kafka_bootstrap_servers, compression_type=codec, linger_ms=50
            )
            await producer.start()
            try:
                futures = []
                for i in range(40):
                    value = f'{{"JOBIDENTIFIER": "{codec}-{i}", "pad": "{"x" * 200}"}}'.encode()
                    futures.append((value, await producer.send(settings.kafka_topic, value, key=str(i).encode())))
                for value, future in futures:
                    metadata = await future
                    sent[(metadata.partition, metadata.offset)] = value
            finally:
                await producer.stop()
        return sent

    sent = asyncio.run(send_all())
    assert len(sent) == 40 * len(CODECS)
    stats = KafkaExtractor(settings).run(until_end=True)
    assert stats.inserted == len(sent)
    rows = pg.execute(
        "select kafka_partition, kafka_offset, convert_to(message_value, 'UTF8') from raw.jobs"
        " where message_value_json is not null"
    ).fetchall()
    assert {(p, o): bytes(v) for p, o, v in rows} == sent


class RawHeaderKey(str):
    """A header key whose wire bytes are not UTF-8: kafka-python's record builder writes what encode() gives."""

    def __new__(cls, raw: bytes) -> RawHeaderKey:
        key = super().__new__(cls, raw.decode("latin-1"))
        key.raw = raw
        return key

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


def test_a_header_key_that_is_not_utf8_does_not_block_its_partition(settings: Settings, pg: psycopg.Connection) -> None:
    ensure_topic(settings, partitions=1)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    metadata = [
        producer.send(settings.kafka_topic, key=b"1", value=b'{"n": 1}', headers=[("ok", b"v")]),
        producer.send(settings.kafka_topic, key=b"2", value=b'{"n": 2}', headers=[(RawHeaderKey(b"\xff\xfek"), b"v")]),
        producer.send(settings.kafka_topic, key=b"3", value=b'{"n": 3}', headers=[(RawHeaderKey(b"\xc3"), b"")]),
        producer.send(settings.kafka_topic, key=b"4", value=b'{"n": 4}'),
    ]
    producer.flush()
    offsets = [future.get(10).offset for future in metadata]
    producer.close()

    KafkaExtractor(settings).run(until_end=True)
    rows = dict(
        pg.execute(
            "select kafka_offset, message_headers::text from raw.jobs where kafka_topic = %s", (settings.kafka_topic,)
        ).fetchall()
    )
    assert rows == {
        offsets[0]: '[{"key": "ok", "value": "v"}]',
        offsets[1]: '[{"key": "\ufffd\ufffdk", "value": "v", "key_hex": "fffe6b"}]',
        offsets[2]: '[{"key": "\ufffd", "value": "", "key_hex": "c3"}]',
        offsets[3]: None,
    }


# Each is valid or not to Postgres for its own reasons; Python's json module disagrees on several.
JSON_CASES: list[bytes] = [
    b'{"n": ' + b"7" * 5000 + b"}",  # beyond Python's 4300-digit int limit; numeric takes it
    b"-" + b"9" * 4400,
    b'{"n": 1e999999}',  # beyond numeric's range
    b"[" * 5000 + b"]" * 5000,
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a": "\\ud800"}',  # a lone surrogate escape
    b'{"a": "\\udc00 x"}',
    b'{"a": "\\ud83d\\ude00"}',  # a proper pair
    b'{"a": "\\u0000"}',
    b'{"a": NaN}',
    b'{"a": 1,}',
    b"{'a': 1}",
    b" \n[1, 2]\t",
    b"",
    b"plain text",
]


def jsonb_of(pg: psycopg.Connection, value: bytes) -> str | None:
    """What Postgres itself makes of the text: its jsonb, or None when it refuses it."""
    try:
        with pg.transaction():
            return pg.execute("select %s::text::jsonb::text", (value.decode(),)).fetchone()[0]
    except (psycopg.DataError, psycopg.errors.StatementTooComplex, psycopg.errors.ProgramLimitExceeded):
        return None


def test_postgres_alone_decides_what_is_json(settings: Settings, pg: psycopg.Connection) -> None:
    ensure_topic(settings, partitions=1)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, max_request_size=4 * 1024 * 1024)
    futures = [producer.send(settings.kafka_topic, key=b"k", value=value) for value in JSON_CASES]
    producer.flush()
    by_offset = {future.get(10).offset: value for future, value in zip(futures, JSON_CASES, strict=True)}
    producer.close()

    KafkaExtractor(settings).run(until_end=True)
    landed = dict(pg.execute("select kafka_offset, message_value_json::text from raw.jobs").fetchall())
    assert set(landed) == set(by_offset)
    expected = {offset: jsonb_of(pg, value) for offset, value in by_offset.items()}
    assert landed == expected
    # The cases are there to disagree with Python: some must land as JSON, some must not.
    assert expected[0] is not None
    assert expected[2] is None


def test_postgres_alone_decides_what_is_json_in_a_users_file(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path
) -> None:
    lines = [case for case in JSON_CASES if b"\n" not in case]
    path = tmp_path / "users.ndjson"
    path.write_bytes(b"\n".join(lines))
    load_file(settings, settings.sources().get("users"), path)
    landed = dict(pg.execute("select line_number, line_json::text from raw.users").fetchall())
    assert landed == {number: jsonb_of(pg, line) for number, line in enumerate(lines, start=1)}
    assert landed[1] is not None
