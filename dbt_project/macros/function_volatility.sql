{#-
    dbt's Postgres function materialization, with PARALLEL SAFE added to a deterministic (immutable)
    function: dbt names no parallel safety, and Postgres then defaults to PARALLEL UNSAFE, which forbids a
    parallel plan for any query that calls the function where the planner does not inline it.
-#}
{% macro postgres__scalar_function_volatility_sql() -%}
    {{ dbt.default__scalar_function_volatility_sql() }}
    {%- if model.config.get('volatility') == 'deterministic' %} parallel safe{% endif %}
{%- endmacro %}
