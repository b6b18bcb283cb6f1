"""(3) The baseline the extractor is held against: the original case code's approach, one INSERT and one
commit per message, in a child process of its own. Kept as a module so the comparison stays runnable and
its raw row stays the same as the extractor's."""

from __future__ import annotations

import json
import os
import sys
import time

import psycopg

from bench.harness import Harness, Settings, bench_child, check, kafka_consumer, log, run_child


def measure(harness: Harness, topic: str, limit: int) -> dict[str, object]:
    database = harness.fresh_database("baseline")
    run = check(
        run_child(bench_child("baseline", topic, str(limit)), harness.env(database, topic)),
        "per-message baseline",
    )
    result = json.loads(run.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = run.seconds
    log(f"(3) per-message baseline: {result['rate']:,.0f} msg/s")
    return result


def child(topic: str, limit: int) -> None:
    """In the child: land `limit` messages of `topic` in the same raw row as the extractor (same columns,
    same text/bytes/json split, same unique key) but without an offsets table (the original left offsets
    to Kafka's auto-commit); print the rate as one JSON line."""
    from extract.landing.payload import headers_json, split_payload  # noqa: PLC0415 - only this child needs it

    settings = Settings.from_env()
    conn = psycopg.connect(
        host=settings.pg_host,
        port=settings.pg_port,
        user=settings.pg_user,
        password=settings.pg_password or None,
        dbname=settings.pg_database,
    )
    conn.execute(
        "create table if not exists baseline_jobs (load_seq bigint generated always as identity primary key,"
        " kafka_topic text not null, kafka_partition integer not null, kafka_offset bigint not null,"
        " kafka_timestamp timestamptz, kafka_timestamp_type smallint, message_key text, message_key_bytes bytea,"
        " message_value text, message_value_bytes bytea, message_value_json jsonb, message_headers jsonb,"
        " loaded_at timestamptz not null default now(), unique (kafka_topic, kafka_partition, kafka_offset))"
    )
    conn.commit()
    consumer = kafka_consumer(topic, f"bench-baseline-{os.getpid()}", lambda: None)
    insert = (
        "insert into baseline_jobs (kafka_topic, kafka_partition, kafka_offset, kafka_timestamp,"
        " kafka_timestamp_type, message_key, message_key_bytes, message_value, message_value_bytes,"
        " message_value_json, message_headers)"
        " values (%s, %s, %s, to_timestamp(%s / 1000.0), %s, %s, %s, %s, %s, %s::jsonb, %s)"
        " on conflict do nothing"
    )
    count = 0
    first = None
    deadline = time.monotonic() + 120
    while count < limit and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=1000, max_records=500).values():
            deadline = time.monotonic() + 120
            for message in batch:
                if count >= limit:
                    break
                if first is None:
                    first = time.monotonic()
                key, value = split_payload(message.key), split_payload(message.value)
                conn.execute(
                    insert,
                    (
                        topic,
                        message.partition,
                        message.offset,
                        message.timestamp,
                        message.timestamp_type,
                        key.text,
                        key.raw_bytes,
                        value.text,
                        value.raw_bytes,
                        value.text if value.python_parses else None,
                        headers_json(message.headers),
                    ),
                )
                conn.commit()
                count += 1
    seconds = time.monotonic() - (first or time.monotonic())
    consumer.close(autocommit=False)
    conn.close()
    print(json.dumps({"messages": count, "seconds": seconds, "rate": count / seconds}))


if __name__ == "__main__":
    child(sys.argv[1], int(sys.argv[2]))
