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

    Deletes (docs/data-model.md, "Deletes"): a deleted key keeps its row, with is_deleted true, so the
    delete is rewritten like any other change and the marts drop it.
      kafka: the winning event is a tombstone (the per-row model's is_deleted); a later event brings the
        key back.
      file, load_mode='snapshot' (sources.yml; source_load_mode()): every load is the whole entity, so a key
        that no line of the newest load names was deleted by the load after the last one that named it
        (deleted_by_load_id, deleted_at = that load's loaded_at). A line that names the key but is unusable
        still counts as naming it: it keeps the last usable row, as in the delta rule. last_seen_load_id
        is that last naming load; a newer snapshot load re-judges every key.
      file, load_mode='delta': a key missing from a newer load keeps its row; nothing is deleted.

    Incremental (the model is delete+insert on `key`): a run recomputes exactly the keys that received a
    usable row since the last run, from *all* their usable rows (index `rows`.`key`). The rule is not
    "the newest arrival wins", so an old event replayed late (a lower offset landing in a later run) is
    ranked by its offset like every other and cannot displace the staged winner, and event_count stays
    exact. The watermark is the highest usable load_seq behind a row: every usable row at or below its
    maximum has been processed by an earlier run.
-#}
{% macro latest_usable_row_per_key(rows, key, kind, load_mode='delta') -%}
    {%- if kind not in ('kafka', 'file') -%}
        {{ exceptions.raise_compiler_error("latest_usable_row_per_key: kind is 'kafka' or 'file', not " ~ kind) }}
    {%- endif -%}
    {%- if load_mode not in ('snapshot', 'delta') -%}
        {{ exceptions.raise_compiler_error("latest_usable_row_per_key: load_mode is snapshot or delta, not " ~ load_mode) }}
    {%- endif -%}
    {%- set watermark = 'last_event_load_seq' if kind == 'kafka' else 'last_line_load_seq' -%}
    {%- set snapshot = kind == 'file' and load_mode == 'snapshot' -%}
    with

    {% if snapshot -%}
        loads as (

            -- every load, even one without a usable line: in a snapshot, that too says who is gone
            select
                all_rows.load_id,
                min(all_rows.loaded_at) as loaded_at,
                lead(all_rows.load_id) over (order by all_rows.load_id) as next_load_id
            from {{ rows }} as all_rows
            group by all_rows.load_id

        ),

    {% endif -%}
    {% if is_incremental() -%}
        changed_keys as (

            select distinct new_rows.{{ key }}
            from {{ rows }} as new_rows
            where
                new_rows.is_usable
                and new_rows.load_seq > {{ highest_value(this, watermark) }}
            {%- if snapshot %}

            union

            -- a snapshot load newer than any this table has judged re-judges every key it holds
            select judged.{{ key }}
            from {{ this }} as judged
            where
                (select max(loads.load_id) from loads) > (
                    select coalesce(greatest(max(previous.last_seen_load_id), max(previous.deleted_by_load_id)), 0)
                    from {{ this }} as previous
                )
            {%- endif %}

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

    {% if snapshot -%}
        sightings as (

            -- the last load naming each key, in a usable line or not
            select
                named.{{ key }},
                max(named.load_id) as last_seen_load_id
            from {{ rows }} as named
            where
                named.{{ key }} is not null
                {%- if is_incremental() %}
                    and named.{{ key }} in (select changed_keys.{{ key }} from changed_keys)
                {%- endif %}
            group by named.{{ key }}

        ),

    {% endif -%}
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

    select * from ranked
    where key_rank = 1
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

    select
        ranked.*,
        {% if snapshot -%}
            sightings.last_seen_load_id,
            deleting_load.load_id is not null as is_deleted,
            deleting_load.load_id as deleted_by_load_id,
            deleting_load.loaded_at as deleted_at
        {%- else -%}
            null::bigint as last_seen_load_id,
            false as is_deleted,
            null::bigint as deleted_by_load_id,
            null::timestamptz as deleted_at
        {%- endif %}
    from ranked
    {%- if snapshot %}
        inner join sightings on ranked.{{ key }} = sightings.{{ key }}
        inner join loads as last_seen_load on sightings.last_seen_load_id = last_seen_load.load_id
        left join loads as deleting_load on last_seen_load.next_load_id = deleting_load.load_id
    {%- endif %}
    where ranked.key_rank = 1
    {%- endif %}
{%- endmacro %}


{#- The load_mode ('snapshot' or 'delta') sources.yml declares for a file source, as generated into the
    source table's meta (`python -m extract sources --write`); 'delta' while dbt only parses. -#}
{% macro source_load_mode(source_name, table_name) -%}
    {%- if not execute -%}
        {{ return('delta') }}
    {%- endif -%}
    {%- if 'sources' not in graph -%}
        {{ exceptions.raise_compiler_error(
            "source_load_mode: no graph here (a unit test?): override source_load_mode in the test"
        ) }}
    {%- endif -%}
    {%- for node in graph.sources.values() -%}
        {%- if node.source_name == source_name and node.name == table_name -%}
            {{ return(node.config.get('meta', {}).get('load_mode') or node.meta.get('load_mode') or 'delta') }}
        {%- endif -%}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error("source_load_mode: no source " ~ source_name ~ "." ~ table_name) }}
{%- endmacro %}
