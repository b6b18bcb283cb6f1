{#- Fails for every row where the SQL boolean expression is not true (false or null). -#}
{% test expression_is_true(model, expression, column_name=none) %}
    {%- set expr = column_name ~ ' ' ~ expression if column_name else expression -%}
    select *
    from {{ model }}
    where not coalesce(({{ expr }}), false)
{% endtest %}
