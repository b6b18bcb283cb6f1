{#-
    dbt 1.11 creates the functions of functions/ in `dbt build` only: a `dbt run` (or `dbt test`, whose unit
    tests call them) on a database that has never been built would fail model by model with "function ...
    does not exist". This on-run-start check says it once, with what to run instead.
-#}
{% macro require_functions() -%}
    {%- if execute and flags.WHICH in ['run', 'test'] -%}
        {%- set wanted = [] -%}
        {%- for function in graph.functions.values() -%}
            {%- do wanted.append(function.schema ~ '.' ~ function.name) -%}
        {%- endfor -%}
        {%- if wanted -%}
            {%- set query -%}
                select string_agg(wanted.name, ', ' order by wanted.name)
                from unnest(array['{{ wanted | join("', '") }}']::text[]) as wanted (name)
                where not exists (
                    select
                    from pg_proc as p
                    inner join pg_namespace as n on p.pronamespace = n.oid
                    where n.nspname || '.' || p.proname = wanted.name
                )
            {%- endset -%}
            {%- set missing = run_query(query).columns[0].values()[0] -%}
            {%- if missing -%}
                {{ exceptions.raise_compiler_error(
                    "the functions " ~ missing ~ " are not in the database yet, and dbt " ~ flags.WHICH
                    ~ " does not create dbt functions: run `dbt build` once (make build), or"
                    ~ " `dbt build --resource-type function` to create just them"
                ) }}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
