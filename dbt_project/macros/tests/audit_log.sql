{#-
    on-run-end: the outcome of a full check (make audit, the service's audit: `dbt test --selector audit`
    with test_scope: all) in staging.dbt_audits, one row per invocation, failures named; `python -m extract
    status` shows the last one. Other invocations record nothing here.
-#}
{% macro record_audit(results) -%}
    {%- if not execute or invocation_args_dict.get('selector') != 'audit' or tests_scoped_to_new_rows() -%}
        {{ return('') }}
    {%- endif -%}
    {%- set counts = {'pass': 0, 'warn': 0, 'fail': 0, 'error': 0, 'skipped': 0} -%}
    {%- set failed = [] -%}
    {%- for result in results if result.node.resource_type in ('test', 'unit_test') -%}
        {%- set status = result.status | string -%}
        {%- do counts.update({status: counts.get(status, 0) + 1}) -%}
        {%- if status in ('fail', 'error') -%}
            {%- do failed.append(result.node.name) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set audits = api.Relation.create(schema=generate_schema_name('staging', none), identifier='dbt_audits') -%}
create table if not exists {{ audits }} (
    invocation_id text primary key,
    started_at timestamptz not null,
    ended_at timestamptz not null default now(),
    is_passed boolean not null,
    tests_passed integer not null,
    tests_warned integer not null,
    tests_failed integer not null,  -- failed or errored
    tests_skipped integer not null,
    failed_tests text[] not null
);
insert into {{ audits }} (
    invocation_id, started_at, is_passed, tests_passed, tests_warned, tests_failed, tests_skipped, failed_tests
)
values (
    {{ sql_string_literal(invocation_id) }},
    {{ sql_string_literal(run_started_at.isoformat()) }}::timestamptz,
    {{ 'true' if failed | length == 0 and counts['skipped'] == 0 else 'false' }},
    {{ counts['pass'] }},
    {{ counts['warn'] }},
    {{ counts['fail'] + counts['error'] }},
    {{ counts['skipped'] }},
    array[{% for name in failed %}{{ sql_string_literal(name) }}{{ ', ' if not loop.last }}{% endfor %}]::text[]
)
{%- endmacro %}


{#- The one on-run-end hook: the scoped tests' bounds, then the audit's outcome; nothing when neither applies
    (an empty statement is an error). -#}
{% macro end_of_run(results) -%}
    {%- set statements = [finish_test_scopes(results), record_audit(results)] | map('trim') | select | list -%}
    {{ return(statements | join(';\n')) }}
{%- endmacro %}
