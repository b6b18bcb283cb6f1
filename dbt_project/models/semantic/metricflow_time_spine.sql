-- One row per day: the time spine MetricFlow joins metrics to (dense time series, cumulative metrics).
-- From the earliest job date staging accepts (1970) to well past any date it accepts today.

with

days as (

    select generate_series(date '1970-01-01', date '2045-12-31', interval '1 day')::date as date_day

),

final as (

    select date_day from days

)

select * from final
