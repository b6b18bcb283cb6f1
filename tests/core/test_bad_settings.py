"""Every configuration mistake of issue 12 is one line on stderr, exit code 2, no traceback, and quick.

Each case runs the command that touches every setting (`jobs --until-end`: settings, sources.yml, the database,
the broker) in its own process, as a user would. The time bound is a bound on a hang (the SSL case used to wait
for minutes and ignore SIGTERM, a missing database was retried for two minutes), not a performance figure: it
is 5 s beyond what starting the CLI costs on this machine at that moment (`python -m extract --help`, measured
just before), so a busy shared machine's slow start-up is not mistaken for a hang."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from extract.core.settings import Settings, SettingsError
from extract.core.sources_config import DEFAULT_SOURCES_FILE
from tests.conftest import ROOT, env_for, run_cli
from tests.support.startup import startup_seconds

HANG_BOUND_S = 5.0

SASL_CREDENTIALS = {"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}

ALIAS_BOMB = """version: 1
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
sources: *h
"""


def _sources_file(tmp_path: Path, content: bytes) -> dict[str, str]:
    path = tmp_path / "sources.yml"
    path.write_bytes(content)
    return {"ELT_SOURCES_FILE": str(path)}


def _duplicate_jobs() -> bytes:
    text = DEFAULT_SOURCES_FILE.read_text()
    start = text.index("  jobs:")
    end = text.index("\n  ", text.index("\n", start) + 1)
    while text[end + 3] == " ":  # the rest of the jobs entry (deeper indentation)
        end = text.index("\n  ", end + 1)
    return (text[:end] + "\n" + text[start:end] + text[end:]).encode()


# (case id, environment, what the one line must mention); one case per line of issue 12, item 6.
CASES = [
    ("pgport-not-a-number", {"PGPORT": "abc"}, "PGPORT"),
    ("pgport-out-of-range", {"PGPORT": "70000"}, "PGPORT"),
    ("max-poll-records-zero", {"EXTRACT_MAX_POLL_RECORDS": "0"}, "EXTRACT_MAX_POLL_RECORDS"),
    ("retry-budget-nan", {"EXTRACT_DB_RETRY_BUDGET_S": "nan"}, "EXTRACT_DB_RETRY_BUDGET_S"),
    ("retry-budget-inf", {"EXTRACT_DB_RETRY_BUDGET_S": "inf"}, "EXTRACT_DB_RETRY_BUDGET_S"),
    ("poll-timeout-negative", {"EXTRACT_POLL_TIMEOUT_MS": "-1"}, "EXTRACT_POLL_TIMEOUT_MS"),
    ("group-stall-zero", {"EXTRACT_GROUP_STALL_S": "0"}, "EXTRACT_GROUP_STALL_S"),
    ("bootstrap-without-port", {"KAFKA_BOOTSTRAP_SERVERS": "localhost"}, "KAFKA_BOOTSTRAP_SERVERS"),
    ("unknown-protocol", {"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
    ("lower-case-sasl-ssl-without-credentials", {"KAFKA_SECURITY_PROTOCOL": "sasl_ssl"}, "KAFKA_SASL_USERNAME"),
    (
        "sasl-without-password",
        {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", **SASL_CREDENTIALS, "KAFKA_SASL_PASSWORD": ""},
        "KAFKA_SASL_PASSWORD",
    ),
    (
        "unknown-sasl-mechanism",
        {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", **SASL_CREDENTIALS, "KAFKA_SASL_MECHANISM": "MD5"},
        "KAFKA_SASL_MECHANISM",
    ),
    ("credentials-without-sasl", SASL_CREDENTIALS, "does not use SASL"),
    ("ssl-against-a-plaintext-broker", {"KAFKA_SECURITY_PROTOCOL": "SSL"}, "answers Kafka requests in plaintext"),
    (
        "lower-case-sasl-ssl-against-a-plaintext-broker",
        {"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", **SASL_CREDENTIALS},
        "KAFKA_SECURITY_PROTOCOL=SASL_SSL",
    ),
    ("database-missing", {"PGDATABASE": "elt_no_such_database"}, "'elt_no_such_database' does not exist"),
    ("role-missing", {"PGUSER": "elt_no_such_role"}, "role 'elt_no_such_role' does not exist"),
    ("sources-not-utf8", "not-utf8", "not UTF-8"),
    ("sources-alias-bomb", "alias-bomb", "not allowed"),
    ("sources-duplicate-key", "duplicate", "duplicate key 'jobs'"),
    ("sources-missing", {"ELT_SOURCES_FILE": "/nonexistent/sources.yml"}, "sources file not found"),
]


def _environment(case: str | dict[str, str], tmp_path: Path) -> dict[str, str]:
    if case == "not-utf8":
        return _sources_file(tmp_path, DEFAULT_SOURCES_FILE.read_bytes() + b"# caf\xe9 au lait\n")
    if case == "alias-bomb":
        return _sources_file(tmp_path, ALIAS_BOMB.encode())
    if case == "duplicate":
        return _sources_file(tmp_path, _duplicate_jobs())
    assert isinstance(case, dict)
    return case


@pytest.mark.parametrize(("environment", "mention"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_bad_setting_is_one_line_and_exit_code_2(
    settings: Settings, tmp_path: Path, environment: str | dict[str, str], mention: str
) -> None:
    startup = startup_seconds()
    began = time.monotonic()
    result = run_cli(settings, "jobs", "--until-end", check=False, env=_environment(environment, tmp_path))
    seconds = time.monotonic() - began
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    assert mention in lines[0], lines[0]
    assert seconds - startup < HANG_BOUND_S, f"{seconds:.1f}s (start-up {startup:.1f}s): {lines[0]}"


def test_the_duplicate_fixture_really_duplicates_jobs() -> None:
    """The duplicate-key case must hold two `jobs:` keys under `sources:`, or it proves nothing."""
    text = _duplicate_jobs().decode()
    assert text.count("\n  jobs:") == 2 and "\n  payments:" in text


def test_protocol_case_is_normalised_and_sasl_keeps_its_credentials() -> None:
    settings = Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", **SASL_CREDENTIALS}, use_state=False)
    config = settings.kafka_client_config()
    # kafka-python compares the protocol case-sensitively: a lower-case one would be PLAINTEXT without SASL.
    assert config["security_protocol"] == "SASL_SSL"
    assert (config["sasl_mechanism"], config["sasl_plain_username"]) == ("PLAIN", "u")
    with pytest.raises(SettingsError, match="KAFKA_SECURITY_PROTOCOL"):
        Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "plaintext2"}, use_state=False)


def test_sigterm_while_connecting_to_a_broker_that_never_answers_stops_at_once(settings: Settings) -> None:
    """A listener that accepts connections and never answers (a hung broker, or TLS asked of one that waits for
    a plaintext request): only the signal can end this run early, with a one-minute connect timeout."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        env = env_for(settings) | {
            "KAFKA_BOOTSTRAP_SERVERS": address,
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_CONNECT_TIMEOUT_S": "60",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "extract", "jobs", "--until-end"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(3.0)  # past the imports, into the connection the listener never answers
            assert process.poll() is None, process.communicate()
            process.send_signal(signal.SIGTERM)
            began = time.monotonic()
            _, stderr = process.communicate(timeout=30)
            seconds = time.monotonic() - began
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode != 0 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines() == ["error: stopped while connecting to Kafka"], stderr
    assert seconds < HANG_BOUND_S, seconds


def test_permission_denied_is_one_line_and_exit_code_2_at_once(settings: Settings, pg: psycopg.Connection) -> None:
    """A role that may not connect to the database: refused by the server, so never retried."""
    role = f"elt_noperm_{uuid.uuid4().hex[:8]}"
    startup = startup_seconds()
    pg.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
    pg.execute(sql.SQL("revoke connect on database {} from public").format(sql.Identifier(settings.pg_database)))
    try:
        began = time.monotonic()
        result = run_cli(settings, "jobs", "--until-end", check=False, env={"PGUSER": role})
        seconds = time.monotonic() - began
    finally:
        pg.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith(f"error: permission denied for user '{role}'"), lines
    assert seconds - startup < HANG_BOUND_S, (seconds, startup)
