"""`extract serve`: the extractor of every Kafka source as a service with Prometheus metrics and a health
endpoint (GET and HEAD, loopback by default), stopped cleanly by SIGTERM; and the health check failing,
with its reason, once a condition has failed for longer than the grace time."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import urllib.request
from pathlib import Path

import psycopg
from kafka import KafkaProducer

from extract.core.settings import Settings
from extract.landing.producer import ensure_topic
from extract.local import embedded
from extract.operations.health import Health
from extract.operations.service import ServiceSettings
from tests.support.ops_helpers import http_get, json_lines, metric, send, start_cli, wait_for


def http_head(url: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def rows(pg: psycopg.Connection, table: str) -> int:
    """Rows in a raw table, 0 before the service has created it."""
    if pg.execute("select to_regclass(%s) is null", (table,)).fetchone()[0]:
        return 0
    return pg.execute(f"select count(*) from {table}").fetchone()[0]


def send_payments(settings: Settings, topic: str, count: int) -> None:
    ensure_topic(settings, topic)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    for n in range(count):
        producer.send(topic, key=b"P%d" % n, value=b'{"PAYMENTID": "P%d"}' % n)
    producer.flush()
    producer.close()


def test_serve_exposes_metrics_and_health_and_stops_cleanly(settings: Settings, pg: psycopg.Connection) -> None:
    port = embedded.free_port()
    send(settings, 40)
    payments_topic = f"{settings.kafka_topic}_payments"  # sources.yml's other Kafka source (tests/conftest.py)
    send_payments(settings, payments_topic, 7)
    process = start_cli(
        settings,
        "--log-format",
        "json",
        "serve",
        "--dbt-interval",
        "0",
        env={"EXTRACT_METRICS_PORT": str(port), "EXTRACT_HEALTH_POLL_S": "30"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        topic = settings.kafka_topic
        consumed = f'extract_messages_consumed_total{{topic="{topic}"}}'

        def metrics_after(count: int) -> str | None:
            text = http_get(f"{base}/metrics")[1]
            return text if metric(text, consumed) == count else None

        wait_for(lambda: metrics_after(40), 60, "40 messages consumed", process)
        send(settings, 25, partition=1, start=100)
        text = wait_for(lambda: metrics_after(65), 60, "65 messages consumed", process)
        wait_for(lambda: rows(pg, "raw.payments") == 7, 60, "7 payments")
        code, body = http_get(f"{base}/health")
        health = json.loads(body)
        assert code == 200 and health["status"] == "ok" and health["reasons"] == [], body
        assert health["checks"]["database"]["ok"] and health["checks"]["consumer"]["joined_group"]
        assert health["checks"]["broker"]["ok"], body
        assert sorted(health["checks"]["consumer"]["assigned"]) == sorted(
            [f"{topic}[{n}]" for n in range(3)] + [f"{payments_topic}[{n}]" for n in range(3)]
        )
        assert http_head(f"{base}/health") == (200, b"")
        assert http_head(f"{base}/metrics") == (200, b"")

        landed_bytes = pg.execute(
            "select sum(octet_length(message_value) + octet_length(message_key)) from raw.jobs"
        ).fetchone()[0]
        assert metric(text, f'extract_bytes_consumed_total{{topic="{topic}"}}') == landed_bytes
        assert metric(text, f'extract_rows_inserted_total{{topic="{topic}"}}') == 65
        batches = metric(text, "extract_batches_total")
        assert batches >= 2
        assert metric(text, "extract_batch_duration_seconds_count") == batches
        assert metric(text, "extract_last_commit_timestamp_seconds") > 0
        for partition in range(3):
            assert metric(text, f'extract_consumer_lag{{partition="{partition}",topic="{topic}"}}') == 0
        assert metric(text, 'extract_failures_total{kind="db_error"}') == 0
        assert metric(text, 'extract_failures_total{kind="retention"}') == 0
        assert http_get(f"{base}/nothing")[0] == 404
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert process.returncode == 0, process.stderr.read()
    logs = json_lines(process.stderr.read())
    assert any(line["message"] == "service stopped" for line in logs)
    # retention's first pass runs at start (RETENTION_INTERVAL_S later the next): nothing is old enough here
    assert [(line["archived"], line["kept"]) for line in logs if line.get("event") == "retention"] == [(0, 0)]
    # Unconfigured, it listens on loopback only.
    assert any(f"http://127.0.0.1:{port}/metrics" in str(line["message"]) for line in logs), logs
    status, messages, ended = pg.execute("select status, messages, ended_at from raw.extract_runs").fetchone()
    assert (status, messages) == ("stopped", 72) and ended is not None


def test_serve_narrows_to_the_sources_named(settings: Settings, pg: psycopg.Connection) -> None:
    port = embedded.free_port()
    send(settings, 5)
    send_payments(settings, f"{settings.kafka_topic}_payments", 3)
    process = start_cli(settings, "serve", "payments", "--dbt-interval", "0", env={"EXTRACT_METRICS_PORT": str(port)})
    try:
        wait_for(lambda: rows(pg, "raw.payments") == 3, 60, "3 payments", process)
        assert rows(pg, "raw.jobs") == 0
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert process.returncode == 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_health_turns_unhealthy_only_after_the_grace_time(settings: Settings) -> None:
    clock = Clock()
    unreachable = dataclasses.replace(settings, pg_port=embedded.free_port())
    health = Health(unreachable, 60, extracting=False, grace_s=30, clock=clock)
    healthy, body = health.report()
    assert healthy and body["checks"]["database"]["ok"] is False and body["checks"]["database"]["error"]
    clock.now += 31
    healthy, body = health.report()
    assert not healthy and body["status"] == "unhealthy"
    assert len(body["reasons"]) == 1 and f"database 127.0.0.1:{unreachable.pg_port}" in body["reasons"][0]

    building = Health(settings, 60, extracting=False, building=True, grace_s=30, clock=clock)
    building.on_dbt_build(True)
    building.on_dbt_build(False)
    clock.now += 20
    building.on_dbt_build(False)  # still failing: counted from the first failed build
    assert building.report()[0]
    clock.now += 11
    healthy, body = building.report()
    assert not healthy and body["reasons"] == [
        "the last dbt build failed (its log tail is in the service's log) (failing for 31s, grace 30s)"
    ]
    building.on_dbt_build(True)
    assert building.report()[0]


def test_health_reports_a_failed_dbt_build_with_its_reason(settings: Settings, tmp_path: Path) -> None:
    port = embedded.free_port()
    process = start_cli(
        settings,
        "schedule",
        "--dbt-interval",
        "3600",
        env={
            "EXTRACT_METRICS_PORT": str(port),
            "EXTRACT_HEALTH_GRACE_S": "0",
            "DBT_PROJECT_DIR": str(tmp_path / "no-such-project"),
        },
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _, body = wait_for(lambda: (r := http_get(f"{base}/health"))[0] == 503 and r, 120, "a 503", process)
        assert "dbt build failed" in json.loads(body)["reasons"][0], body
        assert http_head(f"{base}/health") == (503, b"")
        assert metric(http_get(f"{base}/metrics")[1], 'extract_dbt_builds_total{outcome="failure"}') == 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    assert process.returncode == 0


def test_health_turns_unhealthy_while_the_broker_is_frozen(settings: Settings, tmp_path: Path) -> None:
    broker_port, port = embedded.free_port(), embedded.free_port()
    broker = embedded.start_tansu(broker_port, tmp_path / "tansu.log")
    own = dataclasses.replace(settings, kafka_bootstrap_servers=f"127.0.0.1:{broker_port}")
    process = None
    try:
        send(own, 3)
        send_payments(own, f"{own.kafka_topic}_payments", 1)
        env = {"EXTRACT_METRICS_PORT": str(port), "EXTRACT_HEALTH_GRACE_S": "3"}
        process = start_cli(own, "serve", "--dbt-interval", "0", env=env)
        base = f"http://127.0.0.1:{port}/health"
        wait_for(lambda: http_get(base)[0] == 200, 60, "healthy", process)
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            _, body = wait_for(lambda: (r := http_get(base))[0] == 503 and r, 60, "unhealthy", process)
            reasons = json.loads(body)["reasons"]
            assert any(f"the broker at 127.0.0.1:{broker_port} has not answered" in r for r in reasons), body
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        wait_for(lambda: http_get(base)[0] == 200, 90, "healthy again", process)
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
        broker.terminate()
        broker.wait(10)
    assert process.returncode == 0, process.stderr.read()[-3000:]


def test_service_settings_bind_loopback_unless_configured() -> None:
    assert ServiceSettings.from_env({}).metrics_host == "127.0.0.1"
    assert ServiceSettings.from_env({"EXTRACT_METRICS_HOST": "0.0.0.0"}).metrics_host == "0.0.0.0"
    assert ServiceSettings.from_env({"EXTRACT_HEALTH_GRACE_S": "5"}).health_grace_s == 5
    # By default a broker frozen for 30 s must show on /health before it thaws.
    assert ServiceSettings.from_env({}).health_grace_s < 30


def test_health_fails_without_a_database_or_a_polling_consumer(settings: Settings) -> None:
    unreachable = dataclasses.replace(settings, pg_port=embedded.free_port())
    healthy, body = Health(unreachable, 60, extracting=False, grace_s=0).report()
    assert not healthy and not body["checks"]["database"]["ok"] and body["checks"]["database"]["error"]

    clock = Clock()
    health = Health(settings, 60, extracting=True, grace_s=0, clock=clock)
    clock.now += 1
    healthy, body = health.report()
    assert body["checks"]["database"]["ok"]
    assert not healthy and body["checks"]["consumer"] == {
        "ok": False,
        "running": True,
        "joined_group": False,
        "assigned": [],
        "last_poll_age_s": None,
        "error": None,
        "failing_for_s": 0.0,
    }
    assert body["checks"]["broker"]["ok"] is False and body["checks"]["broker"]["failing_for_s"] == 1.0
