"""Real services for the tests: a PostgreSQL server (the one at PGHOST:PGPORT when it answers, else an
embedded one) with a fresh database per test, and a Tansu broker with a fresh topic per test."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from extract.core.settings import Settings
from extract.local import embedded

ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT = ROOT / "dbt_project"


def _base_settings() -> Settings:
    # Tests never read the demo's state file: only the environment and the defaults count.
    return Settings.from_env(dict(os.environ), use_state=False)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = _base_settings()
    if embedded.postgres_answers(settings):
        yield settings
        return
    server = embedded.EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "pgdata", embedded.free_port())
    server.init()
    server.start()
    try:
        yield dataclasses.replace(
            settings, pg_host="127.0.0.1", pg_port=server.port, pg_user="postgres", pg_password=""
        )
    finally:
        server.stop()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = embedded.free_port()
    process = embedded.start_tansu(port, tmp_path_factory.mktemp("tansu") / "tansu.log")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def settings(pg_server: Settings, broker: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings pointing at a brand-new database, a topic and group no other test uses, and a state directory
    of its own (archives, the last build's manifest), never the checkout's .state."""
    name = f"elt_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(**conninfo(pg_server, "postgres"), autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    yield dataclasses.replace(
        pg_server,
        pg_database=name,
        kafka_bootstrap_servers=broker,
        kafka_topic=f"jobs_{name}",
        kafka_group_id=f"group_{name}",
        archive_dir=tmp_path / "state" / "archive",
        dbt_state_dir=tmp_path / "state" / "dbt-last-success",
    )
    with psycopg.connect(**conninfo(pg_server, "postgres"), autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def conninfo(settings: Settings, database: str) -> dict[str, object]:
    return {
        "host": settings.pg_host,
        "port": settings.pg_port,
        "user": settings.pg_user,
        "password": settings.pg_password or None,
        "dbname": database,
    }


def env_for(settings: Settings) -> dict[str, str]:
    """The process environment that makes the CLI and dbt talk to the test's embedded."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PG", "KAFKA_"))}
    env.update(settings.dbt_env())
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "KAFKA_TOPIC": settings.kafka_topic,
            # sources.yml's other topic, per test too, so `extract run` never reads another test's payments
            "KAFKA_PAYMENTS_TOPIC": f"{settings.kafka_topic}_payments",
            "KAFKA_GROUP_ID": settings.kafka_group_id,
            # the settings fixture's own state directory (both paths sit in it)
            "ELT_STATE_DIR": str(settings.archive_dir.parent),
            "ELT_ARCHIVE_DIR": str(settings.archive_dir),
            "DBT_STATE": str(settings.dbt_state_dir),
        }
    )
    if settings.sources_file:
        env["ELT_SOURCES_FILE"] = str(settings.sources_file)
    return env


def run_cli(
    settings: Settings, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "extract", *args],
        env=env_for(settings) | (env or {}),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"extract {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def run_dbt(settings: Settings, tmp_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """dbt in its own process, as a user runs it, writing its artefacts under tmp_path."""
    env = env_for(settings) | {
        "DBT_PROFILES_DIR": str(DBT_PROJECT),
        "DBT_LOG_PATH": str(tmp_path / "dbt-logs"),
        "DBT_TARGET_PATH": str(tmp_path / "dbt-target"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), *args, "--project-dir", str(DBT_PROJECT)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dbt {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-6000:]}")
    return result


@pytest.fixture
def pg(settings: Settings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(**conninfo(settings, settings.pg_database), autocommit=True) as conn:
        yield conn
