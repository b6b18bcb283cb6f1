{#-
    Watermarks of the incremental models: the highest load_seq a model has already processed, which its
    next run reads above.

    highest_value() is the watermark read from the model's own rows (`this`). In a run it is a literal,
    read when the model compiles, right before it runs: the planner then estimates `load_seq > 1234567`
    from the index (a handful of new rows, fetched by index) instead of guessing a third of the table for
    `load_seq > (select max(...))` and scanning all of history for the few rows above it. Builds of one
    database never overlap (python -m extract dbt holds its dbt lock), so nothing changes the model between
    its compilation and its run. In a unit test `this` is a fixture, not a table: there it stays the
    subquery.

    The model watermarks (staging.dbt_model_watermarks) are for an incremental model that follows several
    inputs (marts.job_payments follows the staged jobs and payments, marts.jobs the users file too): for
    each input, the highest load_seq a run of the model has read. Such a maximum cannot always be read
    back from the model's own rows (a deleted job or a payment of an unknown job leaves none, marts.jobs
    holds no users-file pointer), hence the table. The model's post-hook records them
    (record_model_watermarks) in the transaction that writes its rows: a run that fails records nothing,
    and its inputs are read again. The maxima recorded are the inputs' own after the run, which is what
    the run read: the inputs are built before it in the same invocation. A full refresh records them too,
    and an input without a watermark reads from 0: everything.
-#}

{#- The highest `column` of `relation` (rows matching `where`, if given), 0 when none: a literal in a run. -#}
{% macro highest_value(relation, column, where=none) -%}
    {%- set query -%}
        select coalesce(max({{ column }}), 0) from {{ relation }} as previous_run
        {%- if where %} where {{ where }}{% endif %}
    {%- endset -%}
    {%- if execute and model.resource_type == 'model' -%}
        {{ return(run_query(query).columns[0].values()[0] | string) }}
    {%- endif -%}
    {{ return('(' ~ query ~ ')') }}
{%- endmacro %}


{#- The text values `query` returns, as a SQL list for `in (...)` (null when none): literals in a run, for the
    same reason as highest_value; in a unit test the query itself. -#}
{% macro values_of(query) -%}
    {%- if execute and model.resource_type == 'model' -%}
        {%- set values = run_query(query).columns[0].values() -%}
        {%- set literals = [] -%}
        {%- for value in values -%}
            {%- do literals.append(sql_string_literal(value)) -%}
        {%- endfor -%}
        {{ return(literals | join(', ') if literals else 'null') }}
    {%- endif -%}
    {{ return(query) }}
{%- endmacro %}


{% macro model_watermarks_relation() -%}
    {{ return(api.Relation.create(schema=generate_schema_name('staging', none), identifier='dbt_model_watermarks')) }}
{%- endmacro %}


{#- on-run-start: the table, before any model compiles and reads it -#}
{% macro create_model_watermarks() -%}
create table if not exists {{ model_watermarks_relation() }} (
    model_name text not null,
    input_name text not null,
    watermark bigint not null,
    recorded_at timestamptz not null default now(),
    primary key (model_name, input_name)
);
{%- endmacro %}


{#- The watermark this model recorded for `input_name` (0 when none); a literal in a run. Compiling
    without a run (sqlfluff, dbt compile) skips on-run-start: a database without the table has none. -#}
{% macro model_watermark(input_name) -%}
    {%- set relation = model_watermarks_relation() -%}
    {%- if execute and model.resource_type == 'model'
        and adapter.get_relation(relation.database, relation.schema, relation.identifier) is none -%}
        {{ return('0') }}
    {%- endif -%}
    {{ return(highest_value(
        relation,
        'watermark',
        where='model_name = ' ~ sql_string_literal(this.identifier) ~ ' and input_name = ' ~ sql_string_literal(input_name),
    )) }}
{%- endmacro %}


{#- True when users-file lines arrived since this model recorded its 'user_lines' watermark, and always
    outside an incremental run: the models that depend on the users file alone (marts.users,
    users_location_history) are recomputed only then. -#}
{% macro users_file_changed() -%}
    {{ return(
        not is_incremental()
        or highest_value(ref('stg_files__user_lines'), 'load_seq') != model_watermark('user_lines')
    ) }}
{%- endmacro %}


{#- post-hook: inputs maps an input's name to [relation, column]; its watermark is the column's highest
    value (an indexed load_seq column, so the maximum is one index probe). -#}
{% macro record_model_watermarks(inputs) -%}
insert into {{ model_watermarks_relation() }} as recorded (model_name, input_name, watermark)
values
    {%- for name, (relation, column) in inputs.items() %}
    (
        {{ sql_string_literal(this.identifier) }},
        {{ sql_string_literal(name) }},
        coalesce((select max({{ column }}) from {{ relation }}), 0)
    )
    {%- if not loop.last %},{% endif %}
    {%- endfor %}
on conflict (model_name, input_name) do update set watermark = excluded.watermark, recorded_at = now()
{%- endmacro %}


{#- post-hook of every model (dbt_project.yml), acting on the incremental ones: statistics for a table
    that has none, i.e. one a full build has just created. The next incremental run's planner needs them:
    without a histogram it guesses a third of the table for `load_seq > <watermark>` and scans it all;
    with one it reads the true range off the index. Later runs leave it to autovacuum's analyze. -#}
{% macro analyze_new_table() -%}
    {%- if config.get('materialized') == 'incremental' -%}
do $analyze$ begin
    if not exists (
        select from pg_stats
        where schemaname = {{ sql_string_literal(this.schema) }} and tablename = {{ sql_string_literal(this.identifier) }}
    ) then
        analyze {{ this }};
    end if;
end $analyze$
    {%- endif -%}
{%- endmacro %}
