-- One row per job: the latest usable event of each job_id (docs/data-model.md, "Deduplication").
--   1. within a partition the highest offset wins;
--   2. across partitions the partition whose latest event has the latest Kafka timestamp wins,
--      ties to the higher partition number.
-- Unusable events are filtered out first, so a broken newer event never erases an older usable one.
--
-- Incremental (delete+insert on job_id): a run recomputes exactly the jobs that received a usable event
-- since the last run, from *all* their usable events (index on stg_kafka__job_events.job_id). The rule
-- above is not "the newest arrival wins", so an old event replayed late (a lower offset landing in a
-- later run) is ranked by its offset like every other and cannot displace the staged winner; and
-- event_count stays exact. The watermark is last_event_load_seq, the highest usable load_seq a row has
-- seen: every usable event at or below its maximum has been processed by an earlier run.

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='job_id',
        on_schema_change='fail',
        indexes=[
            {'columns': ['job_id'], 'unique': True},
            {'columns': ['last_event_load_seq']},
        ],
    )
}}

with

{% if is_incremental() -%}
    changed_jobs as (

        select distinct new_events.job_id
        from {{ ref('stg_kafka__job_events') }} as new_events
        where
            new_events.is_usable
            and new_events.load_seq > (
                select coalesce(max(previous_run.last_event_load_seq), 0) from {{ this }} as previous_run
            )

    ),

{% endif -%}
usable_events as (

    select events.*
    from {{ ref('stg_kafka__job_events') }} as events
    where
        events.is_usable
        {%- if is_incremental() %}
            and events.job_id in (select changed_jobs.job_id from changed_jobs)
        {%- endif %}

),

latest_per_partition as (

    select
        *,
        row_number() over (
            partition by job_id, kafka_topic, kafka_partition
            order by kafka_offset desc
        ) as partition_rank,
        count(*) over (partition by job_id) as event_count,
        max(load_seq) over (partition by job_id) as last_event_load_seq
    from usable_events

),

ranked as (

    select
        *,
        row_number() over (
            partition by job_id
            order by kafka_published_at desc nulls last, kafka_partition desc, kafka_topic desc, load_seq desc
        ) as job_rank
    from latest_per_partition
    where partition_rank = 1

),

final as (

    select
        -- ids
        job_id,
        user_id,
        location_id,

        -- strings
        service_name,
        job_status,

        -- numerics
        revenue,
        event_count,
        load_seq,
        last_event_load_seq,
        kafka_partition,
        kafka_offset,

        -- timestamps
        job_at,
        job_created_at

    from ranked
    where job_rank = 1

)

select * from final
