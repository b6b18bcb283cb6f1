{#-
    null_safe_cast(expr, type): expr cast to type, or null when the value does not parse. Never errors.
    parse_timestamp(expr): any documented timestamp format -> timestamptz (UTC), else null.
    Both rely on the helper functions created by create_udfs() (on-run-start).
    (Not named safe_cast: that is dbt's own cross-database macro, used to build unit-test fixtures,
    and overriding it in the root project would change how fixtures are cast.)
-#}

{% macro null_safe_cast(expr, type) -%}
    {%- set s = udf_schema() -%}
    {%- set t = type | lower | trim -%}
    {%- set numeric_match = modules.re.match('^(numeric|decimal)\s*\(\s*(\d+)\s*(,\s*(\d+)\s*)?\)$', t) -%}
    {%- if t in ('numeric', 'decimal') -%}
        {{ s }}.safe_numeric(({{ expr }})::text)
    {%- elif numeric_match -%}
        {%- set p = numeric_match.group(2) | int -%}
        {%- set sc = (numeric_match.group(4) or 0) | int -%}
        {#- round first, then check it fits numeric(p, s), so the final cast cannot overflow -#}
        (case
            when abs(round({{ s }}.safe_numeric(({{ expr }})::text), {{ sc }})) < 1e{{ p - sc }}
                then round({{ s }}.safe_numeric(({{ expr }})::text), {{ sc }})::numeric({{ p }}, {{ sc }})
        end)
    {%- elif t in ('bigint', 'int8') -%}
        {{ s }}.safe_bigint(({{ expr }})::text)
    {%- elif t in ('integer', 'int', 'int4', 'smallint', 'int2') -%}
        {%- set bound = 2147483647 if t in ('integer', 'int', 'int4') else 32767 -%}
        (case
            when {{ s }}.safe_bigint(({{ expr }})::text) between -{{ bound }} - 1 and {{ bound }}
                then {{ s }}.safe_bigint(({{ expr }})::text)::{{ t }}
        end)
    {%- elif t in ('timestamptz', 'timestamp with time zone') -%}
        {{ s }}.parse_timestamp(({{ expr }})::text)
    {%- else -%}
        {{ s }}.try_cast(({{ expr }})::text, null::{{ type }})
    {%- endif -%}
{%- endmacro %}


{% macro parse_timestamp(expr) -%}
    {{ udf_schema() }}.parse_timestamp(({{ expr }})::text)
{%- endmacro %}
