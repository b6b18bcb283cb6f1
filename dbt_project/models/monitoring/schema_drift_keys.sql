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

    select
        'kafka.jobs' as source_name,
        unmapped.json_key,
        events.load_seq,
        events.loaded_at
    from {{ ref('stg_kafka__job_events') }} as events
    cross join lateral jsonb_array_elements_text(events.unmapped_keys) as unmapped (json_key)
    where
        events.unmapped_keys is not null
        {%- if is_incremental() %}
            and events.load_seq > (
                select coalesce(max(previous_run.last_seen_load_seq), 0) from {{ this }} as previous_run
                where previous_run.source_name = 'kafka.jobs'
            )
        {%- endif %}

    union all

    select
        'files.users' as source_name,
        unmapped.json_key,
        user_lines.load_seq,
        user_lines.loaded_at
    from {{ ref('stg_files__user_lines') }} as user_lines
    cross join lateral jsonb_array_elements_text(user_lines.unmapped_keys) as unmapped (json_key)
    where
        user_lines.unmapped_keys is not null
        {%- if is_incremental() %}
            and user_lines.load_seq > (
                select coalesce(max(previous_run.last_seen_load_seq), 0) from {{ this }} as previous_run
                where previous_run.source_name = 'files.users'
            )
        {%- endif %}

    union all

    select
        'kafka.payments' as source_name,
        unmapped.json_key,
        payment_events.load_seq,
        payment_events.loaded_at
    from {{ ref('stg_kafka__payment_events') }} as payment_events
    cross join lateral jsonb_array_elements_text(payment_events.unmapped_keys) as unmapped (json_key)
    where
        payment_events.unmapped_keys is not null
        {%- if is_incremental() %}
            and payment_events.load_seq > (
                select coalesce(max(previous_run.last_seen_load_seq), 0) from {{ this }} as previous_run
                where previous_run.source_name = 'kafka.payments'
            )
        {%- endif %}

    union all

    select
        'files.services' as source_name,
        unmapped.json_key,
        service_lines.load_seq,
        service_lines.loaded_at
    from {{ ref('stg_files__service_lines') }} as service_lines
    cross join lateral jsonb_array_elements_text(service_lines.unmapped_keys) as unmapped (json_key)
    where
        service_lines.unmapped_keys is not null
        {%- if is_incremental() %}
            and service_lines.load_seq > (
                select coalesce(max(previous_run.last_seen_load_seq), 0) from {{ this }} as previous_run
                where previous_run.source_name = 'files.services'
            )
        {%- endif %}

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
