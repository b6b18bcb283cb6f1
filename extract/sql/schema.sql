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

-- The jsonb of a text, or null where jsonb refuses it: the server's verdict on the values Python's parser
-- refused (one query per batch or file), and the cast of a batch or file the direct COPY could not land.
-- An exception block costs a subtransaction per row, so on
-- Postgres 16+ a short text is checked with pg_input_is_valid instead: that check still raises (not
-- returns false) for nesting beyond the stack, but under 1000 characters nesting stays under 500 levels,
-- and even the smallest max_stack_depth (100kB) takes about 750.
do $$
begin
    if current_setting('server_version_num')::integer >= 160000 then
        create or replace function raw.try_jsonb(value text) returns jsonb
        language plpgsql immutable parallel safe as $body$
        begin
            if length(value) < 1000 then
                if pg_input_is_valid(value, 'jsonb') then
                    return value::jsonb;
                end if;
                return null;
            end if;
            begin
                return value::jsonb;
            exception when others then
                return null;
            end;
        end;
        $body$;
    else
        create or replace function raw.try_jsonb(value text) returns jsonb
        language plpgsql immutable parallel safe as $body$
        begin
            return value::jsonb;
        exception when others then
            return null;
        end;
        $body$;
    end if;
end;
$$;

-- One row per raw partition that `python -m extract retention` archived to a file and dropped (bounds,
-- load_seq range, rows, file and its sha256), so that dbt's raw = staged + quarantined reconciliation
-- still counts the rows that left raw. A restored partition's row is deleted again.
create table if not exists raw.archived_partitions (
    raw_table text not null,
    partition_name text not null,
    lower_bound timestamptz not null,
    upper_bound timestamptz not null,
    min_load_seq bigint,
    max_load_seq bigint,
    row_count bigint not null,
    file_name text not null,
    file_sha256 text not null,
    -- the file's columns, in order: what a restore COPYs them back into
    columns text [] not null,
    archived_at timestamptz not null default now(),
    primary key (raw_table, partition_name)
);

-- The partition of a raw table (raw_kafka_table.sql, raw_file_table.sql) for one UTC day, created if
-- missing; false when it exists or the table is a plain one (created before partitioning). Created apart
-- and attached, which locks the parent only SHARE UPDATE EXCLUSIVE (dbt's reads and other writes go on),
-- with the per-partition unique key. SECURITY DEFINER: the least-privilege loader (roles.sql) owns
-- nothing, yet its writer must be able to create the day it lands in; it can create nothing else.
create or replace function raw.create_day_partition(raw_table text, day date) returns boolean
language plpgsql security definer set search_path = pg_catalog as $$
declare
    parent regclass := to_regclass(raw_table);
    partition_name text := split_part(raw_table, '.', 2) || '_p' || to_char(day, 'YYYYMMDD');
    key_columns text;
begin
    if parent is null or to_regclass('raw.' || quote_ident(partition_name)) is not null then
        return false;
    end if;
    if not exists (
        select from pg_class
        where oid = parent and relkind = 'p' and relnamespace = 'raw'::regnamespace
    ) then
        return false;
    end if;
    -- the table's writer lock (raw_sink.py): one creator at a time; a writer holding it re-enters
    perform pg_advisory_xact_lock(hashtext('jobs_elt.raw_table.' || raw_table));
    if to_regclass('raw.' || quote_ident(partition_name)) is not null then
        return false;
    end if;
    key_columns := case
        when exists (select from pg_attribute where attrelid = parent and attname = 'kafka_offset')
            then 'kafka_topic, kafka_partition, kafka_offset'
        else 'load_id, line_number'
    end;
    execute format('create table raw.%I (like %s including defaults)', partition_name, parent);
    execute format('create unique index on raw.%I (%s)', partition_name, key_columns);
    execute format(
        'alter table %s attach partition raw.%I for values from (%L) to (%L)',
        parent, partition_name, day::timestamp at time zone 'UTC', (day + 1)::timestamp at time zone 'UTC'
    );
    return true;
end;
$$;

-- Today's and tomorrow's partitions (UTC): the writers call it under their table lock before each write,
-- so a row never waits for a partition and the midnight one is usually made a day ahead.
create or replace function raw.ensure_day_partitions(raw_table text) returns integer
language sql security definer set search_path = pg_catalog as $$
    select count(*)::integer
    from generate_series(0, 1) as ahead (days)
    where raw.create_day_partition(raw_table, (now() at time zone 'UTC')::date + ahead.days)
$$;
