-- One row per raw line of the service catalogue CSV (raw.services): the header line, blank and broken
-- lines included, fields parsed from line_json (the row keyed by the header, built by the loader), plus
-- the first quarantine reason that applies (null when usable). The only reader of raw.services.
-- Incremental, append-only on the raw arrival sequence (see stg_kafka__job_events): a line's staged row
-- depends on the line alone.

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[
            {'columns': ['load_seq'], 'unique': True},
            {'columns': ['service_name']},
        ],
    )
}}

with

source as (

    select * from {{ source('files', 'services') }}
    {% if is_incremental() -%}
        where load_seq > (select coalesce(max(previous_run.load_seq), 0) from {{ this }} as previous_run)
    {%- endif %}

),

renamed as (

    select
        -- ids
        load_seq,
        load_id,
        line_number,

        -- strings
        file_name,
        file_sha256,
        line_text,

        -- booleans
        line_bytes is not null as has_binary_line,

        -- timestamps
        loaded_at,

        -- payload
        case when jsonb_typeof(line_json) = 'object' then line_json end as payload,
        left(coalesce(line_text, '\x' || encode(substring(line_bytes from 1 for 250), 'hex')), 500) as raw_excerpt

    from source

),

fields as (

    select
        *,
        {{ normalize_code(json_text('payload', 'SERVICENAME')) }} as service_name,
        nullif({{ trim_ws(json_text('payload', 'CATEGORY')) }}, '') as category,
        nullif({{ trim_ws(json_text('payload', 'BASEPRICE')) }}, '') as base_price_text,
        {{ json_unmapped_keys('payload', var('service_line_keys')) }} as unmapped_keys
    from renamed

),

parsed as (

    select
        *,
        round({{ null_safe_cast('base_price_text', 'numeric') }}, 2) as base_price_value
    from fields

),

classified as (

    select
        *,
        case
            -- the loader keys every later line by line 1 of the load: the header is no data
            when line_number = 1 then 'header_row'
            when not has_binary_line and coalesce({{ trim_ws('line_text') }}, '') = '' then 'blank_line'
            when has_binary_line then 'line_not_text'
            -- the loader leaves line_json null when the line does not parse as one CSV row with as many
            -- fields as the header (an open quote, a short or long row)
            when payload is null then 'invalid_csv'
            when service_name is null then 'missing_service_name'
            when category is null then 'missing_category'
            when base_price_text is null then 'missing_base_price'
            when
                base_price_value is null
                or base_price_value < 0
                or base_price_value > {{ var('max_revenue') }}
                then 'invalid_base_price'
        end as quarantine_reason
    from parsed

),

final as (

    select
        -- ids
        load_seq,
        service_name,
        load_id,

        -- strings
        category,
        quarantine_reason,
        file_name,
        file_sha256,
        raw_excerpt,
        unmapped_keys,

        -- numerics
        (case
            when base_price_value between 0 and {{ var('max_revenue') }} then base_price_value
        end)::numeric(14, 2) as base_price,
        line_number,

        -- booleans
        quarantine_reason is null as is_usable,

        -- timestamps
        loaded_at

    from classified

)

select * from final
