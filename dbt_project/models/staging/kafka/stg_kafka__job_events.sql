-- One row per raw Kafka message of the jobs topic: every field parsed/cast null-safely, plus the
-- first quarantine reason that applies (null when the event is usable). The only reader of raw.jobs.
--
-- Incremental, append-only on the raw arrival sequence: a raw row is immutable, so its staged row is
-- computed exactly once, on the run after it lands. Every rule below depends on the row alone (the
-- date range is judged against the row's own loaded_at, never now()), so a --full-refresh rebuilds
-- identical rows. The unique index on load_seq turns a double insert into an error, not a duplicate.
-- The message columns and the first seven reasons are shared by every Kafka source (kafka_message_columns,
-- kafka_message_reasons in macros/staging/per_row_models.sql); what follows them here is the job.
-- JIT is off, as for every model (dbt_project.yml): compiling its wide expression list costs more than it
-- saves (measured 2x).

-- meta.rule_vars: the vars this model's rules read, so a change to one shows in dbt's state comparison
-- (state:modified), and `make build` rebuilds this model and what depends on it from scratch.

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        meta={'rule_vars': {'max_revenue': var('max_revenue'), 'job_event_keys': var('job_event_keys')}},
        indexes=[
            {'columns': ['load_seq'], 'unique': True},
            {'columns': ['job_id']},
        ],
    )
}}

with

source as (

    {{ new_raw_rows(source('kafka', 'jobs')) }}

),

renamed as (

    select
        {{ kafka_message_columns() }}

    from source
    -- optimisation fence: payload is computed once per row, not once per reference below
    offset 0  -- noqa: AM09

),

extracted as (

    select
        *,
        {{ kafka_event_key(json_id_text('payload', 'JOBIDENTIFIER')) }} as job_id,
        {{ json_id_text('payload', 'USERID') }} as user_id,
        {{ normalize_location(json_text('payload', 'LOCATION')) }} as location_id,
        {{ normalize_code(json_text('payload', 'SERVICENAME')) }} as service_name,
        {{ normalize_code(json_text('payload', 'JOBSTATUS')) }} as job_status,
        {{ json_is_absent('payload', 'REVENUE') }} as revenue_absent,
        jsonb_typeof(payload -> 'REVENUE') as revenue_type,
        {{ json_is_absent('payload', 'JOBDATE') }} as job_date_absent,
        {{ json_scalar_text('payload', 'JOBDATE') }} as job_date_text,
        {{ json_is_absent('payload', 'JOBCREATEDATE') }} as job_created_date_absent,
        {{ json_scalar_text('payload', 'JOBCREATEDATE') }} as job_created_date_text,
        {{ json_unmapped_keys('payload', var('job_event_keys')) }} as unmapped_keys
    from renamed
    -- optimisation fence: the parsers below get plain columns, so the planner inlines them
    offset 0  -- noqa: AM09

),

parsed as (

    select
        *,
        -- rounded to cents (half away from zero) before the range check, like the stored value
        round(
            case
                when revenue_type = 'number' then (payload -> 'REVENUE')::numeric
                when revenue_type = 'string' then {{ null_safe_cast("payload ->> 'REVENUE'", 'numeric') }}
            end,
            2
        ) as revenue_value,
        {{ parse_timestamp('job_date_text') }} as job_at,
        {{ parse_timestamp('job_created_date_text') }} as job_created_at
    from extracted
    -- optimisation fence: job_at and revenue_value are read several times below; without it the planner
    -- would paste (and evaluate) the whole parser expression once per reference
    offset 0  -- noqa: AM09

),

classified as (

    select
        *,
        case
            {{ kafka_message_reasons(key='job_id') }}
            when user_id is null then 'missing_user_id'
            when location_id is null then 'missing_location'
            when revenue_absent then 'missing_revenue'
            -- a value too large to hold with cents in 28 significant digits counts as unparsable
            when revenue_value is null or abs(revenue_value) >= 1e26 then 'invalid_revenue'
            when revenue_value < 0 or revenue_value > {{ var('max_revenue') }} then 'revenue_out_of_range'
            when job_date_absent then 'missing_job_date'
            when job_at is null then 'invalid_job_date'
            -- upper bound: 5 years after the row landed (not now(): a rebuild must give the same verdict)
            when
                job_at < timestamptz '1970-01-01 00:00:00+00'
                or job_at > (loaded_at at time zone 'UTC' + interval '5 years') at time zone 'UTC'
                then 'job_date_out_of_range'
            when not job_created_date_absent and job_created_at is null then 'invalid_job_created_date'
        end as quarantine_reason
    from parsed
    -- optimisation fence: quarantine_reason is read twice below
    offset 0  -- noqa: AM09

),

final as (

    select
        -- ids
        event_id,
        job_id,
        user_id,
        location_id,

        -- strings
        service_name,
        job_status,
        quarantine_reason,
        kafka_topic,
        message_key,
        raw_excerpt,
        unmapped_keys,

        -- numerics
        (case
            when revenue_value between 0 and {{ var('max_revenue') }} and revenue_value < 1e12
                then revenue_value
        end)::numeric(14, 2) as revenue,
        load_seq,
        kafka_partition,
        kafka_offset,

        -- booleans
        quarantine_reason is null as is_usable,
        is_deleted,

        -- timestamps
        job_at,
        job_created_at,
        kafka_published_at,
        loaded_at

    from classified

)

select * from final
