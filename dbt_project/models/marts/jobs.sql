-- The clean jobs table of the case study (grain: job). Look-up functions jobs_by_location(text) and
-- jobs_by_service(text) are (re)created by the post-hook in the model config (macros/lookup_functions.sql).

with

jobs as (

    select * from {{ ref('stg_kafka__jobs') }}

),

users as (

    select user_id from {{ ref('stg_files__users') }}

),

final as (

    select
        -- ids
        jobs.job_id,
        jobs.user_id,
        jobs.location_id,

        -- strings
        jobs.service_name,
        jobs.job_status,

        -- numerics
        jobs.revenue,
        jobs.event_count,
        jobs.load_seq,
        jobs.kafka_partition,
        jobs.kafka_offset,

        -- booleans
        users.user_id is not null as has_known_user,

        -- timestamps
        jobs.job_at,
        jobs.job_created_at

    from jobs
    left join users on jobs.user_id = users.user_id

)

select * from final
