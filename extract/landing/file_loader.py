"""Lands every line of a file source in its raw table: one load per distinct file content, all or nothing."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql

from extract.core import db
from extract.core.progress import Bar
from extract.core.settings import Settings
from extract.core.sources_config import FileSource, SourcesConfig
from extract.landing.payload import Payload, could_be_json, python_parses, split_payload

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
# Snapshots up to this size stay in memory; bigger ones spill to a temporary file.
_SNAPSHOT_IN_MEMORY = 64 << 20


class FileSourceError(RuntimeError):
    """The file as a whole cannot be loaded; the message says why in one line."""


@dataclass(frozen=True)
class FileLoadResult:
    source: str
    file_name: str
    load_id: int
    lines: int
    file_sha256: str
    already_loaded: bool
    file_bytes: int = 0


class Snapshot:
    """The file's bytes, read once: the hash, the size and every line landed come from this copy, so a
    file appended to, truncated or replaced while it loads can never mix two contents in one load."""

    def __init__(self, path: Path) -> None:
        digest = hashlib.sha256()
        self.size = 0
        self._copy: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SNAPSHOT_IN_MEMORY)  # noqa: SIM115
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    self._copy.write(chunk)
                    self.size += len(chunk)
        except BaseException:
            self._copy.close()
            raise
        self.sha256 = digest.hexdigest()

    def lines(self) -> Iterator[bytes]:
        """Lines split on LF only; CR, BOM and a last line without LF stay as they are (raw means raw)."""
        self._copy.seek(0)
        for line in self._copy:
            yield line[:-1] if line.endswith(b"\n") else line

    def first_line(self) -> bytes:
        self._copy.seek(0)
        return self._copy.readline()

    def close(self) -> None:
        self._copy.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _ndjson_view(payload: Payload, header: list[str] | None) -> str | None:
    return payload.text if payload.json_candidate else None


def _key_value_view(payload: Payload, header: list[str] | None) -> str | None:
    _, separator, value = (payload.text or "").partition("|")
    return value if separator and could_be_json(value) else None


def _csv_view(payload: Payload, header: list[str] | None) -> str | None:
    try:
        rows = list(csv.reader([(payload.text or "").removesuffix("\r")], strict=True))
    except csv.Error:
        return None
    if header is None or len(rows) != 1 or len(rows[0]) != len(header):
        return None
    return json.dumps(dict(zip(header, rows[0], strict=True)))


# The JSON text stored beside a line: the line itself (ndjson), the value after the first `|`
# (key_value_lines), or the CSV row as an object keyed by the header.
_JSON_VIEWS: dict[str, Callable[[Payload, list[str] | None], str | None]] = {
    "ndjson": _ndjson_view,
    "key_value_lines": _key_value_view,
    "csv": _csv_view,
}


def _csv_header(snapshot: Snapshot) -> list[str] | None:
    first = snapshot.first_line().removesuffix(b"\n").removesuffix(b"\r").removeprefix(b"\xef\xbb\xbf")
    try:
        rows = list(csv.reader([first.decode("utf-8")], strict=True))
    except (UnicodeDecodeError, csv.Error):
        return None
    header = [name.strip() for name in rows[0]] if rows else []
    return header if header and all(header) and len(set(header)) == len(header) else None


_BATCH_TABLE = """
create temp table if not exists file_batch (
    line_number bigint,
    line_text text,
    line_bytes bytea,
    json_text text
) on commit drop
"""

_INSERT = """
insert into {table} (load_id, file_name, file_sha256, line_number, line_text, line_bytes, line_json)
select %(load_id)s, %(file_name)s, %(sha)s, line_number, line_text, line_bytes, raw.try_jsonb(json_text)
from file_batch
order by line_number
"""


def _validate(path: Path) -> None:
    if not path.exists():
        raise FileSourceError(f"file not found: {path}")
    if not path.is_file():
        raise FileSourceError(f"not a regular file: {path}")


def load_file(
    settings: Settings, source: FileSource, path: Path, config: SourcesConfig | None = None
) -> FileLoadResult:
    """Land `path`, and record the attempt (loaded, duplicate or failed) in raw.file_load_attempts."""
    started_at = utcnow()
    try:
        result = _load_file(settings, source, path, config)
    except (FileSourceError, psycopg.Error, OSError) as error:
        refused = db.refusal(error, settings)
        if refused is not None:
            raise refused from error  # nowhere to record the attempt either: one line, not two
        if isinstance(error, psycopg.OperationalError) and str(error).startswith("connection failed"):
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        record_file_attempt(
            settings, source=source.name, path=path, started_at=started_at, outcome="failed", error=message
        )
        raise
    record_file_attempt(
        settings,
        source=source.name,
        path=path,
        started_at=started_at,
        outcome="duplicate" if result.already_loaded else "loaded",
        sha256=result.file_sha256,
        file_bytes=result.file_bytes,
        rows=0 if result.already_loaded else result.lines,
        load_id=result.load_id,
    )
    return result


def _load_file(
    settings: Settings, source: FileSource, path: Path, config: SourcesConfig | None = None
) -> FileLoadResult:
    _validate(path)
    with Snapshot(path) as snapshot:
        return _load_snapshot(settings, source, path, snapshot, config)


def _load_snapshot(
    settings: Settings, source: FileSource, path: Path, snapshot: Snapshot, config: SourcesConfig | None
) -> FileLoadResult:
    sha, size = snapshot.sha256, snapshot.size
    if size == 0:
        raise FileSourceError(f"file is empty: {path}")
    header = _csv_header(snapshot) if source.format == "csv" else None
    if source.format == "csv" and header is None:
        raise FileSourceError(f"{path}: the first line is not a CSV header of distinct, non-empty names")
    with db.connect(settings) as conn:
        db.ensure_raw_schema(conn, config or settings.sources())
        with conn.transaction():
            # One loader at a time per source, so the same content racing in twice is still one load.
            conn.execute("select pg_advisory_xact_lock(hashtext('jobs_elt.file_load.' || %s))", (source.name,))
            existing = conn.execute(
                "select load_id, line_count from raw.file_loads where source_name = %s and file_sha256 = %s",
                (source.name, sha),
            ).fetchone()
            if existing:
                log.debug("%s: this content is already load %d of %s", path, existing[0], source.name)
                return FileLoadResult(source.name, str(path), existing[0], existing[1], sha, True, size)
            load_id = conn.execute(
                "insert into raw.file_loads (source_name, file_name, file_sha256, file_bytes, line_count)"
                " values (%s, %s, %s, %s, 0) returning load_id",
                (source.name, str(path), sha, size),
            ).fetchone()[0]
            db.ensure_partitions(conn, source.raw_table)
            lines = _copy_lines(conn, source, path, snapshot, header=header, load_id=load_id, sha=sha)
            conn.execute("update raw.file_loads set line_count = %s where load_id = %s", (lines, load_id))
    log.debug("%s: loaded %d lines into %s as load %d", path, lines, source.raw_table, load_id)
    return FileLoadResult(source.name, str(path), load_id, lines, sha, False, size)


def _copy_lines(
    conn: psycopg.Connection,
    source: FileSource,
    path: Path,
    snapshot: Snapshot,
    *,
    header: list[str] | None,
    load_id: int,
    sha: str,
) -> int:
    """COPY the lines straight into the raw table (the fast path), the server casting each JSON view that
    Python's parser takes too; the other views go in null and the server is asked about them afterwards.
    When that is not exact (jsonb refuses a view of the COPY, or takes one left null), a savepoint undoes
    it and the staged path (temp table, INSERT ... SELECT with a row-by-row cast) lands the file instead.
    Either way all lines or none, in one transaction."""
    target = db.table_identifier(source.raw_table)
    copy_sql = sql.SQL(
        "copy {table} (load_id, file_name, file_sha256, line_number, line_text, line_bytes, line_json) from stdin"
    ).format(table=target)
    unsure: list[str] = []
    try:
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(copy_sql) as copy:
                constant = (load_id, str(path), sha)
                lines = 0
                for lines, payload, json_text in _payloads(source, path, snapshot, header):
                    if json_text is not None and not _python_parses(source, payload, json_text):
                        unsure.append(json_text)
                        json_text = None  # noqa: PLW2901 - the direct COPY leaves it to the check below
                    copy.write_row((*constant, lines, payload.text, payload.raw_bytes, json_text))
            if unsure and db.jsonb_takes_any(cur, unsure):
                raise _JsonbTakesMore
        return lines
    except (_JsonbTakesMore, *db.JSONB_REFUSED):
        log.info("jsonb and Python's parser disagree on a line; loading through the staged path")
    return _copy_lines_staged(conn, source, path, snapshot, header=header, load_id=load_id, sha=sha)


class _JsonbTakesMore(Exception):
    """jsonb accepts a line Python's parser refused: the direct COPY left it null, so it is undone."""


def _python_parses(source: FileSource, payload: Payload, json_text: str) -> bool:
    """A hint for the order of work, never the verdict (see Payload.python_parses)."""
    if source.format == "ndjson":
        return payload.python_parses
    if source.format == "csv":
        return True  # written by json.dumps
    return python_parses(json_text)


def _payloads(
    source: FileSource, path: Path, snapshot: Snapshot, header: list[str] | None
) -> Iterator[tuple[int, Payload, str | None]]:
    lines = 0
    with Bar(snapshot.size, f"load {path.name}", unit="B") as bar:
        json_view = _JSON_VIEWS[source.format]
        for lines, line in enumerate(snapshot.lines(), start=1):
            bar.update(len(line) + 1)
            payload = split_payload(line, check_json=source.format == "ndjson")
            is_header = header is not None and lines == 1
            yield lines, payload, None if payload.text is None or is_header else json_view(payload, header)


def _copy_lines_staged(
    conn: psycopg.Connection,
    source: FileSource,
    path: Path,
    snapshot: Snapshot,
    *,
    header: list[str] | None,
    load_id: int,
    sha: str,
) -> int:
    conn.execute(_BATCH_TABLE)
    lines = 0
    with conn.cursor() as cur:
        with cur.copy("copy file_batch (line_number, line_text, line_bytes, json_text) from stdin") as copy:
            for lines, payload, json_text in _payloads(source, path, snapshot, header):
                copy.write_row((lines, payload.text, payload.raw_bytes, json_text))
        # Only a file holding a line jsonb refuses comes here: cast row by row, null where it refuses.
        cur.execute(
            sql.SQL(_INSERT).format(table=db.table_identifier(source.raw_table)),
            {"load_id": load_id, "file_name": str(path), "sha": sha},
        )
    return lines


def record_file_attempt(
    settings: Settings,
    *,
    source: str,
    path: Path,
    started_at: datetime,
    outcome: str,
    sha256: str | None = None,
    file_bytes: int | None = None,
    rows: int = 0,
    load_id: int | None = None,
    error: str | None = None,
) -> None:
    """One row in raw.file_load_attempts; best effort (a failed load may be failing for want of a database)."""
    try:
        with db.connect(settings, autocommit=True) as conn:
            db.ensure_audit_tables(conn)
            conn.execute(
                "insert into raw.file_load_attempts (source_name, file_name, file_sha256, file_bytes, rows_loaded,"
                " outcome, load_id, error, started_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (source, str(path), sha256, file_bytes, rows, outcome, load_id, error, started_at),
            )
    except psycopg.Error as failure:
        log.warning("could not record the %s load of %s: %s", outcome, path, " ".join(str(failure).split()))


def utcnow() -> datetime:
    return datetime.now(UTC)
