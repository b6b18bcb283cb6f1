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


{#- ASCII whitespace (space, \t, \n, \r, \f, \v = \x0B) trimmed on both sides; btrim() without a set strips
    only spaces. -#}
{% macro trim_ws(expr) -%}
    btrim({{ expr }}, e' \t\n\r\f\x0B')
{%- endmacro %}


{#- Location: trimmed, upper-cased, inner whitespace removed (' loc_1294 ' -> 'LOC_1294'); blank -> null.
    "Whitespace" is every character Python's str.isspace() accepts (ASCII blanks, NBSP, the Unicode
    spaces), listed explicitly so the result does not depend on the database's locale ([[:space:]] is
    ASCII-only under the C locale). -#}
{% macro normalize_location(expr) -%}
    nullif(upper(regexp_replace(
        {{ expr }},
        '[\t\n\u000b\f\r \u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+',
        '',
        'g'
    )), '')
{%- endmacro %}


{#- Codes (service name, job status): trimmed, upper-cased; blank -> null. -#}
{% macro normalize_code(expr) -%}
    nullif(upper({{ trim_ws(expr) }}), '')
{%- endmacro %}


{#- A Jinja string as a safely quoted SQL text literal. -#}
{% macro sql_string_literal(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}


{#- The keys of a JSON object that staging does not map, as a sorted jsonb array; null when there are none
    (or no object). `jsonb - text[]` drops the mapped keys without unnesting, so the common, fully mapped
    row costs one operator call and a comparison. -#}
{% macro json_unmapped_keys(json_col, mapped_keys) -%}
    (case
        when ({{ json_col }} - {{ sql_text_array(mapped_keys) }}) <> '{}'::jsonb
            then (
                select jsonb_agg(unmapped.json_key order by unmapped.json_key)
                -- the subquery reads the row's own column: nothing to qualify it with
                from jsonb_object_keys({{ json_col }} - {{ sql_text_array(mapped_keys) }}) as unmapped (json_key)  -- noqa: RF02
            )
    end)
{%- endmacro %}


{#- A Jinja list of strings as a SQL text[] literal. -#}
{% macro sql_text_array(values) -%}
    array[{% for value in values %}{{ sql_string_literal(value) }}{% if not loop.last %}, {% endif %}{% endfor %}]::text[]
{%- endmacro %}
