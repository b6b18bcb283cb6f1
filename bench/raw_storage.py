"""(2b) What raw storage costs per message, after item (2) landed the main topic: the raw table's bytes on disk
(all its day partitions, indexes and TOAST included) per message, against the mean payload (value + key) the
message carried, with how much of a row the value's text and its jsonb copy each take."""

from __future__ import annotations

from bench.harness import Harness, log

_SIZES = """
select
    (select sum(pg_total_relation_size(relid)) from pg_partition_tree('raw.jobs')) as table_bytes,
    (select sum(pg_indexes_size(relid)) from pg_partition_tree('raw.jobs')) as index_bytes,
    count(*) as messages,
    avg(coalesce(octet_length(message_value), octet_length(message_value_bytes), 0)
        + coalesce(octet_length(message_key), octet_length(message_key_bytes), 0)) as payload_bytes,
    avg(pg_column_size(message_value)) as value_text_bytes,
    avg(pg_column_size(message_value_json)) as value_jsonb_bytes
from raw.jobs
"""


def measure(harness: Harness, database: str) -> dict[str, object]:
    with harness.connect(database) as conn:
        conn.execute("vacuum analyze raw.jobs")  # settle the visibility map and free space map sizes
        table_bytes, index_bytes, messages, payload, text_bytes, jsonb_bytes = conn.execute(_SIZES).fetchone()
    per_message = float(table_bytes) / messages if messages else 0.0
    result = {
        "messages": messages,
        "raw_table_bytes": int(table_bytes),
        "raw_index_bytes": int(index_bytes),
        "raw_bytes_per_message": per_message,
        "mean_payload_bytes": float(payload or 0),
        "raw_to_payload_ratio": per_message / float(payload) if payload else None,
        "mean_value_text_bytes": float(text_bytes or 0),
        "mean_value_jsonb_bytes": float(jsonb_bytes or 0),
    }
    log(
        f"raw storage: {per_message:.0f} bytes/message on disk for a {float(payload or 0):.0f}-byte payload"
        f" (text {float(text_bytes or 0):.0f} B + jsonb {float(jsonb_bytes or 0):.0f} B per value)"
    )
    return result
