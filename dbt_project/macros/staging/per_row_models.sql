{#-
    The shared half of a per-row staging model (one row per raw row: stg_kafka__*_events, stg_files__*_lines).
    A per-row model reads its raw table through new_raw_rows(), renames the raw columns with
    kafka_message_columns() / file_line_columns(), and starts its quarantine CASE with
    kafka_message_reasons() / file_line_reasons(); what is left in the model is its entity: the fields it
    parses and the reasons they can fail. Every rule here depends on the row alone (docs/data-model.md).
-#}

{#- The raw rows a per-row model has not staged yet: all of them on a full build, those above the highest
    load_seq already staged on an incremental run (the model appends; a raw row never changes). -#}
{% macro new_raw_rows(raw_table) -%}
    select * from {{ raw_table }}
    {%- if is_incremental() %}
        where load_seq > {{ highest_value(this, 'load_seq') }}
    {%- endif %}
{%- endmacro %}


{#- The columns every Kafka message has (a raw table shaped like raw.jobs), renamed: raw pointers, key and
    value as text, whether either came as bytes, `is_deleted` (a tombstone with a text key), whether the row
    is a placeholder for a record the client could not read (`is_unreadable`), the value as jsonb, `payload`
    (the value when it is a JSON object, else null) and a 500-character `raw_excerpt` (hex for a binary
    value, the read error for a placeholder). -#}
{% macro kafka_message_columns() -%}
        -- ids
        load_seq,
        kafka_topic || '-' || kafka_partition || '-' || kafka_offset as event_id,

        -- strings
        kafka_topic,
        message_key,
        message_value,

        -- numerics
        kafka_partition,
        kafka_offset,

        -- booleans
        message_key_bytes is not null as has_binary_key,
        message_value_bytes is not null as has_binary_value,
        -- a tombstone (a text key, no value): the Kafka convention for "this key is gone"
        coalesce(
            message_value is null and message_value_bytes is null and message_key <> '', false
        ) as is_deleted,
        kafka_read_error is not null as is_unreadable,

        -- timestamps
        kafka_timestamp as kafka_published_at,
        loaded_at,

        -- payload
        message_value_json,
        case when jsonb_typeof(message_value_json) = 'object' then message_value_json end as payload,
        left(
            coalesce(
                message_value, '\x' || encode(substring(message_value_bytes from 1 for 250), 'hex'), kafka_read_error
            ),
            500
        ) as raw_excerpt
{%- endmacro %}


{#- The entity key of a Kafka message: the payload's id (`id_expression`), or for a tombstone its key, the
    only place a delete names what it deletes. -#}
{% macro kafka_event_key(id_expression) -%}
    case when is_deleted then message_key else {{ id_expression }} end
{%- endmacro %}


{#- The first quarantine reasons of every Kafka message, in this order: unreadable_record (a placeholder
    row: the Kafka client could not read the record at that offset, kafka_read_error says why; key and value
    are null, so it is never a delete), null_value (a tombstone without a text key: nothing to delete),
    value_not_text, invalid_json, json_not_object, missing_<key> and key_mismatch (a binary key, or a
    non-empty key other than the payload's id). A tombstone with a key is no reason: it is a usable event
    that deletes its key (is_deleted). `key` is the column holding the payload's id (job_id). -#}
{% macro kafka_message_reasons(key) -%}
            when is_unreadable then 'unreadable_record'
            when message_value is null and not has_binary_value and not is_deleted then 'null_value'
            when is_deleted then null
            when message_value is null then 'value_not_text'
            when message_value_json is null then 'invalid_json'
            when payload is null then 'json_not_object'
            when {{ key }} is null then 'missing_{{ key }}'
            when has_binary_key or (message_key <> '' and message_key <> {{ key }}) then 'key_mismatch'
{%- endmacro %}


{#- The columns every file line has (a raw table shaped like raw.users), renamed: raw pointers, the line as
    text, whether it came as bytes, `clean_text` (the line without the UTF-8 BOM of line 1 and without a
    trailing \r of CRLF files), the line as jsonb (as the loader parsed it) and a 500-character `raw_excerpt`. -#}
{% macro file_line_columns() -%}
        -- ids
        load_seq,
        load_id,
        line_number,

        -- strings
        file_name,
        file_sha256,
        line_text,
        regexp_replace(
            case when line_number = 1 then regexp_replace(line_text, '^\uFEFF', '') else line_text end,
            '\r$', ''
        ) as clean_text,

        -- booleans
        line_bytes is not null as has_binary_line,

        -- timestamps
        loaded_at,

        -- payload
        line_json,
        left(coalesce(line_text, '\x' || encode(substring(line_bytes from 1 for 250), 'hex')), 500) as raw_excerpt
{%- endmacro %}


{#- The first quarantine reasons of every file line, in this order: header_row (csv: line 1 names the
    fields), blank_line, line_not_text, then invalid_csv (csv: the loader could not split the line into the
    header's fields) or invalid_json / json_not_object (json lines). Needs `value_json` (the line as jsonb;
    json lines only) and `payload` (the line as a JSON object, else null). -#}
{% macro file_line_reasons(format) -%}
            {% if format == 'csv' -%}
            -- the loader keys every later line by line 1 of the load: the header is no data
            when line_number = 1 then 'header_row'
            {% endif -%}
            when not has_binary_line and coalesce({{ trim_ws('clean_text') }}, '') = '' then 'blank_line'
            when has_binary_line then 'line_not_text'
            {%- if format == 'csv' %}
            -- the loader leaves line_json null when the line does not parse as one CSV row with as many
            -- fields as the header (an open quote, a short or long row)
            when payload is null then 'invalid_csv'
            {%- else %}
            when value_json is null then 'invalid_json'
            when payload is null then 'json_not_object'
            {%- endif %}
{%- endmacro %}
