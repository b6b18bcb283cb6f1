-- One row per job: the latest usable event of each job_id (docs/data-model.md, "Deduplication").
--   1. within a partition the highest offset wins;
--   2. across partitions the partition whose latest event has the latest Kafka timestamp wins,
--      ties to the higher partition number.
-- Unusable events are filtered out first, so a broken newer event never erases an older usable one.

with

usable_events as (

    select * from {{ ref('stg_kafka__job_events') }}
    where is_usable

),

latest_per_partition as (

    select
        *,
        row_number() over (
            partition by job_id, kafka_topic, kafka_partition
            order by kafka_offset desc
        ) as partition_rank,
        count(*) over (partition by job_id) as event_count
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
        kafka_partition,
        kafka_offset,

        -- timestamps
        job_at,
        job_created_at

    from ranked
    where job_rank = 1

)

select * from final
