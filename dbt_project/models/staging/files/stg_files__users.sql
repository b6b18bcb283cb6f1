-- One row per user: the latest usable line of each user_id by the file rule (docs/data-model.md,
-- "Deduplication"): latest load first, then the highest line number within that load. Broken lines are
-- filtered out first. The users file is a snapshot (sources.yml load_mode): a user no line of a newer load
-- names keeps the last known row with is_deleted true, deleted_at = the loaded_at of the load that
-- dropped it; a later load listing the user again brings it back. A broken line that still names the
-- user (say, without a location) does not delete it.
--
-- Incremental (delete+insert on user_id): a run recomputes the users that received a usable line since
-- the last run, from all their usable lines; the watermark is last_line_load_seq. The rule and its
-- incremental logic are latest_usable_row_per_key() (macros/staging/dedup_models.sql).

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

latest_lines as (

    {{
        latest_usable_row_per_key(
            ref('stg_files__user_lines'), key='user_id', kind='file', load_mode=source_load_mode('files', 'users')
        )
    }}

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
        last_line_load_seq,
        last_seen_load_id,
        deleted_by_load_id,

        -- booleans
        is_deleted,

        -- timestamps
        deleted_at

    from latest_lines

)

select * from final
