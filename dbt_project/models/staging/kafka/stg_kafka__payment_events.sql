-- One row per raw Kafka message of the payments topic: every field parsed/cast null-safely, plus the
-- first quarantine reason that applies (null when the payment event is usable). The only reader of
-- raw.payments. Amounts arrive in major units (AMOUNT: number or numeric string) or in integer minor
-- units (AMOUNT_MINOR); both end as amount numeric(14,2) in major units (minor / 100).
--
-- Incremental, append-only on the raw arrival sequence, like stg_kafka__job_events: every rule depends
-- on the row alone (the paid-at range is judged against the row's own loaded_at), so a --full-refresh
-- rebuilds identical rows.
--
-- The message columns and the first seven reasons are shared by every Kafka source (kafka_message_columns,
-- kafka_message_reasons in macros/staging/per_row_models.sql); what follows them here is the payment.

-- meta.rule_vars: the vars this model's rules read, so a change to one shows in dbt's state comparison
-- (state:modified), and `make build` rebuilds this model and what depends on it from scratch.

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        meta={'rule_vars': {'max_revenue': var('max_revenue'), 'payment_event_keys': var('payment_event_keys')}},
        indexes=[
            {'columns': ['load_seq'], 'unique': True},
            {'columns': ['payment_id']},
        ],
    )
}}

with

source as (

    {{ new_raw_rows(source('kafka', 'payments')) }}

),

renamed as (

    select
        {{ kafka_message_columns() }}

    from source
    -- optimisation fence: payload is computed once per row, not once per reference below
    offset 0  -- noqa: AM09

),

extracted as (

    select
        *,
        {{ kafka_event_key(json_id_text('payload', 'PAYMENTID')) }} as payment_id,
        {{ json_id_text('payload', 'JOBIDENTIFIER') }} as job_id,
        {{ json_is_absent('payload', 'AMOUNT') }} as amount_absent,
        {{ json_is_absent('payload', 'AMOUNT_MINOR') }} as amount_minor_absent,
        jsonb_typeof(payload -> 'AMOUNT') as amount_type,
        jsonb_typeof(payload -> 'AMOUNT_MINOR') as amount_minor_type,
        {{ json_is_absent('payload', 'CURRENCY') }} as currency_absent,
        {{ normalize_code(json_text('payload', 'CURRENCY')) }} as currency_code,
        {{ json_is_absent('payload', 'PAIDAT') }} as paid_at_absent,
        {{ json_scalar_text('payload', 'PAIDAT') }} as paid_at_text,
        {{ json_unmapped_keys('payload', var('payment_event_keys')) }} as unmapped_keys
    from renamed
    -- optimisation fence: the parsers below get plain columns, so the planner inlines them
    offset 0  -- noqa: AM09

),

parsed as (

    select
        *,
        -- major units, rounded to cents (half away from zero) before the range check, like revenue
        round(
            case
                when amount_type = 'number' then (payload -> 'AMOUNT')::numeric
                when amount_type = 'string' then {{ null_safe_cast("payload ->> 'AMOUNT'", 'numeric') }}
            end,
            2
        ) as amount_major_value,
        -- minor units: a whole number only (JSON integer or integer string); exact division by 100
        (case
            when amount_minor_type = 'number' and (payload ->> 'AMOUNT_MINOR') ~ '^-?[0-9]{1,30}$'
                then (payload ->> 'AMOUNT_MINOR')::numeric
            when amount_minor_type = 'string'
                then {{ null_safe_cast("payload ->> 'AMOUNT_MINOR'", 'bigint') }}::numeric
        end) / 100 as amount_minor_value,
        {{ parse_timestamp('paid_at_text') }} as paid_at
    from extracted
    -- optimisation fence: amount and paid_at are read several times below
    offset 0  -- noqa: AM09

),

amounts as (

    select
        *,
        case when amount_absent then amount_minor_value else amount_major_value end as amount_value
    from parsed

),

classified as (

    select
        *,
        case
            {{ kafka_message_reasons(key='payment_id') }}
            when job_id is null then 'missing_job_id'
            when amount_absent and amount_minor_absent then 'missing_amount'
            -- both forms at once is ambiguous; a form that does not parse is unusable
            when not amount_absent and not amount_minor_absent then 'invalid_amount'
            when amount_value is null or abs(amount_value) >= 1e26 then 'invalid_amount'
            when amount_value < 0 or amount_value > {{ var('max_revenue') }} then 'amount_out_of_range'
            when currency_absent then 'missing_currency'
            when currency_code is null or currency_code !~ '^[A-Z]{3}$' then 'invalid_currency'
            when paid_at_absent then 'missing_paid_at'
            when paid_at is null then 'invalid_paid_at'
            -- same window as JOBDATE: 1970 .. 5 years after the row landed (not now(): rebuilds agree)
            when
                paid_at < timestamptz '1970-01-01 00:00:00+00'
                or paid_at > (loaded_at at time zone 'UTC' + interval '5 years') at time zone 'UTC'
                then 'paid_at_out_of_range'
        end as quarantine_reason
    from amounts
    -- optimisation fence: quarantine_reason is read twice below
    offset 0  -- noqa: AM09

),

final as (

    select
        -- ids
        event_id,
        payment_id,
        job_id,

        -- strings
        case when currency_code ~ '^[A-Z]{3}$' then currency_code end as currency,
        quarantine_reason,
        kafka_topic,
        message_key,
        raw_excerpt,
        unmapped_keys,

        -- numerics
        (case
            when amount_value between 0 and {{ var('max_revenue') }} and amount_value < 1e12
                then amount_value
        end)::numeric(14, 2) as amount,
        load_seq,
        kafka_partition,
        kafka_offset,

        -- booleans
        amount_absent and not amount_minor_absent as is_minor_units,
        quarantine_reason is null as is_usable,
        is_deleted,

        -- timestamps
        paid_at,
        kafka_published_at,
        loaded_at

    from classified

)

select * from final
