"""The semantic layer agrees with the marts: MetricFlow's `mf query` over the dbt project's metrics gives the
sums the marts and the reconciliation give, per location and in total."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from extract.core.settings import Settings
from extract.sample_data.jobs import generate_files
from tests.conftest import DBT_PROJECT, env_for, run_cli, run_dbt

pytestmark = pytest.mark.slow

USERS, JOBS, SEED = 300, 3000, 5
METRICS = "revenue,completed_revenue,job_count,paid_amount"


def mf_query(settings: Settings, project: Path, out: Path, *group_by: str) -> list[dict[str, str]]:
    """`mf query` as a user runs it (in the project root, which holds target/semantic_manifest.json)."""
    args = ["--metrics", METRICS, "--csv", str(out)] + (["--group-by", ",".join(group_by)] if group_by else [])
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mf"), "query", *args],
        env=env_for(settings) | {"DBT_PROFILES_DIR": str(project)},
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0 and out.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    with out.open() as rows:
        return list(csv.DictReader(rows))


def amounts(row: dict[str, str]) -> tuple[Decimal, Decimal, int, Decimal]:
    return (
        Decimal(row["revenue"] or 0).quantize(Decimal("0.01")),
        Decimal(row["completed_revenue"] or 0).quantize(Decimal("0.01")),
        int(row["job_count"] or 0),
        Decimal(row["paid_amount"] or 0).quantize(Decimal("0.01")),
    )


def test_metrics_agree_with_the_marts(settings: Settings, pg: psycopg.Connection, tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate_files(data, users=USERS, jobs=JOBS, seed=SEED)
    run_cli(settings, "produce", str(data / "jobs.kafka"))
    run_cli(settings, "produce", "--source", "payments", str(data / "payments.kafka"))
    env = {"USERS_FILE": str(data / "users.ndjson"), "SERVICES_FILE": str(data / "services.csv")}
    run_cli(settings, "run", "--until-end", env=env)
    run_dbt(settings, tmp_path, "build")

    # A private copy of the project: mf reads <project>/target/semantic_manifest.json, which `dbt parse` writes.
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    parsed = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "parse", "--project-dir", str(project)],
        env=env_for(settings) | {"DBT_PROFILES_DIR": str(project)},
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert parsed.returncode == 0, parsed.stdout[-3000:]

    by_location = {
        row["job__location_id"]: amounts(row)
        for row in mf_query(settings, project, tmp_path / "by_location.csv", "job__location_id")
    }
    expected = {
        location: (revenue, completed, count, paid)
        for location, revenue, completed, count, paid in pg.execute(
            "select j.location_id, sum(j.revenue),"
            " sum(case when j.job_status = 'COMPLETED' then j.revenue else 0 end), count(*), sum(p.paid_amount)"
            " from marts.jobs j join marts.job_payments p using (job_id) group by j.location_id"
        )
    }
    assert len(expected) > 10
    assert by_location == expected

    # In total: revenue (every status) and completed_revenue are the reconciliation's revenue and
    # amount_due; paid_amount is what it counts as paid for known jobs (UNKNOWN_JOB is not a job).
    (total,) = mf_query(settings, project, tmp_path / "total.csv")
    reconciliation = pg.execute(
        "select sum(revenue), sum(amount_due), sum(job_count),"
        " sum(paid_amount) filter (where category <> 'UNKNOWN_JOB') from marts.revenue_reconciliation_by_category"
    ).fetchone()
    assert amounts(total) == reconciliation
    assert amounts(total)[0] > amounts(total)[1] > 0  # the two revenues differ: the metrics name which is which
