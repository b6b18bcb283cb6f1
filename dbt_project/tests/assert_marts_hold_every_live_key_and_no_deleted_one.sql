-- Completeness, in the direction that catches incremental bugs: every usable staged key that is not
-- deleted is in its mart, and no deleted key is (relationships from the marts back to staging pass even
-- when an incremental run drops rows). Returns one row per key in the wrong place.

with

staged_jobs as (

    select
        job_id,
        is_deleted
    from {{ ref('stg_kafka__jobs') }}

),

mart_jobs as (

    select job_id from {{ ref('jobs') }}

),

staged_users as (

    select
        user_id,
        is_deleted
    from {{ ref('stg_files__users') }}

),

mart_users as (

    select user_id from {{ ref('users') }}

),

job_problems as (

    select
        'jobs' as mart,
        staged_jobs.job_id as entity_id,
        case when staged_jobs.is_deleted then 'deleted_key_in_mart' else 'live_key_missing' end as problem
    from staged_jobs
    left join mart_jobs on staged_jobs.job_id = mart_jobs.job_id
    where staged_jobs.is_deleted = (mart_jobs.job_id is not null)

),

user_problems as (

    select
        'users' as mart,
        staged_users.user_id as entity_id,
        case when staged_users.is_deleted then 'deleted_key_in_mart' else 'live_key_missing' end as problem
    from staged_users
    left join mart_users on staged_users.user_id = mart_users.user_id
    where staged_users.is_deleted = (mart_users.user_id is not null)

),

payment_problems as (

    -- every job of marts.jobs is reconciled
    select
        'job_payments' as mart,
        mart_jobs.job_id as entity_id,
        'live_key_missing' as problem
    from mart_jobs
    left join {{ ref('job_payments') }} as job_payments on mart_jobs.job_id = job_payments.job_id
    where job_payments.job_id is null

)

select * from job_problems
union all
select * from user_problems
union all
select * from payment_problems
