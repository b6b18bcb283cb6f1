-- One row per payment: the latest usable event of each payment_id by the Kafka rule, like stg_kafka__jobs
-- (docs/data-model.md, "Deduplication"; latest_usable_row_per_key() in macros/staging/dedup_models.sql).
--
-- A payment re-sent with a correction (same PAYMENTID) therefore replaces the earlier one; two payments
-- under two ids are two payments, even for the same amount (the reconciliation mart sees them both).
--
-- Incremental (delete+insert on payment_id): a run recomputes the payments that received a usable event
-- since the last run, from all their usable events; the watermark is last_event_load_seq.

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

latest_events as (

    {{ latest_usable_row_per_key(ref('stg_kafka__payment_events'), key='payment_id', kind='kafka') }}

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
        is_deleted,

        -- timestamps
        paid_at

    from latest_events

)

select * from final
