"""(9) The server-side ceiling: COPY FROM a file of the very rows (2) landed into a table of the raw table's
shape (range-partitioned by landing day, identity key, the day partition's unique (topic, partition,
offset) index, jsonb column, defaults), in one transaction.
Nothing the extractor does on the client side is in it (no Kafka, no row building): it is what the single
PostgreSQL writer can take, the other ceiling the extractor is held against besides (1)."""

from __future__ import annotations

import time

from bench.harness import RUN_DIR, Harness, log

# The columns the extractor writes; load_seq and loaded_at come from the table's identity and default.
COLUMNS = (
    "kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, kafka_timestamp_type, message_key,"
    " message_key_bytes, message_value, message_value_bytes, message_value_json, message_headers, kafka_read_error"
)


def measure(harness: Harness, database: str, expect: int) -> dict[str, object]:
    """Dump raw.jobs of `database` (what (2) landed) to a file, then time COPY FROM that file into an
    empty table `like raw.jobs`, partitioned the same way, with today's and tomorrow's partitions made
    (and their unique index) by the same function the writer calls."""
    path = RUN_DIR / "raw_jobs.copy"
    with harness.connect(database) as conn:
        dump = f"copy (select {COLUMNS} from raw.jobs order by load_seq) to stdout"
        with path.open("wb") as handle, conn.cursor() as cur, cur.copy(dump) as copy:
            for chunk in copy:
                handle.write(chunk)
        conn.execute("drop table if exists raw.bench_copy_ceiling")
        conn.execute("create table raw.bench_copy_ceiling (like raw.jobs including all) partition by range (loaded_at)")
        conn.execute("select raw.ensure_day_partitions('raw.bench_copy_ceiling')")
        conn.execute("checkpoint")
        with conn.transaction(), conn.cursor() as cur, path.open("rb") as handle:
            started = time.monotonic()
            with cur.copy(f"copy raw.bench_copy_ceiling ({COLUMNS}) from stdin") as copy:
                while chunk := handle.read(1 << 20):
                    copy.write(chunk)
        seconds = time.monotonic() - started
        rows = conn.execute("select count(*) from raw.bench_copy_ceiling").fetchone()[0]
        conn.execute("drop table raw.bench_copy_ceiling")  # its partitions go with it
    if rows != expect:
        raise RuntimeError(f"COPY ceiling copied {rows} rows, expected {expect}")
    result = {
        "rows": rows,
        "file_bytes": path.stat().st_size,
        "seconds": seconds,
        "rate": rows / seconds,
        "bytes_per_row": path.stat().st_size / max(rows, 1),
    }
    path.unlink()
    log(f"(9) server-side COPY ceiling: {result['rate']:,.0f} rows/s ({rows:,} rows in {seconds:.1f}s)")
    return result
