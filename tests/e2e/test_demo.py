"""`python -m extract demo` is quiet: one line per phase, the build's warnings one line each with what they
mean, then the answer; dbt's full output goes to a log file. And it refuses a database it did not create."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from extract.core.settings import Settings
from extract.demo import summarise_run_results
from tests.conftest import ROOT, env_for

PHASES = ["up", "reset", "generate", "produce", "extract", "build"]


def test_run_results_become_one_line_per_warning_or_failure(tmp_path: Path) -> None:
    results = [
        {"unique_id": "model.jobs_elt.stg_kafka__jobs", "status": "success"},
        {"unique_id": "test.jobs_elt.not_null_jobs_job_id.abc", "status": "pass", "failures": 0},
        {"unique_id": "test.jobs_elt.relationships_jobs_user_id__user_id__ref_users_.1", "status": "warn",
         "failures": 2940, "message": "Got 2940 results, configured to warn if != 0"},
        {"unique_id": "test.jobs_elt.unique_jobs_job_id.2", "status": "fail", "failures": 3,
         "message": "Got 3 results, configured to fail if != 0"},
        {"unique_id": "model.jobs_elt.marts_jobs", "status": "skipped"},
        {"unique_id": "exposure.jobs_elt.case_study_top_non_local_revenue", "status": "no-op"},
    ]  # fmt: skip
    (tmp_path / "run_results.json").write_text(json.dumps({"results": results}))

    outcome = summarise_run_results(tmp_path, ok=False)

    assert outcome.passed == 2
    assert outcome.lines == [
        "  warning: 2,940 jobs (relationships_jobs_user_id__user_id__ref_users_): their user is not in the users"
        " file (the generator makes such orphans on purpose); they stay in marts.jobs with has_known_user ="
        " false and never count as non-local",
        "  error: unique_jobs_job_id (3 rows): Got 3 results, configured to fail if != 0",
    ]


def test_a_build_that_wrote_no_results_says_so(tmp_path: Path) -> None:
    assert summarise_run_results(tmp_path, ok=False).lines == ["dbt build failed before it wrote run_results.json"]


def _demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extract", "demo", "--users", "300", "--jobs", "3000", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.mark.slow
def test_the_demo_prints_one_line_per_phase_then_the_answer(settings: Settings, tmp_path: Path) -> None:
    env = env_for(settings) | {
        "ELT_STATE_DIR": str(tmp_path / "state"),
        "DBT_TARGET_PATH": str(tmp_path / "dbt-target"),
        "DBT_LOG_PATH": str(tmp_path / "dbt-logs"),
    }
    out = ["--out", str(tmp_path / "data")]

    # The test's database was not created by `up`: the demo leaves it alone and says how to override.
    refused = _demo(env, *out)
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0 and "--adopt" in refused.stderr, refused.stderr
    assert not (tmp_path / "data").exists(), "nothing may run after the refusal"

    result = _demo(env, *out, "--adopt")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[: len(PHASES)]] == PHASES
    assert all(line.rstrip().endswith(" s)") for line in lines[: len(PHASES)])
    assert "3,000 job events" in lines[2] and "3,000 messages to" in lines[3]
    assert any(line.startswith("Top non-local users by revenue at LOC_1294") for line in lines)
    assert lines[-1].startswith("done in ")
    # Quiet: no dbt progress lines and no log lines; dbt's whole output is in the log file instead.
    assert not any(" START " in line or " PASS " in line for line in lines)
    assert result.stderr.strip() == ""
    log = (tmp_path / "state" / "logs" / "dbt-build.log").read_text()
    assert "Completed successfully" in log or "Finished running" in log
    # The build's manifest is the state the next `make build` compares with (rule changes after the demo).
    saved = Path(env["DBT_STATE"]) / "manifest.json"
    assert saved.read_bytes() == (tmp_path / "dbt-target" / "manifest.json").read_bytes()
    # Every warning line says what it means, one line each.
    assert all(": " in line for line in lines if line.startswith("  warning:"))
