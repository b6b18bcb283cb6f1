-- The case question read at job time, for var('location'): jobs there of users who lived elsewhere *when the
-- job took place* (users_location_history, the version valid at job_at), grouped by user, sum(revenue) > 0,
-- top 5 by the sum, ties by user_id ascending. non_local_top_revenue is the literal case query (the user's
-- current location); the two differ for users who moved between users-file loads. A job whose user was
-- unknown or deleted at job time does not count (no location to compare), as an unknown user does not in
-- the case query's inner join.

{%- set queried_location = normalize_location(sql_string_literal(var('location'))) %}

with

jobs as (

    select * from {{ ref('jobs') }}

),

history as (

    select * from {{ ref('users_location_history') }}

),

users as (

    select * from {{ ref('users') }}

),

jobs_at_job_time as (

    select
        jobs.job_id,
        jobs.user_id,
        jobs.location_id,
        jobs.revenue
    from jobs
    inner join history
        on
            jobs.user_id = history.user_id
            and jobs.job_at >= history.valid_from
            and jobs.job_at < history.valid_to
    where
        jobs.location_id = {{ queried_location }}
        and not history.is_deleted
        and history.location_id <> jobs.location_id

),

per_user as (

    select
        user_id,
        location_id,
        sum(revenue) as total_revenue,
        count(*) as job_count
    from jobs_at_job_time
    group by user_id, location_id
    having sum(revenue) > 0

),

final as (

    select
        row_number() over (order by per_user.total_revenue desc, per_user.user_id asc)::integer as revenue_rank,
        per_user.user_id,
        users.location_id as current_location_id,
        per_user.location_id,
        per_user.total_revenue::numeric(14, 2) as total_revenue,
        per_user.job_count
    from per_user
    left join users on per_user.user_id = users.user_id
    order by revenue_rank
    limit 5

)

select * from final
