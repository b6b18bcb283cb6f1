-- Revenue vs payments per job (grain: job): each job of marts.jobs with its service category from the
-- catalogue and the total of its deduplicated payments, and why the two do not add up, if they do not.
--
--   amount_due         revenue of a COMPLETED job, 0 for any other status (nothing is owed yet / any more)
--   paid_amount        sum of the job's payments in var('reporting_currency'); other currencies are
--                      counted (foreign_currency_payment_count), never added
--   mismatch_reason    first that applies: foreign_currency (a payment in another currency),
--                      paid_not_completed (money for a job that is not completed), underpaid, overpaid
--
-- A table rebuilt every run: one hash join over the payments and the (small) catalogue, seconds at 1M
-- jobs. Incremental would have to follow three inputs (a late payment, a new catalogue, a job update).

{%- set reporting_currency = sql_string_literal(var('reporting_currency')) %}

with

jobs as (

    select * from {{ ref('jobs') }}

),

services as (

    select * from {{ ref('stg_files__services') }}

),

payments as (

    select * from {{ ref('stg_kafka__payments') }}
    where not is_deleted

),

payments_per_job as (

    select
        job_id,
        count(*) as payment_count,
        count(*) filter (where currency <> {{ reporting_currency }}) as foreign_currency_payment_count,
        coalesce(sum(amount) filter (where currency = {{ reporting_currency }}), 0) as paid_amount,
        max(paid_at) as last_paid_at
    from payments
    group by job_id

),

joined as (

    select
        jobs.job_id,
        jobs.service_name,
        coalesce(services.category, 'UNCATEGORISED') as category,
        jobs.job_status,
        jobs.job_at,
        jobs.revenue,
        case when jobs.job_status = 'COMPLETED' then jobs.revenue else 0 end as amount_due,
        coalesce(payments_per_job.paid_amount, 0) as paid_amount,
        coalesce(payments_per_job.payment_count, 0) as payment_count,
        coalesce(payments_per_job.foreign_currency_payment_count, 0) as foreign_currency_payment_count,
        payments_per_job.last_paid_at
    from jobs
    left join services on jobs.service_name = services.service_name
    left join payments_per_job on jobs.job_id = payments_per_job.job_id

),

classified as (

    select
        *,
        case
            when foreign_currency_payment_count > 0 then 'foreign_currency'
            when coalesce(job_status <> 'COMPLETED', true) and paid_amount > 0 then 'paid_not_completed'
            when paid_amount < amount_due then 'underpaid'
            when paid_amount > amount_due then 'overpaid'
        end as mismatch_reason
    from joined

),

final as (

    select
        -- ids
        job_id,

        -- strings
        service_name,
        category,
        job_status,
        mismatch_reason,

        -- numerics
        revenue::numeric(14, 2) as revenue,
        amount_due::numeric(14, 2) as amount_due,
        paid_amount::numeric(14, 2) as paid_amount,
        (paid_amount - amount_due)::numeric(14, 2) as payment_difference,
        payment_count,
        foreign_currency_payment_count,

        -- booleans
        payment_count > 0 as has_payments,
        coalesce(job_status = 'COMPLETED', false) and mismatch_reason is null as is_fully_paid,
        mismatch_reason is not null as has_payment_mismatch,

        -- timestamps
        job_at,
        last_paid_at

    from classified

)

select * from final
