"""(1) The ceiling: a kafka-python consumer group member that only counts what it polls, with the
extractor's fetch settings. Its own module (and child process) so the extractor in (2) is compared with
the client alone, measured the same way."""

from __future__ import annotations

import json
import os
import sys
import time

from bench.harness import Harness, bench_child, check, kafka_consumer, log, max_poll_records, run_child

# The fetch settings of the extractor's consumer (extract/landing/kafka_extractor.py), so the ceiling in (1) is
# measured with the same client configuration as (2).
CONSUMER_FETCH = {"fetch_max_bytes": 64 * 1024 * 1024, "max_partition_fetch_bytes": 16 * 1024 * 1024}


def measure(harness: Harness, topic: str, expect: int) -> dict[str, object]:
    run = check(
        run_child(bench_child("raw_consume", topic, str(expect)), harness.env("postgres", topic)),
        "raw consumption",
    )
    result = json.loads(run.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = run.seconds
    result["wall_rate"] = expect / run.seconds
    result["max_rss_mb"] = run.max_rss_mb
    log(f"(1) raw kafka-python: {result['steady_rate']:,.0f} msg/s steady")
    return result


def child(topic: str, expect: int) -> None:
    """In the child: poll until `expect` messages arrived, print the figures as one JSON line."""
    max_records = max_poll_records()
    marks: dict[str, float] = {"start": time.monotonic()}
    consumer = kafka_consumer(
        topic, f"bench-raw-{os.getpid()}", lambda: marks.setdefault("assigned", time.monotonic()), **CONSUMER_FETCH
    )
    count = 0
    payload = 0
    deadline = time.monotonic() + 120
    while count < expect and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=1000, max_records=max_records).values():
            deadline = time.monotonic() + 120
            count += len(batch)
            for message in batch:
                payload += len(message.value or b"")
    marks["end"] = time.monotonic()
    consumer.close(autocommit=False)
    steady = marks["end"] - marks["assigned"]
    print(
        json.dumps(
            {
                "messages": count,
                "payload_bytes": payload,
                "steady_seconds": steady,
                "steady_rate": count / steady,
                "join_seconds": marks["assigned"] - marks["start"],
                "max_poll_records": max_records,
            }
        )
    )


if __name__ == "__main__":
    child(sys.argv[1], int(sys.argv[2]))
