{#-
    Running totals of marts.job_payments, kept in the transactions that change it, so that
    revenue_reconciliation_by_category reads a few rows instead of summing every job of history:

    - staging.job_payments_category_totals: per category the sums the reconciliation shows (jobs,
      completed, paid and mismatched jobs, foreign payments, revenue, due, paid), kept by statement-level
      triggers on job_payments: every insert, delete or update of its rows (dbt's delete+insert, the
      post-hook's delete of deleted jobs, a hand edit) adds its rows' sums with the sign of the change, in
      that statement's transaction. A category whose last job leaves loses its row.
    - staging.job_payments_unknown_jobs: per job with live payments but no row in marts.jobs, those
      payments (the reconciliation's UNKNOWN_JOB row); job_payments' post-hook recomputes it for the jobs
      its run touched (a job's existence changes only with a staged job event, its payments only with a
      staged payment event: the model's own touched jobs).

    A full build of job_payments makes a new table, without the triggers: the post-hook then computes both
    from scratch and creates them. make audit compares the reconciliation with a fresh aggregate of every
    job (tests/assert_reconciliation_matches_job_payments.sql).
-#}

{% macro job_payments_totals_relation() -%}
    {{ return(api.Relation.create(schema=generate_schema_name('staging', none), identifier='job_payments_category_totals')) }}
{%- endmacro %}


{% macro job_payments_unknown_jobs_relation() -%}
    {{ return(api.Relation.create(schema=generate_schema_name('staging', none), identifier='job_payments_unknown_jobs')) }}
{%- endmacro %}


{#- The per-category sums of job_payments rows `rows`, each multiplied by `sign`. -#}
{% macro job_payments_category_sums(rows, sign=1) -%}
    {%- set sign = '' if sign == 1 else sign ~ ' * ' -%}
    select
        category,
        {{ sign }}count(*) as job_count,
        {{ sign }}count(*) filter (where job_status = 'COMPLETED') as completed_job_count,
        {{ sign }}count(*) filter (where has_payments) as paid_job_count,
        {{ sign }}count(*) filter (where has_payment_mismatch) as mismatched_job_count,
        {{ sign }}coalesce(sum(foreign_currency_payment_count), 0)::bigint as foreign_currency_payment_count,
        {{ sign }}coalesce(sum(revenue), 0) as revenue,
        {{ sign }}coalesce(sum(amount_due), 0) as amount_due,
        {{ sign }}coalesce(sum(paid_amount), 0) as paid_amount
    from {{ rows }}
    group by category
{%- endmacro %}


{#- Adds the sums of job_payments rows `rows` (with `sign`) to the category totals. -#}
{% macro fold_into_category_totals(rows, sign) -%}
    insert into {{ job_payments_totals_relation() }} as totals
    {{ job_payments_category_sums(rows, sign) }}
    on conflict (category) do update set
        job_count = totals.job_count + excluded.job_count,
        completed_job_count = totals.completed_job_count + excluded.completed_job_count,
        paid_job_count = totals.paid_job_count + excluded.paid_job_count,
        mismatched_job_count = totals.mismatched_job_count + excluded.mismatched_job_count,
        foreign_currency_payment_count = totals.foreign_currency_payment_count + excluded.foreign_currency_payment_count,
        revenue = totals.revenue + excluded.revenue,
        amount_due = totals.amount_due + excluded.amount_due,
        paid_amount = totals.paid_amount + excluded.paid_amount
{%- endmacro %}


{#- The unknown-job rows of the live payments whose job_id is in `job_ids` (a select; none: every job). -#}
{% macro unknown_job_payment_rows(job_ids=none) -%}
    {%- set reporting_currency = sql_string_literal(var('reporting_currency')) -%}
    select
        payments.job_id,
        count(*) as payment_count,
        count(*) filter (where payments.currency <> {{ reporting_currency }}) as foreign_currency_payment_count,
        coalesce(sum(payments.amount) filter (where payments.currency = {{ reporting_currency }}), 0) as paid_amount
    from {{ ref('stg_kafka__payments') }} as payments
    where
        not payments.is_deleted
        and not exists (
            select from {{ ref('jobs') }} as known_jobs
            where known_jobs.job_id = payments.job_id
        )
        {%- if job_ids is not none %}
            and payments.job_id in ({{ job_ids }})
        {%- endif %}
    group by payments.job_id
{%- endmacro %}


{#- on-run-start: the two tables and the triggers' function. -#}
{% macro create_job_payments_totals() -%}
create table if not exists {{ job_payments_totals_relation() }} (
    category text primary key,
    job_count bigint not null,
    completed_job_count bigint not null,
    paid_job_count bigint not null,
    mismatched_job_count bigint not null,
    foreign_currency_payment_count bigint not null,
    revenue numeric not null,
    amount_due numeric not null,
    paid_amount numeric not null
);
create table if not exists {{ job_payments_unknown_jobs_relation() }} (
    job_id text primary key,
    payment_count bigint not null,
    foreign_currency_payment_count bigint not null,
    paid_amount numeric not null
);
create or replace function {{ job_payments_totals_relation().schema }}.fold_job_payments_totals() returns trigger
language plpgsql as $fold$
begin
    if tg_op in ('DELETE', 'UPDATE') then
        {{ fold_into_category_totals('old_rows', -1) }};
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        {{ fold_into_category_totals('new_rows', 1) }};
    end if;
    delete from {{ job_payments_totals_relation() }} where job_count = 0;
    return null;
end
$fold$;
{%- endmacro %}


{#- post-hook of job_payments: after a full build (no triggers on the new table) both tables from scratch and
    the triggers; after an incremental run the unknown jobs among the jobs it touched (`touched_jobs`, a
    select of job ids). -#}
{% macro maintain_job_payments_totals(touched_jobs) -%}
    {%- set totals = job_payments_totals_relation() -%}
    {%- set unknown = job_payments_unknown_jobs_relation() -%}
    {%- set function = totals.schema ~ '.fold_job_payments_totals()' -%}
do $maintain$ begin
    if not exists (
        select from pg_trigger
        where tgrelid = {{ sql_string_literal(this.schema ~ '.' ~ this.identifier) }}::regclass
            and tgname = 'fold_totals_on_insert'
    ) then
        delete from {{ totals }};
        insert into {{ totals }} {{ job_payments_category_sums(this) }};
        delete from {{ unknown }};
        insert into {{ unknown }} {{ unknown_job_payment_rows() }};
        create trigger fold_totals_on_insert after insert on {{ this }}
            referencing new table as new_rows for each statement execute function {{ function }};
        create trigger fold_totals_on_delete after delete on {{ this }}
            referencing old table as old_rows for each statement execute function {{ function }};
        create trigger fold_totals_on_update after update on {{ this }}
            referencing old table as old_rows new table as new_rows for each statement execute function {{ function }};
    else
        delete from {{ unknown }} where job_id in ({{ touched_jobs }});
        insert into {{ unknown }} {{ unknown_job_payment_rows(touched_jobs) }};
    end if;
end $maintain$
{%- endmacro %}


{#- The jobs an incremental run of job_payments touches through staged events (a select of job ids): the
    jobs staged since its last run, and every job a payment staged since then names or named in an
    earlier event. Each through an index, above a literal watermark. -#}
{% macro job_payments_touched_jobs() -%}
    select staged_jobs.job_id
    from {{ ref('stg_kafka__jobs') }} as staged_jobs
    where staged_jobs.last_event_load_seq > {{ model_watermark('jobs') }}

    union

    select payment_events.job_id
    from {{ ref('stg_kafka__payment_events') }} as payment_events
    where
        payment_events.job_id is not null
        and payment_events.payment_id in (
            select changed_payments.payment_id
            from {{ ref('stg_kafka__payments') }} as changed_payments
            where changed_payments.last_event_load_seq > {{ model_watermark('payments') }}
        )
{%- endmacro %}
