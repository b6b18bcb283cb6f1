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

-- Trim ASCII whitespace (space, \t, \n, \r, \f, \v) on both sides; btrim() alone strips only spaces.
create or replace function {{ s }}.trim_ws(p_value text)
returns text
language sql immutable strict parallel safe
as $fn$
    select regexp_replace(p_value, '^[ \t\n\r\f\v]+|[ \t\n\r\f\v]+$', '', 'g')
$fn$;

-- A plain decimal literal ('12', '-1.5', '+.5', '7.', surrounding blanks allowed) as numeric, else null.
-- No exponent, NaN or Infinity. Bounded length, so the cast below can never overflow (numeric holds
-- 131072 digits before and 16383 after the point).
create or replace function {{ s }}.safe_numeric(p_value text)
returns numeric
language plpgsql immutable strict parallel safe
as $fn$
declare
    v text := {{ s }}.trim_ws(p_value);
begin
    if length(v) > 10000 or v !~ '^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$' then
        return null;
    end if;
    return v::numeric;
end
$fn$;

-- An integer literal within the bigint range as bigint, else null.
create or replace function {{ s }}.safe_bigint(p_value text)
returns bigint
language plpgsql immutable strict parallel safe
as $fn$
declare
    v text := {{ s }}.trim_ws(p_value);
begin
    if v !~ '^[+-]?[0-9]{1,19}$'
       or v::numeric not between -9223372036854775808 and 9223372036854775807 then
        return null;
    end if;
    return v::bigint;
end
$fn$;

-- Every timestamp format of docs/data-model.md as timestamptz (UTC when no zone is given), else null:
--   2024-03-05T14:22:31Z, 2024-03-05T17:22:31+03:00 / +0300, 2024-03-05T14:22:31.123 ('T' or space,
--   optional fraction of any length rounded to microseconds, optional Z / +hh:mm / +hhmm),
--   2024-03-05 14:22:31, 05.03.2024 14:22:31, 05.03.2024 14:22,
--   1709648551 (9-10 digits: epoch seconds), 1709648551000 (12-13 digits: epoch milliseconds).
-- Surrounding ASCII blanks are ignored. Impossible calendar values (2024-02-30, 25:00, year 0) give null.
create or replace function {{ s }}.parse_timestamp(p_value text)
returns timestamptz
language plpgsql immutable strict parallel safe
as $fn$
declare
    v text := {{ s }}.trim_ws(p_value);
    m text[];
    y integer;
    mo integer;
    d integer;
    h integer;
    mi integer;
    sec integer;
    fraction numeric := 0;
    zone text;
    off_minutes integer := 0;
    days_in_month integer;
    epoch_ms bigint;
begin
    if length(v) > 140 then
        return null;
    end if;

    -- Unix epoch, seconds (9-10 digits) or milliseconds (12-13 digits): integer arithmetic only.
    if v ~ '^[0-9]{9,10}$' then
        return to_timestamp(v::bigint);
    end if;
    if v ~ '^[0-9]{12,13}$' then
        epoch_ms := v::bigint;
        return to_timestamp(epoch_ms / 1000) + (epoch_ms % 1000) * interval '1 millisecond';
    end if;

    -- ISO 8601: date, 'T' or space, hh:mm:ss, optional fraction, optional Z / +hh:mm / +hhmm.
    m := regexp_match(
        v,
        '^([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,100})?(Z|[+-][0-9]{2}:?[0-9]{2})?$'
    );
    if m is not null then
        y := m[1]::integer;
        mo := m[2]::integer;
        d := m[3]::integer;
        h := m[4]::integer;
        mi := m[5]::integer;
        sec := m[6]::integer;
        -- any number of fraction digits, rounded (half up) to microseconds; may carry into the next second
        fraction := round(('0' || coalesce(m[7], ''))::numeric, 6);
        zone := m[8];
    else
        -- day.month.year hh:mm[:ss], no zone.
        m := regexp_match(v, '^([0-9]{2})\.([0-9]{2})\.([0-9]{4}) ([0-9]{2}):([0-9]{2})(:([0-9]{2}))?$');
        if m is null then
            return null;
        end if;
        d := m[1]::integer;
        mo := m[2]::integer;
        y := m[3]::integer;
        h := m[4]::integer;
        mi := m[5]::integer;
        sec := coalesce(m[7], '0')::integer;
    end if;

    if y < 1 or mo not between 1 and 12 or h > 23 or mi > 59 or sec >= 60 then
        return null;
    end if;
    -- (assigned first: a PL/pgSQL IF condition ends at the first THEN, even one inside a CASE)
    days_in_month := case
        when mo = 2 and (y % 4 = 0 and (y % 100 <> 0 or y % 400 = 0)) then 29
        when mo = 2 then 28
        when mo in (4, 6, 9, 11) then 30
        else 31
    end;
    if d < 1 or d > days_in_month then
        return null;
    end if;

    if zone is not null and zone <> 'Z' then
        if substr(zone, 2, 2)::integer > 23 or right(zone, 2)::integer > 59 then
            return null;
        end if;
        off_minutes := (substr(zone, 2, 2)::integer * 60 + right(zone, 2)::integer)
            * case when left(zone, 1) = '-' then -1 else 1 end;
    end if;

    return (
        make_timestamp(y, mo, d, h, mi, sec)
        + make_interval(secs => fraction::double precision)
        - make_interval(mins => off_minutes)
    ) at time zone 'UTC';
end
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
