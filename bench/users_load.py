"""(4) The users file loader: the whole `python -m extract users` process against a plain COPY of the same
file over an already open connection, the strictest comparison there is. Its own module because it is
the one item that measures the file path rather than the topic."""

from __future__ import annotations

import time
from pathlib import Path

from bench.harness import PY, Harness, check, log, run_child


def measure(harness: Harness, database: str, path: Path) -> dict[str, object]:
    env = harness.env(database)
    startup = check(run_child([PY, "-m", "extract", "env"], env), "extract env").seconds
    run = harness.cli(env, "users", str(path))
    with harness.connect(database) as conn:
        lines = conn.execute("select count(*) from raw.users").fetchone()[0]
        conn.execute("create schema if not exists bench; drop table if exists bench.users_plain")
        conn.execute("create table bench.users_plain (line text)")
        with open(path, "rb") as handle, conn.transaction(), conn.cursor() as cur:
            started = time.monotonic()
            # Every byte accepted as is (latin1 maps each byte to a character), no quoting, no
            # escapes: the cheapest way to get every line of the file into a table.
            copy_sql = (
                "copy bench.users_plain (line) from stdin"
                " with (format csv, delimiter e'\\x01', quote e'\\x02', encoding 'latin1')"
            )
            with cur.copy(copy_sql) as copy:
                while chunk := handle.read(1 << 20):
                    copy.write(chunk)
        copy_seconds = time.monotonic() - started
        copied = conn.execute("select count(*) from bench.users_plain").fetchone()[0]
        conn.execute("drop schema bench cascade")
    result = {
        "lines": lines,
        "loader_seconds": run.seconds,
        "loader_rate": lines / run.seconds,
        "loader_seconds_net_of_startup": run.seconds - startup,
        "cli_startup_seconds": startup,
        "copy_lines": copied,
        "copy_seconds": copy_seconds,
        "copy_rate": copied / copy_seconds,
        "ratio": (lines / run.seconds) / (copied / copy_seconds),
        "ratio_net_of_startup": (lines / (run.seconds - startup)) / (copied / copy_seconds),
    }
    log(f"(4) users: {result['loader_rate']:,.0f} rows/s vs COPY {result['copy_rate']:,.0f}")
    return result
