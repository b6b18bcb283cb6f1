-- Schema drift: JSON keys seen in raw payloads that staging does not map (var('job_event_keys'),
-- var('user_line_keys'), var('payment_event_keys'), var('service_line_keys')), one row per source and key,
-- with when it was first/last seen and how often.
-- A new field never breaks staging (it is simply not read); the warn-severity test on this model makes
-- it visible. Incremental (delete+insert on source_name, json_key): a run folds the keys of the staged
-- rows that arrived since the highest load_seq already counted into the existing counts.

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['source_name', 'json_key'],
        on_schema_change='fail',
    )
}}

with

new_keys as (

    {{ unmapped_keys_since_last_run('kafka.jobs', ref('stg_kafka__job_events')) }}

    union all

    {{ unmapped_keys_since_last_run('files.users', ref('stg_files__user_lines')) }}

    union all

    {{ unmapped_keys_since_last_run('kafka.payments', ref('stg_kafka__payment_events')) }}

    union all

    {{ unmapped_keys_since_last_run('files.services', ref('stg_files__service_lines')) }}

),

new_counts as (

    select
        source_name,
        json_key,
        count(*) as row_count,
        min(load_seq) as first_seen_load_seq,
        max(load_seq) as last_seen_load_seq,
        min(loaded_at) as first_seen_at,
        max(loaded_at) as last_seen_at
    from new_keys
    group by source_name, json_key

),

{% if is_incremental() -%}
    combined as (

        select * from new_counts

        union all

        select
            previous.source_name,
            previous.json_key,
            previous.row_count,
            previous.first_seen_load_seq,
            previous.last_seen_load_seq,
            previous.first_seen_at,
            previous.last_seen_at
        from {{ this }} as previous
        inner join new_counts
            on previous.source_name = new_counts.source_name and previous.json_key = new_counts.json_key

    ),

{% else -%}
    combined as (

        select * from new_counts

    ),

{% endif -%}
final as (

    select
        -- ids
        source_name,
        json_key,

        -- numerics
        sum(row_count)::bigint as row_count,
        min(first_seen_load_seq) as first_seen_load_seq,
        max(last_seen_load_seq) as last_seen_load_seq,

        -- timestamps
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_seen_at

    from combined
    group by source_name, json_key

)

select * from final
