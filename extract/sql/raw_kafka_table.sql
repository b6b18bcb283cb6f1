-- One row per Kafka message of one topic (raw.jobs, raw.payments, ...). load_seq is the monotonic arrival
-- sequence that incremental dbt models filter on (wall clocks go backwards).
-- Range-partitioned by landing day (loaded_at, UTC; raw.create_day_partition in schema.sql), so retention
-- drops whole days. A unique key of a partitioned table must hold the partition key, so
-- (kafka_topic, kafka_partition, kafka_offset) is unique per partition (an index each partition gets when
-- it is created) and across partitions by the writer: it lands only offsets at or past raw.kafka_offsets,
-- read under the table's lock and moved in the same transaction (extract/landing/raw_sink.py).
create table if not exists {table} (
    load_seq bigint generated always as identity,
    kafka_topic text not null,
    kafka_partition integer not null,
    kafka_offset bigint not null,
    kafka_timestamp timestamptz,
    kafka_timestamp_type smallint,
    message_key text,
    -- Set only when the key is not valid UTF-8 text (or holds NUL): bytes stay byte-exact.
    message_key_bytes bytea,
    message_value text,
    message_value_bytes bytea,
    -- The value parsed as JSON when Postgres jsonb accepts it, else null.
    message_value_json jsonb,
    message_headers jsonb,
    -- Set only on a placeholder row: the Kafka client could not read the record at this offset (a batch
    -- failing its CRC, a malformed record, an unknown codec), so key, value and headers are null and this
    -- says why (extract/landing/kafka_records.py).
    kafka_read_error text,
    loaded_at timestamptz not null default now(),
    primary key (load_seq, loaded_at)
) partition by range (loaded_at);

-- A table created before kafka_read_error existed gets it (nullable, no default: a catalog change only).
alter table {table} add column if not exists kafka_read_error text;
