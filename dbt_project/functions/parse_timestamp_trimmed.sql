-- The format is recognised with one anchored, capture-free regex (cheap); the fields are then cut at fixed
-- positions.
select case
    -- ISO 8601: date, 'T' or space, hh:mm:ss, optional fraction, optional Z / +hh:mm / +hhmm
    when v ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:?[0-9]{2})?$'
        then {{ function('civil_timestamp').include(database=false) }}(
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
        then {{ function('civil_timestamp').include(database=false) }}(
            substr(v, 7, 4)::integer, substr(v, 4, 2)::integer, substr(v, 1, 2)::integer,
            substr(v, 12, 2)::integer, substr(v, 15, 2)::integer,
            coalesce(nullif(substr(v, 18, 2), ''), '0')::integer,
            '', ''
        )
end
