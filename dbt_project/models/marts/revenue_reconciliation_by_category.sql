-- Revenue vs payments per service category (grain: category), from marts.job_payments: how much the
-- completed jobs of a category earned, how much was paid for its jobs, the difference, and how many jobs
-- do not add up. Payments whose job is not in marts.jobs (unknown, or only quarantined events) are the
-- row 'UNKNOWN_JOB', so the paid column adds up to every usable payment in var('reporting_currency').

{%- set reporting_currency = sql_string_literal(var('reporting_currency')) %}

with

job_payments as (

    select * from {{ ref('job_payments') }}

),

jobs as (

    select job_id from {{ ref('jobs') }}

),

unknown_job_payments as (

    select
        'UNKNOWN_JOB' as category,
        0::bigint as job_count,
        0::bigint as completed_job_count,
        count(distinct payments.job_id) as paid_job_count,
        count(distinct payments.job_id) as mismatched_job_count,
        count(*) filter (where payments.currency <> {{ reporting_currency }}) as foreign_currency_payment_count,
        0::numeric as revenue,
        0::numeric as amount_due,
        coalesce(sum(payments.amount) filter (where payments.currency = {{ reporting_currency }}), 0) as paid_amount
    from {{ ref('stg_kafka__payments') }} as payments
    left join jobs on payments.job_id = jobs.job_id
    where jobs.job_id is null and not payments.is_deleted
    having count(*) > 0

),

per_category as (

    select
        category,
        count(*) as job_count,
        count(*) filter (where job_status = 'COMPLETED') as completed_job_count,
        count(*) filter (where has_payments) as paid_job_count,
        count(*) filter (where has_payment_mismatch) as mismatched_job_count,
        sum(foreign_currency_payment_count)::bigint as foreign_currency_payment_count,
        sum(revenue) as revenue,
        sum(amount_due) as amount_due,
        sum(paid_amount) as paid_amount
    from job_payments
    group by category

    union all

    select * from unknown_job_payments

),

final as (

    select
        -- ids
        category,

        -- numerics
        job_count,
        completed_job_count,
        paid_job_count,
        mismatched_job_count,
        foreign_currency_payment_count,
        revenue::numeric(18, 2) as revenue,
        amount_due::numeric(18, 2) as amount_due,
        paid_amount::numeric(18, 2) as paid_amount,
        (paid_amount - amount_due)::numeric(18, 2) as payment_difference,

        -- booleans
        mismatched_job_count = 0 and paid_amount = amount_due as is_reconciled

    from per_category

)

select * from final
