-- One row per Kafka message of one topic (raw.jobs, raw.payments, ...). load_seq is the monotonic arrival
-- sequence that incremental dbt models filter on (wall clocks go backwards).
create table if not exists {table} (
    load_seq bigint generated always as identity primary key,
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
    loaded_at timestamptz not null default now(),
    unique (kafka_topic, kafka_partition, kafka_offset)
);
