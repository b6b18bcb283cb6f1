-- One row per job: the latest usable event of each job_id by the Kafka rule (docs/data-model.md,
-- "Deduplication"): within a partition the highest offset wins; across partitions the partition whose
-- latest event has the latest Kafka timestamp wins, ties to the higher partition number. Unusable events
-- never take part, so a broken newer event never erases an older usable one. A tombstone is a usable
-- event: when it wins, the job's row has is_deleted true (its fields null) and the marts drop the job.
--
-- Incremental (delete+insert on job_id): a run recomputes the jobs that received a usable event since the
-- last run, from all their usable events; the watermark is last_event_load_seq. The rule and its
-- incremental logic are latest_usable_row_per_key() (macros/staging/dedup_models.sql), shared by every
-- dedup model.

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

latest_events as (

    {{ latest_usable_row_per_key(ref('stg_kafka__job_events'), key='job_id', kind='kafka') }}

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

        -- booleans
        is_deleted,

        -- timestamps
        job_at,
        job_created_at

    from latest_events

)

select * from final
