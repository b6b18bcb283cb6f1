-- One row per raw line of the service catalogue CSV (raw.services): the header line, blank and broken
-- lines included, fields parsed from line_json (the row keyed by the header, built by the loader), plus
-- the first quarantine reason that applies (null when usable). The only reader of raw.services.
-- Incremental, append-only on the raw arrival sequence (see stg_kafka__job_events): a line's staged row
-- depends on the line alone.
-- The line columns and the first reasons are shared by every file source (file_line_columns,
-- file_line_reasons in macros/staging/per_row_models.sql); what follows them here is the service.

-- meta.rule_vars: the vars this model's rules read, so a change to one shows in dbt's state comparison
-- (state:modified), and `make build` rebuilds this model and what depends on it from scratch.

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        meta={'rule_vars': {'max_revenue': var('max_revenue'), 'service_line_keys': var('service_line_keys')}},
        indexes=[
            {'columns': ['load_seq'], 'unique': True},
            {'columns': ['service_name']},
        ],
    )
}}

with

source as (

    {{ new_raw_rows(source('files', 'services')) }}

),

renamed as (

    select
        {{ file_line_columns() }},
        case when jsonb_typeof(line_json) = 'object' then line_json end as payload

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
            {{ file_line_reasons(format='csv') }}
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
