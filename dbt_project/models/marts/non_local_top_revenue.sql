-- The case query for var('location'): jobs at that location, joined (inner) to users whose *current*
-- location differs, grouped by user, sum(revenue) > 0, top 5 by the sum, ties by user_id ascending.

{%- set queried_location = normalize_location(sql_string_literal(var('location'))) %}

with

jobs as (

    select * from {{ ref('jobs') }}

),

users as (

    select * from {{ ref('users') }}

),

per_user as (

    select
        jobs.user_id,
        users.location_id as home_location_id,
        jobs.location_id,
        sum(jobs.revenue) as total_revenue,
        count(*) as job_count
    from jobs
    inner join users on jobs.user_id = users.user_id
    where
        jobs.location_id = {{ queried_location }}
        and users.location_id <> jobs.location_id
    group by jobs.user_id, users.location_id, jobs.location_id
    having sum(jobs.revenue) > 0

),

final as (

    select
        row_number() over (order by total_revenue desc, user_id asc)::integer as revenue_rank,
        user_id,
        home_location_id,
        location_id,
        total_revenue::numeric(14, 2) as total_revenue,
        job_count
    from per_user
    order by revenue_rank
    limit 5

)

select * from final
