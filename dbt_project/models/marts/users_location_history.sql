-- Users' location history (SCD type 2) by load time (grain: user version), from every usable line of every
-- users file load (docs/data-model.md, "Users' location history"). A version starts at the loaded_at of
-- the load that first showed it and ends where the user's next version starts; a user's first version is
-- valid from -infinity (the file carries no business time, so before the first load the first known
-- location is the best answer) and the current one until infinity. A load that shows the same location
-- again adds no version; a user listed twice in one load takes its later line (the dedup rule).
--
-- Deletes: the users file is a snapshot (sources.yml load_mode), so a load that does not name a user
-- deletes it from that load on (a version with is_deleted and no location) and a later load listing it
-- brings it back; a broken line that names the user does not delete it (stg_files__users' rule). For a
-- delta source nothing is ever deleted.
--
-- It depends only on the staged lines (load ids, line numbers, loaded_at), never on when dbt ran, so any
-- build over the same raw rows, incremental or full refresh, gives the same history. Incremental
-- (delete+insert on user_id): a run without new users-file lines (every build of new jobs) leaves it as it
-- is; a run with new lines recomputes every user's versions from all lines (a snapshot load can add a
-- version to any user), and a user never leaves it. The 'user_lines' watermark is in
-- staging.dbt_model_watermarks (macros/incremental_watermarks.sql).

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='user_id',
        on_schema_change='fail',
        indexes=[
            {'columns': ['user_id', 'valid_from'], 'unique': True},
        ],
        post_hook=["{{ record_model_watermarks({'user_lines': [ref('stg_files__user_lines'), 'load_seq']}) }}"],
    )
}}

{%- set load_mode = source_load_mode('files', 'users') %}

with

lines as (

    select * from {{ ref('stg_files__user_lines') }}

),

loads as (

    -- every load, even one without a usable line: in a snapshot, that too says who is gone
    select
        load_id,
        min(loaded_at) as loaded_at,
        lead(load_id) over (order by load_id) as next_load_id
    from lines
    group by load_id

),

ranked_lines as (

    select
        user_id,
        location_id,
        load_id,
        load_seq,
        row_number() over (partition by user_id, load_id order by line_number desc) as line_rank
    from lines
    where is_usable

),

appearances as (

    -- what each load says about a user's location: its last usable line in that load
    select
        user_id,
        location_id,
        load_id,
        load_seq
    from ranked_lines
    where line_rank = 1

),

{%- if load_mode == 'snapshot' %}

    first_appearances as (

        select
            user_id,
            min(load_id) as first_load_id
        from appearances
        group by user_id

    ),

    named_in_load as (

        select distinct
            user_id,
            load_id
        from lines
        where user_id is not null

    ),

    sightings as (

        -- every load that names a user, in a usable line or not, from its first usable line on: a broken
        -- line naming the user keeps it (the dedup rule), a load without the user deletes it
        select
            named_in_load.user_id,
            named_in_load.load_id,
            lead(named_in_load.load_id) over (
                partition by named_in_load.user_id order by named_in_load.load_id
            ) as next_sighting_load_id
        from named_in_load
        inner join first_appearances
            on
                named_in_load.user_id = first_appearances.user_id
                and named_in_load.load_id >= first_appearances.first_load_id

    ),

{%- endif %}

states as (

    select
        user_id,
        location_id,
        load_id,
        load_seq,
        false as is_deleted
    from appearances

    {%- if load_mode == 'snapshot' %}

        union all

        -- the load right after a sighting, when it does not name the user, deletes it
        select
            sightings.user_id,
            null as location_id,
            loads.next_load_id as load_id,
            null::bigint as load_seq,
            true as is_deleted
        from sightings
        inner join loads on sightings.load_id = loads.load_id
        where
            loads.next_load_id is not null
            and loads.next_load_id is distinct from sightings.next_sighting_load_id
    {%- endif %}

),

changes as (

    select
        states.*,
        loads.loaded_at,
        row_number() over by_load as state_number,
        lag(states.location_id) over by_load as previous_location_id,
        lag(states.is_deleted) over by_load as previous_is_deleted
    from states
    inner join loads on states.load_id = loads.load_id
    window by_load as (partition by states.user_id order by states.load_id)

),

versions as (

    select
        *,
        row_number() over (partition by user_id order by load_id) as version_number,
        lead(loaded_at) over (partition by user_id order by load_id) as next_version_at
    from changes
    where
        state_number = 1
        or location_id is distinct from previous_location_id
        or is_deleted <> previous_is_deleted

),

final as (

    select
        -- ids
        user_id,
        version_number::integer as version_number,
        location_id,
        load_id,

        -- numerics
        load_seq,

        -- booleans
        is_deleted,
        next_version_at is null as is_current,

        -- timestamps
        case when version_number = 1 then timestamptz '-infinity' else loaded_at end as valid_from,
        coalesce(next_version_at, timestamptz 'infinity') as valid_to,
        loaded_at

    from versions
    {%- if not users_file_changed() %}
        where false
    {%- endif %}

)

select * from final
