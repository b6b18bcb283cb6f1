-- Validated first, so make_timestamp() can never fail.
select case
    when
        y >= 1 and mo between 1 and 12 and h <= 23 and mi <= 59 and sec <= 59 and d >= 1
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
