"""Security: least-privilege roles refused outside their scope, hostile inputs never interpolated, and no
credentials in the repository. Real Postgres (trust auth on local TCP, so these are privilege tests, not
password tests) and a real broker."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from extract.core.settings import Settings
from extract.local.roles import GROUPS, LOGIN_USERS, create_roles
from tests.conftest import ROOT, conninfo, env_for, run_cli, run_dbt

LOADER, TRANSFORMER, ANALYST = (LOGIN_USERS[group][0] for group in GROUPS)
# Any value works: the test server trusts local TCP. The roles get one so LOGIN members are created.
PASSWORDS = {LOGIN_USERS[group][1]: uuid.uuid4().hex for group in GROUPS}

HOSTILE_VALUES = [
    "'; drop table marts.jobs; --",
    "x' or '1'='1",
    "LOC_1'); delete from marts.jobs; select ('",
    '"; drop schema marts cascade; --',
    "$fn$; drop table marts.jobs; $fn$",
    "\\'; drop table marts.jobs; --",
    "loc_1 ü ✓ 漢字 🚀 \u202e",
    "%s %(value)s :value $1 ?",
    "a" * 10_000,
]
HOSTILE_LOCATION = "'; drop table marts.jobs; --"
USERS = (
    b'{"USERID": "1", "LOCATION": "LOC_1"}\n'
    b'{"USERID": "2", "LOCATION": "LOC_2"}\n'
    b'{"USERID": "3", "LOCATION": "x\' or \'1\'=\'1"}\n'
)


def job(job_id: str, user: str, location: str, service: str, day: int, revenue: int) -> bytes:  # noqa: PLR0917
    value = {
        "JOBIDENTIFIER": job_id,
        "USERID": user,
        "JOBDATE": f"2024-01-{day:02d}T10:00:00Z",
        "JOBSTATUS": "COMPLETED",
        "LOCATION": location,
        "REVENUE": revenue,
        "SERVICENAME": service,
    }
    return job_id.encode() + b"|" + json.dumps(value, ensure_ascii=False).encode() + b"\n"


JOBS = b"".join(
    [
        job("10", "1", "LOC_2", "SERVICE_1", 1, 100),
        job("11", "2", "LOC_1", "SERVICE_1", 2, 200),
        job("12", "2", HOSTILE_LOCATION, "'; drop table marts.jobs; --", 3, 300),
        job("13", "1", "loc_ü ✓", "service ✓", 4, 400),
    ]
)


def as_user(settings: Settings, user: str) -> Settings:
    return dataclasses.replace(settings, pg_user=user, pg_password="")


def connect_as(settings: Settings, user: str) -> psycopg.Connection:
    return psycopg.connect(
        host=settings.pg_host, port=settings.pg_port, user=user, dbname=settings.pg_database, autocommit=True
    )


def refused(conn: psycopg.Connection, statement: str) -> str:
    """The statement fails with insufficient_privilege (42501); returns the server's message."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
        conn.execute(statement)
    return str(caught.value).splitlines()[0]


@pytest.fixture(scope="module")
def built(pg_server: Settings, broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """One database and topic for the module: roles created, then the whole pipeline run with the least
    privilege at each step (loader lands, transformer builds), twice so dbt has replaced every table."""
    name = f"elt_test_sec_{uuid.uuid4().hex[:10]}"
    settings = dataclasses.replace(
        pg_server,
        pg_database=name,
        kafka_bootstrap_servers=broker,
        kafka_topic=f"jobs_{name}",
        kafka_group_id=f"group_{name}",
    )
    with psycopg.connect(**conninfo(pg_server, "postgres"), autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        tmp = tmp_path_factory.mktemp("sec")
        (tmp / "users.ndjson").write_bytes(USERS)
        (tmp / "jobs.kafka").write_bytes(JOBS)
        assert create_roles(settings, PASSWORDS) == [LOADER, TRANSFORMER, ANALYST]
        run_cli(settings, "produce", str(tmp / "jobs.kafka"))
        loader = as_user(settings, LOADER)
        run_cli(loader, "users", str(tmp / "users.ndjson"))
        run_cli(loader, "jobs", "--until-end")
        transformer = as_user(settings, TRANSFORMER)
        run_dbt(transformer, tmp, "build")
        run_dbt(transformer, tmp, "build")
        yield settings
    finally:
        with psycopg.connect(**conninfo(pg_server, "postgres"), autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


# -- roles --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_each_login_user_acts_as_its_group_and_dbt_owns_what_it_builds(built: Settings) -> None:
    for user, group in zip((LOADER, TRANSFORMER, ANALYST), GROUPS, strict=True):
        with connect_as(built, user) as conn:
            assert conn.execute("select current_user").fetchone()[0] == group
    with psycopg.connect(**conninfo(built, built.pg_database), autocommit=True) as admin:
        owners = dict(
            admin.execute(
                "select n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner) from pg_class c"
                " join pg_namespace n on n.oid = c.relnamespace"
                " where n.nspname in ('staging', 'marts') and c.relkind in ('r', 'v')"
            ).fetchall()
        )
        assert set(owners.values()) == {"elt_transformer"}, owners
        assert {"marts.jobs", "marts.users", "marts.non_local_top_revenue", "staging.quarantined_records"} <= set(
            owners
        )
        raw_owners = admin.execute(
            "select distinct pg_get_userbyid(c.relowner) from pg_class c join pg_namespace n"
            " on n.oid = c.relnamespace where n.nspname = 'raw'"
        ).fetchall()
        assert ("elt_loader",) not in raw_owners
        # The loader landed every row; dbt built on them.
        assert admin.execute("select count(*) from raw.jobs").fetchone()[0] == 4
        assert admin.execute("select count(*) from marts.jobs").fetchone()[0] == 4


@pytest.mark.slow
def test_analyst_reads_marts_and_runs_lookups_only(built: Settings) -> None:
    with connect_as(built, ANALYST) as conn:
        # Allowed: the marts, after two rebuilds (dbt swapped every table), and the look-up functions.
        assert conn.execute("select count(*) from marts.jobs").fetchone()[0] == 4
        assert conn.execute("select count(*) from marts.users").fetchone()[0] == 3
        conn.execute("select * from marts.non_local_top_revenue").fetchall()
        assert [r[0] for r in conn.execute("select * from marts.jobs_by_location('loc_1')")] == ["11"]
        assert [r[0] for r in conn.execute("select * from marts.jobs_by_service('service_1')")] == ["11", "10"]

        assert "permission denied for schema raw" in refused(conn, "select * from raw.jobs")
        assert "permission denied for schema raw" in refused(conn, "select * from raw.users")
        assert "permission denied for schema staging" in refused(conn, "select * from staging.quarantined_records")
        assert "permission denied for schema staging" in refused(conn, "select * from staging.stg_kafka__jobs")
        assert "permission denied" in refused(conn, "select staging.parse_timestamp('2024-01-01T00:00:00Z')")
        for statement in (
            "insert into marts.jobs (job_id) values ('x')",
            "update marts.jobs set revenue = 0",
            "delete from marts.users",
            "truncate marts.jobs",
            "drop table marts.jobs",
            "alter table marts.jobs add column x int",
            "create table marts.stolen (x int)",
            "drop function marts.jobs_by_location(text)",
            "create or replace function marts.jobs_by_location(p text) returns int language sql as 'select 1'",
            "create schema sneaky",
        ):
            refused(conn, statement)
    with psycopg.connect(**conninfo(built, built.pg_database), autocommit=True) as admin:
        assert admin.execute("select count(*) from marts.jobs").fetchone()[0] == 4


@pytest.mark.slow
def test_loader_writes_raw_only_and_cannot_drop_alter_or_truncate(built: Settings) -> None:
    with connect_as(built, LOADER) as conn:
        assert conn.execute("select count(*) from raw.jobs").fetchone()[0] == 4
        for statement in (
            "drop table raw.jobs",
            "drop table raw.kafka_offsets",
            "drop schema raw cascade",
            "alter table raw.jobs add column x int",
            "alter table raw.users rename to users_old",
            "alter table raw.jobs disable trigger all",
            "truncate raw.jobs",
            "truncate raw.users cascade",
            "delete from raw.jobs",
            "update raw.jobs set message_value = 'tampered'",
            "update raw.users set line_text = 'tampered'",
            "update raw.kafka_offsets set kafka_partition = 99",
            "update raw.file_loads set file_sha256 = 'x'",
            "create table raw.extra (x int)",
            "create index on raw.jobs (message_key)",
            "create or replace function raw.try_jsonb(value text) returns jsonb language sql as 'select null::jsonb'",
            "drop function raw.try_jsonb(text)",
            "create schema sneaky",
            "select * from marts.jobs",
            "select * from marts.jobs_by_location('LOC_1')",
            "select * from staging.stg_kafka__job_events",
        ):
            refused(conn, statement)
        assert conn.execute("select count(*) from raw.jobs").fetchone()[0] == 4


@pytest.mark.slow
def test_transformer_reads_raw_but_cannot_change_it(built: Settings) -> None:
    with connect_as(built, TRANSFORMER) as conn:
        assert conn.execute("select count(*) from raw.jobs").fetchone()[0] == 4
        for statement in (
            "insert into raw.jobs (kafka_topic, kafka_partition, kafka_offset) values ('t', 0, 999)",
            "update raw.jobs set message_value = 'tampered'",
            "delete from raw.users",
            "truncate raw.jobs",
            "drop table raw.jobs",
            "alter table raw.jobs add column x int",
            "update raw.kafka_offsets set next_offset = 0",
        ):
            refused(conn, statement)


def test_roles_are_idempotent_and_safe_in_parallel(settings: Settings, pg: psycopg.Connection) -> None:
    """Roles are cluster-wide: several `extract roles` at once, over two databases, all succeed."""
    other = dataclasses.replace(settings, pg_database=f"{settings.pg_database}_b")
    env = {**PASSWORDS}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "extract", "roles"],
            env=env_for(target) | env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for target in (settings, other, settings, other, settings)
    ]
    try:
        for process in processes:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            assert f"login users: {LOADER}, {TRANSFORMER}, {ANALYST}" in out
        granted = pg.execute(
            "select has_table_privilege('elt_loader', 'raw.jobs', 'insert'),"
            " has_table_privilege('elt_loader', 'raw.jobs', 'delete'),"
            " has_schema_privilege('elt_analyst', 'marts', 'usage'),"
            " has_schema_privilege('elt_analyst', 'raw', 'usage')"
        ).fetchone()
        assert granted == (True, False, True, False)
    finally:
        with psycopg.connect(**conninfo(settings, "postgres"), autocommit=True) as admin:
            admin.execute(f'drop database if exists "{other.pg_database}" with (force)')


# -- hostile inputs -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["location", "service"])
def test_hostile_lookup_values_are_data_not_sql(built: Settings, kind: str) -> None:
    with connect_as(built, ANALYST) as conn:
        for value in HOSTILE_VALUES:
            rows = conn.execute(f"select job_id from marts.jobs_by_{kind}(%s)", (value,)).fetchall()
            expected = [("12",)] if value == HOSTILE_LOCATION else []
            assert rows == expected, value
        # The hostile value stored in the data comes back through the function, exactly, as a value.
        unicode_value = "loc_ü ✓" if kind == "location" else "service ✓"
        assert conn.execute(f"select job_id from marts.jobs_by_{kind}(%s)", (unicode_value,)).fetchall() == [("13",)]
    analyst = as_user(built, ANALYST)
    for value in HOSTILE_VALUES:
        result = run_cli(analyst, "lookup", kind, value, check=False)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        expected_jobs = {"12"} if value == HOSTILE_LOCATION else set()
        listed = {line.split(" | ")[0].strip() for line in result.stdout.splitlines()[3:]}
        assert listed == expected_jobs, (value, result.stdout)
    with psycopg.connect(**conninfo(built, built.pg_database), autocommit=True) as admin:
        assert admin.execute("select count(*) from marts.jobs").fetchone()[0] == 4
        assert admin.execute("select location_id from marts.jobs where job_id = '12'").fetchone()[0] == (
            "';DROPTABLEMARTS.JOBS;--"
        )
        assert admin.execute("select location_id from marts.users where user_id = '3'").fetchone()[0] == ("X'OR'1'='1")


HOSTILE_FILE_NAMES = [
    "users with spaces.ndjson",
    'it\'s "quoted".ndjson',
    "users; drop table raw.users; --.ndjson",
    "ünïcödé ✓ 漢字.ndjson",
    "new\nline.ndjson",
    "$(touch pwned) `id`.ndjson",
    "-starts-with-dash.ndjson",
]


def test_hostile_file_names_are_stored_as_data(settings: Settings, pg: psycopg.Connection, tmp_path: Path) -> None:
    for number, name in enumerate(HOSTILE_FILE_NAMES):
        path = tmp_path / name
        path.write_bytes(f'{{"USERID": "{number}", "LOCATION": "LOC_{number}"}}\n'.encode())
        result = run_cli(settings, "users", str(path), check=False)
        assert result.returncode == 0, (name, result.stderr)
        assert "lines landed as load" in result.stdout
    stored = [row[0] for row in pg.execute("select file_name from raw.file_loads order by load_id")]
    assert stored == [str(tmp_path / name) for name in HOSTILE_FILE_NAMES]
    per_line = [row[0] for row in pg.execute("select file_name from raw.users order by load_seq")]
    assert per_line == stored
    assert pg.execute("select count(*) from raw.users").fetchone()[0] == len(HOSTILE_FILE_NAMES)
    assert not (ROOT / "pwned").exists() and not (tmp_path / "pwned").exists()

    missing = tmp_path / "gone;\n'drop table raw.users'.ndjson"
    result = run_cli(settings, "users", str(missing), check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(r"error: .*not found: .*gone; 'drop table raw\.users'\.ndjson$", lines[0]), (
        lines
    )
    assert pg.execute("select count(*) from raw.users").fetchone()[0] == len(HOSTILE_FILE_NAMES)


INVALID_TOPICS = [
    "jobs; drop table raw.jobs; --",
    "jobs'",
    'jobs"',
    "jobs topic",
    "jöbs",
    "jobs\nx",
    "jobs\n",
    "a" * 250,
    "..",
    "jobs/../x",
]


@pytest.mark.parametrize("command", [("produce", "FILE"), ("jobs", "--until-end")])
def test_invalid_topic_names_are_refused_in_one_line(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path, command: tuple[str, str]
) -> None:
    path = tmp_path / "jobs.kafka"
    path.write_bytes(b'1|{"JOBIDENTIFIER": "1"}\n')
    args = [arg.replace("FILE", str(path)) for arg in command]
    for topic in INVALID_TOPICS:
        result = run_cli(dataclasses.replace(settings, kafka_topic=topic), *args, check=False)
        assert result.returncode == 2, (topic, result.stderr)  # sources.yml's topic: a configuration error
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (topic, result.stderr)
        assert re.fullmatch(r"error: .*'topic' .+ is not a valid Kafka topic name", lines[0]), lines[0]
    assert pg.execute("select to_regclass('raw.jobs')").fetchone()[0] is None


def test_an_odd_but_valid_topic_name_lands_exactly(settings: Settings, pg: psycopg.Connection, tmp_path: Path) -> None:
    odd = dataclasses.replace(settings, kafka_topic=f"{settings.kafka_topic}.v1-Jobs_X")
    path = tmp_path / "jobs.kafka"
    path.write_bytes(b'1|{"JOBIDENTIFIER": "1"}\n2|{"JOBIDENTIFIER": "2"}\n')
    run_cli(odd, "produce", str(path))
    run_cli(odd, "jobs", "--until-end")
    assert pg.execute("select distinct kafka_topic, count(*) from raw.jobs group by 1").fetchall() == [
        (odd.kafka_topic, 2)
    ]


# -- credentials ------------------------------------------------------------------------------------------


def test_kafka_security_settings_pass_through_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "b1:9093,b2:9093",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "pipeline",
            "KAFKA_SASL_PASSWORD": "s3cret",
            "KAFKA_SSL_CAFILE": "/etc/jobs-elt/certs/ca.pem",
        }
    )
    assert settings.kafka_client_config() == {
        "bootstrap_servers": ["b1:9093", "b2:9093"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "pipeline",
        "sasl_plain_password": "s3cret",
        "ssl_cafile": "/etc/jobs-elt/certs/ca.pem",
    }
    # Secrets stay out of reprs (logs, tracebacks).
    assert "s3cret" not in repr(settings)
    plain = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "b1:9092"}).kafka_client_config()
    assert plain == {"bootstrap_servers": ["b1:9092"], "security_protocol": "PLAINTEXT"}


def test_no_credentials_are_committed() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert ".env" not in tracked
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
    assert ignored.returncode == 0, ".env must be gitignored"

    # Every secret in the example is empty or an obvious placeholder.
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    secrets = {name: value for name, value in example.items() if re.search("PASSWORD|SECRET|TOKEN", name)}
    assert secrets and all(value in {"", "change-me"} for value in secrets.values()), secrets

    # Compose takes every secret from the environment (.env), never from a literal.
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    found = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if re.search("PASSWORD|SECRET|TOKEN", str(key)) and isinstance(value, str):
                    found.append((key, value))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(compose)
    assert found
    for key, value in found:
        assert re.fullmatch(r"\$\{[A-Z_]+(:?[-?].*)?\}", value), (key, value)
        assert not re.search(r":-\S", value) or value.endswith(":-}"), (key, value)


def test_the_roles_command_is_wired_into_make_and_compose() -> None:
    assert re.search(r"^roles:.*\n\t\$\(PY\) -m extract roles$", (ROOT / "Makefile").read_text(), re.M)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["db-init"]["command"] == ["python", "-m", "extract", "roles"]
    for name, user in (
        ("extractor", LOADER),
        ("files-loader", LOADER),
        ("dbt", TRANSFORMER),
        ("scheduler", TRANSFORMER),
    ):
        service = services[name]
        assert service["environment"]["PGUSER"] == user
        assert service["depends_on"]["db-init"] == {"condition": "service_completed_successfully"}
