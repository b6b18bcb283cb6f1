-- The clean users table of the case study (grain: user): each user's current (latest known) location.

with

users as (

    select * from {{ ref('stg_files__users') }}

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

    from users

)

select * from final
