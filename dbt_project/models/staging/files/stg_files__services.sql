-- One row per service of the catalogue: the latest usable line of each (normalised) service_name by the
-- file rule, like stg_files__users (docs/data-model.md, "Deduplication"; latest_usable_row_per_key() in
-- macros/staging/dedup_models.sql): latest load first, then the highest line number within that load, so a
-- service listed twice in one file takes its later row. Broken lines are filtered out first, and a service
-- missing from a newer catalogue keeps the last known row.
--
-- Incremental (delete+insert on service_name); the watermark is last_line_load_seq.

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='service_name',
        on_schema_change='fail',
        indexes=[
            {'columns': ['service_name'], 'unique': True},
            {'columns': ['last_line_load_seq']},
        ],
    )
}}

with

latest_lines as (

    {{ latest_usable_row_per_key(ref('stg_files__service_lines'), key='service_name', kind='file') }}

),

final as (

    select
        -- ids
        service_name,
        load_id,

        -- strings
        category,

        -- numerics
        base_price,
        line_number,
        load_seq,
        last_line_load_seq

    from latest_lines

)

select * from final
