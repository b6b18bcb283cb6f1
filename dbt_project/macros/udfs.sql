{#-
    Null-safe parsing helpers, created idempotently by the on-run-start hook (dbt_project.yml).

    PostgreSQL 15 has no pg_input_is_valid(), and a failed cast aborts the whole statement, so every
    helper validates its input with anchored regexes and range checks *before* casting: the cast can
    then never fail, no EXCEPTION block (= subtransaction per call) is needed, and the functions are
    honestly immutable + parallel safe. Only the generic try_cast() fallback uses an EXCEPTION block
    (therefore parallel unsafe); the staging models call it only on rare rows.

    The functions never read the session TimeZone/DateStyle: naive times are built with
    make_timestamp() and converted with "at time zone 'UTC'".
-#}

{% macro udf_schema() -%}
    {{ return(generate_schema_name('staging', none)) }}
{%- endmacro %}


{% macro create_udfs() -%}
{%- set s = udf_schema() -%}
-- serialise concurrent dbt invocations replacing the same functions
select pg_advisory_xact_lock(hashtext('jobs_elt.create_udfs'));

create schema if not exists {{ s }};

-- Every helper below is a single-expression `language sql` function, immutable, not strict and
-- parallel safe: the planner inlines it into the calling query, so a row costs a few expression
-- evaluations instead of a PL/pgSQL call (see docs/data-model.md, "Performance"). Inlining needs each
-- argument to be cheap when a parameter is used more than once: callers pass a column or a single
-- jsonb ->> lookup, never a large expression.

-- Trim ASCII whitespace (space, \t, \n, \r, \f, \v) on both sides; btrim() without a set strips only spaces.
create or replace function {{ s }}.trim_ws(p_value text)
returns text
language sql immutable parallel safe
as $fn$
    select btrim(p_value, E' \t\n\r\f\x0B')
$fn$;

-- A plain decimal literal ('12', '-1.5', '+.5', '7.', surrounding blanks allowed) as numeric, else null.
-- No exponent, NaN or Infinity. Bounded length, so the cast can never overflow (numeric holds 131072
-- digits before and 16383 after the point).
create or replace function {{ s }}.safe_numeric_trimmed(v text)
returns numeric
language sql immutable parallel safe
as $fn$
    select case when length(v) <= 10000 and v ~ '^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$' then v::numeric end
$fn$;

create or replace function {{ s }}.safe_numeric(p_value text)
returns numeric
language sql immutable parallel safe
as $fn$
    select {{ s }}.safe_numeric_trimmed(btrim(p_value, E' \t\n\r\f\x0B'))
$fn$;

-- An integer literal within the bigint range as bigint, else null.
create or replace function {{ s }}.safe_bigint_trimmed(v text)
returns bigint
language sql immutable parallel safe
as $fn$
    select case
        when v ~ '^[+-]?[0-9]{1,19}$' and v::numeric between -9223372036854775808 and 9223372036854775807
            then v::bigint
    end
$fn$;

create or replace function {{ s }}.safe_bigint(p_value text)
returns bigint
language sql immutable parallel safe
as $fn$
    select {{ s }}.safe_bigint_trimmed(btrim(p_value, E' \t\n\r\f\x0B'))
$fn$;

-- A civil date-time (UTC offset in minutes) as timestamptz, or null when a field is out of range
-- (month 13, 2024-02-30, 24:00, year 0 ...): validated first, so make_timestamp() can never fail.
-- p_fraction is '' or '.<digits>' (any length, rounded half up to microseconds; may carry into the
-- next second); p_zone is '', 'Z', '+hh:mm', '+hhmm' (or with '-').
create or replace function {{ s }}.civil_timestamp(
    y integer, mo integer, d integer, h integer, mi integer, sec integer, p_fraction text, p_zone text
)
returns timestamptz
language sql immutable parallel safe
as $fn$
    select case
        when y >= 1 and mo between 1 and 12 and h <= 23 and mi <= 59 and sec <= 59 and d >= 1
            and d <= case
                when mo = 2 and (y % 4 = 0 and (y % 100 <> 0 or y % 400 = 0)) then 29
                when mo = 2 then 28
                when mo in (4, 6, 9, 11) then 30
                else 31
            end
            -- (a CASE, not OR: only CASE guarantees the casts never see '' or 'Z')
            and case
                when p_zone in ('', 'Z') then true
                else substr(p_zone, 2, 2)::integer <= 23 and right(p_zone, 2)::integer <= 59
            end
            then (
                make_timestamp(y, mo, d, h, mi, sec)
                + make_interval(secs => round(('0' || p_fraction)::numeric, 6)::double precision)
                - case
                    when p_zone in ('', 'Z') then interval '0'
                    when left(p_zone, 1) = '-'
                        then -make_interval(hours => substr(p_zone, 2, 2)::integer, mins => right(p_zone, 2)::integer)
                    else make_interval(hours => substr(p_zone, 2, 2)::integer, mins => right(p_zone, 2)::integer)
                end
            ) at time zone 'UTC'
    end
$fn$;

-- An already trimmed timestamp text in any documented format as timestamptz, else null. The format is
-- recognised with one anchored, capture-free regex (cheap); the fields are then cut at fixed positions.
create or replace function {{ s }}.parse_timestamp_trimmed(v text)
returns timestamptz
language sql immutable parallel safe
as $fn$
    select case
        -- ISO 8601: date, 'T' or space, hh:mm:ss, optional fraction, optional Z / +hh:mm / +hhmm
        when v ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:?[0-9]{2})?$'
            then {{ s }}.civil_timestamp(
                substr(v, 1, 4)::integer, substr(v, 6, 2)::integer, substr(v, 9, 2)::integer,
                substr(v, 12, 2)::integer, substr(v, 15, 2)::integer, substr(v, 18, 2)::integer,
                -- after hh:mm:ss: the fraction is what precedes the zone, the zone what follows the digits
                substr(v, 20, length(v) - 19 - length(ltrim(substr(v, 20), '.0123456789'))),
                ltrim(substr(v, 20), '.0123456789')
            )
        -- Unix epoch seconds (9-10 digits) / milliseconds (12-13 digits): integer arithmetic only
        when v ~ '^[0-9]{9,10}$' then to_timestamp(v::bigint)
        when v ~ '^[0-9]{12,13}$'
            -- (timestamp + interval, not timestamptz + interval: only the former is immutable, and a
            -- stable operator in the body would stop the planner from inlining the function)
            then (timestamp '1970-01-01 00:00:00' + v::bigint * interval '1 millisecond') at time zone 'UTC'
        -- day.month.year hh:mm[:ss], no zone
        when v ~ '^[0-9]{2}\.[0-9]{2}\.[0-9]{4} [0-9]{2}:[0-9]{2}(:[0-9]{2})?$'
            then {{ s }}.civil_timestamp(
                substr(v, 7, 4)::integer, substr(v, 4, 2)::integer, substr(v, 1, 2)::integer,
                substr(v, 12, 2)::integer, substr(v, 15, 2)::integer, coalesce(nullif(substr(v, 18, 2), ''), '0')::integer,
                '', ''
            )
    end
$fn$;

-- Every timestamp format of docs/data-model.md as timestamptz (UTC when no zone is given), else null:
--   2024-03-05T14:22:31Z, 2024-03-05T17:22:31+03:00 / +0300, 2024-03-05T14:22:31.123 ('T' or space,
--   optional fraction of any length rounded to microseconds, optional Z / +hh:mm / +hhmm),
--   2024-03-05 14:22:31, 05.03.2024 14:22:31, 05.03.2024 14:22,
--   1709648551 (9-10 digits: epoch seconds), 1709648551000 (12-13 digits: epoch milliseconds).
-- Surrounding ASCII blanks are ignored. Impossible calendar values (2024-02-30, 25:00, year 0) give null.
-- Never reads the session TimeZone/DateStyle (make_timestamp + "at time zone 'UTC'").
create or replace function {{ s }}.parse_timestamp(p_value text)
returns timestamptz
language sql immutable parallel safe
as $fn$
    select {{ s }}.parse_timestamp_trimmed(btrim(p_value, E' \t\n\r\f\x0B'))
$fn$;

-- Generic fallback: p_value cast to the type of p_result (pass null::<type>), null when the cast fails.
-- Uses an EXCEPTION block (a subtransaction), hence stable/parallel unsafe: call it only on rare rows.
create or replace function {{ s }}.try_cast(p_value text, inout p_result anyelement)
language plpgsql stable
as $fn$
begin
    p_result := p_value;
exception when others then
    p_result := null;
end
$fn$;
{%- endmacro %}
