-- Quarantined rows counted by source and reason (grain: source_name, quarantine_reason), with the
-- first and last raw row and when they landed: where to start looking. `make quarantine` prints it.

with

quarantined as (

    select * from {{ ref('quarantined_records') }}

),

final as (

    select
        -- ids
        source_name,
        quarantine_reason,

        -- numerics
        count(*) as row_count,
        min(raw_load_seq) as first_raw_load_seq,
        max(raw_load_seq) as last_raw_load_seq,

        -- timestamps
        min(loaded_at) as first_loaded_at,
        max(loaded_at) as last_loaded_at

    from quarantined
    group by source_name, quarantine_reason

)

select * from final
