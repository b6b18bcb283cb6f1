"""`extract serve`: the extractor as a service with Prometheus metrics and a health endpoint, stopped
cleanly by SIGTERM; and the health check failing when its conditions fail."""

from __future__ import annotations

import dataclasses
import json
import signal

import psycopg

from extract.core.settings import Settings
from extract.local import embedded
from extract.operations.service import Health
from tests.support.ops_helpers import http_get, json_lines, metric, send, start_cli, wait_for


def test_serve_exposes_metrics_and_health_and_stops_cleanly(settings: Settings, pg: psycopg.Connection) -> None:
    port = embedded.free_port()
    send(settings, 40)
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
        code, body = http_get(f"{base}/health")
        health = json.loads(body)
        assert code == 200 and health["status"] == "ok", body
        assert health["checks"]["database"]["ok"] and health["checks"]["consumer"]["joined_group"]
        assert sorted(health["checks"]["consumer"]["assigned"]) == [f"{topic}[{n}]" for n in range(3)]

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
    status, messages, ended = pg.execute("select status, messages, ended_at from raw.extract_runs").fetchone()
    assert (status, messages) == ("stopped", 65) and ended is not None


def test_health_fails_without_a_database_or_a_polling_consumer(settings: Settings) -> None:
    unreachable = dataclasses.replace(settings, pg_port=embedded.free_port())
    healthy, body = Health(unreachable, 60, extracting=False).report()
    assert not healthy and not body["checks"]["database"]["ok"] and body["checks"]["database"]["error"]

    healthy, body = Health(settings, 60, extracting=True).report()
    assert body["checks"]["database"]["ok"]
    assert not healthy and body["checks"]["consumer"] == {
        "ok": False,
        "running": True,
        "joined_group": False,
        "assigned": [],
        "last_poll_age_s": None,
        "error": None,
    }
