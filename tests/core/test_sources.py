"""The declarative sources file: validation with clear errors, and many sources landing at once."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaProducer

from extract.core.settings import Settings
from extract.core.sources_config import DEFAULT_SOURCES_FILE, SourcesConfig, SourcesConfigError, load_sources
from extract.landing.kafka_extractor import run_kafka_sources
from extract.landing.producer import ensure_topic
from tests.conftest import run_cli

VALID = """
version: 1
sources:
  jobs:
    kind: kafka
    topic: ${TOPIC:-jobs}
    raw_table: raw.jobs
  users:
    kind: file
    path: data/users.ndjson
    format: ndjson
    raw_table: raw.users
"""


RETAINED = VALID.replace("    raw_table: raw.jobs\n", "    raw_table: raw.jobs\n    retention:\n      raw_days: 30\n")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yml"
    path.write_text(text)
    return path


def test_the_shipped_file_is_valid() -> None:
    config = load_sources(DEFAULT_SOURCES_FILE, env={})
    assert {source.name for source in config.sources} >= {"jobs", "users", "payments", "services"}
    assert config.get("jobs").topic == "jobs"
    assert load_sources(DEFAULT_SOURCES_FILE, env={"KAFKA_TOPIC": "other"}).get("jobs").topic == "other"


def test_file_sources_declare_snapshot_or_delta(tmp_path: Path) -> None:
    shipped = load_sources(DEFAULT_SOURCES_FILE, env={})
    assert (shipped.get("users").load_mode, shipped.get("services").load_mode) == ("snapshot", "delta")
    assert load_sources(write(tmp_path, VALID), env={}).get("users").load_mode == "delta"  # the default
    snapshot = VALID.replace("format: ndjson", "format: ndjson\n    load_mode: snapshot")
    assert load_sources(write(tmp_path, snapshot), env={}).get("users").load_mode == "snapshot"


def test_env_references_resolve(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    assert load_sources(path, env={}).get("jobs").topic == "jobs"
    assert load_sources(path, env={"TOPIC": "t2"}).get("jobs").topic == "t2"


def test_retention_is_per_source_and_optional(tmp_path: Path) -> None:
    config = load_sources(write(tmp_path, RETAINED), env={})
    assert config.get("jobs").retention.raw_days == 30
    assert config.get("users").retention.raw_days is None
    assert load_sources(DEFAULT_SOURCES_FILE, env={"RAW_RETENTION_DAYS": "7"}).get("jobs").retention.raw_days == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\nsources: [\n", "not valid YAML"),
        ("sources: {}\n", "'version: 1' is required"),
        ("version: 1\nsources: {}\n", "'sources' must be a non-empty mapping"),
        (VALID.replace("format: ndjson", "format: parquet"), "'format' must be one of ndjson, key_value_lines, csv"),
        (VALID.replace("kind: kafka", "kind: s3"), "'kind' must be one of kafka, file"),
        (VALID.replace("raw_table: raw.jobs", "raw_table: public.jobs"), "must be raw.<lowercase_identifier>"),
        (VALID.replace("raw_table: raw.jobs", "raw_table: raw.users"), "share the raw_table 'raw.users'"),
        (VALID.replace("topic: ${TOPIC:-jobs}", "topic: 'bad topic!'"), "is not a valid Kafka topic name"),
        (VALID.replace("topic: ${TOPIC:-jobs}", "topic: ${NOT_SET}"), "NOT_SET is not set and has no default"),
        (VALID.replace("    raw_table: raw.jobs\n", ""), "'raw_table' is required"),
        (
            VALID.replace("    raw_table: raw.jobs\n", "    raw_table: raw.jobs\n    colour: blue\n"),
            "unknown key(s): colour",
        ),
        (VALID.replace("  users:", "  Users:"), "source names are lowercase identifiers"),
        (RETAINED.replace("raw_days: 30", "raw_days: 0"), "jobs.retention: 'raw_days' must be a whole number >= 1"),
        (RETAINED.replace("raw_days: 30", "raw_days: soon"), "'raw_days' must be a whole number >= 1, got 'soon'"),
        (RETAINED.replace("raw_days: 30", "raw_hours: 30"), "sources.jobs.retention: unknown key(s): raw_hours"),
        (RETAINED.replace("retention:\n      raw_days: 30", "retention: 30"), "jobs.retention: expected a mapping"),
        (
            VALID.replace("format: ndjson", "format: ndjson\n    load_mode: full"),
            "'load_mode' must be one of snapshot, delta, got 'full'",
        ),
        (
            VALID.replace("    raw_table: raw.jobs\n", "    raw_table: raw.jobs\n    load_mode: snapshot\n"),
            "unknown key(s): load_mode",
        ),
    ],
)
def test_malformed_files_are_refused_with_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SourcesConfigError) as error:
        load_sources(write(tmp_path, text), env={})
    assert message in str(error.value)
    assert str(tmp_path / "sources.yml") in str(error.value)


def test_cli_reports_a_malformed_sources_file_in_one_line(settings: Settings, tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("format: ndjson", "format: xml"))
    result = run_cli(dataclasses.replace(settings, sources_file=path), "run", "--until-end", check=False)
    assert result.returncode == 2  # a configuration error
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "'format' must be one of" in result.stderr and "Traceback" not in result.stderr


def _two_topics(settings: Settings, tmp_path: Path, workers: str) -> SourcesConfig:
    text = f"""
version: 1
kafka:
  workers: {workers}
sources:
  jobs:
    kind: kafka
    topic: {settings.kafka_topic}
    raw_table: raw.jobs
  payments:
    kind: kafka
    topic: {settings.kafka_topic}_payments
    raw_table: raw.payments
    partitions: 2
"""
    return load_sources(write(tmp_path, text), env={})


@pytest.mark.parametrize("workers", ["one_subscription", "worker_per_topic"])
def test_two_topics_land_concurrently_exactly_once(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path, workers: str
) -> None:
    config = _two_topics(settings, tmp_path, workers)
    jobs, payments = config.get("jobs"), config.get("payments")
    ensure_topic(settings, jobs.topic, 3)
    ensure_topic(settings, payments.topic, 2)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5)
    stop_producing = threading.Event()

    def produce(topic: str, count: int, offset: int = 0) -> None:
        for i in range(offset, offset + count):
            producer.send(topic, key=str(i).encode(), value=f'{{"n": {i}, "topic": "{topic}"}}'.encode())
        producer.flush()

    produce(jobs.topic, 5000)
    produce(payments.topic, 3000)
    stats = run_kafka_sources(settings, [jobs, payments], until_end=True, stop=stop_producing, config=config)
    assert (stats.messages, stats.inserted) == (8000, 8000)

    # More arrives on both; a second run lands exactly the new messages, a third nothing.
    produce(jobs.topic, 700, offset=5000)
    produce(payments.topic, 300, offset=3000)
    producer.close()
    again = run_kafka_sources(settings, [jobs, payments], until_end=True, stop=threading.Event(), config=config)
    assert (again.messages, again.inserted) == (1000, 1000)
    nothing = run_kafka_sources(settings, [jobs, payments], until_end=True, stop=threading.Event(), config=config)
    assert nothing.inserted == 0

    for table, topic, expected in (("jobs", jobs.topic, 5700), ("payments", payments.topic, 3300)):
        count, distinct_values, topics = pg.execute(
            f"select count(*), count(distinct message_value_json->>'n'), array_agg(distinct kafka_topic)"
            f" from raw.{table}"
        ).fetchone()
        assert (count, distinct_values, topics) == (expected, expected, [topic])
    offsets = dict(
        pg.execute("select kafka_topic, sum(next_offset) from raw.kafka_offsets group by kafka_topic").fetchall()
    )
    assert offsets == {jobs.topic: 5700, payments.topic: 3300}
