-- Every raw row that cannot be used, with the first reason that applies and a pointer to the raw row.
-- raw = usable staged rows + quarantined rows, for both sources (tested by raw_equals_staged_plus_quarantined).

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
    where not is_usable

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
    where not is_usable

),

final as (

    select * from job_events
    union all
    select * from user_lines

)

select * from final
