"""Writes one polled batch of Kafka messages (of any number of topics) and their offsets to Postgres
in one transaction.

Under the raw table's lock, only offsets at or past the stored next offset are landed, and the offsets row
moves forward in the same transaction: a replayed batch is a no-op, so a crash before, during or after the
commit can neither lose nor double a message. This, not an index, keeps (topic, partition, offset) unique
across the table's day partitions (a partitioned table's unique index must hold its partition key); each
partition's own unique index stays as a second guard."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby, islice
from operator import attrgetter

import psycopg
from psycopg import sql

from extract.core.db import JSONB_REFUSED, ensure_partitions, jsonb_takes_any, table_identifier
from extract.landing.copy_text import Message, copy_lines

log = logging.getLogger(__name__)


_BATCH_TABLE = """
create temp table if not exists kafka_batch (
    kafka_topic text,
    kafka_partition integer,
    kafka_offset bigint,
    kafka_timestamp timestamptz,
    kafka_timestamp_type smallint,
    message_key text,
    message_key_bytes bytea,
    message_value text,
    message_value_bytes bytea,
    json_text text,
    message_headers jsonb,
    kafka_read_error text
) on commit delete rows
"""

_COPY = (
    "copy kafka_batch (kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, kafka_timestamp_type, message_key,"
    " message_key_bytes, message_value, message_value_bytes, json_text, message_headers, kafka_read_error) from stdin"
)

_INSERT = """
insert into {table} (
    kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, kafka_timestamp_type,
    message_key, message_key_bytes, message_value, message_value_bytes, message_value_json, message_headers,
    kafka_read_error
)
select
    kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, kafka_timestamp_type,
    message_key, message_key_bytes, message_value, message_value_bytes, {json_cast}, message_headers,
    kafka_read_error
from kafka_batch
where kafka_topic = %(topic)s
order by kafka_partition, kafka_offset
on conflict do nothing
"""

_UPSERT_OFFSET = """
insert into raw.kafka_offsets (kafka_topic, kafka_partition, next_offset, kafka_topic_id, consumer_group, updated_at)
values (%s, %s, %s, %s, %s, now())
on conflict (kafka_topic, kafka_partition) do update
set next_offset = greatest(raw.kafka_offsets.next_offset, excluded.next_offset),
    kafka_topic_id = coalesce(excluded.kafka_topic_id, raw.kafka_offsets.kafka_topic_id),
    consumer_group = excluded.consumer_group,
    updated_at = excluded.updated_at
"""


@dataclass(frozen=True)
class BatchResult:
    messages: int
    inserted: int
    payload_bytes: int
    next_offsets: dict[tuple[str, int], int]


# A C-level sort key: a Python key function cost ~1.4 us a message (4.6% of the extractor's profile).
_POSITION = attrgetter("topic", "partition", "offset")

_DIRECT_COPY = (
    "copy {table} (kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, kafka_timestamp_type, message_key,"
    " message_key_bytes, message_value, message_value_bytes, message_value_json, message_headers, kafka_read_error)"
    " from stdin"
)


def _copy(
    cur: psycopg.Cursor, statement: sql.Composable | str, messages: list[Message], unsure: list[str] | None = None
) -> None:
    lines = copy_lines(messages, unsure)
    with cur.copy(statement) as copy:
        # ~1,000 lines a write: one call into libpq per chunk, not per row
        while chunk := b"".join(islice(lines, 1000)):
            copy.write(chunk)


class _JsonbTakesMore(Exception):
    """jsonb accepts a value Python's parser refused: the direct COPY left it null, so it is undone."""


def write_batch(
    conn: psycopg.Connection,
    group: str,
    messages: Sequence[Message],
    tables: Mapping[str, str],
    topic_ids: Mapping[str, str | None],
    *,
    in_order: bool = False,
) -> BatchResult:
    """Land `messages` in the raw table of their topic (`tables`: topic -> raw.table) with their offsets.
    `in_order`: the caller hands them in (topic, partition, offset) order already, as a consumer's poll
    flattened by partition is, so they need no sort."""
    # Rows go in (topic, partition, offset) order, so load_seq follows Kafka order within a partition.
    ordered = messages if in_order else sorted(messages, key=_POSITION)
    # in offset order, each partition's last message sets its next offset
    next_offsets = {(message.topic, message.partition): message.offset + 1 for message in ordered}
    payload_bytes = sum(len(message.value or b"") + len(message.key or b"") for message in ordered)
    inserted = 0
    with conn.transaction(), conn.cursor() as cur:
        for topic, batch in groupby(ordered, key=attrgetter("topic")):
            inserted += _land(cur, tables[topic], topic, list(batch))
        cur.executemany(
            _UPSERT_OFFSET,
            [
                (topic, partition, offset, topic_ids.get(topic), group)
                for (topic, partition), offset in sorted(next_offsets.items())
            ],
        )
    return BatchResult(len(messages), inserted, payload_bytes, next_offsets)


def _land(cur: psycopg.Cursor, table: str, topic: str, messages: list[Message]) -> int:
    """COPY straight into the raw table (the fast path: no staging table, no INSERT ... SELECT), the server
    casting each value Python's parser takes too; the other JSON candidates go in null and the server is
    asked about them on the side. When that is not exact (a message landed already, say after a rebalance,
    jsonb refusing a value of the COPY or taking one left null), the savepoint undoes it and the staged path
    lands the batch, a value jsonb refuses keeping its text with a null jsonb."""
    # One writer per raw table at a time, until commit: load_seq values then become visible in the order
    # they were drawn, which the incremental dbt models rely on (they read load_seq above what they have).
    # Taken before the savepoint, so the staged path keeps it; polling and parsing stay parallel.
    cur.execute("select pg_advisory_xact_lock(hashtext('jobs_elt.raw_table.' || %s))", (table,))
    ensure_partitions(cur, table)
    messages = _not_landed(cur, topic, messages)
    if not messages:
        return 0
    unsure: list[str] = []
    try:
        with cur.connection.transaction():
            _copy(cur, sql.SQL(_DIRECT_COPY).format(table=table_identifier(table)), messages, unsure)
            inserted = cur.rowcount
            if unsure and jsonb_takes_any(cur, unsure):
                raise _JsonbTakesMore
            return inserted
    except (psycopg.errors.UniqueViolation, _JsonbTakesMore, *JSONB_REFUSED) as error:
        log.info("batch of %s takes the staged path (%s)", topic, type(error).__name__)
        json_refused = bool(unsure) or not isinstance(error, psycopg.errors.UniqueViolation)
    cur.execute(_BATCH_TABLE)
    _copy(cur, _COPY, messages)
    return _insert(cur, table, topic, json_refused=json_refused)


def _not_landed(cur: psycopg.Cursor, topic: str, messages: list[Message]) -> list[Message]:
    """The messages at or past their partition's stored next offset. Read under the table's lock, after the
    previous writer committed: every landed offset is below it, and every offset below it was landed."""
    cur.execute("select kafka_partition, next_offset from raw.kafka_offsets where kafka_topic = %s", (topic,))
    stored = dict(cur.fetchall())
    if not stored:
        return messages
    return [message for message in messages if message.offset >= stored.get(message.partition, 0)]


def _insert(cur: psycopg.Cursor, table: str, topic: str, *, json_refused: bool) -> int:
    def statement(json_cast: str) -> sql.Composed:
        return sql.SQL(_INSERT).format(table=table_identifier(table), json_cast=sql.SQL(json_cast))

    if not json_refused:
        try:
            with cur.connection.transaction():
                cur.execute(statement("json_text::jsonb"), {"topic": topic})
            return cur.rowcount
        except JSONB_REFUSED:
            pass
    # jsonb refuses a value of this batch: cast row by row, null where it refuses.
    cur.execute(statement("raw.try_jsonb(json_text)"), {"topic": topic})
    return cur.rowcount


def store_skipped_offsets(
    conn: psycopg.Connection,
    group: str,
    next_offsets: Mapping[tuple[str, int], int],
    topic_ids: Mapping[str, str | None],
) -> None:
    """Move stored offsets up past offsets that hold no message: transaction markers, and aborted messages
    with read_committed. The caller's consumer passed them after every message below them had landed, so
    every message below the new offset has landed too, and the offsets compare with the partitions' ends."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            _UPSERT_OFFSET,
            [
                (topic, partition, offset, topic_ids.get(topic), group)
                for (topic, partition), offset in sorted(next_offsets.items())
            ],
        )


def stored_offsets(
    conn: psycopg.Connection, topics: Iterable[str], group: str | None = None
) -> dict[tuple[str, int], int]:
    """The next offset to read for each partition of `topics` that has one stored; with `group`, also for every
    other partition that group landed last: how far the group has come, for a member waiting for it."""
    with conn.transaction():
        rows = conn.execute(
            "select kafka_topic, kafka_partition, next_offset from raw.kafka_offsets"
            " where kafka_topic = any(%s) or consumer_group = %s",
            (list(topics), group),
        ).fetchall()
    return {(topic, partition): offset for topic, partition, offset in rows}


def stored_topic_ids(conn: psycopg.Connection, topic: str) -> set[str]:
    with conn.transaction():
        rows = conn.execute(
            "select distinct kafka_topic_id from raw.kafka_offsets"
            " where kafka_topic = %s and kafka_topic_id is not null",
            (topic,),
        ).fetchall()
    return {row[0] for row in rows}
