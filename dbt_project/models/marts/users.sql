-- The clean users table of the case study (grain: user): each user's current (latest known) location;
-- users deleted by a newer snapshot load of the users file are not here (users_location_history keeps them).

with

users as (

    select * from {{ ref('stg_files__users') }}
    where not is_deleted

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
