"""`produce` checks the whole file before it sends: an invalid line sends nothing (the line number says
which), --skip-invalid sends the others and names what it skipped, and every codec is an option."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from kafka import KafkaConsumer, TopicPartition

from extract.core.settings import Settings
from extract.landing.producer import COMPRESSION_CODECS, DEFAULT_MAX_MESSAGE_BYTES
from tests.conftest import run_cli

TOO_BIG = b"9|" + b"x" * DEFAULT_MAX_MESSAGE_BYTES
LINES = [b'1|{"n": 1}', b'2|{"n": 2}', b'{"no": "separator"}', b'4|{"n": 4}', TOO_BIG, b'6|{"n": 6}']


def topic_contents(settings: Settings) -> list[tuple[bytes, bytes]]:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(settings.kafka_topic, p) for p in consumer.partitions_for_topic(settings.kafka_topic)
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        messages = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for batch in consumer.poll(timeout_ms=1000).values():
                messages += [(m.key, m.value) for m in batch]
        return sorted(messages)
    finally:
        consumer.close()


def test_an_invalid_line_sends_nothing(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "jobs.kafka"
    path.write_bytes(b"\n".join(LINES) + b"\n")
    result = run_cli(settings, "produce", str(path), check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {path}:3: no '|' between key and value; nothing sent (2 invalid lines"), last
    assert topic_contents(settings) == []

    result = run_cli(settings, "produce", "--skip-invalid", str(path))
    assert "sent 4 messages" in result.stdout and "skipped 2 invalid lines" in result.stdout
    assert f"{path}:3: skipped" in result.stderr and f"{path}:5: skipped: a " in result.stderr
    assert topic_contents(settings) == [
        (b"1", b'{"n": 1}'),
        (b"2", b'{"n": 2}'),
        (b"4", b'{"n": 4}'),
        (b"6", b'{"n": 6}'),
    ]


@pytest.mark.parametrize("codec", COMPRESSION_CODECS)
def test_produce_sends_with_every_codec(settings: Settings, pg: psycopg.Connection, tmp_path: Path, codec: str) -> None:
    path = tmp_path / "jobs.kafka"
    path.write_bytes(b"".join(b'%d|{"n": %d, "pad": "%s"}\n' % (n, n, b"y" * 300) for n in range(200)))
    run_cli(settings, "produce", "--compression", codec, str(path))
    run_cli(settings, "jobs", "--until-end")
    landed = pg.execute("select count(*), count(message_value_json) from raw.jobs").fetchone()
    assert landed == (200, 200)
