-- Revenue vs payments per job (grain: job): each job of marts.jobs with its service category from the
-- catalogue and the total of its deduplicated payments, and why the two do not add up, if they do not.
--
--   amount_due         revenue of a COMPLETED job, 0 for any other status (nothing is owed yet / any more)
--   paid_amount        sum of the job's payments in var('reporting_currency'); other currencies are
--                      counted (foreign_currency_payment_count), never added
--   mismatch_reason    first that applies: foreign_currency (a payment in another currency),
--                      paid_not_completed (money for a job that is not completed), underpaid, overpaid
--
-- Incremental (delete+insert on job_id): a run recomputes, from all their payments, the jobs it touches:
--   - jobs staged since the last run (stg_kafka__jobs above the model's 'jobs' watermark): new, updated or
--     deleted (a deleted job's row is removed by the post-hook);
--   - every job a payment staged since the last run names, or named in an earlier event: a late payment, a
--     corrected one, a deleted one (tombstone), and the job a corrected payment moved away from;
--   - every job of a service whose category in the catalogue is not the one this table holds for the
--     service (a new catalogue that recategorises it, or lists it for the first time): each service's rows
--     share one category, so one look-up per service by the service_name index finds them. A catalogue
--     that only changes prices touches nothing.
-- The watermarks are in staging.dbt_model_watermarks (macros/incremental_watermarks.sql): a deleted job or
-- a payment of an unknown job leaves no row here to read them back from. The per-category totals and the
-- payments of unknown jobs that revenue_reconciliation_by_category reads are kept with every change of this
-- table (macros/marts/job_payments_totals.sql).

-- depends_on: {{ ref('stg_kafka__payment_events') }}

{%- set reporting_currency = sql_string_literal(var('reporting_currency')) %}

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='job_id',
        on_schema_change='fail',
        indexes=[
            {'columns': ['service_name']},
        ],
        post_hook=[
            "delete from {{ this }} where job_id in (select deleted.job_id from {{ ref('stg_kafka__jobs') }}"
            ~ " as deleted where deleted.is_deleted and deleted.last_event_load_seq > {{ model_watermark('jobs') }})",
            "{{ maintain_job_payments_totals(job_payments_touched_jobs()) }}",
            "{{ record_model_watermarks({'jobs': [ref('stg_kafka__jobs'), 'last_event_load_seq'],"
            ~ " 'payments': [ref('stg_kafka__payments'), 'last_event_load_seq']}) }}",
        ],
    )
}}

{%- set recategorised_services -%}
    select catalogue.service_name
    from {{ ref('stg_files__services') }} as catalogue
    where
        catalogue.category is distinct from (
            select previous_run.category
            from {{ this }} as previous_run
            where previous_run.service_name = catalogue.service_name
            limit 1
        )
{%- endset %}

with

{% if is_incremental() -%}
    touched_jobs as (

        -- (reads the tables, not the CTEs below, and each through an index: see marts.jobs)
        {{ job_payments_touched_jobs() }}

        union

        select catalogued_jobs.job_id
        from {{ ref('jobs') }} as catalogued_jobs
        where catalogued_jobs.service_name in ({{ values_of(recategorised_services) }})

    ),

{% endif -%}
jobs as (

    select * from {{ ref('jobs') }}
    {%- if is_incremental() %}
        where job_id in (select touched_jobs.job_id from touched_jobs)
    {%- endif %}

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
    {%- if is_incremental() %}
        where job_id in (select touched_jobs.job_id from touched_jobs)
    {%- endif %}
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
