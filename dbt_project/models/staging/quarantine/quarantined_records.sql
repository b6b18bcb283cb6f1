-- Every raw row that cannot be used, with the first reason that applies and a pointer to the raw row.
-- raw = usable staged rows + quarantined rows, for every source (tested by raw_equals_staged_plus_quarantined).
-- Incremental, append-only: each source's watermark is the highest raw_load_seq quarantined from it
-- (every row at or below it was seen by an earlier run; rows above it that were usable are not selected).

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[
            {'columns': ['source_name', 'raw_load_seq'], 'unique': True},
        ],
    )
}}

with

job_events as (

    select
        'kafka.jobs' as source_name,
        load_seq as raw_load_seq,
        quarantine_reason,
        event_id as raw_record_id,
        raw_excerpt,
        loaded_at
    from {{ ref('stg_kafka__job_events') }}
    where
        not is_usable
        {%- if is_incremental() %}
            and load_seq > (
                select coalesce(max(previous_run.raw_load_seq), 0) from {{ this }} as previous_run
                where previous_run.source_name = 'kafka.jobs'
            )
        {%- endif %}

),

user_lines as (

    select
        'files.users' as source_name,
        load_seq as raw_load_seq,
        quarantine_reason,
        load_id || ':' || line_number as raw_record_id,
        raw_excerpt,
        loaded_at
    from {{ ref('stg_files__user_lines') }}
    where
        not is_usable
        {%- if is_incremental() %}
            and load_seq > (
                select coalesce(max(previous_run.raw_load_seq), 0) from {{ this }} as previous_run
                where previous_run.source_name = 'files.users'
            )
        {%- endif %}

),

payment_events as (

    select
        'kafka.payments' as source_name,
        load_seq as raw_load_seq,
        quarantine_reason,
        event_id as raw_record_id,
        raw_excerpt,
        loaded_at
    from {{ ref('stg_kafka__payment_events') }}
    where
        not is_usable
        {%- if is_incremental() %}
            and load_seq > (
                select coalesce(max(previous_run.raw_load_seq), 0) from {{ this }} as previous_run
                where previous_run.source_name = 'kafka.payments'
            )
        {%- endif %}

),

service_lines as (

    select
        'files.services' as source_name,
        load_seq as raw_load_seq,
        quarantine_reason,
        load_id || ':' || line_number as raw_record_id,
        raw_excerpt,
        loaded_at
    from {{ ref('stg_files__service_lines') }}
    where
        not is_usable
        {%- if is_incremental() %}
            and load_seq > (
                select coalesce(max(previous_run.raw_load_seq), 0) from {{ this }} as previous_run
                where previous_run.source_name = 'files.services'
            )
        {%- endif %}

),

final as (

    select * from job_events
    union all
    select * from user_lines
    union all
    select * from payment_events
    union all
    select * from service_lines

)

select * from final
