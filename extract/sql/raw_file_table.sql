-- One row per line of one file source (raw.users, raw.services, ...), blank and broken lines included.
-- line_json is the line as JSON (ndjson), the value after the first | (key_value_lines), or the
-- row as an object keyed by the header (csv; null for the header line itself).
-- Range-partitioned by landing day like the Kafka tables (raw_kafka_table.sql). A load's lines land in one
-- transaction, hence with one loaded_at in one partition, so the per-partition unique index on
-- (load_id, line_number) holds the key across the whole table.
create table if not exists {table} (
    load_seq bigint generated always as identity,
    load_id bigint not null references raw.file_loads (load_id),
    file_name text not null,
    file_sha256 text not null,
    line_number bigint not null,
    line_text text,
    line_bytes bytea,
    line_json jsonb,
    loaded_at timestamptz not null default now(),
    primary key (load_seq, loaded_at)
) partition by range (loaded_at);
