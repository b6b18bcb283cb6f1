{#-
    staging.try_cast(p_value text, inout p_result anyelement): p_value cast to the type of p_result (pass
    null::<type>), null when the cast fails. Created by the on-run-start hook (dbt_project.yml), not as a
    dbt function (functions/): it needs PL/pgSQL for its EXCEPTION block, and dbt creates SQL functions
    only. The EXCEPTION block is a subtransaction, hence stable and parallel unsafe: null_safe_cast() uses
    it only for the types the inlined helpers do not cover, on rare rows.
-#}
{% macro create_try_cast() -%}
{%- set s = generate_schema_name('staging', none) -%}
-- serialise concurrent dbt invocations replacing the same function
select pg_advisory_xact_lock(hashtext('jobs_elt.create_try_cast'));

create schema if not exists {{ s }};

create or replace function {{ s }}.try_cast(p_value text, inout p_result anyelement)
language plpgsql stable
as $fn$
begin
    p_result := p_value;
exception when others then
    p_result := null;
end
$fn$;
{%- endmacro %}
