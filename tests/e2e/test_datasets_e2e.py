"""Four datasets from sources.yml through one extract command and one dbt build: jobs and payments topics,
users and services files. The payments/services staging and the revenue reconciliation marts are checked
against an independent pure-Python reading of the same generated files (tests/support/reference.py)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from extract.core.settings import Settings
from extract.sample_data.jobs import generate_files
from tests.conftest import run_cli, run_dbt
from tests.support import reference

pytestmark = pytest.mark.slow

USERS, JOBS, SEED = 300, 3000, 13


def file_env(data: Path) -> dict[str, str]:
    return {"USERS_FILE": str(data / "users.ndjson"), "SERVICES_FILE": str(data / "services.csv")}


def raw_counts(pg: psycopg.Connection) -> tuple[int, ...]:
    return pg.execute(
        "select (select count(*) from raw.jobs), (select count(*) from raw.payments),"
        " (select count(*) from raw.users), (select count(*) from raw.services)"
    ).fetchone()


def assert_new_datasets_match_reference(
    pg: psycopg.Connection,
    jobs: reference.ReferenceJobs,
    payments: reference.ReferencePayments,
    services: reference.ReferenceServices,
) -> None:
    quarantined = dict(
        pg.execute(
            "select source_name || ':' || quarantine_reason, count(*) from staging.quarantined_records"
            " where source_name in ('kafka.payments', 'files.services') group by 1"
        ).fetchall()
    )
    expected = {f"kafka.payments:{reason}": n for reason, n in payments.quarantine.items()}
    expected |= {f"files.services:{reason}": n for reason, n in services.quarantine.items()}
    assert quarantined == expected

    staged_payments = {
        row[0]: row[1:]
        for row in pg.execute(
            "select payment_id, job_id, amount, currency, paid_at, is_minor_units from staging.stg_kafka__payments"
        )
    }
    assert staged_payments == {
        p.payment_id: (p.job_id, p.amount, p.currency, p.paid_at, p.minor_units) for p in payments.payments.values()
    }
    staged_services = {
        row[0]: row[1:]
        for row in pg.execute("select service_name, category, base_price, line_number from staging.stg_files__services")
    }
    assert staged_services == {
        s.service_name: (s.category, s.base_price, s.line_number) for s in services.services.values()
    }

    per_job = {
        row[0]: reference.ReferenceJobPayments(*row[1:])
        for row in pg.execute(
            "select job_id, category, job_status, revenue, amount_due, paid_amount, payment_count,"
            " foreign_currency_payment_count, mismatch_reason, is_fully_paid from marts.job_payments"
        )
    }
    expected_per_job = reference.job_payments(jobs, payments, services)
    assert per_job == expected_per_job

    per_category = {
        row[0]: row[1:]
        for row in pg.execute(
            "select category, job_count, completed_job_count, paid_job_count, mismatched_job_count,"
            " foreign_currency_payment_count, revenue, amount_due, paid_amount"
            " from marts.revenue_reconciliation_by_category"
        )
    }
    assert per_category == reference.reconciliation_by_category(jobs, payments, services)
    # Every usable payment in the reporting currency is accounted for by some category row.
    assert sum(row[7] for row in per_category.values()) == sum(
        (p.amount for p in payments.payments.values() if p.currency == reference.REPORTING_CURRENCY), Decimal(0)
    )


def test_four_sources_land_and_reconcile(settings: Settings, pg: psycopg.Connection, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    generate_files(data, users=USERS, jobs=JOBS, seed=SEED)
    jobs = reference.load_jobs(data / "jobs.kafka")
    payments = reference.load_payments(data / "payments.kafka")
    services = reference.load_services(data / "services.csv")
    users = reference.load_users(data / "users.ndjson")
    # The generated data exercises what the marts are for.
    assert payments.minor_units > 0 and payments.quarantine and services.quarantine
    reasons = {row.mismatch_reason for row in reference.job_payments(jobs, payments, services).values()}
    assert {"underpaid", "overpaid", None} <= reasons

    run_cli(settings, "produce", str(data / "jobs.kafka"))
    run_cli(settings, "produce", "--source", "payments", str(data / "payments.kafka"))
    landed = run_cli(settings, "run", "--until-end", env=file_env(data))
    assert "services.csv" in landed.stdout, landed.stdout
    counts = (jobs.raw_count, payments.raw_count, users.raw_count, services.raw_count)
    assert raw_counts(pg) == counts

    run_dbt(settings, tmp_path, "build")
    assert_new_datasets_match_reference(pg, jobs, payments, services)

    # Once more: nothing new lands, and an incremental build gives the same answers.
    run_cli(settings, "run", "--until-end", env=file_env(data))
    assert raw_counts(pg) == counts
    run_dbt(settings, tmp_path, "build")
    assert_new_datasets_match_reference(pg, jobs, payments, services)
