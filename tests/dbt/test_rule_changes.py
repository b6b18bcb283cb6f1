"""Rule changes reach old rows: after `max_revenue` changes, the next `make build` re-judges the rows staged
under the old rule (dbt's state comparison against the last successful build), where a plain incremental
build would leave them as they were; so does the service's next build, even one new rows trigger, and only
a successful build moves the state it compares with."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
import threading
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from prometheus_client import generate_latest

from extract.core.settings import Settings
from extract.operations.build_trigger import selection
from extract.operations.service import DbtScheduler, Metrics, ServiceSettings
from tests.conftest import DBT_PROJECT, ROOT, env_for, run_cli, run_dbt
from tests.support.ops_helpers import metric

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


def saved_max_revenue(state: Path) -> object:
    """The max_revenue the saved manifest's job events were judged by (their meta.rule_vars)."""
    nodes = json.loads((state / "manifest.json").read_text())["nodes"]
    return nodes["model.jobs_elt.stg_kafka__job_events"]["config"]["meta"]["rule_vars"]["max_revenue"]


def test_the_service_rebuilds_after_a_rule_change_and_keeps_the_state_of_its_last_success(
    settings: Settings,
    pg: psycopg.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A deployment changes a rule by changing the project: here a copy the test may edit.
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs"))
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "dbt-target"))
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "dbt-logs"))
    monkeypatch.delenv("DBT_PROFILES_DIR", raising=False)
    state = tmp_path / "state"
    own = dataclasses.replace(settings, dbt_state_dir=state)
    metrics = Metrics()
    scheduler = DbtScheduler(own, ServiceSettings(dbt_project_dir=project), metrics, threading.Event())
    new_jobs = selection([settings.sources().get("jobs")])  # what the service builds when new jobs land

    def builds(outcome: str) -> float | None:
        return metric(generate_latest(metrics.registry).decode(), f'extract_dbt_builds_total{{outcome="{outcome}"}}')

    def rule_changes() -> list[object]:
        return [getattr(r, "fields", {}).get("models") for r in caplog.records if "rules changed" in r.getMessage()]

    (tmp_path / "users.ndjson").write_text('{"USERID": "u1", "LOCATION": "LOC_9"}\n')
    (tmp_path / "jobs.kafka").write_text(job("j1", 100) + job("j2", 3000) + job("j3", 6000))
    run_cli(settings, "users", str(tmp_path / "users.ndjson"))
    run_cli(settings, "produce", str(tmp_path / "jobs.kafka"))
    run_cli(settings, "jobs", "--until-end")
    caplog.set_level(logging.INFO, logger="extract.operations.service")

    assert scheduler.build_once()  # the first full build: nothing to compare with, its manifest saved
    assert set(mart_jobs(pg)) == {"j1", "j2", "j3"} and saved_max_revenue(state) == 1_000_000

    # The new rule, deployed with a mistake (a test that fails), while a new job lands.
    yml = project / "dbt_project.yml"
    yml.write_text(yml.read_text().replace("max_revenue: 1000000", "max_revenue: 5000", 1))
    (project / "tests" / "fails_on_purpose.sql").write_text("select 1 as failing_row\n")
    (tmp_path / "more.kafka").write_text(job("j4", 200))
    run_cli(settings, "produce", str(tmp_path / "more.kafka"))
    run_cli(settings, "jobs", "--until-end")
    saved = (state / "manifest.json").read_bytes()
    assert not scheduler.build_once(select=new_jobs)
    assert (state / "manifest.json").read_bytes() == saved, "a failed build must not advance the state"
    assert builds("failure") == 1 and "stg_kafka__job_events" in rule_changes()[-1]

    # Fixed: the build the new rows trigger is the rule change's rebuild, and it advances the state.
    (project / "tests" / "fails_on_purpose.sql").unlink()
    caplog.clear()
    assert scheduler.build_once(select=new_jobs)
    [rebuilt] = rule_changes()
    assert {"stg_kafka__job_events", "stg_kafka__jobs", "jobs"} <= set(rebuilt)
    assert staged(pg) == {"j1": None, "j2": None, "j3": "revenue_out_of_range", "j4": None}
    assert mart_jobs(pg) == {"j1": Decimal("100.00"), "j2": Decimal("3000.00"), "j4": Decimal("200.00")}
    assert saved_max_revenue(state) == 5000 and builds("success") == 2

    # The new rule is the last successful one: the next build is the cheap one again.
    caplog.clear()
    assert scheduler.build_once(select=new_jobs)
    assert rule_changes() == [] and saved_max_revenue(state) == 5000
