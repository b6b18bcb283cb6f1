-- The mart must equal the original case query of the case study, run literally on marts.jobs/users
-- (only the location literal is normalised like location_id). Returns the rows that differ.
-- In make audit only: it sums every job at the location, as the mart does, so on every build it would cost
-- as much as the mart and grow with history; the mart is rebuilt from marts.jobs on every run.

{{ config(tags=['audit']) }}

{%- set queried_location = normalize_location(sql_string_literal(var('location'))) %}

with

case_query as (

    select
        mart_jobs.user_id,
        sum(mart_jobs.revenue) as total_revenue
    from {{ ref('jobs') }} as mart_jobs
    inner join {{ ref('users') }} as mart_users on mart_jobs.user_id = mart_users.user_id
    where
        mart_jobs.location_id = {{ queried_location }}
        and mart_users.location_id <> mart_jobs.location_id
    group by mart_jobs.user_id
    having sum(mart_jobs.revenue) > 0
    order by sum(mart_jobs.revenue) desc, mart_jobs.user_id asc
    limit 5

),

expected as (

    select
        user_id,
        total_revenue,
        row_number() over (order by total_revenue desc, user_id asc) as revenue_rank
    from case_query

),

actual as (

    select
        user_id,
        total_revenue,
        revenue_rank
    from {{ ref('non_local_top_revenue') }}

)

select
    coalesce(expected.revenue_rank, actual.revenue_rank) as revenue_rank,
    expected.user_id as expected_user_id,
    actual.user_id as actual_user_id,
    expected.total_revenue as expected_total_revenue,
    actual.total_revenue as actual_total_revenue
from expected
full outer join actual on expected.revenue_rank = actual.revenue_rank
where
    expected.user_id is distinct from actual.user_id
    or expected.total_revenue is distinct from actual.total_revenue
