"""Progress bars: drawn with rate and ETA when stderr is a terminal, silent in CI and in pipes."""

from __future__ import annotations

from pathlib import Path

import psycopg

from extract.core.settings import Settings
from tests.conftest import run_cli
from tests.support.ops_helpers import run_in_pty, write_key_value_file


def test_bars_on_a_terminal_only(settings: Settings, pg: psycopg.Connection, tmp_path: Path) -> None:
    code, terminal = run_in_pty(settings, "generate", "--users", "300", "--jobs", "3000", "--out", str(tmp_path))
    assert code == 0
    for name in ("generate users.ndjson", "generate jobs.kafka"):
        assert name in terminal and "100.0%" in terminal
    assert "lines/s" in terminal and "ETA" in terminal

    code, terminal = run_in_pty(settings, "produce", str(write_key_value_file(tmp_path / "few.kafka", 500)))
    assert code == 0 and "produce few.kafka 100.0%" in terminal and "ETA" in terminal
    code, terminal = run_in_pty(settings, "users", str(tmp_path / "users.ndjson"))
    assert code == 0 and "load users.ndjson 100.0%" in terminal
    code, terminal = run_in_pty(settings, "jobs", "--until-end")
    assert code == 0 and "jobs 100.0%" in terminal and "500/500" in terminal and "msg/s" in terminal
    assert pg.execute("select count(*) from raw.jobs").fetchone()[0] == 500

    # CI set, --log-format json, or not a terminal: no bar.
    code, terminal = run_in_pty(
        settings, "generate", "--users", "10", "--jobs", "10", "--out", str(tmp_path), env={"CI": "1"}
    )
    assert code == 0 and "%" not in terminal and "ETA" not in terminal
    code, terminal = run_in_pty(
        settings, "--log-format", "json", "generate", "--users", "10", "--jobs", "10", "--out", str(tmp_path)
    )
    assert code == 0 and "ETA" not in terminal
    piped = run_cli(settings, "generate", "--users", "10", "--jobs", "10", "--out", str(tmp_path))
    assert "ETA" not in piped.stderr and "\r" not in piped.stderr
