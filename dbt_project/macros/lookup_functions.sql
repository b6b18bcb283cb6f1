{#-
    marts.jobs_by_location(text) / marts.jobs_by_service(text): the latest 5 jobs by job_at
    (ties: job_id descending) for a location / service. Static SQL functions: the argument is a bound
    parameter, normalised exactly like the column, never interpolated into dynamic SQL.
    Called as a post-hook of the jobs mart (dbt_project.yml), so the table exists.
-#}

{% macro create_lookup_functions(relation) -%}
{{ latest_jobs_function(relation, 'jobs_by_location', 'p_location', 'location_id', normalize_location('p_location')) }}

{{ latest_jobs_function(relation, 'jobs_by_service', 'p_service', 'service_name', normalize_code('p_service')) }}
{%- endmacro %}


{#- <schema>.<function_name>(<parameter> text): the latest 5 jobs of `relation` whose `column` equals
    `normalised_parameter` (the parameter run through the column's normaliser). -#}
{% macro latest_jobs_function(relation, function_name, parameter, column, normalised_parameter) -%}
create or replace function {{ relation.schema }}.{{ function_name }}({{ parameter }} text)
returns table (job_id text, user_id text, job_status text, revenue numeric, job_at timestamptz)
language sql
stable
as $fn$
    select j.job_id, j.user_id, j.job_status, j.revenue, j.job_at
    from {{ relation.include(database=false) }} as j
    where j.{{ column }} = {{ normalised_parameter }}
    order by j.job_at desc, j.job_id desc
    limit 5
$fn$;
{%- endmacro %}
