{#-
    Scoped data tests: with `--vars '{test_scope: recent}'` (make build, the bench, the service's builds) a
    data test that opts in checks only the rows that arrived since its scope last passed; with the default
    test_scope: all (make audit, the service's audit) and on --full-refresh it checks every row.

    A scope is a raw table, named like the quarantine names it ('kafka.jobs', 'files.users', ...), and its
    value is that table's load_seq. A test opts in with a plain SQL `where` (dbt's own config, rendered by
    dbt's own get_where_subquery) bounding a column that carries that load_seq:

        where: "(staging.test_range_is_all('kafka.jobs')
                 or load_seq between staging.test_range_start('kafka.jobs') and staging.test_range_end('kafka.jobs'))"

    The functions read staging.dbt_test_scopes, which the on-run-start hook below fills before any model
    runs: start = the last bound whose tests all passed + 1, end = raw.<table>'s highest load_seq *now*;
    is_all is true when the run checks every row (test_scope: all, --full-refresh). They are declared
    immutable, which they are not, on purpose: the planner then evaluates them once, while planning, and
    sees literals - a scoped range it estimates and fetches by index, or `true or ...`, which it folds away
    so a full check plans exactly like an unfiltered test. Sound here because a test's query is planned
    once and run once (dbt never prepares it) after on-run-start has written the range.
    The on-run-end hook then records exactly that end as the new bound, for a scope whose every opted-in test
    ran in the invocation and passed (or warned): the bound recorded is the bound tested, never the table's
    maximum at the end (rows that landed while dbt ran are above it and stay in scope for the next build).
    A failure keeps its rows in scope until a build's tests pass on them. Builds of one database never
    overlap (python -m extract dbt takes a lock), and each passing run appends the range it checked to
    staging.dbt_tested_ranges, so a gap or an overlap between ranges would show there.

    Which column may bound a test: one whose value rises with every write of the row.
    - per-row models (stg_kafka__*_events, stg_files__*_lines), the raw tables, quarantined_records
      (raw_load_seq): append-only, a row never changes after it is written;
    - dedup models (stg_kafka__jobs, stg_files__users, ...): a row is rewritten only when its key got a
      usable row above the model's watermark, so last_event_load_seq / last_line_load_seq rises;
    - marts.jobs on last_event_load_seq: the same, except that a job whose user turns up later is rewritten
      with has_known_user true and nothing else changed: its other columns were tested when they last
      changed, and make audit checks the table whole.
    A uniqueness test can be broken by a new row duplicating an *old* one: it groups over the whole table
    restricted to the keys the new rows carry (`key in (select key from ... where <range>)`), which finds
    every duplicate involving a new row, through the key's index.

    Left to make audit (tag: audit; selector scheduled_build leaves them out of make build): tests that
    need every row of a table that grows with history and is rebuilt every run (job_payments), tests that
    restate a primary key, unique index or not-null constraint the database checks on every write anyway
    (raw keys, staging keys, marts contracts), and the unit tests. make audit also catches what a range
    cannot, such as an old staged row deleted or doubled behind dbt's back.
-#}

{% macro test_scopes_relation() -%}
    {{ return(api.Relation.create(schema=generate_schema_name('staging', none), identifier='dbt_test_scopes')) }}
{%- endmacro %}


{#- The scope a test opts into: the name in its where's test_range_start('...'), or none. -#}
{% macro test_scope_of(test_node) -%}
    {%- set where = test_node.config.get('where') or '' -%}
    {%- set marker = "test_range_start('" -%}
    {%- if marker not in where -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set scope = where.split(marker)[1].split("'")[0] -%}
    {%- if "test_range_end('" ~ scope ~ "')" not in where -%}
        {{ exceptions.raise_compiler_error(
            test_node.unique_id ~ ": a scoped where needs test_range_end('" ~ scope ~ "') too: " ~ where
        ) }}
    {%- endif -%}
    {{ return(scope) }}
{%- endmacro %}


{#- scope name -> the unique_ids of the tests that opt into it. -#}
{% macro scoped_tests() -%}
    {%- set scopes = {} -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'test' -%}
        {%- set scope = test_scope_of(node) -%}
        {%- if scope is not none -%}
            {%- do scopes.setdefault(scope, []).append(node.unique_id) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(scopes) }}
{%- endmacro %}


{#- The raw table behind a scope name ('kafka.jobs' -> source('kafka', 'jobs')). -#}
{% macro test_scope_source(scope) -%}
    {%- set parts = scope.split('.') -%}
    {%- for source in graph.sources.values() if source.source_name == parts[0] and source.name == parts[1] -%}
        {{ return(api.Relation.create(database=source.database, schema=source.schema, identifier=source.identifier)) }}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error("test scope '" ~ scope ~ "' names no source table (source_name.table)") }}
{%- endmacro %}


{#- on-run-start: the bookkeeping tables and functions, then this run's range for every scope. -#}
{% macro start_test_scopes() -%}
    {%- set scopes_table = test_scopes_relation() -%}
    {%- set schema = scopes_table.schema -%}
    {%- set scoped = tests_scoped_to_new_rows() -%}
select pg_advisory_xact_lock(hashtext('jobs_elt.start_test_scopes'));
create table if not exists {{ scopes_table }} (
    scope_name text primary key,
    tested_to bigint not null default 0,  -- every row up to this load_seq passed its scoped tests
    range_start bigint,                   -- this run's tests check rows in [range_start, range_end]
    range_end bigint,
    run_bound bigint,                     -- raw max at this run's start: tested_to once its tests pass
    invocation_id text,
    started_at timestamptz
);
create table if not exists {{ schema }}.dbt_tested_ranges (
    invocation_id text not null,
    scope_name text not null,
    range_start bigint not null,
    range_end bigint not null,
    tested_to bigint not null,
    tested_at timestamptz not null default now(),
    primary key (invocation_id, scope_name)
);
drop table if exists {{ schema }}.dbt_test_watermarks;
{#- immutable on purpose: folded to literals at plan time (see above) -#}
create or replace function {{ schema }}.test_range_is_all(scope text) returns boolean
language sql immutable parallel safe as $fn$
    select coalesce(
        (
            select range_start = -9223372036854775808 and range_end = 9223372036854775807
            from {{ scopes_table }} where scope_name = scope
        ),
        true
    )
$fn$;
create or replace function {{ schema }}.test_range_start(scope text) returns bigint
language sql immutable parallel safe as $fn$
    select coalesce(
        (select range_start from {{ scopes_table }} where scope_name = scope), -9223372036854775808
    )
$fn$;
create or replace function {{ schema }}.test_range_end(scope text) returns bigint
language sql immutable parallel safe as $fn$
    select coalesce((select range_end from {{ scopes_table }} where scope_name = scope), 9223372036854775807)
$fn$;
    {%- for scope in (scoped_tests() if execute else {}) %}
insert into {{ scopes_table }} as s (scope_name, range_start, range_end, run_bound, invocation_id, started_at)
select
    {{ sql_string_literal(scope) }},
    {% if scoped %}0{% else %}-9223372036854775808{% endif %},
    {% if scoped %}raw_max{% else %}9223372036854775807{% endif %},
    raw_max,
    {{ sql_string_literal(invocation_id) }},
    now()
from (select coalesce(max(load_seq), 0) as raw_max from {{ test_scope_source(scope) }}) as bound
on conflict (scope_name) do update set
    range_start = {% if scoped %}s.tested_to + 1{% else %}excluded.range_start{% endif %},
    range_end = excluded.range_end,
    run_bound = excluded.run_bound,
    invocation_id = excluded.invocation_id,
    started_at = excluded.started_at;
    {%- endfor %}
{%- endmacro %}


{#- True when this invocation scopes tests to new rows: test_scope 'recent' and no --full-refresh. -#}
{% macro tests_scoped_to_new_rows() -%}
    {{ return(var('test_scope', 'all') == 'recent' and not flags.FULL_REFRESH) }}
{%- endmacro %}


{#- on-run-end: a scope whose every opted-in test ran in this invocation and passed (or warned) is tested up
    to the bound its range ended at (run_bound, set at run start by this same invocation). -#}
{% macro finish_test_scopes(results) -%}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- set passed = [] -%}
    {%- for result in results if result.node.resource_type == 'test' and result.status in ('pass', 'warn') -%}
        {%- do passed.append(result.node.unique_id) -%}
    {%- endfor -%}
    {%- set scopes_table = test_scopes_relation() -%}
    {%- set statements = [] -%}
    {%- for scope, tests in scoped_tests().items() if tests | reject('in', passed) | list | length == 0 -%}
        {%- do statements.append(
            'with advanced as (update ' ~ scopes_table ~ ' set tested_to = greatest(tested_to, run_bound)'
            ~ ' where scope_name = ' ~ sql_string_literal(scope)
            ~ ' and invocation_id = ' ~ sql_string_literal(invocation_id)
            ~ ' returning scope_name, range_start, least(range_end, run_bound) as range_end, tested_to)'
            ~ ' insert into ' ~ scopes_table.schema ~ '.dbt_tested_ranges'
            ~ ' (invocation_id, scope_name, range_start, range_end, tested_to)'
            ~ ' select ' ~ sql_string_literal(invocation_id) ~ ', scope_name, greatest(range_start, 0), range_end,'
            ~ ' tested_to from advanced where range_end >= greatest(range_start, 0)'
        ) -%}
    {%- endfor -%}
    {{ return(statements | join(';\n')) }}
{%- endmacro %}
