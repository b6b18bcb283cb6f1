-- One row per service of the catalogue: the latest usable line of each (normalised) service_name, by the
-- users rule (docs/data-model.md, "Deduplication"): latest load first, then the highest line number within
-- that load, so a service listed twice in one file takes its later row. Broken lines are filtered out first,
-- and a service missing from a newer catalogue keeps the last known row.
--
-- Incremental (delete+insert on service_name), exactly like stg_files__users; the watermark is
-- last_line_load_seq.

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

{% if is_incremental() -%}
    changed_services as (

        select distinct new_lines.service_name
        from {{ ref('stg_files__service_lines') }} as new_lines
        where
            new_lines.is_usable
            and new_lines.load_seq > (
                select coalesce(max(previous_run.last_line_load_seq), 0) from {{ this }} as previous_run
            )

    ),

{% endif -%}
usable_lines as (

    select service_lines.*
    from {{ ref('stg_files__service_lines') }} as service_lines
    where
        service_lines.is_usable
        {%- if is_incremental() %}
            and service_lines.service_name in (select changed_services.service_name from changed_services)
        {%- endif %}

),

ranked as (

    select
        *,
        row_number() over (
            partition by service_name
            order by load_id desc, line_number desc
        ) as service_rank,
        max(load_seq) over (partition by service_name) as last_line_load_seq
    from usable_lines

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

    from ranked
    where service_rank = 1

)

select * from final
