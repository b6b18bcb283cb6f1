"""`python -m extract retention`: archive the raw day partitions past their source's retention to gzip files
and drop them; `--restore` puts one back.

Two rules hold whatever the dates say: a partition holding a row staging has not read yet stays (the per-row
staging model's highest load_seq is how far dbt has read: it appends only rows above it), and nothing outside
the raw schema is touched. A partition is archived as `COPY ... TO STDOUT` through this client, gzip'd to one
file, checked (rows counted back, sha256), recorded in raw.archived_partitions and dropped in one transaction;
manifest.json in the archive folder lists every archived partition (file, rows, sha256, bounds, load_seqs)."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from extract.core import db
from extract.core.settings import Settings
from extract.core.sources_config import Source

log = logging.getLogger(__name__)

# dbt writes the per-row staging models here (dbt_project/macros/generate_schema_name.sql).
STAGING_SCHEMA = "staging"
# How long the drop waits for dbt's reads of the raw table to finish; the partition is retried next run.
LOCK_TIMEOUT = "10s"
MANIFEST = "manifest.json"

_PARTITIONS = """
select c.oid::regclass::text, c.relname, bounds[1]::timestamptz, bounds[2]::timestamptz
from pg_inherits as i
join pg_class as c on c.oid = i.inhrelid
cross join lateral regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)')
    as bounds
where i.inhparent = to_regclass(%s)
order by 3
"""

_COLUMNS = (
    "select array_agg(attname::text order by attnum) from pg_attribute"
    " where attrelid = to_regclass(%s) and attnum > 0 and not attisdropped"
)


class RetentionError(RuntimeError):
    """An archive cannot be written or restored; the message says why in one line."""


@dataclass(frozen=True)
class PartitionOutcome:
    raw_table: str
    partition: str
    lower_bound: str
    upper_bound: str
    # archived | kept: <why>
    action: str
    rows: int | None = None
    file: str | None = None
    sha256: str | None = None


def staged_through(conn: psycopg.Connection, source: Source) -> int | None:
    """The highest load_seq the source's per-row staging model holds: every raw row up to it has been read
    (raw rows become visible in load_seq order, raw_sink.py). None when there is no such model yet."""
    model = source.dbt.staged_model
    if model is None:
        return None
    table = f"{STAGING_SCHEMA}.{model}"
    if conn.execute("select to_regclass(%s)", (table,)).fetchone()[0] is None:
        return None
    row = conn.execute(sql.SQL("select max(load_seq) from {}").format(db.table_identifier(table))).fetchone()
    return 0 if row[0] is None else int(row[0])


def apply_retention(
    settings: Settings, sources: Sequence[Source], archive_dir: Path, *, now: datetime | None = None
) -> list[PartitionOutcome]:
    """Archive and drop every partition whose day ended more than `raw_days` before `now` (the server's
    clock by default) and whose rows staging has all read; report every partition past retention."""
    outcomes: list[PartitionOutcome] = []
    with db.connect(settings, autocommit=True) as conn:
        if conn.execute("select to_regclass('raw.archived_partitions')").fetchone()[0] is None:
            return outcomes  # no raw layer yet (or one from before retention): nothing has landed to archive
        for source in sources:
            days = source.retention.raw_days
            if days is None or conn.execute("select to_regclass(%s)", (source.raw_table,)).fetchone()[0] is None:
                continue
            if not db.is_partitioned(conn, source.raw_table):
                log.warning("%s is a plain table (made before raw partitioning): retention skips it", source.raw_table)
                continue
            clock = now or conn.execute("select now()").fetchone()[0]
            cutoff = clock - timedelta(days=days)
            for row in conn.execute(_PARTITIONS, (source.raw_table,)).fetchall():
                partition = _Partition(source, *row)
                if partition.upper > cutoff:
                    continue
                outcome = _archive(conn, partition, archive_dir)
                log.info("%s: %s", partition.qualified, outcome.action)
                outcomes.append(outcome)
        write_manifest(conn, archive_dir)
    return outcomes


@dataclass(frozen=True)
class _Partition:
    source: Source
    qualified: str
    name: str
    lower: datetime
    upper: datetime


def _archive(conn: psycopg.Connection, partition: _Partition, root: Path) -> PartitionOutcome:
    source, name, lower, upper = partition.source, partition.name, partition.lower, partition.upper

    def outcome(
        action: str, rows: int | None = None, file: str | None = None, sha256: str | None = None
    ) -> PartitionOutcome:
        return PartitionOutcome(
            source.raw_table, partition.qualified, lower.isoformat(), upper.isoformat(), action, rows, file, sha256
        )

    table = db.table_identifier(partition.qualified)
    relative = Path(source.raw_table) / f"{name}.copy.gz"
    path = root / relative
    try:
        with conn.transaction():
            conn.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            # The writers' lock of the table, then no write into this partition until it is gone.
            conn.execute("select pg_advisory_xact_lock(hashtext('jobs_elt.raw_table.' || %s))", (source.raw_table,))
            conn.execute(sql.SQL("lock table {} in share mode").format(table))
            rows, low_seq, high_seq = conn.execute(
                sql.SQL("select count(*), min(load_seq), max(load_seq) from {}").format(table)
            ).fetchone()
            staged = staged_through(conn, source)
            if rows and (staged is None or high_seq > staged):
                return outcome(
                    f"kept: rows up to load_seq {high_seq}, staging has read up to {staged}"
                    + ("" if source.dbt.staged_model else " (no dbt.staged_model declared)"),
                    rows=rows,
                )
            columns = conn.execute(_COLUMNS, (source.raw_table,)).fetchone()[0]
            copied, digest = _copy_out(conn, table, columns, path)
            if copied != rows:
                raise RetentionError(f"{partition.qualified}: copied {copied} of {rows} rows; nothing dropped")
            conn.execute(
                "insert into raw.archived_partitions (raw_table, partition_name, lower_bound, upper_bound,"
                " min_load_seq, max_load_seq, row_count, file_name, file_sha256, columns)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (source.raw_table, name, lower, upper, low_seq, high_seq, rows, str(relative), digest, columns),
            )
            conn.execute(sql.SQL("drop table {}").format(table))
    except psycopg.errors.LockNotAvailable:
        return outcome(f"kept: busy (no lock within {LOCK_TIMEOUT}); retried next run")
    return outcome("archived", rows=rows, file=str(relative), sha256=digest)


def _copy_out(conn: psycopg.Connection, table: sql.Identifier, columns: list[str], path: Path) -> tuple[int, str]:
    """COPY the partition to `path` (gzip, written aside and renamed once flushed); its row count and sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    rows = 0
    statement = sql.SQL("copy {} ({}) to stdout").format(table, sql.SQL(", ").join(map(sql.Identifier, columns)))
    with open(partial, "wb") as raw_file:
        with (
            gzip.GzipFile(fileobj=raw_file, mode="wb", mtime=0) as archive,
            conn.cursor() as cur,
            cur.copy(statement) as copy,
        ):
            for chunk in copy:
                # text format: one line per row, newlines inside values are escaped
                rows += bytes(chunk).count(b"\n")
                archive.write(chunk)
        raw_file.flush()
        os.fsync(raw_file.fileno())
    os.replace(partial, path)
    return rows, _sha256(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(conn: psycopg.Connection, archive_dir: Path) -> Path:
    """manifest.json from raw.archived_partitions, the record (written aside, then renamed)."""
    rows = conn.execute(
        "select raw_table, partition_name, lower_bound, upper_bound, min_load_seq, max_load_seq, row_count,"
        " file_name, file_sha256, columns, archived_at from raw.archived_partitions order by raw_table, lower_bound"
    ).fetchall()
    entries = [
        {
            "raw_table": table,
            "partition": name,
            "bounds": {"from": lower.isoformat(), "to": upper.isoformat()},
            "load_seq": {"min": low, "max": high},
            "rows": count,
            "file": file_name,
            "sha256": digest,
            "columns": columns,
            "archived_at": archived_at.isoformat(),
        }
        for table, name, lower, upper, low, high, count, file_name, digest, columns, archived_at in rows
    ]
    archive_dir.mkdir(parents=True, exist_ok=True)
    path = archive_dir / MANIFEST
    partial = path.with_name(MANIFEST + ".partial")
    partial.write_text(json.dumps({"format": "postgres copy text, gzip", "partitions": entries}, indent=2) + "\n")
    os.replace(partial, path)
    return path


def restore_partition(settings: Settings, partition: str, archive_dir: Path) -> int:
    """Put an archived partition (raw.jobs_p20261001) back in its raw table, exactly its rows; returns them."""
    schema, _, name = partition.rpartition(".")
    with db.connect(settings) as conn, conn.transaction():
        row = conn.execute(
            "select raw_table, lower_bound, row_count, file_name, file_sha256, columns from raw.archived_partitions"
            " where partition_name = %s and split_part(raw_table, '.', 1) = %s for update",
            (name, schema or "raw"),
        ).fetchone()
        if row is None:
            raise RetentionError(f"{partition} is not an archived partition (see {archive_dir / MANIFEST})")
        raw_table, lower, rows, file_name, digest, columns = row
        path = archive_dir / file_name
        if not path.is_file():
            raise RetentionError(f"{partition}: archive file {path} not found")
        if _sha256(path) != digest:
            raise RetentionError(f"{partition}: {path} does not match the sha256 recorded when it was archived")
        conn.execute("select pg_advisory_xact_lock(hashtext('jobs_elt.raw_table.' || %s))", (raw_table,))
        day = conn.execute("select (%s::timestamptz at time zone 'UTC')::date", (lower,)).fetchone()[0]
        conn.execute("select raw.create_day_partition(%s, %s)", (raw_table, day))
        target = db.table_identifier(f"raw.{name}")
        statement = sql.SQL("copy {} ({}) from stdin").format(target, sql.SQL(", ").join(map(sql.Identifier, columns)))
        with conn.cursor() as cur, gzip.open(path, "rb") as archive:
            with cur.copy(statement) as copy:
                for block in iter(lambda: archive.read(1 << 20), b""):
                    copy.write(block)
            restored = cur.rowcount
        if restored != rows:
            raise RetentionError(f"{partition}: the file holds {restored} rows, {rows} were archived; nothing restored")
        conn.execute(
            "delete from raw.archived_partitions where raw_table = %s and partition_name = %s", (raw_table, name)
        )
    with db.connect(settings, autocommit=True) as conn:
        write_manifest(conn, archive_dir)
    log.info("%s restored from %s: %d rows", partition, path, restored)
    return restored


def describe(outcomes: Sequence[PartitionOutcome]) -> dict[str, object]:
    return {"partitions": [asdict(outcome) for outcome in outcomes]}
