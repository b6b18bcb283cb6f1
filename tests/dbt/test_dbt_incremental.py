"""Incremental dbt models give exactly what a --full-refresh gives, whatever the arrival batches.

Generated data arrives in several batches (produce part of the files, extract, `dbt build`, repeat):
jobs and payments topics, a users file that grows into a second load, a service catalogue whose second
version changes prices, and an old event replayed late: a lower offset of a partition lands in a later run
than a higher one. The incremental builds scope the per-row models' data tests to the new rows
(test_scope: recent). Then every staging and mart table is compared row by row with a --full-refresh build
over the same raw data.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from extract.core.settings import Settings
from extract.sample_data.jobs import generate_files
from tests.conftest import run_cli, run_dbt

pytestmark = pytest.mark.slow

USERS, JOBS, SEED = 300, 3000, 11
JOB_BATCHES = 3

# Every table dbt builds (the users history too: its versions start at load times, never at run times).
TABLES = (
    "staging.stg_kafka__job_events",
    "staging.stg_kafka__jobs",
    "staging.stg_files__user_lines",
    "staging.stg_files__users",
    "staging.stg_kafka__payment_events",
    "staging.stg_kafka__payments",
    "staging.stg_files__service_lines",
    "staging.stg_files__services",
    "staging.quarantined_records",
    "staging.quarantine_summary",
    "staging.schema_drift_keys",
    "marts.jobs",
    "marts.users",
    "marts.non_local_top_revenue",
    "marts.users_location_history",
    "marts.non_local_top_revenue_at_job_time",
    "marts.job_payments",
    "marts.revenue_reconciliation_by_category",
)
# How the incremental builds run (make build, the bench and the service do the same).
SCOPED = ("--vars", "{test_scope: recent}")

# A partition no producer writes to, for the hand-landed late replay.
REPLAY_PARTITION = 97


def split_lines(path: Path, parts: int, out: Path) -> list[Path]:
    lines = path.read_bytes().splitlines(keepends=True)
    size = -(-len(lines) // parts)
    paths = []
    for index in range(parts):
        part = out / f"{path.stem}.part{index}{path.suffix}"
        part.write_bytes(b"".join(lines[index * size : (index + 1) * size]))
        paths.append(part)
    return paths


def raise_price(line: str) -> str:
    """A catalogue line (SERVICENAME,CATEGORY,BASEPRICE) with its price raised by 1, when it has one."""
    head, _, price = line.rstrip("\n").rpartition(",")
    try:
        return f"{head},{Decimal(price) + 1}\n"
    except ArithmeticError:
        return line


def table_rows(pg: psycopg.Connection, table: str) -> list[tuple]:
    # as text: Python's datetime has no -infinity / infinity, the users history's open ends
    return sorted(pg.execute(f"select t::text from {table} as t").fetchall())


def land_replay_event(pg: psycopg.Connection, topic: str, job_id: str, offset: int, revenue: str) -> None:
    """One usable event of `job_id` in REPLAY_PARTITION, landed the way the extractor lands a message."""
    value = json.dumps(
        {
            "JOBIDENTIFIER": job_id,
            "USERID": "replay-user",
            "JOBDATE": "2025-01-01T10:00:00Z",
            "LOCATION": "LOC_REPLAY",
            "REVENUE": revenue,
        }
    )
    pg.execute(
        "insert into raw.jobs (kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, message_key,"
        " message_value, message_value_json) values (%s, %s, %s, '2999-01-01T00:00:00Z', %s, %s, %s::jsonb)",
        (topic, REPLAY_PARTITION, offset, job_id, value, value),
    )


def test_incremental_runs_equal_a_full_refresh(settings: Settings, pg: psycopg.Connection, tmp_path: Path) -> None:
    data = tmp_path / "data"
    summary = generate_files(data, users=USERS, jobs=JOBS, seed=SEED)
    job_parts = split_lines(summary.jobs_path, JOB_BATCHES, tmp_path)
    payment_parts = split_lines(data / "payments.kafka", JOB_BATCHES, tmp_path)
    # The catalogue arrives twice: as generated, then with every price of its first services raised.
    services_first = data / "services.csv"
    services_second = tmp_path / "services.second.csv"
    catalogue = services_first.read_text().splitlines(keepends=True)
    raised = [raise_price(line) for line in catalogue[1:20]]
    services_second.write_text("".join(catalogue[:1] + raised + catalogue[20:]))
    # The users file arrives twice: first its first half, later the whole file (a second load).
    users_lines = summary.users_path.read_bytes().splitlines(keepends=True)
    users_first = tmp_path / "users.first.ndjson"
    users_first.write_bytes(b"".join(users_lines[: len(users_lines) // 2]))

    replay_job = None
    for batch, part in enumerate(job_parts):
        run_cli(settings, "produce", str(part))
        run_cli(settings, "produce", "--source", "payments", str(payment_parts[batch]))
        if batch == 0:
            run_cli(settings, "users", str(users_first))
            run_cli(settings, "run", "--until-end", "services", env={"SERVICES_FILE": str(services_first)})
        if batch == JOB_BATCHES - 1:
            run_cli(settings, "users", str(summary.users_path))
            run_cli(settings, "run", "--until-end", "services", env={"SERVICES_FILE": str(services_second)})
        run_cli(settings, "run", "--until-end", "jobs", "payments")
        if batch == 0:
            # The replay partition's newest event (offset 10), far ahead in Kafka time, wins for this job.
            replay_job = pg.execute(
                "select message_key from raw.jobs where message_key <> '' order by load_seq limit 1"
            ).fetchone()[0]
            land_replay_event(pg, settings.kafka_topic, replay_job, 10, "111.11")
        if batch == 1:
            # An older event of the same partition (offset 5) lands a run later: it must not win.
            land_replay_event(pg, settings.kafka_topic, replay_job, 5, "55.55")
        run_dbt(settings, tmp_path, "build", *SCOPED)

    winner = pg.execute(
        "select kafka_partition, kafka_offset, revenue, event_count, has_known_user from marts.jobs where job_id = %s",
        (replay_job,),
    ).fetchone()
    assert winner[:3] == (REPLAY_PARTITION, 10, Decimal("111.11"))
    assert winner[3] >= 3  # its own events plus both replayed ones
    assert (
        pg.execute("select count(*) from staging.stg_files__user_lines").fetchone()[0] == USERS + len(users_lines) // 2
    )
    # A user known only from the second load turned jobs booked before it into known-user jobs.
    known = "select bool_and(has_known_user) from marts.jobs where user_id in (select user_id from marts.users)"
    assert pg.execute(known).fetchone()[0]

    incremental = {table: table_rows(pg, table) for table in TABLES}
    assert all(incremental[table] for table in TABLES if not table.startswith("marts.non_local_top_revenue"))
    # Both catalogue loads and every payment batch took part.
    assert pg.execute("select count(distinct load_id) from staging.stg_files__service_lines").fetchone()[0] == 2
    assert pg.execute("select count(*) from raw.payments").fetchone()[0] == sum(
        len(part.read_bytes().splitlines()) for part in payment_parts
    )

    run_dbt(settings, tmp_path, "build", "--full-refresh")
    for table in TABLES:
        assert table_rows(pg, table) == incremental[table], f"{table} differs after --full-refresh"

    # A run with nothing new changes nothing either.
    run_dbt(settings, tmp_path, "build", *SCOPED)
    for table in TABLES:
        assert table_rows(pg, table) == incremental[table], f"{table} changed on an empty incremental run"
