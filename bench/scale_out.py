"""(8) Scale-out: one extractor process per partition in one consumer group against the single process of
(2), wall clock with the group joins included. Its own module because it is the one item that runs
several extractors at once."""

from __future__ import annotations

from bench.extractor import landed_messages
from bench.harness import PY, Harness, check, log, run_children


def measure(harness: Harness, topic: str, total: int, one: float) -> dict[str, object]:
    """Drain `topic` (`total` messages) with one process per partition; `one` is (2)'s wall seconds."""
    processes = harness.config.partitions
    database = harness.fresh_database("scale3")
    env = harness.env(database, topic, "bench-extract-3")
    command = [PY, "-m", "extract", "--log-format", "json", "jobs", "--until-end"]
    # The members drain about a third each and end together (`--until-end` waits for the group); one still
    # running long after the first ended is stuck (before members waited for one another, Tansu took a
    # partition in the rebalance when the others left and never gave it back): stop it, so the item fails
    # with the reason instead of hanging the bench.
    wall, runs = run_children([command] * processes, env, straggler_s=max(60.0, 2 * one))
    for index, child in enumerate(runs):
        check(child, f"extractor {index + 1} of {processes}")
    with harness.connect(database) as conn:
        landed = conn.execute("select count(*) from raw.jobs").fetchone()[0]
    if landed != total:
        raise RuntimeError(f"{processes} extractors landed {landed} rows, expected {total}")
    result = {
        "processes": processes,
        "messages": total,
        "rows_in_raw": landed,
        "per_process_messages": [landed_messages(child.stdout) for child in runs],
        "one_process_wall_seconds": one,
        "wall_seconds": wall,
        "one_process_rate": total / one,
        "rate": total / wall,
        "speedup": one / wall,
        "max_rss_mb": [child.max_rss_mb for child in runs],
    }
    harness.drop(database)
    log(f"(8) {processes} processes: {wall:.1f}s vs {one:.1f}s for one")
    return result
