-- revenue_reconciliation_by_category reads the running totals kept with every change of marts.job_payments
-- (macros/marts/job_payments_totals.sql): they must equal a fresh sum over every job of job_payments and
-- every live payment of a job marts.jobs does not hold. Returns the categories that differ. It reads all of
-- history: make audit only.

{{ config(tags=['audit']) }}

with

fresh_categories as (

    {{ job_payments_category_sums(ref('job_payments')) }}

),

fresh_unknown_jobs as (

    {{ unknown_job_payment_rows() }}

),

expected as (

    select * from fresh_categories

    union all

    select
        'UNKNOWN_JOB' as category,
        0 as job_count,
        0 as completed_job_count,
        count(*) as paid_job_count,
        count(*) as mismatched_job_count,
        coalesce(sum(foreign_currency_payment_count), 0) as foreign_currency_payment_count,
        0 as revenue,
        0 as amount_due,
        coalesce(sum(paid_amount), 0) as paid_amount
    from fresh_unknown_jobs
    having count(*) > 0

),

actual as (

    select
        category,
        job_count,
        completed_job_count,
        paid_job_count,
        mismatched_job_count,
        foreign_currency_payment_count,
        revenue,
        amount_due,
        paid_amount
    from {{ ref('revenue_reconciliation_by_category') }}

)

select
    coalesce(expected.category, actual.category) as category,
    expected.job_count as expected_job_count,
    actual.job_count as actual_job_count,
    expected.paid_amount as expected_paid_amount,
    actual.paid_amount as actual_paid_amount
from expected
full outer join actual on expected.category = actual.category
where
    (
        expected.job_count, expected.completed_job_count, expected.paid_job_count, expected.mismatched_job_count,
        expected.foreign_currency_payment_count, expected.revenue, expected.amount_due, expected.paid_amount
    ) is distinct from (
        actual.job_count, actual.completed_job_count, actual.paid_job_count, actual.mismatched_job_count,
        actual.foreign_currency_payment_count, actual.revenue, actual.amount_due, actual.paid_amount
    )
