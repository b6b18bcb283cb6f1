-- Revenue vs payments per service category (grain: category), from marts.job_payments: how much the
-- completed jobs of a category earned, how much was paid for its jobs, the difference, and how many jobs
-- do not add up. Payments whose job is not in marts.jobs (unknown, or only quarantined events) are the
-- row 'UNKNOWN_JOB', so the paid column adds up to every usable payment in var('reporting_currency').
--
-- A table of a few rows, rebuilt every run from the running totals job_payments keeps with every change of
-- its rows (macros/marts/job_payments_totals.sql): per category, and the payments of unknown jobs, so a run
-- does not sum every job of history. In a unit test (whose inputs are fixtures) it sums them as the totals
-- do; make audit checks the mart against that sum over every job (assert_reconciliation_matches_job_payments).

{%- set reads_running_totals = execute and model.resource_type == 'model' %}

with

{% if reads_running_totals -%}
    category_sums as (

        select * from {{ job_payments_totals_relation() }}

    ),

    unknown_jobs as (

        select * from {{ job_payments_unknown_jobs_relation() }}

    ),

{% else -%}
    category_sums as (

        {{ job_payments_category_sums(ref('job_payments')) }}

    ),

    unknown_jobs as (

        {{ unknown_job_payment_rows() }}

    ),

{% endif -%}
unknown_job_payments as (

    select
        'UNKNOWN_JOB' as category,
        0::bigint as job_count,
        0::bigint as completed_job_count,
        count(*) as paid_job_count,
        count(*) as mismatched_job_count,
        coalesce(sum(foreign_currency_payment_count), 0)::bigint as foreign_currency_payment_count,
        0::numeric as revenue,
        0::numeric as amount_due,
        coalesce(sum(paid_amount), 0) as paid_amount
    from unknown_jobs
    having count(*) > 0

),

per_category as (

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
    from category_sums

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
