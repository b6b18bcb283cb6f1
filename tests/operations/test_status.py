"""`extract status` and the audit trail, against a real broker and Postgres: the numbers it shows are the
ones Kafka and the database hold, and every run and every file load leaves an audit row."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from extract.core.settings import Settings
from tests.conftest import run_cli
from tests.support.ops_helpers import json_lines, send


def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.ndjson"
    path.write_text('{"USERID": 1, "LOCATION": "LOC_1"}\n{"USERID": 2, "LOCATION": "LOC_2"}\nnot json\n')
    return path


def test_status_shows_lag_counts_freshness_and_the_audit_trail(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path
) -> None:
    path = users_file(tmp_path)
    # DEBUG: at INFO a load logs nothing (its one line is the summary on stdout).
    loaded = run_cli(settings, "--log-format", "json", "--log-level", "DEBUG", "users", str(path))
    run_cli(settings, "users", str(path))  # the same content again: a duplicate
    missing = run_cli(settings, "users", str(tmp_path / "nope.ndjson"), check=False)
    assert missing.returncode == 1
    send(settings, 60)
    drained = run_cli(settings, "--log-format", "json", "jobs", "--until-end")
    send(settings, 7, partition=0, start=1000)  # not extracted: lag 7 on partition 0

    result = run_cli(settings, "--log-format", "json", "status", "--json")
    # --log-format json: every stderr line is a JSON object (status itself logs nothing).
    assert json_lines(loaded.stderr) and json_lines(drained.stderr)
    assert all(line["level"] for line in json_lines(result.stderr))
    status = json.loads(result.stdout)

    stored = dict(
        ((p, o) for p, o in pg.execute("select kafka_partition, next_offset from raw.kafka_offsets").fetchall())
    )
    landed = dict(pg.execute("select kafka_partition, count(*) from raw.jobs group by 1").fetchall())
    partitions = {p["partition"]: p for p in status["kafka"]["partitions"]}
    assert set(partitions) == {0, 1, 2}
    for number, row in partitions.items():
        assert row["stored_offset"] == stored.get(number, 0) == landed.get(number, 0)
        assert row["end_offset_from"] == "fetch"
        assert row["end_offset"] == landed.get(number, 0) + (7 if number == 0 else 0)
        assert row["lag"] == (7 if number == 0 else 0)
    assert status["total_lag"] == 7

    # Day partitions hold the rows of their partitioned table: the status lists and counts the latter only.
    partitions = {name for (name,) in pg.execute("select inhrelid::regclass::text from pg_inherits").fetchall()}
    assert "raw.jobs_p" in " ".join(partitions)
    raw_tables = pg.execute(
        "select table_name from information_schema.tables where table_schema = 'raw' order by 1"
    ).fetchall()
    counts = {
        name: pg.execute(f"select count(*) from raw.{name}").fetchone()[0]
        for (name,) in raw_tables
        if f"raw.{name}" not in partitions
    }
    assert {t["name"]: t["rows"] for t in status["tables"] if t["schema"] == "raw"} == counts
    assert status["layers"]["raw"] == sum(counts.values()) and counts["jobs"] == 60 and counts["users"] == 3

    freshness = {s["source"]: s["freshness"] for s in status["sources"]}
    assert freshness["jobs"] == freshness["users"] == "pass"
    assert freshness["payments"] == freshness["services"] == "never loaded"

    [run] = status["extract_runs"]
    assert (run["command"], run["status"], run["messages"], run["rows_inserted"]) == ("jobs", "succeeded", 60, 60)
    assert run["ended_at"] and run["error"] is None and run["batches"] >= 1
    ranges = {
        p: (lo, hi, n)
        for p, lo, hi, n in pg.execute(
            "select kafka_partition, min(kafka_offset), max(kafka_offset), count(*) from raw.jobs group by 1"
        ).fetchall()
    }
    assert {p["partition"]: (p["first_offset"], p["last_offset"], p["messages"]) for p in run["partitions"]} == ranges

    attempts = [(f["outcome"], f["rows_loaded"], f["error"] is not None) for f in status["file_loads"]]
    assert attempts == [("failed", 0, True), ("duplicate", 0, False), ("loaded", 3, False)]
    sha = pg.execute("select file_sha256 from raw.file_loads").fetchone()[0]
    assert [f["file_sha256"] for f in status["file_loads"]] == [None, sha, sha]
    assert "file not found" in status["file_loads"][0]["error"]

    human = run_cli(settings, "status").stdout
    for heading in ("Kafka partitions", "total lag 7", "Rows per layer", "Last extract runs", "Last file loads"):
        assert heading in human


def test_a_failed_run_is_audited_with_its_error(settings: Settings, pg: psycopg.Connection) -> None:
    send(settings, 3)
    run_cli(settings, "jobs", "--until-end")
    pg.execute("update raw.kafka_offsets set next_offset = next_offset + 100")
    failed = run_cli(settings, "jobs", "--until-end", check=False)
    assert failed.returncode == 1
    status, error, ended = pg.execute(
        "select status, error, ended_at from raw.extract_runs order by run_id desc limit 1"
    ).fetchone()
    assert status == "failed" and "beyond" in error and ended is not None
