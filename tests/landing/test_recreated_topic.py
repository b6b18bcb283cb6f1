"""A topic deleted and created again under a running extractor: it stops within a poll cycle with one line
naming the topic and the command that resumes, lands nothing of the new topic under the old id, and the
named command then lands every message of the new topic."""

from __future__ import annotations

import signal
import time

import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from extract.core.settings import Settings
from extract.landing.producer import ensure_topic
from extract.landing.topic_identity import RESUME_COMMAND
from tests.conftest import run_cli
from tests.support.ops_helpers import start_cli, wait_for


def send(settings: Settings, values: list[bytes]) -> list[tuple[int, int]]:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    futures = [producer.send(settings.kafka_topic, key=b"k", value=value) for value in values]
    producer.flush()
    sent = [(future.get(10).partition, future.get(10).offset) for future in futures]
    producer.close()
    return sent


def stored(pg: psycopg.Connection) -> list[tuple[str, int, int, bytes]]:
    return pg.execute(
        "select kafka_topic_id, kafka_partition, kafka_offset, convert_to(message_value, 'UTF8')"
        " from raw.jobs join raw.kafka_offsets using (kafka_topic, kafka_partition) order by kafka_offset"
    ).fetchall()


@pytest.mark.slow
@pytest.mark.parametrize("frozen", [False, True], ids=["watching", "frozen-meanwhile"])
def test_a_topic_recreated_under_a_running_service_stops_it(
    settings: Settings, pg: psycopg.Connection, frozen: bool
) -> None:
    """frozen: the service is stopped (SIGSTOP) while the topic is deleted, created and refilled, so it
    never sees the empty topic: only the new topic id tells it apart."""
    ensure_topic(settings, partitions=1)
    old = send(settings, [b'{"old": %d}' % n for n in range(5)])
    service = start_cli(settings, "jobs")
    try:
        wait_for(
            lambda: (
                pg.execute("select to_regclass('raw.jobs') is not null").fetchone()[0]
                and pg.execute("select count(*) from raw.jobs").fetchone()[0] == 5
            ),
            60,
            "the first messages",
            service,
        )
        before = stored(pg)
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        if frozen:
            service.send_signal(signal.SIGSTOP)
        try:
            admin.delete_topics([settings.kafka_topic])
            wait_for(lambda: settings.kafka_topic not in admin.list_topics(), 30, "the topic to go")
            time.sleep(1)
            admin.create_topics([NewTopic(settings.kafka_topic, 1, 1)])
        finally:
            admin.close()
        # More than before: a consumer resuming at offset 5 by name would find messages there.
        new = send(settings, [b'{"new": %d}' % n for n in range(12)])
        assert new == [(0, n) for n in range(12)]
        if frozen:
            service.send_signal(signal.SIGCONT)
        service.wait(60)
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
    stderr = service.stderr.read()
    assert service.returncode == 1, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and settings.kafka_topic in last and RESUME_COMMAND in last, last
    assert "recreated" in last
    # Nothing of the new topic landed under the old id; the old rows are as they were.
    assert stored(pg) == before
    assert [(p, o) for _, p, o, _ in before] == old

    # --adopt: the test made this database itself, not `up` (reset refuses a database it does not own)
    run_cli(settings, *RESUME_COMMAND.split()[3:], "--adopt")
    run_cli(settings, "jobs", "--until-end")
    after = stored(pg)
    assert [(p, o, bytes(v)) for _, p, o, v in after] == [(0, n, b'{"new": %d}' % n) for n in range(12)]
    assert {topic_id for topic_id, *_ in after} != {topic_id for topic_id, *_ in before}
