"""Everywhere a user can land by mistake, the CLI says what is wrong and what to do, in one line (issue 14)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from extract.core.settings import Settings
from extract.local.embedded import free_port
from tests.conftest import run_cli
from tests.support.startup import startup_seconds

# A bound on a silent wait (a dead broker used to be 30 s of nothing), not a performance figure: beyond what
# starting the CLI costs at that moment, so a busy shared machine's slow start-up is not taken for a wait.
DEAD_BROKER_BOUND_S = 10.0


def one_line(settings: Settings, *args: str, env: dict[str, str] | None = None) -> str:
    result = run_cli(settings, *args, check=False, env=env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr and "[SQL:" not in result.stderr, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize("command", [("answer",), ("lookup", "location", "LOC_1"), ("report", "--out", "OUT")])
def test_queries_before_a_build_say_run_make_build(
    settings: Settings, tmp_path: Path, command: tuple[str, ...]
) -> None:
    args = [str(tmp_path / "report.html") if arg == "OUT" else arg for arg in command]
    line = one_line(settings, *args)
    assert "run `make build` first" in line and settings.pg_database in line, line


def test_a_missing_database_is_named_with_the_variable(settings: Settings) -> None:
    line = one_line(settings, "answer", env={"PGDATABASE": "elt_missing_db"})
    assert "'elt_missing_db' does not exist" in line and "PGDATABASE" in line, line


def test_a_refused_login_names_the_server_and_the_user(settings: Settings) -> None:
    line = one_line(settings, "answer", env={"PGUSER": "elt_nobody"})
    assert f"login refused at {settings.pg_host}:{settings.pg_port}" in line and "'elt_nobody'" in line, line


def test_no_database_server_names_the_address(settings: Settings) -> None:
    port = free_port()
    line = one_line(settings, "answer", env={"PGPORT": str(port)})
    assert f"cannot connect to PostgreSQL at {settings.pg_host}:{port}" in line and "PGPORT" in line, line


@pytest.mark.parametrize(
    "command", [("jobs", "--until-end"), ("run", "jobs", "payments", "--until-end"), ("produce", "FILE")]
)
def test_a_dead_broker_is_said_quickly_with_its_address(
    settings: Settings, tmp_path: Path, command: tuple[str, ...]
) -> None:
    path = tmp_path / "jobs.kafka"
    path.write_bytes(b'1|{"JOBIDENTIFIER": "1"}\n')
    address = f"127.0.0.1:{free_port()}"
    args = [str(path) if arg == "FILE" else arg for arg in command]
    startup = startup_seconds()
    began = time.monotonic()
    line = one_line(settings, *args, env={"KAFKA_BOOTSTRAP_SERVERS": address})
    seconds = time.monotonic() - began
    assert f"cannot reach Kafka at {address}" in line, line
    assert seconds - startup < DEAD_BROKER_BOUND_S, (seconds, startup)


@pytest.mark.parametrize("command", ["users", "produce"])
def test_a_missing_file_is_named(settings: Settings, tmp_path: Path, command: str) -> None:
    missing = tmp_path / "missing.data"
    assert one_line(settings, command, str(missing)) == f"error: file not found: {missing}"
