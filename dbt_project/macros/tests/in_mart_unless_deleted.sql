{#-
    Completeness, in the direction that catches incremental bugs, attached to a dedup staging model's key:
    every staged key that is not deleted is in the mart `to` (on `field`), and no deleted key is
    (relationships from a mart back to staging pass even when an incremental run drops rows). Returns one
    row per key in the wrong place.

    Scoped (make build) on the staged row's watermark, it checks the keys staged since the last passing
    build, each by the mart's primary key: its cost follows the new rows. Unscoped (make audit), every key
    of history, so a mart row lost anywhere fails the audit.
-#}
{% test in_mart_unless_deleted(model, column_name, to, field) %}
    with

    -- (with a where, `model` is dbt's aliased subquery: it cannot take an alias of its own)
    staged as (
        select * from {{ model }}
    )

    select
        staged.{{ column_name }} as staged_key,
        staged.is_deleted,
        case when staged.is_deleted then 'deleted_key_in_mart' else 'live_key_missing' end as problem
    from staged
    left join {{ to }} as mart_rows on staged.{{ column_name }} = mart_rows.{{ field }}
    where staged.is_deleted = (mart_rows.{{ field }} is not null)
{% endtest %}
