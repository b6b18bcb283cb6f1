"""History by load time, deletes and the two readings of the case, through the real pipeline.

A users file arrives three times (a snapshot each time: a user moves into the queried location, one
disappears and comes back, one is named only by a broken line) and job events arrive with a tombstone that
deletes a job and a later event that brings it back. After each incremental `dbt build` the marts, the
history and both readings of the case are what docs/data-model.md says; then a --full-refresh over the same
raw rows gives identical tables.
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaProducer

from extract.core.settings import Settings
from extract.landing.producer import ensure_topic
from tests.conftest import run_cli, run_dbt

pytestmark = pytest.mark.slow

LOCATION = "LOC_1294"
SCOPED = ("--vars", "{test_scope: recent}")
TABLES = (
    "staging.stg_kafka__job_events",
    "staging.stg_kafka__jobs",
    "staging.stg_files__users",
    "staging.quarantined_records",
    "marts.jobs",
    "marts.users",
    "marts.users_location_history",
    "marts.non_local_top_revenue",
    "marts.non_local_top_revenue_at_job_time",
)


def job(job_id: str, user_id: str, revenue: int, location: str = LOCATION) -> bytes:
    return json.dumps(
        {
            "JOBIDENTIFIER": job_id,
            "USERID": user_id,
            "JOBDATE": "2024-01-01T10:00:00Z",
            "JOBSTATUS": "COMPLETED",
            "LOCATION": location,
            "REVENUE": revenue,
        }
    ).encode()


def produce(settings: Settings, messages: list[tuple[bytes, bytes | None]]) -> None:
    """Messages in this order on one partition; a None value is a tombstone."""
    ensure_topic(dataclasses.replace(settings, kafka_topic_partitions=1))
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    for key, value in messages:
        producer.send(settings.kafka_topic, key=key, value=value)
    producer.flush()
    producer.close()


def load_users(settings: Settings, tmp_path: Path, name: str, lines: list[str]) -> None:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    run_cli(settings, "users", str(path))


def user(user_id: str, location: str) -> str:
    return json.dumps({"USERID": user_id, "LOCATION": location})


def build(settings: Settings, tmp_path: Path, *args: str) -> None:
    run_cli(settings, "jobs", "--until-end")
    run_dbt(settings, tmp_path, "build", *args)


def answer(pg: psycopg.Connection, mart: str) -> list[tuple[str, Decimal]]:
    return pg.execute(f"select user_id, total_revenue from marts.{mart} order by revenue_rank").fetchall()


def history(pg: psycopg.Connection, user_id: str) -> list[tuple]:
    return pg.execute(
        "select location_id, is_deleted, is_current, valid_from = '-infinity', valid_to = 'infinity', load_id"
        " from marts.users_location_history where user_id = %s order by version_number",
        (user_id,),
    ).fetchall()


def table_rows(pg: psycopg.Connection, table: str) -> list[tuple]:
    # as text: Python's datetime has no -infinity / infinity, the history's open ends
    return sorted(pg.execute(f"select t::text from {table} as t").fetchall())


def test_history_deletes_and_both_readings(settings: Settings, pg: psycopg.Connection, tmp_path: Path) -> None:
    # Load 1: four users living elsewhere; each has a job at the queried location.
    load_users(settings, tmp_path, "users1.ndjson", [user(u, f"LOC_{u.upper()}") for u in ("u1", "u2", "u3", "u4")])
    produce(settings, [(b"j1", job("j1", "u1", 100)), (b"j2", job("j2", "u2", 200))])
    produce(settings, [(b"j3", job("j3", "u3", 50)), (b"j4", job("j4", "u4", 10))])
    build(settings, tmp_path, *SCOPED)
    first = [("u2", Decimal("200.00")), ("u1", Decimal("100.00")), ("u3", Decimal("50.00")), ("u4", Decimal("10.00"))]
    assert answer(pg, "non_local_top_revenue") == first
    assert answer(pg, "non_local_top_revenue_at_job_time") == first

    # Load 2 (a snapshot): u1 moved to the queried location, u2 is gone, u4 is named only by a broken
    # line (kept), u5 is new. j3 is deleted by a tombstone; u5 books a job.
    load_users(
        settings,
        tmp_path,
        "users2.ndjson",
        [user("u1", LOCATION), user("u3", "LOC_U3"), json.dumps({"USERID": "u4"}), user("u5", "LOC_U5")],
    )
    produce(settings, [(b"j3", None), (b"j5", job("j5", "u5", 70))])
    build(settings, tmp_path, *SCOPED)

    jobs = dict(pg.execute("select job_id, has_known_user from marts.jobs").fetchall())
    assert jobs == {"j1": True, "j2": False, "j4": True, "j5": True}  # j3 deleted; u2 no longer known
    assert pg.execute("select user_id from marts.users order by 1").fetchall() == [("u1",), ("u3",), ("u4",), ("u5",)]
    deleted = pg.execute("select job_id, is_deleted, revenue from staging.stg_kafka__jobs where job_id = 'j3'")
    assert deleted.fetchone() == ("j3", True, None)
    # The case's literal reading: where users live now. u1 lives there now, u2 is gone, j3 is deleted.
    assert answer(pg, "non_local_top_revenue") == [("u5", Decimal("70.00")), ("u4", Decimal("10.00"))]
    # At job time: in January 2024 u1 and u2 lived elsewhere (both first versions run from -infinity).
    assert answer(pg, "non_local_top_revenue_at_job_time") == [
        ("u2", Decimal("200.00")),
        ("u1", Decimal("100.00")),
        ("u5", Decimal("70.00")),
        ("u4", Decimal("10.00")),
    ]
    printed = run_cli(settings, "answer", "--at-job-time").stdout.splitlines()
    assert "who lived elsewhere at the time of the job" in printed[0]
    assert [line.split("|")[1].strip() for line in printed[3:]] == ["u2", "u1", "u5", "u4"]
    load_ids = [row[0] for row in pg.execute("select load_id from raw.file_loads order by load_id").fetchall()]
    assert history(pg, "u1") == [
        ("LOC_U1", False, False, True, False, load_ids[0]),
        (LOCATION, False, True, False, True, load_ids[1]),
    ]
    assert history(pg, "u2") == [
        ("LOC_U2", False, False, True, False, load_ids[0]),
        (None, True, True, False, True, load_ids[1]),
    ]
    assert history(pg, "u4") == [("LOC_U4", False, True, True, True, load_ids[0])]
    # A version starts at the loaded_at of the load that first showed it.
    starts = pg.execute(
        "select h.valid_from = l.loaded_at from marts.users_location_history h"
        " join raw.file_loads l on l.load_id = h.load_id where h.version_number > 1"
    ).fetchall()
    assert starts and all(row[0] for row in starts)

    # A later event brings j3 back; load 3 brings u2 back somewhere new.
    produce(settings, [(b"j3", job("j3", "u3", 55))])
    load_users(
        settings,
        tmp_path,
        "users3.ndjson",
        [user(u, loc) for u, loc in (("u1", LOCATION), ("u2", "LOC_NEW"), ("u3", "LOC_U3"), ("u4", "LOC_U4"))]
        + [user("u5", "LOC_U5")],
    )
    build(settings, tmp_path, *SCOPED)
    assert pg.execute("select revenue from marts.jobs where job_id = 'j3'").fetchone() == (Decimal("55.00"),)
    assert [row[:3] for row in history(pg, "u2")] == [
        ("LOC_U2", False, False),
        (None, True, False),
        ("LOC_NEW", False, True),
    ]
    assert answer(pg, "non_local_top_revenue") == [
        ("u2", Decimal("200.00")),
        ("u5", Decimal("70.00")),
        ("u3", Decimal("55.00")),
        ("u4", Decimal("10.00")),
    ]

    incremental = {table: table_rows(pg, table) for table in TABLES}
    run_dbt(settings, tmp_path, "build", "--full-refresh")
    for table in TABLES:
        assert table_rows(pg, table) == incremental[table], f"{table} differs after --full-refresh"
