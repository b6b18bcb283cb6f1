"""(8) Scale-out: `run --processes N` (N extractor processes in one consumer group under one supervisor) draining
the main topic, against the single process of (2): one member per core (2 here) and one per partition (3).
Its own module because it is the one item that runs several extractors at once."""

from __future__ import annotations

import os

from bench.extractor import drain_result
from bench.harness import PY, Harness, check, log, run_child


def measure(harness: Harness, topic: str, total: int, one: dict[str, object]) -> dict[str, object]:
    """Drain `topic` (`total` messages) with one member per core and one per partition; `one` is (2)."""
    counts = sorted({os.cpu_count() or 1, harness.config.partitions} - {1})
    runs = [_drain(harness, topic, total, processes, one) for processes in counts]
    return {
        "messages": total,
        "one_process_wall_seconds": one["wall_seconds"],
        "one_process_rate": total / one["wall_seconds"],
        "one_process_steady_rate": one["steady_rate"],
        "runs": runs,
    }


def _drain(harness: Harness, topic: str, total: int, processes: int, one: dict[str, object]) -> dict[str, object]:
    database = harness.fresh_database(f"scale{processes}")
    env = harness.env(database, topic, f"bench-extract-{processes}")
    command = [PY, "-m", "extract", "--log-format", "json", "run", "--kind", "kafka", "--until-end"]
    run = check(run_child([*command, "--processes", str(processes), "jobs"], env), f"run --processes {processes}")
    # steady: from the first member's assignment to the last log line of any member, as (2)'s; wait4's
    # figures of the supervisor (cpu_seconds, max_rss_mb) include its members, which it waited for
    result = {"processes": processes, **drain_result(harness, run, database, topic, total)}
    steady = result["steady_rate"]
    result["speedup"] = one["wall_seconds"] / run.seconds
    result["steady_speedup"] = steady / one["steady_rate"] if steady and one["steady_rate"] else None
    harness.drop(database)
    log(f"(8) run --processes {processes}: {run.seconds:.1f}s wall vs {one['wall_seconds']:.1f}s for one process")
    return result
