"""Lands every line of a users file in raw.users: one load per distinct file content, all or nothing."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from extract import db
from extract.landing import split_payload
from extract.settings import Settings

log = logging.getLogger(__name__)

SOURCE_NAME = "users"
_CHUNK = 1 << 20


class UsersFileError(RuntimeError):
    """The file as a whole cannot be loaded; the message says why in one line."""


@dataclass(frozen=True)
class UsersLoadResult:
    load_id: int
    lines: int
    file_sha256: str
    already_loaded: bool


def file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def iter_lines(path: Path) -> Iterator[bytes]:
    """Lines split on LF only; CR, BOM and a last line without LF stay as they are (raw means raw)."""
    with path.open("rb") as handle:
        for line in handle:
            yield line[:-1] if line.endswith(b"\n") else line


_BATCH_TABLE = """
create temp table if not exists users_batch (
    line_number bigint,
    line_text text,
    line_bytes bytea,
    is_json boolean
) on commit drop
"""

_INSERT = """
insert into raw.users (load_id, file_name, file_sha256, line_number, line_text, line_bytes, line_json)
select %(load_id)s, %(file_name)s, %(sha)s, line_number, line_text, line_bytes,
       case when is_json then {json_cast} end
from users_batch
order by line_number
"""


def _validate(path: Path) -> None:
    if not path.exists():
        raise UsersFileError(f"users file not found: {path}")
    if not path.is_file():
        raise UsersFileError(f"users file is not a regular file: {path}")


def load_users_file(settings: Settings, path: Path) -> UsersLoadResult:
    _validate(path)
    sha, size = file_digest(path)
    if size == 0:
        raise UsersFileError(f"users file is empty: {path}")
    with db.connect(settings) as conn:
        db.ensure_raw_schema(conn)
        with conn.transaction():
            # One loader at a time per source, so the same content racing in twice is still one load.
            conn.execute("select pg_advisory_xact_lock(hashtext('jobs_elt.file_load.' || %s))", (SOURCE_NAME,))
            existing = conn.execute(
                "select load_id, line_count from raw.file_loads where source_name = %s and file_sha256 = %s",
                (SOURCE_NAME, sha),
            ).fetchone()
            if existing:
                log.info("%s: this content is already load %d; nothing to do", path, existing[0])
                return UsersLoadResult(existing[0], existing[1], sha, already_loaded=True)
            load_id = conn.execute(
                "insert into raw.file_loads (source_name, file_name, file_sha256, file_bytes, line_count)"
                " values (%s, %s, %s, %s, 0) returning load_id",
                (SOURCE_NAME, str(path), sha, size),
            ).fetchone()[0]
            lines = _copy_lines(conn, path, load_id, sha)
            conn.execute("update raw.file_loads set line_count = %s where load_id = %s", (lines, load_id))
    log.info("%s: loaded %d lines as load %d", path, lines, load_id)
    return UsersLoadResult(load_id, lines, sha, already_loaded=False)


def _copy_lines(conn: psycopg.Connection, path: Path, load_id: int, sha: str) -> int:
    conn.execute(_BATCH_TABLE)
    lines = 0
    with conn.cursor() as cur:
        with cur.copy("copy users_batch (line_number, line_text, line_bytes, is_json) from stdin") as copy:
            for lines, line in enumerate(iter_lines(path), start=1):
                payload = split_payload(line)
                copy.write_row((lines, payload.text, payload.raw_bytes, payload.is_json))
        params = {"load_id": load_id, "file_name": str(path), "sha": sha}
        try:
            with conn.transaction():
                cur.execute(_INSERT.format(json_cast="line_text::jsonb"), params)
        except psycopg.errors.DataError:
            log.info("a line parses as JSON in Python but not as jsonb; casting row by row")
            cur.execute(_INSERT.format(json_cast="raw.try_jsonb(line_text)"), params)
    return lines
