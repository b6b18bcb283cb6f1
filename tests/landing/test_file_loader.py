"""The users file loader: every line lands byte-exact, once per distinct content, all or nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg
import pytest

from extract.core.settings import Settings
from extract.landing import file_loader
from extract.landing.file_loader import FileSourceError, load_file
from tests.conftest import run_cli

MESSY = (
    b'\xef\xbb\xbf{"USERID": "1", "LOCATION": "LOC_1"}\r\n'
    b"\n"
    b'{"USERID": 2, "LOCATION": " loc_2 "}\n'
    b"not json\n"
    b"\xff\xfe invalid utf-8\n"
    b'{"USERID": "1", "LOCATION": "LOC_9"}\n'
    b'{"USERID": "3", "LOC'
)


def load_users(settings: Settings, path: Path):
    return load_file(settings, settings.sources().get("users"), path)


def raw_lines(pg: psycopg.Connection) -> list[tuple[int, int, bytes, str | None]]:
    return pg.execute(
        "select load_id, line_number, coalesce(line_bytes, convert_to(line_text, 'UTF8')), line_json::text"
        " from raw.users order by load_seq"
    ).fetchall()


def test_every_line_lands_byte_exact(settings: Settings, pg: psycopg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "users.ndjson"
    path.write_bytes(MESSY)
    result = load_users(settings, path)
    assert (result.lines, result.already_loaded) == (7, False)
    rows = raw_lines(pg)
    assert [row[2] for row in rows] == MESSY.split(b"\n")
    assert [row[1] for row in rows] == list(range(1, 8))
    json_lines = {row[1]: row[3] for row in rows}
    # The BOM makes line 1 invalid JSON as raw text; staging strips it, raw keeps it.
    assert json_lines[1] is None
    assert json_lines[3] == '{"USERID": 2, "LOCATION": " loc_2 "}'
    assert json_lines[4] is None and json_lines[5] is None and json_lines[7] is None


def test_same_content_twice_is_one_load_and_a_change_is_a_new_one(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "users.ndjson"
    path.write_bytes(b'{"USERID": "1", "LOCATION": "LOC_1"}\n')
    first = load_users(settings, path)
    copy = tmp_path / "renamed.ndjson"
    copy.write_bytes(path.read_bytes())
    second = load_users(settings, copy)
    assert second.already_loaded and second.load_id == first.load_id
    assert pg.execute("select count(*) from raw.users").fetchone()[0] == 1

    path.write_bytes(b'{"USERID": "1", "LOCATION": "LOC_2"}\n{"USERID": "2", "LOCATION": "LOC_2"}\n')
    third = load_users(settings, path)
    assert not third.already_loaded and third.load_id != first.load_id
    assert pg.execute("select count(*), count(distinct load_id) from raw.users").fetchone() == (3, 2)


def test_missing_and_empty_files_are_refused(settings: Settings, pg: psycopg.Connection, tmp_path: Path) -> None:
    with pytest.raises(FileSourceError, match="not found"):
        load_users(settings, tmp_path / "nope.ndjson")
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(b"")
    with pytest.raises(FileSourceError, match="empty"):
        load_users(settings, empty)


def test_cli_reports_a_missing_file_in_one_line(settings: Settings, tmp_path: Path) -> None:
    result = run_cli(settings, "users", str(tmp_path / "missing.ndjson"), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: file not found: {tmp_path / 'missing.ndjson'}"
    assert "Traceback" not in result.stderr


def _append_during_the_copy(monkeypatch: pytest.MonkeyPatch, path: Path, extra: bytes) -> None:
    """Append `extra` to `path` when the COPY has taken its first line: a producer still writing the file."""
    original = file_loader.split_payload
    appended = []

    def split_and_append(line: bytes | None, *args: object, **kwargs: object):
        if not appended:
            with path.open("ab") as handle:
                handle.write(extra)
            appended.append(True)
        return original(line, *args, **kwargs)

    monkeypatch.setattr(file_loader, "split_payload", split_and_append)


def _loads(pg: psycopg.Connection) -> list[tuple[int, str, int, int]]:
    return pg.execute(
        "select load_id, file_sha256, file_bytes, line_count from raw.file_loads order by load_id"
    ).fetchall()


def test_a_file_appended_to_during_the_copy_lands_what_was_hashed(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "users.ndjson"
    before = b'{"USERID": "1", "LOCATION": "LOC_1"}\n{"USERID": "2", "LOCATION": "LOC_2"}\n'
    extra = b'{"USERID": "3", "LOCATION": "LOC_3"}\n'
    path.write_bytes(before)
    with monkeypatch.context() as patch:
        _append_during_the_copy(patch, path, extra)
        first = load_users(settings, path)
    assert path.read_bytes() == before + extra  # the append really happened during the load
    # Hash, size and lines describe the same bytes: the content as it was read, not what came after.
    assert (first.lines, first.file_sha256) == (2, hashlib.sha256(before).hexdigest())
    assert _loads(pg) == [(first.load_id, hashlib.sha256(before).hexdigest(), len(before), 2)]
    assert [row[2] for row in raw_lines(pg)] == before.split(b"\n")[:2]

    # It grew: the new content is a new load, of exactly the bytes it has now.
    second = load_users(settings, path)
    assert not second.already_loaded
    assert _loads(pg)[-1] == (second.load_id, hashlib.sha256(before + extra).hexdigest(), len(before + extra), 3)
    assert pg.execute("select count(*) from raw.users where load_id = %s", (second.load_id,)).fetchone()[0] == 3

    # Back to the first content (the append undone): that content is loaded already, nothing is added.
    path.write_bytes(before)
    third = load_users(settings, path)
    assert third.already_loaded and third.load_id == first.load_id
    assert pg.execute("select count(*) from raw.users").fetchone()[0] == 2 + 3
