"""Scoped builds check the new rows, make audit checks all of history, and builds never overlap.

A build with test_scope: recent (make build) runs each scoped data test on the rows that arrived since its
scope last passed (dbt_project/macros/tests/test_scope.sql); make audit runs every test on every row. So a
row lost or doubled among the new rows fails the next build, and one lost or doubled anywhere in history
fails the audit. Builds go through `python -m extract dbt` (the database's dbt lock): a second build waits,
and the ranges the builds tested follow each other without a gap.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from extract.core.settings import Settings
from extract.operations.dbt_build import steps
from extract.operations.dbt_runner import dbt_lock
from extract.operations.service import BUILD_VARS, DbtScheduler, Metrics, ServiceSettings
from extract.sample_data.jobs import generate_files
from tests.conftest import DBT_PROJECT, ROOT, env_for, run_cli, run_dbt

pytestmark = pytest.mark.slow

USERS, JOBS, SEED = 200, 1500, 5
BUILD = ("build", "--selector", "scheduled_build", "--vars", "{test_scope: recent}")
SCOPED_TESTS = ("test", "--selector", "scheduled_build", "--vars", "{test_scope: recent}")
AUDIT = ("test", "--selector", "audit", "--vars", "{test_scope: all}")
RECONCILIATION = "raw_equals_staged_plus_quarantined_kafka_jobs"


def land_jobs(settings: Settings, data: Path) -> None:
    run_cli(settings, "produce", str(data / "jobs.kafka"))
    run_cli(settings, "run", "--until-end", "jobs")


def reconciliation_failures(result: subprocess.CompletedProcess[str]) -> int:
    """How many rows raw = staged + quarantined for raw.jobs returned ('FAIL 2 ...'), 0 when it passed."""
    for line in result.stdout.splitlines():
        if RECONCILIATION in line and " FAIL " in line:
            return int(line.split(" FAIL ")[1].split()[0])
    return 0


def scope_bound(pg: psycopg.Connection, scope: str = "kafka.jobs") -> int:
    return pg.execute("select tested_to from staging.dbt_test_scopes where scope_name = %s", (scope,)).fetchone()[0]


def new_usable_event(pg: psycopg.Connection, above: int) -> int:
    return pg.execute(
        "select min(load_seq) from staging.stg_kafka__job_events where is_usable and load_seq > %s", (above,)
    ).fetchone()[0]


def lose(pg: psycopg.Connection, load_seq: int) -> None:
    pg.execute("create table if not exists public.lost as table staging.stg_kafka__job_events with no data")
    pg.execute("insert into public.lost select * from staging.stg_kafka__job_events where load_seq = %s", (load_seq,))
    pg.execute("delete from staging.stg_kafka__job_events where load_seq = %s", (load_seq,))


def restore(pg: psycopg.Connection) -> None:
    pg.execute("insert into staging.stg_kafka__job_events select * from public.lost")
    pg.execute("drop table public.lost")


def double(pg: psycopg.Connection, load_seq: int) -> None:
    """The usable staged event also quarantined: accounted for twice."""
    pg.execute(
        "insert into staging.quarantined_records (source_name, raw_load_seq, quarantine_reason, raw_excerpt,"
        " loaded_at) select 'kafka.jobs', load_seq, 'invalid_json', raw_excerpt, loaded_at"
        " from staging.stg_kafka__job_events where load_seq = %s",
        (load_seq,),
    )


def undouble(pg: psycopg.Connection, load_seq: int) -> None:
    pg.execute(
        "delete from staging.quarantined_records where source_name = 'kafka.jobs' and raw_load_seq = %s", (load_seq,)
    )


def lose_mart_rows(pg: psycopg.Connection) -> list[str]:
    """One old job's row lost from marts.jobs, another's from marts.job_payments; returns the two job ids."""
    lost = [one[0] for one in pg.execute("select job_id from marts.job_payments order by job_id limit 2")]
    for table, job_id in zip(("marts.jobs", "marts.job_payments"), lost, strict=True):
        pg.execute(
            f"create table public.lost_{table.split('.')[1]} as select * from {table} where job_id = %s", (job_id,)
        )
        pg.execute(f"delete from {table} where job_id = %s", (job_id,))
    return lost


def restore_mart_rows(pg: psycopg.Connection) -> None:
    for table in ("marts.jobs", "marts.job_payments"):
        backup = f"public.lost_{table.split('.')[1]}"
        pg.execute(f"insert into {table} select * from {backup}")
        pg.execute(f"drop table {backup}")


def last_audit(pg: psycopg.Connection) -> tuple[bool, list[str]]:
    query = "select is_passed, failed_tests from staging.dbt_audits order by ended_at desc limit 1"
    return pg.execute(query).fetchone()


def test_a_row_lost_or_doubled_fails_the_build_when_new_and_the_audit_when_old(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path
) -> None:
    first = generate_files(tmp_path / "first", users=USERS, jobs=JOBS, seed=SEED)
    run_cli(settings, "users", str(first.users_path))
    land_jobs(settings, tmp_path / "first")
    run_dbt(settings, tmp_path, *BUILD)
    run_dbt(settings, tmp_path, *AUDIT)
    assert last_audit(pg) == (True, [])
    bound = scope_bound(pg)
    assert bound == pg.execute("select max(load_seq) from raw.jobs").fetchone()[0]

    # Old rows, below the tested bound: one lost, another doubled, and an old job's row lost from each
    # incremental mart. A scoped build does not read them again; the audit does, and names them.
    old = new_usable_event(pg, 0)
    other_old = new_usable_event(pg, old)
    lose(pg, old)
    double(pg, other_old)
    lose_mart_rows(pg)
    run_dbt(settings, tmp_path, *SCOPED_TESTS)
    audit = run_dbt(settings, tmp_path, *AUDIT, check=False)
    assert audit.returncode != 0
    assert reconciliation_failures(audit) == 2, audit.stdout[-3000:]
    passed, failed = last_audit(pg)
    assert not passed and any(RECONCILIATION in name for name in failed)
    for mart in ("ref_jobs_", "ref_job_payments_"):
        assert any(name.startswith("in_mart_unless_deleted") and name.endswith(mart) for name in failed), failed
    restore_mart_rows(pg)

    # New rows, built but not yet tested (dbt run), then one lost and another doubled: the next build's scoped
    # tests fail on both, and the bound stays where it was until they pass.
    generate_files(tmp_path / "second", users=10, jobs=300, seed=SEED + 1)
    land_jobs(settings, tmp_path / "second")
    run_dbt(settings, tmp_path, "run", "--vars", "{test_scope: recent}")
    new = new_usable_event(pg, bound)
    other_new = new_usable_event(pg, new)
    lose(pg, new)
    double(pg, other_new)
    scoped = run_dbt(settings, tmp_path, *SCOPED_TESTS, check=False)
    assert scoped.returncode != 0
    assert reconciliation_failures(scoped) == 2, scoped.stdout[-3000:]
    assert scope_bound(pg) == bound

    for seq in (other_old, other_new):
        undouble(pg, seq)
    restore(pg)
    run_dbt(settings, tmp_path, *SCOPED_TESTS)
    assert scope_bound(pg) == pg.execute("select max(load_seq) from raw.jobs").fetchone()[0] > bound

    # Repaired, the service's audit passes, and status says so.
    scheduler = DbtScheduler(settings, ServiceSettings(dbt_project_dir=DBT_PROJECT), Metrics(), threading.Event())
    assert scheduler.build_once("audit")
    assert last_audit(pg) == (True, [])
    status = json.loads(run_cli(settings, "status", "--json").stdout)["data_checks"]
    assert status["last_audit"]["is_passed"] and status["last_audit"]["tests_failed"] == 0
    bounds = {scope["scope"]: scope["tested_to"] for scope in status["scoped_tests"]}
    assert bounds["kafka.jobs"] == scope_bound(pg)


def test_the_audit_has_its_own_cadence() -> None:
    settings = Settings.from_env({}, use_state=False)
    assert ServiceSettings.from_env({}).dbt_audit_interval_s == 86400
    hourly = ServiceSettings.from_env({"DBT_AUDIT_INTERVAL_S": "3600"})
    scheduler = DbtScheduler(settings, hourly, Metrics(), threading.Event())
    assert scheduler.audit_due()  # none yet: right after the first build
    scheduler.last_audit_at = time.monotonic()
    assert not scheduler.audit_due()
    scheduler.last_audit_at -= 3600
    assert scheduler.audit_due()
    never = ServiceSettings.from_env({"DBT_AUDIT_INTERVAL_S": "0"})
    assert not DbtScheduler(settings, never, Metrics(), threading.Event()).audit_due()
    audit = scheduler.audit_args()
    assert audit[audit.index("--selector") + 1] == "audit" and audit[audit.index("--vars") + 1] == "{test_scope: all}"
    assert steps([], [], Path()) == [["--selector", "scheduled_build"]] and BUILD_VARS == {"test_scope": "recent"}


def locked_build(settings: Settings, tmp_path: Path, name: str) -> subprocess.Popen[str]:
    env = env_for(settings) | {
        "DBT_PROFILES_DIR": str(DBT_PROJECT),
        "DBT_LOG_PATH": str(tmp_path / f"logs-{name}"),
        "DBT_TARGET_PATH": str(tmp_path / f"target-{name}"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    command = [sys.executable, "-m", "extract", "dbt", "--", *BUILD, "--project-dir", str(DBT_PROJECT)]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_overlapping_builds_wait_for_each_other_and_skip_no_rows(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path
) -> None:
    first = generate_files(tmp_path / "first", users=USERS, jobs=JOBS, seed=SEED)
    run_cli(settings, "users", str(first.users_path))
    land_jobs(settings, tmp_path / "first")
    run_dbt(settings, tmp_path, *BUILD)
    bound = scope_bound(pg)

    # Two builds started while another holds the lock (the service's build, say) both wait...
    with dbt_lock(settings) as held:
        assert held
        builds = [locked_build(settings, tmp_path, name) for name in ("a", "b")]
        generate_files(tmp_path / "second", users=10, jobs=400, seed=SEED + 1)
        land_jobs(settings, tmp_path / "second")
        assert all(build.poll() is None for build in builds)
        assert pg.execute("select count(*) from staging.dbt_tested_ranges").fetchone()[0] == 4  # the first build's
        invocation = pg.execute("select invocation_id from staging.dbt_test_scopes limit 1").fetchone()[0]
    # ...then run one after the other. More rows land while the first of them runs, after it fixed its range.
    wait_for(
        lambda: pg.execute("select invocation_id from staging.dbt_test_scopes limit 1").fetchone()[0] != invocation,
        "a build to start",
    )
    generate_files(tmp_path / "third", users=10, jobs=300, seed=SEED + 2)
    land_jobs(settings, tmp_path / "third")
    outputs = [build.communicate(timeout=600)[0] for build in builds]
    assert [build.returncode for build in builds] == [0, 0], outputs
    assert all("waiting for it to finish" in output and "dbt lock acquired" in output for output in outputs)
    run_dbt(settings, tmp_path, *BUILD)

    ranges = pg.execute(
        "select range_start, range_end from staging.dbt_tested_ranges where scope_name = 'kafka.jobs'"
        " order by tested_at"
    ).fetchall()
    # each build tested from where the previous one stopped up to the raw max at its own start: no gap, no
    # overlap, and every row landed, during a build or not, is in exactly one range
    assert ranges[0] == (0, bound)
    for previous, current in itertools.pairwise(ranges):
        assert current[0] == previous[1] + 1, ranges
    assert len(ranges) >= 3  # the first build, the one that waited first, and at least one after
    assert ranges[-1][1] == pg.execute("select max(load_seq) from raw.jobs").fetchone()[0] == scope_bound(pg)
