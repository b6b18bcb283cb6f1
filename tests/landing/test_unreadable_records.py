"""A record batch kafka-python cannot read (here: failing its CRC, corrupted on its way by a proxy in front of
the real broker) lands as one placeholder row per offset, staging quarantines it, and the partition flows."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import psycopg
from kafka import KafkaProducer

from extract.core import db
from extract.core.settings import Settings
from extract.landing.kafka_extractor import KafkaExtractor
from extract.landing.producer import ensure_topic
from tests.conftest import conninfo, run_dbt
from tests.support.kafka_proxy import CorruptingProxy

MARKER = b"CORRUPT-THIS-BATCH"


def _send(settings: Settings, batches: list[list[bytes]]) -> list[list[int]]:
    """Each inner list as one record batch of partition 0; the offsets the broker gave them."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=200)
    try:
        offsets = []
        for batch in batches:
            futures = [producer.send(settings.kafka_topic, value, partition=0) for value in batch]
            producer.flush()
            offsets.append([future.get(10).offset for future in futures])
        return offsets
    finally:
        producer.close()


def _job(name: str) -> bytes:
    return f'{{"JOBIDENTIFIER": "{name}", "USERID": "u", "LOCATION": "L", "REVENUE": 1, "JOBDATE": 0}}'.encode()


def test_a_batch_failing_its_crc_lands_as_placeholders_and_the_partition_flows(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path
) -> None:
    ensure_topic(settings, partitions=1)
    batches = [
        [_job("a"), _job("b")],
        [MARKER],  # one record alone in a corrupt batch
        [_job("c")],
        [_job("d"), b'{"x": "' + MARKER + b'"}', _job("e")],  # a good-looking record breaks its neighbours' batch
        [_job("f"), _job("g")],
    ]
    offsets = _send(settings, batches)
    corrupt = set(offsets[1] + offsets[3])
    every = {offset for batch in offsets for offset in batch}
    assert len(every) == 9 and len(corrupt) == 4

    with CorruptingProxy(settings.kafka_bootstrap_servers, MARKER) as proxy:
        through_proxy = dataclasses.replace(settings, kafka_bootstrap_servers=proxy.address)
        stats = KafkaExtractor(through_proxy).run(until_end=True)
        assert proxy.corrupted >= 1
        assert stats.inserted == 9

        rows = pg.execute(
            "select kafka_offset, message_value, kafka_read_error from raw.jobs where kafka_partition = 0"
        ).fetchall()
        assert sorted(offset for offset, _, _ in rows) == sorted(every)  # one row per offset, none twice
        placeholders = {offset: error for offset, value, error in rows if error is not None}
        assert set(placeholders) == corrupt
        assert all("failed its CRC check" in error for error in placeholders.values())
        assert all(value is None for offset, value, _ in rows if offset in corrupt)
        good = {offset: value for offset, value, error in rows if error is None}
        assert good == {
            offset: value.decode()
            for batch, values in zip(offsets, batches, strict=True)
            for offset, value in zip(batch, values, strict=True)
            if offset not in corrupt
        }

        # Restarted: the placeholders are not fetched again, nothing doubles, new messages land.
        (later,) = _send(settings, [[_job("h"), _job("i")]])
        stats = KafkaExtractor(through_proxy).run(until_end=True)
        assert stats.inserted == 2
    landed = pg.execute("select kafka_offset from raw.jobs order by kafka_offset").fetchall()
    assert [offset for (offset,) in landed] == sorted(every | set(later))
    stored = pg.execute("select next_offset from raw.kafka_offsets where kafka_partition = 0").fetchone()
    assert stored == (max(later) + 1,)

    run_dbt(settings, tmp_path, "build")  # with raw_equals_staged_plus_quarantined
    quarantined = pg.execute(
        "select kafka_offset, quarantine_reason, raw_excerpt from staging.stg_kafka__job_events"
        " where quarantine_reason = 'unreadable_record'"
    ).fetchall()
    assert {offset for offset, _, _ in quarantined} == corrupt
    assert all("failed its CRC check" in excerpt for _, _, excerpt in quarantined)
    in_quarantine = "select count(*) from staging.quarantined_records where quarantine_reason = 'unreadable_record'"
    assert pg.execute(in_quarantine).fetchone() == (len(corrupt),)


def test_a_raw_table_from_before_kafka_read_error_gets_the_column(settings: Settings, pg: psycopg.Connection) -> None:
    config = settings.sources()
    with psycopg.connect(**conninfo(settings, settings.pg_database)) as conn:
        db.ensure_raw_schema(conn, config)
        conn.execute("alter table raw.jobs drop column kafka_read_error")
        conn.commit()
        db.ensure_raw_schema(conn, config)
    columns = pg.execute(
        "select attname from pg_attribute where attrelid = 'raw.jobs'::regclass and not attisdropped"
    ).fetchall()
    assert ("kafka_read_error",) in columns
