{#-
    Scoped data tests: with `--vars '{test_scope: recent}'` (make build, the bench, the service's builds),
    the data tests that opt in check only the rows written since the last build whose tests of that model
    all passed; on a full build (the default test_scope: all) and on --full-refresh they check the whole
    table, exactly as before.

    Which rows are "written since": every row whose scope column (model meta `test_scope_column`, default
    load_seq) is above the value recorded after the last passing build. Safe only where every write raises
    that column, i.e. where an old row never changes without it:
    - per-row models (stg_kafka__*_events, stg_files__*_lines): append-only on load_seq, and a staged row
      never changes after it is written;
    - dedup models (stg_kafka__jobs, stg_files__users, ...): delete+insert, but a row is rewritten only
      when its key got a usable row above the model's watermark, so the rewritten row's
      last_event_load_seq / last_line_load_seq is above every value the table held before.
    Not scoped: marts.jobs (a row is also rewritten when its user appears, with last_event_load_seq
    unchanged), the tables rebuilt every run, the quarantine/monitoring models, the raw sources and
    raw = staged + quarantined (whole-table reconciliation), and warn-severity tests (they keep showing).

    A row-local test (not_null, accepted_values, accepted_range, expression_is_true, relationships towards
    an append-only parent) opts in with `where: "__new_rows__"`: a row that passed passes forever. A
    uniqueness test can be broken by a new row duplicating an *old* one, so it opts in with
    `where: "__new_keys__"`: it still groups over the whole table, restricted to the keys the new rows
    carry, which finds every duplicate involving a new row (pairs of old rows were checked before).

    The scope column's value per model is staging.dbt_test_watermarks, advanced by record_tested_rows()
    (on-run-end) only for a model whose every scoped test ran in the invocation and passed (or warned): a
    failure keeps its rows in scope until a build's tests pass on them.
-#}

{% macro test_watermarks_relation() -%}
    {{ return(api.Relation.create(schema=generate_schema_name('staging', none), identifier='dbt_test_watermarks')) }}
{%- endmacro %}


{#- on-run-start: the watermarks table (idempotent). -#}
{% macro create_test_watermarks() -%}
create table if not exists {{ test_watermarks_relation() }} (
    model_name text primary key,
    tested_load_seq bigint not null,  -- the model's test_scope_column (load_seq or a watermark of it)
    tested_at timestamptz not null default now()
);
{%- endmacro %}


{#- The column that rises with every write of the model behind `relation` (meta test_scope_column). -#}
{% macro test_scope_column(relation) -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.alias == relation.identifier -%}
        {{ return(node.config.meta.get('test_scope_column', 'load_seq')) }}
    {%- endfor -%}
    {{ return('load_seq') }}
{%- endmacro %}


{#- The scope column value up to which the tests of the model behind `relation` last passed (0: never). -#}
{% macro tested_up_to(relation) -%}
    {%- if not execute -%}
        {{ return(0) }}
    {%- endif -%}
    {%- set query -%}
        select coalesce(max(tested_load_seq), 0) from {{ test_watermarks_relation() }}
        where model_name = {{ sql_string_literal(relation.identifier) }}
    {%- endset -%}
    {{ return(run_query(query).columns[0].values()[0] | int) }}
{%- endmacro %}


{#- True when this invocation scopes tests to new rows: test_scope 'recent' and no --full-refresh. -#}
{% macro tests_scoped_to_new_rows() -%}
    {{ return(var('test_scope', 'all') == 'recent' and not flags.FULL_REFRESH) }}
{%- endmacro %}


{#- dbt's hook for the `where` config of a test (overridden here): expands __new_rows__ / __new_keys__. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if not where -%}
        {{ return(relation) }}
    {%- endif -%}
    {%- if '__new_rows__' in where or '__new_keys__' in where -%}
        {%- if tests_scoped_to_new_rows() -%}
            {#- a literal, not a subquery: the planner then knows how few rows pass and uses the index -#}
            {%- set scope_column = test_scope_column(relation) -%}
            {%- set new_rows = scope_column ~ ' > ' ~ tested_up_to(relation) -%}
            {%- set column = model.column_name -%}
            {%- if column == scope_column -%}
                {#- a row sharing a new row's value of the scope column is itself above the watermark -#}
                {%- set new_keys = new_rows -%}
            {%- else -%}
                {%- set new_keys = column ~ ' in (select ' ~ column ~ ' from ' ~ relation ~ ' where ' ~ new_rows ~ ')' -%}
            {%- endif -%}
            {%- set where = where | replace('__new_rows__', new_rows) | replace('__new_keys__', new_keys) -%}
        {%- else -%}
            {%- set where = where | replace('__new_rows__', 'true') | replace('__new_keys__', 'true') -%}
        {%- endif -%}
    {%- endif -%}
    {%- set filtered -%}
        (select * from {{ relation }} where {{ where }}) dbt_subquery
    {%- endset -%}
    {{ return(filtered) }}
{%- endmacro %}


{#- on-run-end: advance the watermark of every model whose scoped tests (where __new_rows__ / __new_keys__)
    all ran in this invocation and passed or warned, to the highest scope column value its table holds now
    (the tests ran after the model was built, and nothing else writes the table). -#}
{% macro record_tested_rows(results) -%}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- set scoped = {} -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'test' -%}
        {%- set where = node.config.get('where') or '' -%}
        {%- if '__new_rows__' in where or '__new_keys__' in where -%}
            {%- set model_id = node.attached_node or node.depends_on.nodes[0] -%}
            {%- do scoped.setdefault(model_id, []).append(node.unique_id) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set passed = [] -%}
    {%- for result in results if result.node.resource_type == 'test' and result.status in ('pass', 'warn') -%}
        {%- do passed.append(result.node.unique_id) -%}
    {%- endfor -%}
    {%- set statements = [] -%}
    {%- for model_id, tests in scoped.items() -%}
        {%- set model_node = graph.nodes[model_id] -%}
        {%- if tests | reject('in', passed) | list | length == 0 -%}
            {%- set relation = api.Relation.create(
                database=model_node.database, schema=model_node.schema, identifier=model_node.alias
            ) -%}
            {%- do statements.append(
                'insert into ' ~ test_watermarks_relation() ~ ' (model_name, tested_load_seq)'
                ~ ' select ' ~ sql_string_literal(model_node.alias) ~ ', coalesce(max('
                ~ model_node.config.meta.get('test_scope_column', 'load_seq') ~ '), 0) from ' ~ relation
                ~ ' on conflict (model_name) do update set tested_load_seq = excluded.tested_load_seq,'
                ~ ' tested_at = excluded.tested_at'
            ) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(statements | join(';\n')) }}
{%- endmacro %}
