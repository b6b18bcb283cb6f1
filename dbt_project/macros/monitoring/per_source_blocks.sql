{#-
    unmapped_keys_since_last_run(source_name, rows): one row per unmapped payload key of each row of the
    per-row staging model `rows` (source_name, json_key, load_seq, loaded_at); on an incremental run of
    schema_drift_keys only the rows above the highest load_seq it already counted for that source.
    schema_drift_keys unions one call per source.
-#}
{% macro unmapped_keys_since_last_run(source_name, rows) -%}
    select
        {{ sql_string_literal(source_name) }} as source_name,
        unmapped.json_key,
        staged.load_seq,
        staged.loaded_at
    from {{ rows }} as staged
    cross join lateral jsonb_array_elements_text(staged.unmapped_keys) as unmapped (json_key)
    where
        staged.unmapped_keys is not null
        {%- if is_incremental() %}
            and staged.load_seq > {{
                highest_value(this, 'last_seen_load_seq', where='source_name = ' ~ sql_string_literal(source_name))
            }}
        {%- endif %}
{%- endmacro %}


{#-
    quarantined_rows_since_last_run(source_name, rows, kind): the unusable rows of the per-row staging model
    `rows` as quarantined_records rows, raw_record_id naming the raw row (kind='kafka': its event_id
    '<topic>-<partition>-<offset>'; kind='file': '<load_id>:<line_number>'); on an incremental run only
    those above the highest raw_load_seq already quarantined from that source.
    quarantined_records unions one call per source.
-#}
{% macro quarantined_rows_since_last_run(source_name, rows, kind) -%}
    select
        {{ sql_string_literal(source_name) }} as source_name,
        load_seq as raw_load_seq,
        quarantine_reason,
        {{ 'event_id' if kind == 'kafka' else "load_id || ':' || line_number" }} as raw_record_id,
        raw_excerpt,
        loaded_at
    from {{ rows }}
    where
        not is_usable
        {%- if is_incremental() %}
            and load_seq > {{
                highest_value(this, 'raw_load_seq', where='source_name = ' ~ sql_string_literal(source_name))
            }}
        {%- endif %}
{%- endmacro %}
