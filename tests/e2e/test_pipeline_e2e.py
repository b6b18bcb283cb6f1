"""The whole pipeline on generated data: produce -> extract -> dbt build -> marts, checked against an
independent pure-Python computation of the same answers (tests/support/reference.py) on the same files."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from extract.core.settings import Settings
from extract.landing.producer import ensure_topic
from extract.sample_data.jobs import generate_files
from tests.conftest import run_cli, run_dbt
from tests.support import reference

pytestmark = pytest.mark.slow

USERS, JOBS, SEED = 400, 4000, 7


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, reference.ReferenceJobs, reference.ReferenceUsers]:
    out = tmp_path_factory.mktemp("data")
    summary = generate_files(out, users=USERS, jobs=JOBS, seed=SEED)
    return out, reference.load_jobs(summary.jobs_path), reference.load_users(summary.users_path)


def marts_answer(pg: psycopg.Connection) -> list[tuple[str, Decimal]]:
    return pg.execute("select user_id, total_revenue from marts.non_local_top_revenue order by revenue_rank").fetchall()


def raw_counts(pg: psycopg.Connection) -> tuple[int, int]:
    return pg.execute("select (select count(*) from raw.jobs), (select count(*) from raw.users)").fetchone()


def assert_marts_match_reference(
    pg: psycopg.Connection, jobs: reference.ReferenceJobs, users: reference.ReferenceUsers
) -> None:
    expected = reference.top_revenue(jobs, users, "LOC_1294")
    assert len(expected) == 5, "the generated data must give the headline query a full answer"
    assert marts_answer(pg) == expected

    staged_jobs = {
        row[0]: row[1:]
        for row in pg.execute(
            "select job_id, user_id, location_id, service_name, job_status, revenue, job_at, job_created_at"
            " from marts.jobs"
        )
    }
    assert staged_jobs == {
        job.job_id: (
            job.user_id,
            job.location_id,
            job.service_name,
            job.job_status,
            job.revenue,
            job.job_at,
            job.job_created_at,
        )
        for job in jobs.jobs.values()
    }
    staged_users = dict(pg.execute("select user_id, location_id from marts.users").fetchall())
    assert staged_users == {user.user_id: user.location_id for user in users.users.values()}

    quarantined = dict(
        pg.execute(
            "select source_name || ':' || quarantine_reason, count(*) from staging.quarantined_records group by 1"
        ).fetchall()
    )
    expected_quarantine = {f"kafka.jobs:{reason}": n for reason, n in jobs.quarantine.items()}
    expected_quarantine |= {f"files.users:{reason}": n for reason, n in users.quarantine.items()}
    assert quarantined == expected_quarantine

    for kind, value in (("location", " loc_1294"), ("service", "service_3")):
        rows = pg.execute(
            f"select job_id, user_id, job_status, revenue, job_at from marts.jobs_by_{kind}(%s)", (value,)
        ).fetchall()
        wanted = reference.latest_jobs(jobs, **{kind: value})
        assert len(rows) == 5
        assert rows == [(j.job_id, j.user_id, j.job_status, j.revenue, j.job_at) for j in wanted]


def test_pipeline_end_to_end(settings: Settings, pg: psycopg.Connection, tmp_path: Path, dataset) -> None:
    data, jobs, users = dataset
    run_cli(settings, "produce", str(data / "jobs.kafka"))
    run_cli(settings, "users", str(data / "users.ndjson"))
    run_cli(settings, "jobs", "--until-end")
    assert raw_counts(pg) == (jobs.raw_count, users.raw_count)

    run_dbt(settings, tmp_path, "build")
    assert_marts_match_reference(pg, jobs, users)

    answer = run_cli(settings, "answer").stdout
    for user_id, total in reference.top_revenue(jobs, users):
        assert f"{user_id} " in answer and str(total) in answer

    # A second extract and a second load of the same file add nothing; a rebuild gives the same marts.
    run_cli(settings, "jobs", "--until-end")
    assert "already loaded" in run_cli(settings, "users", str(data / "users.ndjson")).stdout
    assert raw_counts(pg) == (jobs.raw_count, users.raw_count)
    run_dbt(settings, tmp_path, "build")
    assert_marts_match_reference(pg, jobs, users)


async def _produce_with_aiokafka(settings: Settings, path: Path) -> int:
    """An independent client: aiokafka, fed the same file split the console-producer way."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=20)
    await producer.start()
    sent = 0
    try:
        with path.open("rb") as lines:
            for line in lines:
                key, _, value = line.rstrip(b"\n").partition(b"|")
                await producer.send(settings.kafka_topic, key=key, value=value)
                sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def test_an_independent_producer_gives_the_same_marts(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path, dataset
) -> None:
    data, jobs, users = dataset
    ensure_topic(settings)
    assert asyncio.run(_produce_with_aiokafka(settings, data / "jobs.kafka")) == jobs.raw_count
    run_cli(settings, "users", str(data / "users.ndjson"))
    run_cli(settings, "jobs", "--until-end")
    run_dbt(settings, tmp_path, "build")
    assert_marts_match_reference(pg, jobs, users)
