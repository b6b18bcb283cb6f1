{#-
    Field extraction/normalisation rules of docs/data-model.md ("Field parsing"), shared by the
    staging models, the marts (var('location')) and the look-up functions so they cannot drift.
-#}

{#- True when the key is missing or holds JSON null ("absent"). -#}
{% macro json_is_absent(json_col, key) -%}
    coalesce(jsonb_typeof({{ json_col }} -> '{{ key }}') = 'null', true)
{%- endmacro %}


{#- Identifier: a JSON string or integer rendered as text, trimmed; null when blank or any other type. -#}
{% macro json_id_text(json_col, key) -%}
    (case
        when jsonb_typeof({{ json_col }} -> '{{ key }}') = 'string'
            then nullif({{ trim_ws(json_col ~ " ->> '" ~ key ~ "'") }}, '')
        when jsonb_typeof({{ json_col }} -> '{{ key }}') = 'number'
            and ({{ json_col }} ->> '{{ key }}') ~ '^-?[0-9]+$'
            then {{ json_col }} ->> '{{ key }}'
    end)
{%- endmacro %}


{#- A JSON string or integer as text, untrimmed, for the normalisers below; other types -> null. -#}
{% macro json_text(json_col, key) -%}
    (case
        when jsonb_typeof({{ json_col }} -> '{{ key }}') = 'string'
            or (
                jsonb_typeof({{ json_col }} -> '{{ key }}') = 'number'
                and ({{ json_col }} ->> '{{ key }}') ~ '^-?[0-9]+$'
            )
            then {{ json_col }} ->> '{{ key }}'
    end)
{%- endmacro %}


{#- A JSON string or number as text (the forms a timestamp / revenue may take); other types -> null. -#}
{% macro json_scalar_text(json_col, key) -%}
    (case
        when jsonb_typeof({{ json_col }} -> '{{ key }}') in ('string', 'number')
            then {{ json_col }} ->> '{{ key }}'
    end)
{%- endmacro %}


{#- ASCII whitespace (space, \t, \n, \r, \f, \v) trimmed on both sides; btrim() alone strips only spaces. -#}
{% macro trim_ws(expr) -%}
    regexp_replace({{ expr }}, '^[ \t\n\r\f\v]+|[ \t\n\r\f\v]+$', '', 'g')
{%- endmacro %}


{#- Location: trimmed, upper-cased, inner whitespace removed (' loc_1294 ' -> 'LOC_1294'); blank -> null.
    [[:space:]] (not only ASCII) because every whitespace character goes, wherever it is. -#}
{% macro normalize_location(expr) -%}
    nullif(upper(regexp_replace({{ expr }}, '[[:space:]]+', '', 'g')), '')
{%- endmacro %}


{#- Codes (service name, job status): trimmed, upper-cased; blank -> null. -#}
{% macro normalize_code(expr) -%}
    nullif(upper({{ trim_ws(expr) }}), '')
{%- endmacro %}


{#- A Jinja string as a safely quoted SQL text literal. -#}
{% macro sql_string_literal(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}
