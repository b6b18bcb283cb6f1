-- One row per raw line of the users files: BOM (line 1) and trailing \r stripped, fields parsed,
-- plus the first quarantine reason that applies (null when usable). The only reader of raw.users.
-- Incremental, append-only on the raw arrival sequence (see stg_kafka__job_events): a line's staged row
-- depends on the line alone.

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[
            {'columns': ['load_seq'], 'unique': True},
            {'columns': ['user_id']},
        ],
    )
}}

with

source as (

    select * from {{ source('files', 'users') }}
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
        line_json,
        left(coalesce(line_text, '\x' || encode(substring(line_bytes from 1 for 250), 'hex')), 500) as raw_excerpt

    from source

),

stripped as (

    select
        *,
        regexp_replace(
            case when line_number = 1 then regexp_replace(line_text, '^\uFEFF', '') else line_text end,
            '\r$', ''
        ) as clean_text
    from renamed

),

parsed_json as (

    select
        *,
        -- raw line_json was parsed before the BOM was stripped: re-parse only when that changed the text
        coalesce(
            line_json,
            case when clean_text <> line_text then {{ null_safe_cast('clean_text', 'jsonb') }} end
        ) as value_json
    from stripped

),

parsed as (

    select
        *,
        case when jsonb_typeof(value_json) = 'object' then value_json end as payload
    from parsed_json

),

fields as (

    select
        *,
        {{ json_id_text('payload', 'USERID') }} as user_id,
        {{ normalize_location(json_text('payload', 'LOCATION')) }} as location_id,
        {{ json_unmapped_keys('payload', var('user_line_keys')) }} as unmapped_keys
    from parsed

),

classified as (

    select
        *,
        case
            when not has_binary_line and coalesce({{ trim_ws('clean_text') }}, '') = '' then 'blank_line'
            when has_binary_line then 'line_not_text'
            when value_json is null then 'invalid_json'
            when payload is null then 'json_not_object'
            when user_id is null then 'missing_user_id'
            when location_id is null then 'missing_location'
        end as quarantine_reason
    from fields

),

final as (

    select
        -- ids
        load_seq,
        user_id,
        location_id,
        load_id,

        -- strings
        quarantine_reason,
        file_name,
        file_sha256,
        raw_excerpt,
        unmapped_keys,

        -- numerics
        line_number,

        -- booleans
        quarantine_reason is null as is_usable,

        -- timestamps
        loaded_at

    from classified

)

select * from final
