{#-
    null_safe_cast(expr, type): expr cast to type, or null when the value does not parse. Never errors.
    parse_timestamp(expr): any documented timestamp format -> timestamptz (UTC), else null.
    Both call the parsing helpers of functions/ through function(), so each calling model depends on
    them in the DAG; any other type goes through staging.try_cast (macros/try_cast.sql, on-run-start).
    (Not named safe_cast: that is dbt's own cross-database macro, used to build unit-test fixtures,
    and overriding it in the root project would change how fixtures are cast.)
-#}

{% macro null_safe_cast(expr, type) -%}
    {%- set t = type | lower | trim -%}
    {%- set numeric_match = modules.re.match('^(numeric|decimal)\s*\(\s*(\d+)\s*(,\s*(\d+)\s*)?\)$', t) -%}
    {%- if t in ('numeric', 'decimal') -%}
        {{ function('safe_numeric') }}(({{ expr }})::text)
    {%- elif numeric_match -%}
        {%- set p = numeric_match.group(2) | int -%}
        {%- set sc = (numeric_match.group(4) or 0) | int -%}
        {#- round first, then check it fits numeric(p, s), so the final cast cannot overflow -#}
        (case
            when abs(round({{ function('safe_numeric') }}(({{ expr }})::text), {{ sc }})) < 1e{{ p - sc }}
                then round({{ function('safe_numeric') }}(({{ expr }})::text), {{ sc }})::numeric({{ p }}, {{ sc }})
        end)
    {%- elif t in ('bigint', 'int8') -%}
        {{ function('safe_bigint') }}(({{ expr }})::text)
    {%- elif t in ('integer', 'int', 'int4', 'smallint', 'int2') -%}
        {%- set bound = 2147483647 if t in ('integer', 'int', 'int4') else 32767 -%}
        (case
            when {{ function('safe_bigint') }}(({{ expr }})::text) between -{{ bound }} - 1 and {{ bound }}
                then {{ function('safe_bigint') }}(({{ expr }})::text)::{{ t }}
        end)
    {%- elif t in ('timestamptz', 'timestamp with time zone') -%}
        {{ function('parse_timestamp') }}(({{ expr }})::text)
    {%- else -%}
        {{ generate_schema_name('staging', none) }}.try_cast(({{ expr }})::text, null::{{ type }})
    {%- endif -%}
{%- endmacro %}


{% macro parse_timestamp(expr) -%}
    {{ function('parse_timestamp') }}(({{ expr }})::text)
{%- endmacro %}
