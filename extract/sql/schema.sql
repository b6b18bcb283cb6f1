-- The raw layer's shared objects: the schema, the extractors' checkpoints and load registry.
-- The per-source tables follow one of two shapes (raw_kafka_table.sql, raw_file_table.sql),
-- created for every entry of sources.yml. Idempotent: the extractors run it before their first write.

create schema if not exists raw;

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

-- The audit trail. One row per extract run (`jobs`, `run`, `serve`): started when the consumer starts,
-- updated as batches commit and closed at the end with its outcome. `partitions` holds, per partition,
-- the first and last offset the run read and how many messages: [{"topic", "partition", "first_offset",
-- "last_offset", "messages"}].
create table if not exists raw.extract_runs (
    run_id bigint generated always as identity primary key,
    command text not null,
    topics text [] not null,
    consumer_group text,
    host text,
    pid integer,
    started_at timestamptz not null default now(),
    ended_at timestamptz,
    -- running | succeeded | stopped (SIGTERM/SIGINT in service mode) | failed
    status text not null default 'running',
    messages bigint not null default 0,
    rows_inserted bigint not null default 0,
    payload_bytes bigint not null default 0,
    batches bigint not null default 0,
    partitions jsonb not null default '[]',
    error text,
    updated_at timestamptz not null default now()
);
create index if not exists extract_runs_started_at on raw.extract_runs (started_at desc);

-- One row per attempt to load a file, whatever came of it: loaded (load_id points at raw.file_loads),
-- duplicate (the same content was already load_id) or failed (error says why; nothing was landed).
create table if not exists raw.file_load_attempts (
    attempt_id bigint generated always as identity primary key,
    source_name text not null,
    file_name text not null,
    file_sha256 text,
    file_bytes bigint,
    rows_loaded bigint not null default 0,
    -- loaded | duplicate | failed
    outcome text not null,
    load_id bigint,
    error text,
    started_at timestamptz not null,
    ended_at timestamptz not null default now()
);
create index if not exists file_load_attempts_started_at on raw.file_load_attempts (started_at desc);

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
