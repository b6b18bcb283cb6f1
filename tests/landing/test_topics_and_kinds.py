"""`extract topics` creates every Kafka topic of sources.yml (what compose's kafka-init runs), and
`extract run --kind file` lands the file sources alone (compose's files-loader)."""

from __future__ import annotations

from pathlib import Path

import psycopg
from kafka.admin import KafkaAdminClient

from extract.core.settings import Settings
from tests.conftest import run_cli


def test_topics_creates_every_kafka_topic_once(settings: Settings) -> None:
    payments = f"{settings.kafka_topic}_payments"
    first = run_cli(settings, "topics")
    assert first.stdout.strip() == f"topics ready: {settings.kafka_topic} (3 partitions), {payments} (3 partitions)"
    assert run_cli(settings, "topics").stdout == first.stdout  # idempotent
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics([settings.kafka_topic, payments])}
    finally:
        admin.close()
    assert described == {settings.kafka_topic: 3, payments: 3}


def test_run_kind_file_lands_the_files_and_leaves_the_topics(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path
) -> None:
    users = tmp_path / "users.ndjson"
    users.write_text('{"USERID": "U1", "LOCATION": "LOC_1"}\n{"USERID": "U2", "LOCATION": "LOC_2"}\n')
    services = tmp_path / "services.csv"
    services.write_text("SERVICENAME,CATEGORY,BASEPRICE\nSERVICE_1,cleaning,10\n")
    result = run_cli(settings, "run", "--kind", "file", env={"USERS_FILE": str(users), "SERVICES_FILE": str(services)})
    assert "users.ndjson: 2 lines landed" in result.stdout and "services.csv: 2 lines landed" in result.stdout
    assert "messages" not in result.stdout  # no consumer ran
    counts = pg.execute("select (select count(*) from raw.users), (select count(*) from raw.services)").fetchone()
    assert counts == (2, 2)
    assert pg.execute("select count(*) from raw.extract_runs").fetchone()[0] == 0
