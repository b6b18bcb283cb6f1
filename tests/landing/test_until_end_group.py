"""`--until-end` with several members of one consumer group: each member ends once the group, not the member
alone, has landed every partition of its topics up to the end it had at start (raw.kafka_offsets is the
record), and never hangs or claims success while a partition it depends on is not landed."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer

from extract.core.settings import Settings
from extract.landing.kafka_extractor import ExtractError, KafkaExtractor
from extract.landing.producer import ensure_topic
from tests.conftest import ROOT, conninfo, env_for

# Uneven on purpose: the members that own the small partitions finish long before the one that owns the big
# one, which is when a member leaving early makes the group rebalance under the member still at work.
SIZES = {0: 200_000, 1: 1_000, 2: 1_000}
# Far above what the drain takes (seconds), far below the forever of a member waiting for a partition back.
MEMBER_TIMEOUT_S = 90


def produce_per_partition(settings: Settings, sizes: dict[int, int]) -> None:
    ensure_topic(settings, partitions=len(sizes))
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5)
    for partition, count in sizes.items():
        for i in range(count):
            producer.send(settings.kafka_topic, partition=partition, value=f'{{"p": {partition}, "n": {i}}}'.encode())
    producer.flush()
    producer.close()


def landed(pg: psycopg.Connection) -> int:
    """Messages the group has landed: the sum of the stored next offsets (0 before the schema exists)."""
    if not pg.execute("select to_regclass('raw.kafka_offsets') is not null").fetchone()[0]:
        return 0
    return pg.execute("select coalesce(sum(next_offset), 0) from raw.kafka_offsets").fetchone()[0]


def test_members_of_one_group_all_end_and_land_every_message_once(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path
) -> None:
    """Three `jobs --until-end` processes of one group (bench item 8): none ends before the group has landed
    everything, so none leaves while another drains, and all of them end."""
    produce_per_partition(settings, SIZES)
    total = sum(SIZES.values())
    logs = [tmp_path / f"member-{i}.log" for i in range(len(SIZES))]
    members = []
    for log_path in logs:
        with log_path.open("wb") as log:
            members.append(
                subprocess.Popen(
                    [sys.executable, "-m", "extract", "jobs", "--until-end"],
                    env=env_for(settings),
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
    landed_when_ended: dict[int, int] = {}
    deadline = time.monotonic() + MEMBER_TIMEOUT_S
    while len(landed_when_ended) < len(members) and time.monotonic() < deadline:
        for index, member in enumerate(members):
            if index not in landed_when_ended and member.poll() is not None:
                landed_when_ended[index] = landed(pg)
        time.sleep(0.05)
    hung = [index for index in range(len(members)) if index not in landed_when_ended]
    for index in hung:
        members[index].kill()
        members[index].wait(10)
    tails = "\n".join(f"--- member {i}:\n{log.read_text()[-3000:]}" for i, log in enumerate(logs))
    assert not hung, f"members {hung} still running after {MEMBER_TIMEOUT_S}s\n{tails}"
    assert [member.returncode for member in members] == [0] * len(members), tails
    assert landed_when_ended == dict.fromkeys(range(len(members)), total), f"landed when each ended\n{tails}"

    count, distinct = pg.execute(
        "select count(*), count(distinct (kafka_partition, kafka_offset)) from raw.jobs"
    ).fetchone()
    assert count == distinct == total
    offsets = dict(pg.execute("select kafka_partition, next_offset from raw.kafka_offsets").fetchall())
    assert offsets == SIZES


def test_a_partition_no_member_lands_ends_the_wait_with_the_reason(settings: Settings, pg: psycopg.Connection) -> None:
    """Another application sharing the group id by mistake owns one of the two partitions and lands nothing:
    the member lands its own partition, then gives up naming the other instead of calling the topic landed."""
    produce_per_partition(settings, {0: 100, 1: 100})
    assigned, stop = threading.Event(), threading.Event()

    def foreign_member() -> None:
        consumer = KafkaConsumer(
            settings.kafka_topic,
            group_id=settings.kafka_group_id,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            enable_auto_commit=False,
            session_timeout_ms=6_000,
            heartbeat_interval_ms=1_000,
        )
        try:
            while not stop.is_set():
                consumer.poll(timeout_ms=200)
                if consumer.assignment():
                    assigned.set()
        finally:
            consumer.close(autocommit=False)

    foreign = threading.Thread(target=foreign_member)
    foreign.start()
    try:
        assert assigned.wait(60), "the foreign member never joined"
        extractor = KafkaExtractor(dataclasses.replace(settings, group_stall_s=3.0))
        with pytest.raises(ExtractError) as raised:
            extractor.run(until_end=True)
    finally:
        stop.set()
        foreign.join(30)
    landed = {p for (p,) in pg.execute("select distinct kafka_partition from raw.jobs")}
    assert len(landed) == 1, "two members, two partitions: the member owned one of them"
    (unlanded,) = {0, 1} - landed
    message = str(raised.value)
    assert f"landed {settings.kafka_topic}[{unlanded}] at 0 of 100, nor anything else, in 3s" in message
    assert "rerun resumes" in message and "\n" not in message


def test_until_end_members_end_beside_a_service_member(settings: Settings, pg: psycopg.Connection) -> None:
    """Two `--until-end` members join a group where a service member is landing: each ends once the group
    has landed every message there was when it started, whoever owned what."""
    sizes = {0: 20_000, 1: 5_000, 2: 5_000}
    total = sum(sizes.values())
    produce_per_partition(settings, sizes)
    service_stop = threading.Event()
    service = KafkaExtractor(settings, stop=service_stop)
    service_thread = threading.Thread(target=service.run)
    service_thread.start()
    landed_at_end: list[int] = []
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            KafkaExtractor(settings).run(until_end=True)
            with psycopg.connect(**conninfo(settings, settings.pg_database), autocommit=True) as conn:
                landed_at_end.append(conn.execute("select count(*) from raw.jobs").fetchone()[0])
        except BaseException as error:
            errors.append(error)

    drains = [threading.Thread(target=drain) for _ in range(2)]
    try:
        for thread in drains:
            thread.start()
        deadline = time.monotonic() + MEMBER_TIMEOUT_S
        for thread in drains:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in drains), (
            f"an --until-end member still runs after {MEMBER_TIMEOUT_S}s"
        )
    finally:
        service_stop.set()
        service_thread.join(60)
    assert not service_thread.is_alive(), "the service member did not stop after the others left"
    assert errors == []
    assert landed_at_end == [total, total]
    count, distinct = pg.execute(
        "select count(*), count(distinct (kafka_partition, kafka_offset)) from raw.jobs"
    ).fetchone()
    assert count == distinct == total


def test_members_end_on_a_topic_whose_partitions_end_with_transaction_markers(
    settings: Settings, pg: psycopg.Connection
) -> None:
    """A commit marker after a partition's last message takes the end offset: each member stores it once its
    consumer passed it, else the others, comparing stored offsets with the ends, would wait until they stall."""
    ensure_topic(settings, partitions=2)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, transactional_id=settings.kafka_topic)
    producer.init_transactions()
    producer.begin_transaction()
    for partition in (0, 1):
        for i in range(50):
            producer.send(settings.kafka_topic, partition=partition, value=f'{{"p": {partition}, "n": {i}}}'.encode())
    producer.commit_transaction()
    producer.close()
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            KafkaExtractor(dataclasses.replace(settings, group_stall_s=5.0)).run(until_end=True)
        except BaseException as error:
            errors.append(error)

    members = [threading.Thread(target=drain) for _ in range(2)]
    for member in members:
        member.start()
    for member in members:
        member.join(MEMBER_TIMEOUT_S)
    assert not any(member.is_alive() for member in members)
    assert errors == []
    assert pg.execute("select count(*) from raw.jobs").fetchone()[0] == 100
    # 50 messages, then the commit marker at offset 50
    assert dict(pg.execute("select kafka_partition, next_offset from raw.kafka_offsets").fetchall()) == {0: 51, 1: 51}
