-- The raw layer: data exactly as it arrived, plus the extractor's checkpoints.
-- Idempotent: the extractors run it before their first write.

create schema if not exists raw;

-- One row per Kafka message of the jobs topic. load_seq is the monotonic arrival
-- sequence that incremental dbt models filter on (wall clocks go backwards).
create table if not exists raw.jobs (
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

-- The next offset to read per partition, written in the same transaction as the rows.
create table if not exists raw.kafka_offsets (
    kafka_topic text not null,
    kafka_partition integer not null,
    next_offset bigint not null,
    -- The topic's id when the offset was stored: a recreated topic has a new id and restarts at 0.
    kafka_topic_id text,
    consumer_group text,
    updated_at timestamptz not null default now(),
    primary key (kafka_topic, kafka_partition)
);

-- One row per distinct file content loaded: the same content twice is one load.
create table if not exists raw.file_loads (
    load_id bigint generated always as identity primary key,
    source_name text not null,
    file_name text not null,
    file_sha256 text not null,
    file_bytes bigint not null,
    line_count bigint not null,
    loaded_at timestamptz not null default now(),
    unique (source_name, file_sha256)
);

-- One row per line of a users file, blank and broken lines included.
create table if not exists raw.users (
    load_seq bigint generated always as identity primary key,
    load_id bigint not null references raw.file_loads (load_id),
    file_name text not null,
    file_sha256 text not null,
    line_number bigint not null,
    line_text text,
    line_bytes bytea,
    line_json jsonb,
    loaded_at timestamptz not null default now(),
    unique (load_id, line_number)
);

-- Used only when a batch holds a value that Python's JSON parser accepted but jsonb does not
-- (a number beyond numeric's range, say): the row keeps its text and gets a null jsonb.
create or replace function raw.try_jsonb(value text) returns jsonb
language plpgsql immutable parallel safe as $$
begin
    return value::jsonb;
exception when others then
    return null;
end;
$$;
