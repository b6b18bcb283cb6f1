"""The Kafka extractor against a real broker and a real Postgres: every message lands once, byte-exact."""

from __future__ import annotations

import hashlib
import threading
import time

import psycopg
import pytest
from kafka import KafkaProducer

from extract.core.settings import Settings
from extract.landing.kafka_extractor import ExtractError, KafkaExtractor
from extract.landing.producer import ensure_topic

ODD_MESSAGES: list[tuple[bytes | None, bytes | None]] = [
    (b"1", b'{"JOBIDENTIFIER": "1"}'),
    (b"2", b"\xff\xfe not utf-8"),
    (b"3", b'{"a": "nul \x00 byte"}'),
    (b"4", b'{"a": "\\u0000 escape"}'),
    (b"5", None),
    (None, b'{"JOBIDENTIFIER": "6"}'),
    (b"", b"[1, 2, 3]"),
    (b"\xfe\xff", b"42"),
    (b"9", b"x" * (2 * 1024 * 1024)),
    (b"10", b'{"n": 1e999999}'),
]


def produce(settings: Settings, messages: list[tuple[bytes | None, bytes | None]], headers=None) -> None:
    ensure_topic(settings)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, max_request_size=8 * 1024 * 1024)
    for key, value in messages:
        producer.send(settings.kafka_topic, key=key, value=value, headers=headers or [])
    producer.flush()
    producer.close()


def landed(pg: psycopg.Connection, topic: str) -> dict[tuple[int, int], tuple[bytes | None, str | None]]:
    rows = pg.execute(
        "select kafka_partition, kafka_offset,"
        " coalesce(message_value_bytes, convert_to(message_value, 'UTF8')),"
        " coalesce(message_key_bytes, convert_to(message_key, 'UTF8')), message_value_json::text"
        " from raw.jobs where kafka_topic = %s",
        (topic,),
    ).fetchall()
    return {(p, o): (value, key, json) for p, o, value, key, json in rows}


def test_every_message_lands_once_and_byte_exact(settings: Settings, pg: psycopg.Connection) -> None:
    produce(settings, ODD_MESSAGES, headers=[("source", b"test"), ("bin", b"\x00\x01")])
    stats = KafkaExtractor(settings).run(until_end=True)
    assert stats.messages == stats.inserted == len(ODD_MESSAGES)

    rows = landed(pg, settings.kafka_topic)
    assert len(rows) == len(ODD_MESSAGES)
    by_value = {value: (key, json) for value, key, json in rows.values()}
    for key, value in ODD_MESSAGES:
        assert value in by_value, value[:40] if value else value
        assert by_value[value][0] == key
    assert by_value[b'{"JOBIDENTIFIER": "1"}'][1] == '{"JOBIDENTIFIER": "1"}'
    assert by_value[b"[1, 2, 3]"][1] == "[1, 2, 3]"
    assert by_value[b'{"a": "\\u0000 escape"}'][1] is None
    assert by_value[b'{"n": 1e999999}'][1] is None  # Python parses it, jsonb does not: text kept, json null
    assert by_value[None] == (b"5", None)  # the tombstone keeps its key

    headers = pg.execute("select distinct message_headers::text from raw.jobs").fetchall()
    assert headers == [('[{"key": "source", "value": "test"}, {"key": "bin", "value_hex": "0001"}]',)]
    offsets = dict(pg.execute("select kafka_partition, next_offset from raw.kafka_offsets").fetchall())
    ends = {}
    for partition, offset in rows:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    assert offsets == ends


def test_rerun_adds_nothing_and_resumes_where_it_stopped(settings: Settings, pg: psycopg.Connection) -> None:
    first = [(str(i).encode(), f'{{"JOBIDENTIFIER": "{i}"}}'.encode()) for i in range(3000)]
    produce(settings, first)
    assert KafkaExtractor(settings).run(until_end=True).inserted == 3000
    again = KafkaExtractor(settings).run(until_end=True)
    assert (again.messages, again.inserted) == (0, 0)

    second = [(str(i).encode(), f'{{"JOBIDENTIFIER": "{i}", "v": 2}}'.encode()) for i in range(1000)]
    produce(settings, second)
    resumed = KafkaExtractor(settings).run(until_end=True)
    assert (resumed.messages, resumed.inserted) == (1000, 1000)
    count, distinct = pg.execute(
        "select count(*), count(distinct (kafka_partition, kafka_offset)) from raw.jobs"
    ).fetchone()
    assert count == distinct == 4000
    value_hashes = sorted(
        hashlib.sha256(value).hexdigest()
        for (value,) in pg.execute("select convert_to(message_value, 'UTF8') from raw.jobs").fetchall()
    )
    assert value_hashes == sorted(hashlib.sha256(value).hexdigest() for _, value in first + second)


def test_service_mode_stops_cleanly_on_request(settings: Settings, pg: psycopg.Connection) -> None:
    produce(settings, [(b"1", b"{}")])
    stop = threading.Event()
    extractor = KafkaExtractor(settings, stop=stop)
    worker = threading.Thread(target=extractor.run)
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (
            pg.execute("select to_regclass('raw.jobs') is not null").fetchone()[0]
            and pg.execute("select count(*) from raw.jobs").fetchone()[0]
        ):
            break
        time.sleep(0.2)
    produce(settings, [(b"2", b"{}")])
    deadline = time.monotonic() + 30
    while pg.execute("select count(*) from raw.jobs").fetchone()[0] < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    worker.join(15)
    assert not worker.is_alive()
    assert extractor.stats.inserted == 2


def test_a_recreated_topic_is_refused_not_skipped(settings: Settings, pg: psycopg.Connection) -> None:
    produce(settings, [(b"1", b"{}")])
    KafkaExtractor(settings).run(until_end=True)
    pg.execute("update raw.kafka_offsets set kafka_topic_id = 'an-older-incarnation'")
    with pytest.raises(ExtractError, match="recreated"):  # a changed topic id must stop the extractor
        KafkaExtractor(settings).run(until_end=True)


def test_offsets_beyond_the_end_are_refused(settings: Settings, pg: psycopg.Connection) -> None:
    produce(settings, [(b"1", b"{}")])
    KafkaExtractor(settings).run(until_end=True)
    pg.execute("update raw.kafka_offsets set next_offset = next_offset + 100")
    with pytest.raises(ExtractError, match="beyond"):  # a stored offset past the end must stop the extractor
        KafkaExtractor(settings).run(until_end=True)
