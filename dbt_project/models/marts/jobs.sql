-- The clean jobs table of the case study (grain: job). Look-up functions jobs_by_location(text) and
-- jobs_by_service(text) are (re)created by the post-hook in the model config (macros/lookup_functions.sql).
--
-- Deleted jobs (a tombstone won in stg_kafka__jobs) are not here: the post-hook removes them.
--
-- Incremental (delete+insert on job_id). A run rewrites the jobs that changed in stg_kafka__jobs
-- (last_event_load_seq above this table's highest) and, when users-file lines arrived since the last run,
-- the jobs whose user has since appeared in, or been deleted from, the users file (has_known_user no longer
-- matches stg_files__users): that check reads every job, so it waits for a new users file instead of
-- running on every build. The post-hook removes the jobs whose tombstone won since the last run. The
-- watermarks of both are in staging.dbt_model_watermarks (macros/incremental_watermarks.sql).

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='job_id',
        on_schema_change='fail',
        indexes=[
            {'columns': ['location_id', 'job_at']},
            {'columns': ['service_name', 'job_at']},
            {'columns': ['last_event_load_seq']},
        ],
        post_hook=[
            "delete from {{ this }} where job_id in (select deleted.job_id from {{ ref('stg_kafka__jobs') }}"
            ~ " as deleted where deleted.is_deleted and deleted.last_event_load_seq > {{ model_watermark('jobs') }})",
            "{{ record_model_watermarks({'jobs': [ref('stg_kafka__jobs'), 'last_event_load_seq'],"
            ~ " 'user_lines': [ref('stg_files__user_lines'), 'load_seq']}) }}",
        ],
    )
}}

with

jobs as (

    select * from {{ ref('stg_kafka__jobs') }}
    where not is_deleted

),

users as (

    select user_id from {{ ref('stg_files__users') }}
    where not is_deleted

),

{% if is_incremental() -%}
    changed_jobs as (

        -- (reads the staging tables, not the CTEs above: a CTE read twice is materialised whole, and the
        -- final join would then sort every job instead of looking up the changed ones by index)
        select staged_jobs.job_id
        from {{ ref('stg_kafka__jobs') }} as staged_jobs
        where
            staged_jobs.last_event_load_seq > {{ highest_value(this, 'last_event_load_seq') }}

        union

        select current_jobs.job_id
        from {{ this }} as current_jobs
        left join {{ ref('stg_files__users') }} as known_users
            on current_jobs.user_id = known_users.user_id and not known_users.is_deleted
        where
            current_jobs.has_known_user <> (known_users.user_id is not null)
            and (
                select coalesce(max(user_lines.load_seq), 0) from {{ ref('stg_files__user_lines') }} as user_lines
            ) > {{ model_watermark('user_lines') }}

    ),

{% endif -%}
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
        -- the contract's type, spelled out: an incremental run compares it with the table's
        jobs.revenue::numeric(14, 2) as revenue,
        jobs.event_count,
        jobs.load_seq,
        jobs.last_event_load_seq,
        jobs.kafka_partition,
        jobs.kafka_offset,

        -- booleans
        users.user_id is not null as has_known_user,

        -- timestamps
        jobs.job_at,
        jobs.job_created_at

    from jobs
    left join users on jobs.user_id = users.user_id
    {%- if is_incremental() %}
        where jobs.job_id in (select changed_jobs.job_id from changed_jobs)
    {%- endif %}

)

select * from final
