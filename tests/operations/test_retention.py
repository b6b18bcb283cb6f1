"""Bounded raw storage: day partitions, exactly-once across them, and `retention` archiving only what staging
has read, to files that restore exactly the rows they took."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from extract.core import db
from extract.core.settings import Settings
from extract.core.sources_config import KafkaSource, Retention
from extract.landing.raw_sink import write_batch
from extract.operations.retention import apply_retention, restore_partition
from tests.conftest import run_cli, run_dbt


@dataclasses.dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    timestamp: int = 1_700_000_000_000
    timestamp_type: int = 0
    headers: list[tuple[str, bytes | None]] = dataclasses.field(default_factory=list)


def _jobs(settings: Settings) -> KafkaSource:
    source = settings.sources().get("jobs")
    assert isinstance(source, KafkaSource)
    return dataclasses.replace(source, retention=Retention(raw_days=30))


def _land(settings: Settings, source: KafkaSource, offsets: range, *, partition: int = 0) -> int:
    records = [
        Record(
            source.topic,
            partition,
            offset,
            json.dumps({"JOBIDENTIFIER": f"J{offset}", "USERID": "U1", "LOCATION": "L1", "REVENUE": offset}).encode(),
            key=f"J{offset}".encode(),
        )
        for offset in offsets
    ]
    with db.connect(settings) as conn:
        db.ensure_raw_schema(conn, settings.sources())
        return write_batch(conn, "retention-test", records, {source.topic: source.raw_table}, {}).inserted


def _age(pg: psycopg.Connection, offsets: range, days: int) -> str:
    """Move rows to a day partition `days` ago, as if they had landed then; returns that partition's name."""
    day = datetime.now(UTC).date() - timedelta(days=days)
    pg.execute("select raw.create_day_partition('raw.jobs', %s)", (day,))
    pg.execute(
        "update raw.jobs set loaded_at = loaded_at - make_interval(days => %s) where kafka_offset between %s and %s",
        (days, offsets.start, offsets.stop - 1),
    )
    return f"raw.jobs_p{day:%Y%m%d}"


def _rows(pg: psycopg.Connection, table: str) -> list[str]:
    return [row[0] for row in pg.execute(f"select t::text from {table} as t order by load_seq").fetchall()]


def _exists(pg: psycopg.Connection, table: str) -> bool:
    return pg.execute("select to_regclass(%s) is not null", (table,)).fetchone()[0]


def test_raw_tables_are_day_partitioned_and_a_replay_into_another_day_is_not_doubled(
    settings: Settings, pg: psycopg.Connection
) -> None:
    source = _jobs(settings)
    with db.connect(settings) as conn:
        db.ensure_raw_schema(conn, settings.sources())
    assert db.is_partitioned(pg, "raw.jobs") and db.is_partitioned(pg, "raw.users")
    today = f"raw.jobs_p{datetime.now(UTC).date():%Y%m%d}"
    tomorrow = f"raw.jobs_p{datetime.now(UTC).date() + timedelta(days=1):%Y%m%d}"
    assert _exists(pg, today) and _exists(pg, tomorrow)

    assert _land(settings, source, range(10)) == 10
    _age(pg, range(10), 40)  # the first landing now lives in another partition than today's
    # A replay (a rebalance, a crash before Kafka's commit) lands nothing: the key holds across partitions.
    assert _land(settings, source, range(15)) == 5
    assert pg.execute("select count(*), count(distinct kafka_offset) from raw.jobs").fetchone() == (15, 15)
    assert _exists(pg, today)


@pytest.mark.slow
def test_retention_archives_only_what_staging_read_and_the_file_restores_it(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path
) -> None:
    source = _jobs(settings)
    archive = tmp_path / "archive"
    _land(settings, source, range(10))
    staged_day = _age(pg, range(10), 40)
    build = ("build", "--select", "+quarantined_records", "source:kafka.jobs", "--indirect-selection", "cautious")
    run_dbt(settings, tmp_path, *build, "--exclude-resource-type", "unit_test")
    # Past retention as well, but landed after the build: staging has not read it.
    _land(settings, source, range(10, 15))
    unstaged_day = _age(pg, range(10, 15), 35)
    _land(settings, source, range(15, 20))  # today's, within retention
    before = _rows(pg, staged_day)
    staged_before = pg.execute("select count(*) from staging.stg_kafka__job_events").fetchone()[0]

    outcomes = {outcome.partition: outcome for outcome in apply_retention(settings, [source], archive)}

    assert set(outcomes) == {staged_day, unstaged_day}
    assert outcomes[staged_day].action == "archived" and outcomes[staged_day].rows == 10
    assert outcomes[unstaged_day].action.startswith("kept: rows up to load_seq")
    assert not _exists(pg, staged_day)
    assert pg.execute(f"select count(*) from {unstaged_day}").fetchone()[0] == 5
    assert pg.execute("select count(*) from raw.jobs").fetchone()[0] == 10
    assert pg.execute("select count(*) from staging.stg_kafka__job_events").fetchone()[0] == staged_before
    manifest = json.loads((archive / "manifest.json").read_text())
    [entry] = manifest["partitions"]
    file = archive / entry["file"]
    assert (entry["partition"], entry["rows"]) == (staged_day.removeprefix("raw."), 10)
    assert entry["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert entry["bounds"]["from"].startswith(datetime.strptime(staged_day[-8:], "%Y%m%d").date().isoformat())
    assert gzip.decompress(file.read_bytes()).count(b"\n") == 10

    # dbt's reconciliation still balances with the archived rows counted from raw.archived_partitions...
    run_dbt(settings, tmp_path, *build, "--exclude-resource-type", "unit_test")
    # ...and the partition it could not take before goes once staging has read it.
    again = {outcome.partition: outcome.action for outcome in apply_retention(settings, [source], archive)}
    assert again == {unstaged_day: "archived"}

    assert restore_partition(settings, staged_day, archive) == 10
    assert _rows(pg, staged_day) == before
    assert [p["partition"] for p in json.loads((archive / "manifest.json").read_text())["partitions"]] == [
        unstaged_day.removeprefix("raw.")
    ]
    run_dbt(settings, tmp_path, "test", "--select", "source:kafka.jobs")


# raw.jobs as the extractor made it before partitioning.
LEGACY_JOBS = """
create table raw.jobs (
    load_seq bigint generated always as identity primary key,
    kafka_topic text not null,
    kafka_partition integer not null,
    kafka_offset bigint not null,
    kafka_timestamp timestamptz,
    kafka_timestamp_type smallint,
    message_key text,
    message_key_bytes bytea,
    message_value text,
    message_value_bytes bytea,
    message_value_json jsonb,
    message_headers jsonb,
    loaded_at timestamptz not null default now(),
    unique (kafka_topic, kafka_partition, kafka_offset)
)
"""


def test_a_plain_raw_table_from_before_partitioning_still_lands_and_retention_skips_it(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path
) -> None:
    source = _jobs(settings)
    pg.execute("create schema raw")
    pg.execute(LEGACY_JOBS)
    result = run_cli(settings, "retention", "--archive-dir", str(tmp_path))
    assert "raw.jobs is a plain table (created before raw partitioning)" in result.stderr
    assert _land(settings, source, range(5)) == 5
    assert _land(settings, source, range(5)) == 0
    assert not db.is_partitioned(pg, "raw.jobs")
    assert apply_retention(settings, [source], tmp_path) == []
