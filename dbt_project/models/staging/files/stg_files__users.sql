-- One row per user: the latest usable line of each user_id (docs/data-model.md, "Deduplication"):
-- latest load first, then the highest line number within that load. Broken lines are filtered out
-- first, and a user missing from a newer file keeps the last known row.

with

usable_lines as (

    select * from {{ ref('stg_files__user_lines') }}
    where is_usable

),

ranked as (

    select
        *,
        row_number() over (
            partition by user_id
            order by load_id desc, line_number desc
        ) as user_rank
    from usable_lines

),

final as (

    select
        -- ids
        user_id,
        location_id,
        load_id,

        -- numerics
        line_number,
        load_seq

    from ranked
    where user_rank = 1

)

select * from final
