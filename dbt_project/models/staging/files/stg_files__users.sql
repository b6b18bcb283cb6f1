-- One row per user: the latest usable line of each user_id (docs/data-model.md, "Deduplication"):
-- latest load first, then the highest line number within that load. Broken lines are filtered out
-- first, and a user missing from a newer file keeps the last known row.
--
-- Incremental (delete+insert on user_id): a run recomputes the users that received a usable line since
-- the last run, from all their usable lines. The watermark is last_line_load_seq, the highest usable
-- load_seq a row has seen.

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='user_id',
        on_schema_change='fail',
        indexes=[
            {'columns': ['user_id'], 'unique': True},
            {'columns': ['last_line_load_seq']},
        ],
    )
}}

with

{% if is_incremental() -%}
    changed_users as (

        select distinct new_lines.user_id
        from {{ ref('stg_files__user_lines') }} as new_lines
        where
            new_lines.is_usable
            and new_lines.load_seq > (
                select coalesce(max(previous_run.last_line_load_seq), 0) from {{ this }} as previous_run
            )

    ),

{% endif -%}
usable_lines as (

    select user_lines.*
    from {{ ref('stg_files__user_lines') }} as user_lines
    where
        user_lines.is_usable
        {%- if is_incremental() %}
            and user_lines.user_id in (select changed_users.user_id from changed_users)
        {%- endif %}

),

ranked as (

    select
        *,
        row_number() over (
            partition by user_id
            order by load_id desc, line_number desc
        ) as user_rank,
        max(load_seq) over (partition by user_id) as last_line_load_seq
    from usable_lines

),

final as (

    select
        -- ids
        user_id,
        location_id,
        load_id,

        -- numerics
        line_number,
        load_seq,
        last_line_load_seq

    from ranked
    where user_rank = 1

)

select * from final
