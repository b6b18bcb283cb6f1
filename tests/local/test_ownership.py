"""The demo touches only what it owns: `reset` acts only on a database `up` created (or one adopted with
--adopt), a refused login is an error naming server and user (never a fallback to the embedded server), and
`down` stops every server `up` started, whatever the sequence of calls."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from extract.core.settings import Settings
from extract.local import embedded
from extract.local.reset import OWNED_MARKER
from tests.conftest import ROOT, conninfo, env_for, run_cli


def _marker(settings: Settings, database: str) -> str | None:
    with psycopg.connect(**conninfo(settings, "postgres")) as conn:
        row = conn.execute(
            "select shobj_description(oid, 'pg_database') from pg_database where datname = %s", (database,)
        ).fetchone()
    return row[0] if row else None


def _has_schema(settings: Settings, schema: str) -> bool:
    with psycopg.connect(**conninfo(settings, settings.pg_database)) as conn:
        return conn.execute("select 1 from pg_namespace where nspname = %s", (schema,)).fetchone() is not None


def test_reset_refuses_a_database_the_project_did_not_create(settings: Settings) -> None:
    with psycopg.connect(**conninfo(settings, settings.pg_database), autocommit=True) as conn:
        conn.execute("create schema raw; create table raw.precious (x int)")

    refused = run_cli(settings, "reset", "--yes", check=False)

    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert settings.pg_database in lines[0]
    assert "was not created by this project" in lines[0]
    assert "--adopt" in lines[0]
    assert _has_schema(settings, "raw"), "a refused reset must leave the database as it was"

    adopted = run_cli(settings, "reset", "--yes", "--adopt")
    assert adopted.returncode == 0
    assert not _has_schema(settings, "raw")
    assert _marker(settings, settings.pg_database) == OWNED_MARKER
    # Adopted once, the database is the project's: a plain reset works from now on.
    assert run_cli(settings, "reset", "--yes").returncode == 0


# -- up / down ---------------------------------------------------------------------------------------


@pytest.fixture
def up_env(settings: Settings, pg_server: Settings) -> Iterator[dict[str, str]]:
    """The environment of `python -m extract up` against the test's server, its own state directory, no broker
    configured (so `up` starts a Tansu), and a database that does not exist yet (so `up` creates it).
    The state directory lives outside pytest's base temp directory, which pytest may reset to mode 0700,
    locking the embedded server's unprivileged user out of its data."""
    state = Path(tempfile.mkdtemp(prefix="elt-up-state-"))
    state.chmod(0o711)
    env = env_for(settings)
    env.pop("KAFKA_BOOTSTRAP_SERVERS")
    env["ELT_STATE_DIR"] = str(state)
    env["PGDATABASE"] = f"elt_up_{uuid.uuid4().hex[:10]}"
    yield env
    _extract(env, "down", check=False)  # a failing test must not leave servers behind
    with psycopg.connect(**conninfo(pg_server, "postgres"), autocommit=True) as conn:
        conn.execute(f'drop database if exists "{env["PGDATABASE"]}" with (force)')
    shutil.rmtree(state, ignore_errors=True)


def _extract(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "extract", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"extract {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def _state(env: dict[str, str]) -> dict[str, str]:
    path = Path(env["ELT_STATE_DIR"]) / "services.env"
    if not path.exists():
        return {}
    pairs = (line.removeprefix("export ").split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return dict(pairs)


def _ledger(env: dict[str, str]) -> list[tuple[str, str]]:
    path = Path(env["ELT_STATE_DIR"]) / "started"
    return [tuple(line.split(" ", 1)) for line in path.read_text().splitlines()] if path.exists() else []


def _alive(pid: int) -> bool:
    # `up` runs in a subprocess, so its broker is re-parented and reaped by init: no zombie to mistake for alive.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_creates_and_marks_its_database_and_up_up_down_stops_the_one_broker(
    settings: Settings, up_env: dict[str, str]
) -> None:
    _extract(up_env, "up")
    first = int(_state(up_env)["TANSU_PID"])
    _extract(up_env, "up")
    assert int(_state(up_env)["TANSU_PID"]) == first, "a second up reuses the running broker"
    assert _marker(settings, up_env["PGDATABASE"]) == OWNED_MARKER
    assert _ledger(up_env) == [("tansu", str(first))]

    down = _extract(up_env, "down")

    assert f"pid {first}" in down.stdout
    assert not _alive(first)
    assert _ledger(up_env) == [] and _state(up_env) == {}
    assert "nothing to stop" in _extract(up_env, "down").stdout


def test_down_stops_a_broker_up_no_longer_uses(settings: Settings, up_env: dict[str, str]) -> None:
    """up (Tansu started), then up with KAFKA_BOOTSTRAP_SERVERS pointing elsewhere, then down."""
    _extract(up_env, "up")
    started = int(_state(up_env)["TANSU_PID"])
    _extract(up_env | {"KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers}, "up")
    assert "TANSU_PID" not in _state(up_env)

    _extract(up_env, "down")

    assert not _alive(started), "the broker the first up started must not outlive down"
    assert embedded.port_open(*settings.kafka_bootstrap_servers.split(":")), "a broker up did not start stays"


@pytest.mark.slow
def test_up_embedded_then_a_server_answering_then_down_stops_both(settings: Settings, up_env: dict[str, str]) -> None:
    """up with nothing at PGHOST:PGPORT (the embedded server starts), then up with a server answering there,
    then down: the embedded server and the broker are stopped although the last up used neither server."""
    nothing_there = up_env | {"PGHOST": "127.0.0.1", "PGPORT": str(embedded.free_port())}
    _extract(nothing_there, "up")
    embedded_port = int(_state(up_env)["EMBEDDED_PGPORT"])
    assert embedded.port_open("127.0.0.1", embedded_port)
    # The embedded server is the project's own, and so is the database `up` created in it.
    embedded_settings = Settings.from_env(
        {"PGHOST": "127.0.0.1", "PGPORT": str(embedded_port), "PGUSER": "postgres"}, use_state=False
    )
    assert _marker(embedded_settings, up_env["PGDATABASE"]) == OWNED_MARKER

    _extract(up_env, "up")  # the test's server answers at PGHOST:PGPORT now
    assert "EMBEDDED_PGPORT" not in _state(up_env)

    down = _extract(up_env, "down")

    assert "embedded PostgreSQL" in down.stdout and "Tansu" in down.stdout
    assert not embedded.port_open("127.0.0.1", embedded_port)
    assert not (Path(up_env["ELT_STATE_DIR"]) / "pgdata" / "postmaster.pid").exists()


def test_a_refused_login_is_an_error_naming_server_and_user_never_a_fallback(
    settings: Settings, up_env: dict[str, str]
) -> None:
    wrong = up_env | {"PGUSER": "no_such_user_for_elt"}

    refused = _extract(wrong, "up", check=False)

    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert f"{settings.pg_host}:{settings.pg_port}" in lines[0]
    assert "'no_such_user_for_elt'" in lines[0]
    assert "Traceback" not in refused.stderr
    assert not (Path(up_env["ELT_STATE_DIR"]) / "pgdata").exists(), "no embedded server may start instead"
    assert _ledger(up_env) == []
