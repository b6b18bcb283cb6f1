-- One row per payment: the latest usable event of each payment_id, by the jobs rule
-- (docs/data-model.md, "Deduplication"):
--   1. within a partition the highest offset wins;
--   2. across partitions the partition whose latest event has the latest Kafka timestamp wins,
--      ties to the higher partition number.
-- Unusable events are filtered out first, so a broken newer event never erases an older usable one.
--
-- A payment re-sent with a correction (same PAYMENTID) therefore replaces the earlier one; two payments
-- under two ids are two payments, even for the same amount (the reconciliation mart sees them both).
--
-- Incremental (delete+insert on payment_id), exactly like stg_kafka__jobs: a run recomputes the payments
-- that received a usable event since the last run, from all their usable events; the watermark is
-- last_event_load_seq.

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='payment_id',
        on_schema_change='fail',
        indexes=[
            {'columns': ['payment_id'], 'unique': True},
            {'columns': ['job_id']},
            {'columns': ['last_event_load_seq']},
        ],
    )
}}

with

{% if is_incremental() -%}
    changed_payments as (

        select distinct new_events.payment_id
        from {{ ref('stg_kafka__payment_events') }} as new_events
        where
            new_events.is_usable
            and new_events.load_seq > (
                select coalesce(max(previous_run.last_event_load_seq), 0) from {{ this }} as previous_run
            )

    ),

{% endif -%}
usable_events as (

    select events.*
    from {{ ref('stg_kafka__payment_events') }} as events
    where
        events.is_usable
        {%- if is_incremental() %}
            and events.payment_id in (select changed_payments.payment_id from changed_payments)
        {%- endif %}

),

latest_per_partition as (

    select
        *,
        row_number() over (
            partition by payment_id, kafka_topic, kafka_partition
            order by kafka_offset desc
        ) as partition_rank,
        count(*) over (partition by payment_id) as event_count,
        max(load_seq) over (partition by payment_id) as last_event_load_seq
    from usable_events

),

ranked as (

    select
        *,
        row_number() over (
            partition by payment_id
            order by kafka_published_at desc nulls last, kafka_partition desc, kafka_topic desc, load_seq desc
        ) as payment_rank
    from latest_per_partition
    where partition_rank = 1

),

final as (

    select
        -- ids
        payment_id,
        job_id,

        -- strings
        currency,

        -- numerics
        amount,
        event_count,
        load_seq,
        last_event_load_seq,
        kafka_partition,
        kafka_offset,

        -- booleans
        is_minor_units,

        -- timestamps
        paid_at

    from ranked
    where payment_rank = 1

)

select * from final
