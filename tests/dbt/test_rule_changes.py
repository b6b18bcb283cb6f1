"""Rule changes reach old rows: after `max_revenue` changes, the next `make build` re-judges the rows staged
under the old rule (dbt's state comparison against the last successful build), where a plain incremental
build would leave them as they were."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from extract.core.settings import Settings
from tests.conftest import ROOT, env_for, run_cli, run_dbt

pytestmark = pytest.mark.slow

LOWER_MAX = "max_revenue: 5000"


def job(job_id: str, revenue: int) -> str:
    value = {
        "JOBIDENTIFIER": job_id,
        "USERID": "u1",
        "JOBDATE": "2024-01-01T10:00:00Z",
        "LOCATION": "LOC_1294",
        "REVENUE": revenue,
    }
    return f"{job_id}|{json.dumps(value)}\n"


def make_build(settings: Settings, tmp_path: Path, *variables: str) -> str:
    env = env_for(settings) | {
        "ELT_STATE_DIR": str(tmp_path / "state"),
        "DBT_TARGET_PATH": str(tmp_path / "dbt-target"),
        "DBT_LOG_PATH": str(tmp_path / "dbt-logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
    }
    result = subprocess.run(
        ["make", "--no-print-directory", "build", *variables],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    return result.stdout


def staged(pg: psycopg.Connection) -> dict[str, str | None]:
    return dict(pg.execute("select job_id, quarantine_reason from staging.stg_kafka__job_events").fetchall())


def mart_jobs(pg: psycopg.Connection) -> dict[str, Decimal]:
    return dict(pg.execute("select job_id, revenue from marts.jobs").fetchall())


def test_a_lower_max_revenue_rejudges_old_rows(settings: Settings, pg: psycopg.Connection, tmp_path: Path) -> None:
    (tmp_path / "users.ndjson").write_text('{"USERID": "u1", "LOCATION": "LOC_9"}\n')
    (tmp_path / "jobs.kafka").write_text(job("j1", 100) + job("j2", 3000) + job("j3", 6000))
    run_cli(settings, "users", str(tmp_path / "users.ndjson"))
    run_cli(settings, "produce", str(tmp_path / "jobs.kafka"))
    run_cli(settings, "jobs", "--until-end")

    first = make_build(settings, tmp_path)
    assert "rules changed" not in first
    assert set(mart_jobs(pg)) == {"j1", "j2", "j3"}

    # The problem: an incremental build under the new rule leaves the rows staged under the old one alone
    # (only the range test, now checking against the new bound, notices).
    plain = run_dbt(settings, tmp_path, "build", "--vars", "{" + LOWER_MAX + "}", check=False)
    assert plain.returncode != 0 and "accepted_range_stg_kafka__job_events_revenue" in plain.stdout
    assert staged(pg)["j3"] is None and "j3" in mart_jobs(pg)

    # make build compares with the last successful make build, names what the rule touches and rebuilds it.
    changed = make_build(settings, tmp_path, f"EXTRA_VARS={LOWER_MAX}")
    notice = next(line for line in changed.splitlines() if line.startswith("rules changed"))
    assert "stg_kafka__job_events" in notice and "stg_kafka__jobs" in notice and " jobs " in notice
    assert staged(pg) == {"j1": None, "j2": None, "j3": "revenue_out_of_range"}
    assert mart_jobs(pg) == {"j1": Decimal("100.00"), "j2": Decimal("3000.00")}
    answer = pg.execute("select user_id, total_revenue from marts.non_local_top_revenue").fetchall()
    assert answer == [("u1", Decimal("3100.00"))]
    quarantined = pg.execute("select raw_record_id, quarantine_reason from staging.quarantined_records").fetchall()
    assert [reason for _, reason in quarantined] == ["revenue_out_of_range"]

    # The new rule is now the last successful one: the next build is an ordinary incremental one.
    again = make_build(settings, tmp_path, f"EXTRA_VARS={LOWER_MAX}")
    assert "rules changed" not in again
    assert mart_jobs(pg) == {"j1": Decimal("100.00"), "j2": Decimal("3000.00")}
