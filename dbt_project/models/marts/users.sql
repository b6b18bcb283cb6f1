-- The clean users table of the case study (grain: user): each user's current (latest known) location;
-- users deleted by a newer snapshot load of the users file are not here (users_location_history keeps them).
--
-- Incremental (delete+insert on user_id): stg_files__users changes only when users-file lines arrive, so a
-- run without new lines (every build of new jobs) leaves the table as it is, and a run with new lines
-- rewrites every user and removes the deleted ones (post-hook). The 'user_lines' watermark is in
-- staging.dbt_model_watermarks (macros/incremental_watermarks.sql).

-- depends_on: {{ ref('stg_files__user_lines') }}

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='user_id',
        on_schema_change='fail',
        post_hook=[
            "{% if users_file_changed() %}delete from {{ this }} where user_id in (select deleted.user_id"
            ~ " from {{ ref('stg_files__users') }} as deleted where deleted.is_deleted){% endif %}",
            "{{ record_model_watermarks({'user_lines': [ref('stg_files__user_lines'), 'load_seq']}) }}",
        ],
    )
}}

with

users as (

    select * from {{ ref('stg_files__users') }}
    where not is_deleted

),

final as (

    select
        -- ids
        user_id,
        location_id,
        load_id,

        -- numerics
        line_number,
        load_seq

    from users
    {%- if not users_file_changed() %}
        where false
    {%- endif %}

)

select * from final
