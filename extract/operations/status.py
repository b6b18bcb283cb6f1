"""`python -m extract status`: where the pipeline stands, from Kafka and Postgres.

Per partition: the end offset, the offset stored in Postgres (raw.kafka_offsets) and the lag; rows per
table in raw, staging and marts; quarantine by reason; last load and freshness per source; the last runs.

The end offset is the high watermark of a short fetch at the listed end: some Kafka-compatible brokers
(Tansu) list a stale end offset in ListOffsets, while every fetch response carries the real one. When no
fetch answers in time, the listed end is shown, marked `listed`."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from psycopg import sql

from extract.core import db
from extract.core.settings import Settings
from extract.core.sources_config import KafkaSource, Source
from extract.operations.answers import format_table

log = logging.getLogger(__name__)

LAYERS = ("raw", "staging", "marts")
FETCH_WAIT_S = 5.0


def judge_freshness(source: Source, age_s: float | None) -> str:
    """pass / warn / error by the source's freshness in sources.yml (the thresholds dbt's sources use)."""
    if age_s is None:
        return "never loaded"
    if age_s >= source.freshness.error_after_hours * 3600:
        return "error"
    return "warn" if age_s >= source.freshness.warn_after_hours * 3600 else "pass"


def end_offsets(settings: Settings, topics: Sequence[str]) -> tuple[dict[tuple[str, int], tuple[int, str]], str | None]:
    """((topic, partition) -> (end offset, "fetch" | "listed")), error text or None."""
    try:
        consumer = KafkaConsumer(
            group_id=None,
            client_id="jobs-elt-status",
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4096,
            request_timeout_ms=10_000,
            **settings.kafka_client_config(),
        )
    except KafkaError as error:
        return {}, f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {error}"
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return {}, None
        listed = consumer.end_offsets(partitions)
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, listed[tp])
        deadline = time.monotonic() + FETCH_WAIT_S
        while time.monotonic() < deadline and any(consumer.highwater(tp) is None for tp in partitions):
            consumer.poll(timeout_ms=200, max_records=1)
        ends: dict[tuple[str, int], tuple[int, str]] = {}
        for tp in partitions:
            highwater = consumer.highwater(tp)
            ends[(tp.topic, tp.partition)] = (highwater, "fetch") if highwater is not None else (listed[tp], "listed")
        return ends, None
    except KafkaError as error:
        return {}, f"Kafka: {error}"
    finally:
        consumer.close(autocommit=False)


def _exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (name,)).fetchone()[0]


def _rows(conn: psycopg.Connection, query: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(query, params).fetchall()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _source_status(conn: psycopg.Connection, source: Source, now: datetime) -> dict[str, Any]:
    last = None
    if isinstance(source, KafkaSource):
        if _exists(conn, source.raw_table):
            table = sql.Identifier(*source.raw_table.split(".", 1))
            last = conn.execute(sql.SQL("select max(loaded_at) from {}").format(table)).fetchone()[0]
    elif _exists(conn, "raw.file_loads"):
        last = conn.execute(
            "select max(loaded_at) from raw.file_loads where source_name = %s", (source.name,)
        ).fetchone()[0]
    age = (now - last).total_seconds() if last else None
    return {
        "source": source.name,
        "kind": source.kind,
        "raw_table": source.raw_table,
        "last_loaded_at": _iso(last),
        "age_s": None if age is None else round(age, 1),
        "freshness": judge_freshness(source, age),
    }


def collect(settings: Settings) -> dict[str, Any]:
    """Everything `status` shows, as plain JSON-ready data."""
    config = settings.sources()
    kafka_sources = [source for source in config.sources if isinstance(source, KafkaSource)]
    ends, kafka_error = end_offsets(settings, [source.topic for source in kafka_sources])
    with db.connect(settings, autocommit=True) as conn:
        now = conn.execute("select now()").fetchone()[0]
        stored: dict[tuple[str, int], dict[str, Any]] = {}
        if _exists(conn, "raw.kafka_offsets"):
            for row in _rows(conn, "select * from raw.kafka_offsets"):
                stored[(row["kafka_topic"], row["kafka_partition"])] = row
        partitions = []
        for topic, partition in sorted(
            set(ends) | {key for key in stored if key[0] in {s.topic for s in kafka_sources}}
        ):
            end, end_source = ends.get((topic, partition), (None, None))
            offset_row = stored.get((topic, partition))
            committed = offset_row["next_offset"] if offset_row else 0
            partitions.append(
                {
                    "topic": topic,
                    "partition": partition,
                    "end_offset": end,
                    "end_offset_from": end_source,
                    "stored_offset": committed,
                    "lag": None if end is None else max(end - committed, 0),
                    "committed_at": _iso(offset_row["updated_at"]) if offset_row else None,
                }
            )

        tables = _rows(
            conn,
            # A partition's rows are counted in its partitioned table: listed apart they would count twice.
            "select t.table_schema as schema, t.table_name as name, t.table_type as type"
            " from information_schema.tables as t"
            " join pg_namespace as n on n.nspname = t.table_schema"
            " join pg_class as c on c.relnamespace = n.oid and c.relname = t.table_name"
            " where t.table_schema = any(%s) and not c.relispartition order by 1, 2",
            (list(LAYERS),),
        )
        for table in tables:
            table["rows"] = conn.execute(
                sql.SQL("select count(*) from {}").format(sql.Identifier(table["schema"], table["name"]))
            ).fetchone()[0]
            table["type"] = "view" if table["type"] == "VIEW" else "table"
        layers = {layer: sum(t["rows"] for t in tables if t["schema"] == layer) for layer in LAYERS}

        quarantine: list[dict[str, Any]] = []
        if _exists(conn, "staging.quarantined_records"):
            quarantine = _rows(
                conn,
                "select source_name as source, quarantine_reason as reason, count(*) as rows"
                " from staging.quarantined_records group by 1, 2 order by 1, 3 desc, 2",
            )

        sources = [_source_status(conn, source, now) for source in config.sources]
        checks = _data_checks(conn)

        runs: list[dict[str, Any]] = []
        if _exists(conn, "raw.extract_runs"):
            runs = _rows(
                conn,
                "select run_id, command, topics, status, started_at, ended_at, messages, rows_inserted,"
                " payload_bytes, batches, partitions, error,"
                " extract(epoch from coalesce(ended_at, updated_at) - started_at)::float8 as seconds"
                " from raw.extract_runs order by run_id desc limit 5",
            )
        file_loads: list[dict[str, Any]] = []
        if _exists(conn, "raw.file_load_attempts"):
            file_loads = _rows(
                conn,
                "select attempt_id, source_name as source, file_name, file_sha256, rows_loaded, outcome, load_id,"
                " error, started_at, ended_at from raw.file_load_attempts order by attempt_id desc limit 5",
            )
    for row in runs + file_loads:
        for key in ("started_at", "ended_at"):
            row[key] = _iso(row[key])
    return {
        "generated_at": now.isoformat(),
        "kafka": {
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "error": kafka_error,
            "partitions": partitions,
        },
        "total_lag": sum(p["lag"] or 0 for p in partitions),
        "layers": layers,
        "tables": tables,
        "quarantine": quarantine,
        "sources": sources,
        "extract_runs": runs,
        "file_loads": file_loads,
        "data_checks": checks,
    }


def _data_checks(conn: psycopg.Connection) -> dict[str, Any]:
    """The last audit (make audit / the service's: every dbt test on every row) and how far each raw table's
    rows passed the scoped tests of the builds (dbt_project/macros/tests/test_scope.sql)."""
    audit = None
    if _exists(conn, "staging.dbt_audits"):
        found = _rows(
            conn,
            "select started_at, ended_at, is_passed, tests_passed, tests_warned, tests_failed, tests_skipped,"
            " failed_tests from staging.dbt_audits order by ended_at desc limit 1",
        )
        if found:
            audit = found[0] | {key: _iso(found[0][key]) for key in ("started_at", "ended_at")}
    scopes = []
    if _exists(conn, "staging.dbt_test_scopes"):
        scopes = [
            row | {"started_at": _iso(row["started_at"])}
            for row in _rows(
                conn,
                "select scope_name as scope, tested_to, started_at from staging.dbt_test_scopes order by 1",
            )
        ]
    return {"last_audit": audit, "scoped_tests": scopes}


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def render(status: dict[str, Any]) -> str:
    out: list[str] = [f"Status at {status['generated_at']}"]
    kafka = status["kafka"]
    out.append("")
    out.append(f"Kafka partitions ({kafka['bootstrap_servers']}); total lag {status['total_lag']}")
    if kafka["error"]:
        out.append(f"  ! {kafka['error']}")
    out.append(
        format_table(
            ["topic", "partition", "end offset", "stored offset", "lag", "committed at"],
            [
                [
                    p["topic"],
                    p["partition"],
                    "?"
                    if p["end_offset"] is None
                    else f"{p['end_offset']}{' (listed)' if p['end_offset_from'] == 'listed' else ''}",
                    p["stored_offset"],
                    "?" if p["lag"] is None else p["lag"],
                    p["committed_at"] or "-",
                ]
                for p in kafka["partitions"]
            ],
        )
    )
    out.append("")
    out.append("Rows per layer: " + ", ".join(f"{layer} {rows}" for layer, rows in status["layers"].items()))
    out.append(
        format_table(
            ["schema", "table", "type", "rows"],
            [[t["schema"], t["name"], t["type"], t["rows"]] for t in status["tables"]],
        )
    )
    out.append("")
    out.append("Quarantine (staging.quarantined_records) by reason")
    out.append(
        format_table(
            ["source", "reason", "rows"], [[q["source"], q["reason"], q["rows"]] for q in status["quarantine"]]
        )
    )
    out.append("")
    out.append("Sources: last load and freshness")
    out.append(
        format_table(
            ["source", "kind", "raw table", "last loaded at", "age", "freshness"],
            [
                [s["source"], s["kind"], s["raw_table"], s["last_loaded_at"] or "-", _age(s["age_s"]), s["freshness"]]
                for s in status["sources"]
            ],
        )
    )
    out.append("")
    audit = status["data_checks"]["last_audit"]
    if audit is None:
        out.append("Last audit (make audit: every dbt test on every row): never")
    else:
        outcome = "passed" if audit["is_passed"] else "FAILED"
        out.append(
            f"Last audit (make audit: every dbt test on every row): {outcome}, ended {audit['ended_at']};"
            f" {audit['tests_passed']} passed, {audit['tests_warned']} warned, {audit['tests_failed']} failed,"
            f" {audit['tests_skipped']} skipped"
        )
        out.extend(f"  failed: {name}" for name in audit["failed_tests"])
    out.append(
        "Scoped tests of the builds, rows passed up to: "
        + (", ".join(f"{s['scope']} {s['tested_to']}" for s in status["data_checks"]["scoped_tests"]) or "-")
    )
    out.append("")
    out.append("Last extract runs (raw.extract_runs)")
    out.append(
        format_table(
            ["run", "command", "status", "started at", "seconds", "messages", "new rows", "msg/s", "offsets", "error"],
            [
                [
                    r["run_id"],
                    r["command"],
                    r["status"],
                    r["started_at"],
                    f"{r['seconds']:.1f}",
                    r["messages"],
                    r["rows_inserted"],
                    f"{r['messages'] / r['seconds']:.0f}" if r["seconds"] else "-",
                    " ".join(
                        f"{p['topic']}[{p['partition']}]:{p['first_offset']}-{p['last_offset']}"
                        for p in r["partitions"]
                    )
                    or "-",
                    (r["error"] or "")[:60],
                ]
                for r in status["extract_runs"]
            ],
        )
    )
    out.append("")
    out.append("Last file loads (raw.file_load_attempts)")
    out.append(
        format_table(
            ["attempt", "source", "file", "sha256", "rows", "outcome", "load", "started at", "error"],
            [
                [
                    f["attempt_id"],
                    f["source"],
                    f["file_name"],
                    (f["file_sha256"] or "-")[:12],
                    f["rows_loaded"],
                    f["outcome"],
                    f["load_id"] or "-",
                    f["started_at"],
                    (f["error"] or "")[:60],
                ]
                for f in status["file_loads"]
            ],
        )
    )
    return "\n".join(out)
