"""(2) The extractor: `python -m extract jobs --until-end` draining a topic into raw.jobs, checked against
the row count and timed from its own JSON log lines. The other items reuse it (5 on a smaller topic, 6 for
the increment, 8 for several processes, the profile under py-spy), so its parsing lives here once."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bench import cpu
from bench.harness import Harness, Run, log
from bench.report import fmt


def measure(harness: Harness, database: str, topic: str, expect: int) -> dict[str, object]:
    before = cpu.snapshot(harness.broker_pid)
    result = extract_jobs(harness, database, topic, "bench-extract-1", expect)
    result.update(cpu.per_message(before, cpu.snapshot(harness.broker_pid), result["cpu_seconds"], expect))
    log(f"(2) extractor: {fmt(result['steady_rate'])} msg/s steady, {result['wall_seconds']:.1f}s wall")
    bound = result["cpu_bound_rate"]
    log(f"(2c) CPU per message (us): {result['cpu_us_per_message']}; every core busy at {fmt(bound)} msg/s")
    return result


def extract_jobs(
    harness: Harness, database: str, topic: str, group: str, expect: int | None = None
) -> dict[str, object]:
    run = harness.cli(harness.env(database, topic, group), "jobs", "--until-end")
    return drain_result(harness, run, database, topic, expect)


def drain_result(harness: Harness, run: Run, database: str, topic: str, expect: int | None) -> dict[str, object]:
    """The figures of one finished extractor process; fails when raw.jobs does not hold what was sent."""
    assigned, ended = log_span(run.stderr)
    with harness.connect(database) as conn:
        landed = conn.execute("select count(*) from raw.jobs where kafka_topic = %s", (topic,)).fetchone()[0]
    if expect is not None and landed != expect:
        raise RuntimeError(f"extractor landed {landed} rows of {topic}, expected {expect}")
    messages = landed_messages(run.stdout)
    steady = (ended - assigned) if assigned is not None and ended is not None else None
    return {
        "messages": messages,
        "rows_in_raw": landed,
        "wall_seconds": run.seconds,
        "wall_rate": messages / run.seconds,
        "steady_seconds": steady,
        "steady_rate": messages / steady if steady else None,
        "max_rss_mb": run.max_rss_mb,
        "cpu_seconds": run.cpu_seconds,
    }


def log_span(stderr: str) -> tuple[float | None, float | None]:
    """(time the group first assigned partitions, time of the last log line) from the extractor's JSON logs."""
    assigned = last = None
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        moment = datetime.strptime(record["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
        if assigned is None and "assigned" in record.get("message", ""):
            assigned = moment
        last = moment
    return assigned, last


def landed_messages(stdout: str) -> int:
    # "landed N new of M messages from 'topic'"
    words = stdout.split()
    try:
        return int(words[words.index("of") + 1])
    except (ValueError, IndexError):
        return 0
