-- One row per raw line of the users files: BOM (line 1) and trailing \r stripped, fields parsed,
-- plus the first quarantine reason that applies (null when usable). The only reader of raw.users.
-- Incremental, append-only on the raw arrival sequence (see stg_kafka__job_events): a line's staged row
-- depends on the line alone.
-- The line columns and the first reasons are shared by every file source (file_line_columns,
-- file_line_reasons in macros/staging/per_row_models.sql); what follows them here is the user.

-- meta.rule_vars: the vars this model's rules read, so a change to one shows in dbt's state comparison
-- (state:modified), and `make build` rebuilds this model and what depends on it from scratch.

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        meta={'rule_vars': {'user_line_keys': var('user_line_keys')}},
        indexes=[
            {'columns': ['load_seq'], 'unique': True},
            {'columns': ['user_id']},
        ],
    )
}}

with

source as (

    {{ new_raw_rows(source('files', 'users')) }}

),

renamed as (

    select
        {{ file_line_columns() }}

    from source

),

parsed_json as (

    select
        *,
        -- raw line_json was parsed before the BOM was stripped: re-parse only when that changed the text
        coalesce(
            line_json,
            case when clean_text <> line_text then {{ null_safe_cast('clean_text', 'jsonb') }} end
        ) as value_json
    from renamed

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
            {{ file_line_reasons(format='ndjson') }}
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
