{#-
    Reconciliation, attached to a raw source table: every raw row (by load_seq) is either exactly one
    usable row of the per-row staging model or exactly one quarantine row of that source: never both,
    never neither. Returns the offending load_seqs, plus one summary row when the counts differ, i.e.
    count(raw) <> count(usable staged rows) + count(quarantined rows).

    Raw rows that landed after the staging model was built (the extractor keeps loading while dbt runs)
    are not yet expected anywhere: only raw rows up to the highest load_seq the staging model has seen
    are checked. That prefix is exact because each raw table has one writer at a time, so load_seq
    values become visible in order (extract/landing/raw_sink.py); a row missing below it still fails the test.

    Raw partitions past retention leave raw for archive files (`python -m extract retention`), and
    raw.archived_partitions keeps their row counts and load_seq ranges: archived rows count on the raw side
    of the totals, and a staged row whose raw row was archived is not reported missing one by one.

    Scoped (make build): the test's `where` bounds raw load_seq (macros/tests/test_scope.sql), and the same
    bound applies to the staged and quarantined rows, so a build checks the rows that arrived since the
    last passing one: one lost, doubled or unaccounted among them fails it. Unscoped (make audit), every
    raw row of history is checked the same way.
-#}
{% test raw_equals_staged_plus_quarantined(model, staged_model, quarantine_model, quarantine_source_name) %}
    with

    raw_rows as (
        select load_seq from {{ model }}
        where load_seq <= (select coalesce(max(staged.load_seq), 0) from {{ staged_model }} as staged)
    ),

    {%- set in_scope = config.get('where') or 'true' %}
    {#- with a where, `model` is dbt's filtered subquery, not the table: the raw table is the source the
        per-row staging model reads -#}
    {%- set raw_table = raw_table_of(staged_model) %}

    archived as (
        select min_load_seq, max_load_seq, row_count
        from {{ raw_table.schema }}.archived_partitions
        where raw_table = {{ sql_string_literal(raw_table.schema ~ '.' ~ raw_table.identifier) }}
    ),

    -- in the totals, archived rows count when their partition starts in the checked range
    archived_in_scope as (
        select archived_rows.row_count
        from (select min_load_seq as load_seq, row_count from archived) as archived_rows
        where {{ in_scope }}
    ),

    accounted as (
        select load_seq from {{ staged_model }}
        where quarantine_reason is null and ({{ in_scope }})
        union all
        select quarantined.load_seq
        from (
            select raw_load_seq as load_seq
            from {{ quarantine_model }}
            where source_name = {{ sql_string_literal(quarantine_source_name) }}
        ) as quarantined
        where {{ in_scope }}
    ),

    accounted_counts as (
        select load_seq, count(*) as n_accounted from accounted group by load_seq
    ),

    per_row as (
        select
            coalesce(raw_rows.load_seq, accounted_counts.load_seq) as load_seq,
            raw_rows.load_seq is not null as in_raw,
            coalesce(accounted_counts.n_accounted, 0) as n_accounted
        from raw_rows
        full outer join accounted_counts on raw_rows.load_seq = accounted_counts.load_seq
        where
            (
                raw_rows.load_seq is null
                and not exists (
                    select 1 from archived
                    where accounted_counts.load_seq between archived.min_load_seq and archived.max_load_seq
                )
            )
            or accounted_counts.n_accounted is distinct from 1
    ),

    totals as (
        select
            null::bigint as load_seq,
            (select count(*) from raw_rows) + (select coalesce(sum(row_count), 0) from archived_in_scope) as n_raw,
            (select count(*) from accounted) as n_staged_plus_quarantined
    )

    select load_seq, in_raw, n_accounted, null::bigint as n_raw, null::bigint as n_staged_plus_quarantined
    from per_row
    union all
    select load_seq, null, null, n_raw, n_staged_plus_quarantined
    from totals
    where n_raw <> n_staged_plus_quarantined
{% endtest %}


{#- The raw source table a per-row staging model reads (its one source). -#}
{% macro raw_table_of(staged_model) -%}
    {%- if execute -%}
        {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.alias == staged_model.identifier -%}
            {%- for parent in node.depends_on.nodes if parent.startswith('source.') -%}
                {%- set source = graph.sources[parent] -%}
                {{ return(api.Relation.create(database=source.database, schema=source.schema, identifier=source.identifier)) }}
            {%- endfor -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(api.Relation.create(schema='raw', identifier='unknown')) }}
{%- endmacro %}
