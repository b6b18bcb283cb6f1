"""dbt's own tests must be able to fail: broken data makes the right test say so."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from extract.core.settings import Settings
from tests.conftest import run_cli, run_dbt

pytestmark = pytest.mark.slow

USERS = b"""{"USERID": "1", "LOCATION": "LOC_1"}
{"USERID": "2", "LOCATION": "LOC_2"}
"""
JOBS = b"".join(
    [
        b'10|{"JOBIDENTIFIER": "10", "USERID": "1", "JOBDATE": "2024-01-01T10:00:00Z", "JOBSTATUS": "COMPLETED",'
        b' "LOCATION": "LOC_2", "REVENUE": 10, "SERVICENAME": "SERVICE_1"}\n',
        b'11|{"JOBIDENTIFIER": "11", "USERID": "2", "JOBDATE": "2024-01-02T10:00:00Z", "JOBSTATUS": "TELEPORTED",'
        b' "LOCATION": "LOC_1", "REVENUE": 20, "SERVICENAME": "SERVICE_1"}\n',
        b'12|{"JOBIDENTIFIER": "12", "USERID": "2", "JOBDATE": "not a date", "LOCATION": "LOC_1", "REVENUE": 5}\n',
        b"13|{broken json\n",
    ]
)


def results(output: str, status: str) -> set[str]:
    """Names of the tests dbt printed with the given status (PASS, WARN, FAIL, ERROR)."""
    return set(re.findall(rf"\d+ of \d+ {status}(?: \d+)? (\S+)[ .]*\[", output))


def test_broken_data_fails_the_right_test(settings: Settings, pg: psycopg.Connection, tmp_path: Path) -> None:
    (tmp_path / "users.ndjson").write_bytes(USERS)
    (tmp_path / "jobs.kafka").write_bytes(JOBS)
    run_cli(settings, "produce", str(tmp_path / "jobs.kafka"))
    run_cli(settings, "users", str(tmp_path / "users.ndjson"))
    run_cli(settings, "jobs", "--until-end")

    build = run_dbt(settings, tmp_path, "build")
    # An unknown status is data to look at, not a reason to stop the pipeline: a warning naming the test.
    assert any("accepted_values_stg_kafka__jobs_job_status" in name for name in results(build.stdout, "WARN"))
    assert not results(build.stdout, "FAIL")
    assert pg.execute("select count(*) from staging.quarantined_records").fetchone()[0] == 2

    # A row that vanished between raw and staging breaks "raw = staged + quarantined".
    pg.execute(
        "delete from staging.quarantined_records where raw_load_seq = (select min(raw_load_seq)"
        " from staging.quarantined_records where source_name = 'kafka.jobs')"
    )
    broken = run_dbt(settings, tmp_path, "test", "--select", "source:kafka", check=False)
    assert broken.returncode != 0
    failed = results(broken.stdout, "FAIL")
    assert any("raw_equals_staged_plus_quarantined_kafka_jobs" in name for name in failed), broken.stdout[-3000:]

    # A user in the top-revenue mart who is not a known user breaks the relationship test.
    pg.execute("delete from marts.users where user_id = '1'")
    pg.execute("insert into marts.non_local_top_revenue values (9, '1', 'LOC_X', 'LOC_2', 10.00, 1)")
    broken = run_dbt(settings, tmp_path, "test", "--select", "non_local_top_revenue", check=False)
    assert broken.returncode != 0
    failed = results(broken.stdout, "FAIL")
    assert any("relationships_non_local_top_revenue_user_id" in name for name in failed), broken.stdout[-3000:]
