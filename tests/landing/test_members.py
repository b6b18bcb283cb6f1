"""`run --processes N` (extract/landing/members.py): N extractor processes in one consumer group under one
supervisor. The members are the real CLI against the real broker and Postgres; the fault suite kills one
mid-drain (tests/faults)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaProducer

from extract.core.settings import Settings
from extract.landing import members
from extract.landing.producer import ensure_topic
from tests.conftest import ROOT, env_for, run_cli
from tests.support.processes import alive, children

MESSAGES = 3_000


def produce(settings: Settings, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5)
    for number in range(count):
        key = f"J{number}".encode()
        producer.send(settings.kafka_topic, key=key, value=b'{"JOBIDENTIFIER": "%s", "REVENUE": %d}' % (key, number))
    producer.flush()
    producer.close()


def test_members_land_every_message_once_and_add_up(settings: Settings, pg: psycopg.Connection) -> None:
    ensure_topic(settings, partitions=3)
    produce(settings, MESSAGES)
    landed = run_cli(settings, "run", "--kind", "kafka", "--until-end", "--processes", "2", "jobs")
    assert f"landed {MESSAGES} new of {MESSAGES} messages from {settings.kafka_topic} (2 processes)" in landed.stdout
    assert landed.stderr.count("started (pid") == 2, landed.stderr
    rows, positions = pg.execute(
        "select count(*), count(distinct (kafka_partition, kafka_offset)) from raw.jobs where kafka_topic = %s",
        (settings.kafka_topic,),
    ).fetchone()
    assert rows == positions == MESSAGES
    again = run_cli(settings, "run", "--kind", "kafka", "--until-end", "--processes", "2", "jobs")
    assert f"landed 0 new of 0 messages from {settings.kafka_topic} (2 processes)" in again.stdout


@pytest.mark.parametrize("count", ["0", "65", "two"])
def test_a_process_count_out_of_range_is_refused(settings: Settings, count: str) -> None:
    refused = run_cli(settings, "run", "--processes", count, check=False)
    assert refused.returncode == 2
    assert "--processes" in refused.stderr


def test_processes_without_a_kafka_source_say_so(settings: Settings, tmp_path: Path) -> None:
    nowhere = {"USERS_FILE": str(tmp_path / "users.ndjson"), "SERVICES_FILE": str(tmp_path / "services.csv")}
    # the files are missing (exit code 1 for that): what matters is that no member starts
    files_only = run_cli(settings, "run", "--kind", "file", "--processes", "2", env=nowhere, check=False)
    assert "--processes 2 applies to Kafka sources, and none is selected" in files_only.stderr
    assert "started (pid" not in files_only.stderr


def test_failing_members_make_until_end_fail_and_are_not_restarted(capsys: pytest.CaptureFixture[str]) -> None:
    result = members.run_members(
        2, ["run", "--kind", "kafka", "no_such_source"], until_end=True, stop=threading.Event()
    )
    assert result.failures == ["member 1 exited with 2", "member 2 exited with 2"]
    assert result.restarts == 0


def test_a_service_restarts_members_that_exit_with_growing_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(members, "RESTART_PAUSE_S", 0.2)
    stop = threading.Event()
    timer = threading.Timer(2.5, stop.set)
    timer.start()
    began = time.monotonic()
    result = members.run_members(1, ["run", "--kind", "kafka", "no_such_source"], until_end=False, stop=stop)
    timer.join()
    # pauses 0.2, 0.4, 0.8 s plus the CLI's start-up each time: a few restarts, not a busy loop
    assert 1 <= result.restarts <= 5, result
    assert time.monotonic() - began < 10


def test_members_stop_when_the_supervisor_is_killed(settings: Settings, tmp_path: Path) -> None:
    ensure_topic(settings, partitions=2)
    log_path = tmp_path / "supervisor.log"
    with log_path.open("wb") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "extract", "run", "--kind", "kafka", "--processes", "2", "jobs"],
            env=env_for(settings),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 60
        while len(children(supervisor.pid)) < 2 or "consuming" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        pids = children(supervisor.pid)
        os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait(10)
        deadline = time.monotonic() + 60
        while running := [pid for pid in pids if alive(pid)]:
            assert time.monotonic() < deadline, f"members {running} outlived their supervisor"
            time.sleep(0.1)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
