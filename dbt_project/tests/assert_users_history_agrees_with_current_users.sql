-- users_location_history and the dedup model tell the same present: every staged user has exactly one
-- current version, deleted exactly when the staged user is, at the staged location otherwise. Returns the
-- users where they disagree.

with

current_versions as (

    select
        user_id,
        count(*) as current_count,
        max(location_id) as location_id,
        bool_or(is_deleted) as is_deleted
    from {{ ref('users_location_history') }}
    where is_current
    group by user_id

)

select
    staged.user_id,
    staged.location_id as staged_location_id,
    staged.is_deleted as staged_is_deleted,
    current_versions.location_id as history_location_id,
    current_versions.is_deleted as history_is_deleted,
    coalesce(current_versions.current_count, 0) as current_count
from {{ ref('stg_files__users') }} as staged
full outer join current_versions on staged.user_id = current_versions.user_id
where
    current_versions.user_id is null
    or staged.user_id is null
    or current_versions.current_count <> 1
    or staged.is_deleted <> current_versions.is_deleted
    or (not staged.is_deleted and staged.location_id is distinct from current_versions.location_id)
