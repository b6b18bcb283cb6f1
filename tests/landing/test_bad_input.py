"""Bad input through the real path (produce/extract -> raw -> dbt build): raw keeps every message byte-exact,
staging gives each one the reason docs/data-model.md names (or stages it), the partition keeps flowing, and
whole-input problems end the CLI with one line and exit code 1."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaProducer

from extract.core.settings import Settings
from extract.landing.producer import ensure_topic
from extract.local.embedded import free_port
from tests.conftest import ROOT, env_for, run_cli, run_dbt

GOOD = {
    "JOBIDENTIFIER": "J",
    "USERID": "1",
    "JOBCREATEDATE": "2024-01-01T09:00:00Z",
    "JOBDATE": "2024-01-01T10:00:00Z",
    "JOBSTATUS": "COMPLETED",
    "LOCATION": "LOC_1",
    "REVENUE": 10,
    "SERVICENAME": "SERVICE_1",
}
NEXT_YEAR = datetime.now(UTC).year + 1


def job(job_id: str, **fields: object) -> bytes:
    """A valid job with some fields replaced; a field set to ... is removed."""
    value = {**GOOD, "JOBIDENTIFIER": job_id, **fields}
    return json.dumps({k: v for k, v in value.items() if v is not ...}, ensure_ascii=False).encode()


def raw_json(job_id: str, field: str, literal: str) -> bytes:
    """A valid job whose `field` is the JSON literal given verbatim (for values Python would not write)."""
    return job(job_id, **{field: "@@"}).replace(b'"@@"', literal.encode())


BIG = 3 * 1024 * 1024
# (label, key, value, the quarantine reason staging must give, or None when the event must stage)
MESSAGES: list[tuple[str, bytes | None, bytes | None, str | None]] = [
    ("invalid utf-8", b"m1", b"\xff\xfe" + job("m1"), "value_not_text"),
    ("raw NUL byte", b"m2", job("m2", SERVICENAME="a@@b").replace(b"@@", b"\x00"), "value_not_text"),
    (
        "\\u0000 escape: JSON, but jsonb refuses it",
        b"m3",
        job("m3", SERVICENAME="a\\u0000b").replace(b"\\\\", b"\\"),
        "invalid_json",
    ),
    ("tombstone with a key: a delete, staged", b"m4", None, None),
    ("tombstone with an empty key: nothing to delete", b"", None, "null_value"),
    ("null key", None, job("m5"), None),
    ("empty key", b"", job("m6"), None),
    ("key disagrees with JOBIDENTIFIER", b"other", job("m7"), "key_mismatch"),
    ("key not UTF-8", b"\xfe\xff", job("m8"), "key_mismatch"),
    ("key equals the trimmed JOBIDENTIFIER", b"m9", job(" m9 "), None),
    ("JSON array", b"m10", b"[" + job("m10") + b"]", "json_not_object"),
    ("JSON number", b"m11", b"42", "json_not_object"),
    ("JSON string", b"m12", b'"m12"', "json_not_object"),
    ("JSON null", b"m13", b"null", "json_not_object"),
    ("not JSON", b"m14", b"{JOBIDENTIFIER: m14", "invalid_json"),
    ("truncated JSON", b"m15", job("m15")[:-10], "invalid_json"),
    ("empty value", b"m16", b"", "invalid_json"),
    ("100k-deep array: beyond what jsonb takes", b"m17", b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
    ("number beyond jsonb's range", b"m18", raw_json("m18", "REVENUE", "1e999999"), "invalid_json"),
    ("3 MB unknown field", b"m19", job("m19", NOTES="x" * BIG), None),
    ("3 MB of garbage", b"m20", b"x" * BIG, "invalid_json"),
    ("unknown fields", b"m21", job("m21", EXTRA={"a": [1, 2]}, jobidentifier="lower-case twin"), None),
    # wrong types, field by field
    ("JOBIDENTIFIER object", b"", job({"id": 1}), "missing_job_id"),  # type: ignore[arg-type]
    ("JOBIDENTIFIER fraction", b"", raw_json("x", "JOBIDENTIFIER", "1.5"), "missing_job_id"),
    ("JOBIDENTIFIER blank", b"", job("   "), "missing_job_id"),
    ("JOBIDENTIFIER missing", b"", job(..., JOBIDENTIFIER=...), "missing_job_id"),  # type: ignore[arg-type]
    ("JOBIDENTIFIER integer", b"2301", raw_json("x", "JOBIDENTIFIER", "2301"), None),
    ("USERID list", b"m24", job("m24", USERID=[1]), "missing_user_id"),
    ("USERID boolean", b"m25", job("m25", USERID=True), "missing_user_id"),
    ("LOCATION boolean", b"m26", job("m26", LOCATION=True), "missing_location"),
    ("LOCATION blank", b"m27", job("m27", LOCATION=" \t "), "missing_location"),
    ("REVENUE text", b"m28", job("m28", REVENUE="abc"), "invalid_revenue"),
    ("REVENUE boolean", b"m29", job("m29", REVENUE=True), "invalid_revenue"),
    ("REVENUE object", b"m30", job("m30", REVENUE={"amount": 1}), "invalid_revenue"),
    ("REVENUE null", b"m31", job("m31", REVENUE=None), "missing_revenue"),
    ("REVENUE NaN text", b"m32", job("m32", REVENUE="NaN"), "invalid_revenue"),
    ("REVENUE exponent text", b"m33", job("m33", REVENUE="1e3"), "invalid_revenue"),
    ("REVENUE numeric text with blanks", b"m34", job("m34", REVENUE=" 123.45 "), None),
    ("JOBDATE number", b"m35", job("m35", JOBDATE=123), "invalid_job_date"),
    ("JOBDATE boolean", b"m36", job("m36", JOBDATE=True), "invalid_job_date"),
    ("JOBDATE impossible", b"m37", job("m37", JOBDATE="2024-02-30T10:00:00Z"), "invalid_job_date"),
    ("JOBDATE missing", b"m38", job("m38", JOBDATE=...), "missing_job_date"),
    ("JOBCREATEDATE object", b"m39", job("m39", JOBCREATEDATE={}), "invalid_job_created_date"),
    ("JOBCREATEDATE missing", b"m40", job("m40", JOBCREATEDATE=...), None),
    ("JOBSTATUS and SERVICENAME wrong types", b"m41", job("m41", JOBSTATUS=7.5, SERVICENAME=[]), None),
    # timestamps
    ("JOBDATE far future", b"m42", job("m42", JOBDATE="2099-01-01T00:00:00Z"), "job_date_out_of_range"),
    ("JOBDATE before 1970", b"m43", job("m43", JOBDATE="1969-12-31T23:59:59Z"), "job_date_out_of_range"),
    ("JOBDATE year 1", b"m44", job("m44", JOBDATE="0001-01-01T00:00:00Z"), "job_date_out_of_range"),
    ("JOBDATE epoch start", b"m45", job("m45", JOBDATE="1970-01-01T00:00:00Z"), None),
    ("JOBDATE next year", b"m46", job("m46", JOBDATE=f"{NEXT_YEAR}-06-01 10:00:00"), None),
    ("JOBDATE negative epoch", b"m47", job("m47", JOBDATE=-86400), "invalid_job_date"),
    ("JOBCREATEDATE far future", b"m48", job("m48", JOBCREATEDATE="2999-01-01T00:00:00Z"), None),
    # revenues
    ("REVENUE negative", b"m49", job("m49", REVENUE=-0.01), "revenue_out_of_range"),
    ("REVENUE above the maximum", b"m50", job("m50", REVENUE=1_000_000.01), "revenue_out_of_range"),
    ("REVENUE the maximum", b"m51", job("m51", REVENUE=1_000_000), None),
    ("REVENUE 1e20", b"m52", raw_json("m52", "REVENUE", "1e20"), "revenue_out_of_range"),
    ("REVENUE 1e30", b"m53", raw_json("m53", "REVENUE", "1e30"), "invalid_revenue"),
    ("REVENUE 200 digits", b"m54", raw_json("m54", "REVENUE", "9" * 200), "invalid_revenue"),
    ("REVENUE half a cent", b"m55", job("m55", REVENUE=0.005), None),
    # after all of the above, the partition still flows
    ("the good message at the end", b"last", job("last"), None),
]
STAGED_REVENUE = {"m34": Decimal("123.45"), "m51": Decimal("1000000.00"), "m55": Decimal("0.01")}


def produce_raw(settings: Settings, messages: list[tuple[bytes | None, bytes | None]]) -> None:
    ensure_topic(dataclasses.replace(settings, kafka_topic_partitions=1))
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, max_request_size=16 * 1024 * 1024)
    for key, value in messages:
        producer.send(settings.kafka_topic, key=key, value=value)
    producer.flush()
    producer.close()


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


@pytest.mark.slow
def test_every_bad_message_is_kept_classified_and_the_partition_flows(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path
) -> None:
    produce_raw(settings, [(key, value) for _, key, value, _ in MESSAGES])
    (tmp_path / "users.ndjson").write_bytes(b'{"USERID": "1", "LOCATION": "LOC_9"}\n')
    run_cli(settings, "users", str(tmp_path / "users.ndjson"))
    landed = run_cli(settings, "jobs", "--until-end")
    assert f"landed {len(MESSAGES)} new of {len(MESSAGES)} messages" in landed.stdout

    # Raw: every message, in order, byte-exact, key and value; the partition's offset moved past the last.
    rows = pg.execute(
        "select kafka_offset, coalesce(message_key_bytes, convert_to(message_key, 'UTF8')),"
        " coalesce(message_value_bytes, convert_to(message_value, 'UTF8'))"
        " from raw.jobs where kafka_partition = 0 order by kafka_offset"
    ).fetchall()
    assert [row[0] for row in rows] == list(range(len(MESSAGES)))
    for (label, key, value, _), (_, raw_key, raw_value) in zip(MESSAGES, rows, strict=True):
        assert (raw_key, raw_value) == (key, value), label
    assert pg.execute("select next_offset from raw.kafka_offsets").fetchall() == [(len(MESSAGES),)]

    run_dbt(settings, tmp_path, "build")  # warnings allowed (unknown statuses, say), no error or failure

    # Staging: one precise reason per unusable message, usable ones staged; raw = staged + quarantined.
    reasons = dict(pg.execute("select kafka_offset, quarantine_reason from staging.stg_kafka__job_events").fetchall())
    wrong = {
        label: (expected, reasons[offset])
        for offset, (label, _, _, expected) in enumerate(MESSAGES)
        if reasons[offset] != expected
    }
    assert not wrong, wrong
    quarantined = dict(
        pg.execute(
            "select split_part(raw_record_id, '-', -1)::bigint, quarantine_reason from staging.quarantined_records"
            " where source_name = 'kafka.jobs'"
        ).fetchall()
    )
    assert quarantined == {offset: reason for offset, reason in reasons.items() if reason is not None}

    staged = dict(pg.execute("select job_id, revenue from marts.jobs").fetchall())
    assert "last" in staged, "the good message after all the bad ones must reach the marts"
    assert {job_id: staged[job_id] for job_id in STAGED_REVENUE} == STAGED_REVENUE
    assert staged["m9"] == Decimal("10.00") and "2301" in staged
    status, service = pg.execute("select job_status, service_name from marts.jobs where job_id = 'm41'").fetchone()
    assert (status, service) == (None, None)  # optional fields of the wrong type become null (see README)


@pytest.mark.slow
def test_a_valid_job_with_a_10k_deep_unknown_field_stages(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path
) -> None:
    deep = job("deep", NOTES="@@").replace(b'"@@"', b"[" * 10_000 + b"]" * 10_000)
    produce_raw(settings, [(b"deep", deep), (b"after", job("after"))])
    run_cli(settings, "jobs", "--until-end")
    assert pg.execute("select count(*) from raw.jobs").fetchone()[0] == 2
    run_dbt(settings, tmp_path, "build", "--resource-type", "function", "--resource-type", "model")
    reasons = dict(pg.execute("select message_key, quarantine_reason from staging.stg_kafka__job_events").fetchall())
    assert reasons == {"deep": None, "after": None}


USERS_FILE = [
    # (line bytes, expected reason or None)
    (b'\xef\xbb\xbf{"USERID": "1", "LOCATION": "loc_1"}\r', None),  # BOM + CRLF
    (b'{"USERID": "2", "LOCATION": " loc_2 "}\r', None),
    (b"\r", "blank_line"),
    (b"", "blank_line"),
    (b'{"USERID": "3", "LOCATION": "LOC_\xff"}', "line_not_text"),
    (b'{"USERID": "3", "LOCATION": "LOC_\x00"}', "line_not_text"),
    (b'{"USERID": "3", "LOCATION": "LOC_\\u0000"}', "invalid_json"),
    (b'[{"USERID": "3", "LOCATION": "LOC_3"}]', "json_not_object"),
    (b'{"USERID": true, "LOCATION": "LOC_3"}', "missing_user_id"),
    (b'{"USERID": "3", "LOCATION": {}}', "missing_location"),
    (b'{"USERID": "2", "LOCATION": "LOC_22", "EXTRA": 1}', None),  # duplicate id: the later line wins
    (b'{"USERID": 4, "LOCATION": "LOC_4"}', None),
    (b'{"USERID": "5", "LOC', "invalid_json"),  # truncated last line, no newline
]


@pytest.mark.slow
def test_a_messy_users_file_lands_whole_and_each_line_gets_its_outcome(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "users.ndjson"
    content = b"\n".join(line for line, _ in USERS_FILE)
    path.write_bytes(content)
    assert f"{len(USERS_FILE)} lines landed" in run_cli(settings, "users", str(path)).stdout
    raw = pg.execute(
        "select coalesce(line_bytes, convert_to(line_text, 'UTF8')) from raw.users order by line_number"
    ).fetchall()
    assert [row[0] for row in raw] == [line for line, _ in USERS_FILE]

    run_dbt(settings, tmp_path, "build")  # warnings allowed (unknown statuses, say), no error or failure
    reasons = [
        row[0] for row in pg.execute("select quarantine_reason from staging.stg_files__user_lines order by line_number")
    ]
    assert reasons == [reason for _, reason in USERS_FILE]
    users = dict(pg.execute("select user_id, location_id from marts.users").fetchall())
    assert users == {"1": "LOC_1", "2": "LOC_22", "4": "LOC_4"}


def cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extract", *args],
        env=env_for(settings) | env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_whole_input_problems_end_with_one_line(settings: Settings, pg: psycopg.Connection, tmp_path: Path) -> None:
    missing = tmp_path / "missing.ndjson"
    assert one_line_error(cli(settings, "users", str(missing))).endswith(f"file not found: {missing}")
    assert one_line_error(cli(settings, "produce", str(missing))).endswith(f"file not found: {missing}")
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(b"")
    assert one_line_error(cli(settings, "users", str(empty))).endswith(f"file is empty: {empty}")
    assert one_line_error(cli(settings, "users", str(tmp_path))).endswith(f"not a regular file: {tmp_path}")

    good = tmp_path / "users.ndjson"
    good.write_bytes(b'{"USERID": "1", "LOCATION": "LOC_1"}\n')
    no_db = dataclasses.replace(settings, pg_port=free_port())
    line = one_line_error(cli(no_db, "users", str(good)))
    assert line.startswith(f"error: cannot connect to PostgreSQL at {no_db.pg_host}:{no_db.pg_port}"), line
    started = time.monotonic()
    line = one_line_error(cli(no_db, "jobs", "--until-end", EXTRACT_DB_RETRY_BUDGET_S="2"))
    assert line.startswith("error: database unreachable while creating the raw schema"), line
    assert time.monotonic() - started < 60


def test_an_unreachable_broker_fails_in_one_line_within_a_bounded_time(settings: Settings, tmp_path: Path) -> None:
    """The broker probe gives up after KAFKA_CONNECT_TIMEOUT_S (2 s); both commands then say so in one line."""
    jobs_file = tmp_path / "jobs.kafka"
    jobs_file.write_bytes(b'1|{"JOBIDENTIFIER": "1"}\n')
    closed = dataclasses.replace(settings, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "extract", *args],
            env=env_for(closed),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in (("produce", str(jobs_file)), ("jobs", "--until-end"))
    ]
    for process in processes:
        out, err = process.communicate(timeout=120)
        line = one_line_error(subprocess.CompletedProcess(process.args, process.returncode, out, err))
        assert line.startswith(f"error: cannot reach Kafka at {closed.kafka_bootstrap_servers}"), line
    assert time.monotonic() - started < 90
