-- Bounded length, so the cast can never overflow (numeric holds 131072 digits before the point and 16383 after).
select case when length(v) <= 10000 and v ~ '^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$' then v::numeric end
