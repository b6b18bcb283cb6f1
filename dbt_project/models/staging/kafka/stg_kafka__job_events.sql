-- One row per raw Kafka message of the jobs topic: every field parsed/cast null-safely, plus the
-- first quarantine reason that applies (null when the event is usable). The only reader of raw.jobs.

with

source as (

    select * from {{ source('kafka', 'jobs') }}

),

renamed as (

    select
        -- ids
        load_seq,
        kafka_topic || '-' || kafka_partition || '-' || kafka_offset as event_id,

        -- strings
        kafka_topic,
        message_key,
        message_value,

        -- numerics
        kafka_partition,
        kafka_offset,

        -- booleans
        message_key_bytes is not null as has_binary_key,
        message_value_bytes is not null as has_binary_value,

        -- timestamps
        kafka_timestamp as kafka_published_at,
        loaded_at,

        -- payload
        message_value_json,
        case when jsonb_typeof(message_value_json) = 'object' then message_value_json end as payload,
        left(
            coalesce(message_value, '\x' || encode(substring(message_value_bytes from 1 for 250), 'hex')), 500
        ) as raw_excerpt

    from source

),

parsed as (

    select
        *,
        {{ json_id_text('payload', 'JOBIDENTIFIER') }} as job_id,
        {{ json_id_text('payload', 'USERID') }} as user_id,
        {{ normalize_location(json_text('payload', 'LOCATION')) }} as location_id,
        {{ normalize_code(json_text('payload', 'SERVICENAME')) }} as service_name,
        {{ normalize_code(json_text('payload', 'JOBSTATUS')) }} as job_status,
        {{ json_is_absent('payload', 'REVENUE') }} as revenue_absent,
        -- rounded to cents (half away from zero) before the range check, like the stored value
        round(
            case
                when jsonb_typeof(payload -> 'REVENUE') = 'number' then (payload -> 'REVENUE')::numeric
                when jsonb_typeof(payload -> 'REVENUE') = 'string'
                    then {{ null_safe_cast("payload ->> 'REVENUE'", 'numeric') }}
            end,
            2
        ) as revenue_value,
        {{ json_is_absent('payload', 'JOBDATE') }} as job_date_absent,
        {{ parse_timestamp(json_scalar_text('payload', 'JOBDATE')) }} as job_at,
        {{ json_is_absent('payload', 'JOBCREATEDATE') }} as job_created_date_absent,
        {{ parse_timestamp(json_scalar_text('payload', 'JOBCREATEDATE')) }} as job_created_at
    from renamed

),

classified as (

    select
        *,
        case
            when message_value is null and not has_binary_value then 'null_value'
            when message_value is null then 'value_not_text'
            when message_value_json is null then 'invalid_json'
            when payload is null then 'json_not_object'
            when job_id is null then 'missing_job_id'
            when has_binary_key or (message_key <> '' and message_key <> job_id) then 'key_mismatch'
            when user_id is null then 'missing_user_id'
            when location_id is null then 'missing_location'
            when revenue_absent then 'missing_revenue'
            -- a value too large to hold with cents in 28 significant digits counts as unparsable
            when revenue_value is null or abs(revenue_value) >= 1e26 then 'invalid_revenue'
            when revenue_value < 0 or revenue_value > {{ var('max_revenue') }} then 'revenue_out_of_range'
            when job_date_absent then 'missing_job_date'
            when job_at is null then 'invalid_job_date'
            when
                job_at < timestamptz '1970-01-01 00:00:00+00'
                or job_at > (now() at time zone 'UTC' + interval '5 years') at time zone 'UTC'
                then 'job_date_out_of_range'
            when not job_created_date_absent and job_created_at is null then 'invalid_job_created_date'
        end as quarantine_reason
    from parsed

),

final as (

    select
        -- ids
        event_id,
        job_id,
        user_id,
        location_id,

        -- strings
        service_name,
        job_status,
        quarantine_reason,
        kafka_topic,
        message_key,
        raw_excerpt,

        -- numerics
        case
            when revenue_value between 0 and {{ var('max_revenue') }} and revenue_value < 1e12
                then revenue_value::numeric(14, 2)
        end as revenue,
        load_seq,
        kafka_partition,
        kafka_offset,

        -- booleans
        quarantine_reason is null as is_usable,

        -- timestamps
        job_at,
        job_created_at,
        kafka_published_at,
        loaded_at

    from classified

)

select * from final
