{#-
    latest_usable_row_per_key(rows, key, kind): the select behind a dedup staging model (stg_kafka__jobs,
    stg_files__users, ...): from the per-row model `rows`, the latest usable row of each `key`, with every
    column of `rows` (docs/data-model.md, "Deduplication"). Unusable rows are filtered out first, so a
    broken newer row never erases an older usable one.

    kind='kafka' (the partition/offset rule; adds event_count and the watermark last_event_load_seq):
      1. within a partition the highest offset wins;
      2. across partitions the partition whose latest event has the latest Kafka timestamp wins,
         ties to the higher partition number.
    kind='file' (the load/line rule; adds the watermark last_line_load_seq): the latest load wins, then the
      highest line number within that load.

    Incremental (the model is delete+insert on `key`): a run recomputes exactly the keys that received a
    usable row since the last run, from *all* their usable rows (index `rows`.`key`). The rule is not
    "the newest arrival wins", so an old event replayed late (a lower offset landing in a later run) is
    ranked by its offset like every other and cannot displace the staged winner, and event_count stays
    exact. The watermark is the highest usable load_seq behind a row: every usable row at or below its
    maximum has been processed by an earlier run.
-#}
{% macro latest_usable_row_per_key(rows, key, kind) -%}
    {%- if kind not in ('kafka', 'file') -%}
        {{ exceptions.raise_compiler_error("latest_usable_row_per_key: kind is 'kafka' or 'file', not " ~ kind) }}
    {%- endif -%}
    {%- set watermark = 'last_event_load_seq' if kind == 'kafka' else 'last_line_load_seq' -%}
    with

    {% if is_incremental() -%}
        changed_keys as (

            select distinct new_rows.{{ key }}
            from {{ rows }} as new_rows
            where
                new_rows.is_usable
                and new_rows.load_seq > (
                    select coalesce(max(previous_run.{{ watermark }}), 0) from {{ this }} as previous_run
                )

        ),

    {% endif -%}
    usable_rows as (

        select usable.*
        from {{ rows }} as usable
        where
            usable.is_usable
            {%- if is_incremental() %}
                and usable.{{ key }} in (select changed_keys.{{ key }} from changed_keys)
            {%- endif %}

    ),

    {% if kind == 'kafka' -%}
        latest_per_partition as (

            select
                *,
                row_number() over (
                    partition by {{ key }}, kafka_topic, kafka_partition
                    order by kafka_offset desc
                ) as partition_rank,
                count(*) over (partition by {{ key }}) as event_count,
                max(load_seq) over (partition by {{ key }}) as {{ watermark }}
            from usable_rows

        ),

        ranked as (

            select
                *,
                row_number() over (
                    partition by {{ key }}
                    order by kafka_published_at desc nulls last, kafka_partition desc, kafka_topic desc, load_seq desc
                ) as key_rank
            from latest_per_partition
            where partition_rank = 1

        )
    {%- else -%}
        ranked as (

            select
                *,
                row_number() over (
                    partition by {{ key }}
                    order by load_id desc, line_number desc
                ) as key_rank,
                max(load_seq) over (partition by {{ key }}) as {{ watermark }}
            from usable_rows

        )
    {%- endif %}

    select * from ranked
    where key_rank = 1
{%- endmacro %}
