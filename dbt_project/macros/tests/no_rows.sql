{#- Fails (or warns, with severity: warn) for every row of the model: for models that should stay empty. -#}
{% test no_rows(model) %}
    select * from {{ model }}
{% endtest %}
