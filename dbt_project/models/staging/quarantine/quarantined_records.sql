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

    {{ quarantined_rows_since_last_run('kafka.jobs', ref('stg_kafka__job_events'), kind='kafka') }}

),

user_lines as (

    {{ quarantined_rows_since_last_run('files.users', ref('stg_files__user_lines'), kind='file') }}

),

payment_events as (

    {{ quarantined_rows_since_last_run('kafka.payments', ref('stg_kafka__payment_events'), kind='kafka') }}

),

service_lines as (

    {{ quarantined_rows_since_last_run('files.services', ref('stg_files__service_lines'), kind='file') }}

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
