"""Incremental dbt models give exactly what a --full-refresh gives, whatever the arrival batches.

Generated data arrives in several batches (produce part of the files, extract, `dbt build`, repeat):
jobs and payments topics, a users file that grows into a second load, a service catalogue whose second
version changes prices, recategorises the busiest services and lists services the first one lacked, and an
old event replayed late: a lower offset of a partition lands in a later run than a higher one. Between
builds, events landed by hand change what the incremental job_payments mart must follow: a late payment
for an old job, a payment corrected to another job, a deleted job with payments, and a deleted payment.
The incremental builds scope the data tests to the new rows (test_scope: recent). Then every staging and
mart table is compared row by row with a --full-refresh build over the same raw data.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from extract.core.settings import Settings
from extract.sample_data.jobs import generate_files
from tests.conftest import run_cli, run_dbt

pytestmark = pytest.mark.slow

USERS, JOBS, SEED = 300, 3000, 11
JOB_BATCHES = 3

# Every table dbt builds (the users history too: its versions start at load times, never at run times).
TABLES = (
    "staging.stg_kafka__job_events",
    "staging.stg_kafka__jobs",
    "staging.stg_files__user_lines",
    "staging.stg_files__users",
    "staging.stg_kafka__payment_events",
    "staging.stg_kafka__payments",
    "staging.stg_files__service_lines",
    "staging.stg_files__services",
    "staging.quarantined_records",
    "staging.quarantine_summary",
    "staging.schema_drift_keys",
    "marts.jobs",
    "marts.users",
    "marts.non_local_top_revenue",
    "marts.users_location_history",
    "marts.non_local_top_revenue_at_job_time",
    "marts.job_payments",
    "marts.revenue_reconciliation_by_category",
)
# How the incremental builds run (make build, the bench and the service do the same).
SCOPED = ("--vars", "{test_scope: recent}")

# A partition no producer writes to, for the events landed by hand (the late replay, the payment changes).
REPLAY_PARTITION = 97
# The busiest services (extract/sample_data BUSY_SERVICES): the second catalogue moves them to a new category.
RECATEGORISED = ("SERVICE_42", "SERVICE_3")
NEW_CATEGORY = "Recategorised"
# Catalogue lines the first catalogue leaves out: their services' jobs are uncategorised until the second.
LATE_LISTED = slice(6, 16)


def split_lines(path: Path, parts: int, out: Path) -> list[Path]:
    lines = path.read_bytes().splitlines(keepends=True)
    size = -(-len(lines) // parts)
    paths = []
    for index in range(parts):
        part = out / f"{path.stem}.part{index}{path.suffix}"
        part.write_bytes(b"".join(lines[index * size : (index + 1) * size]))
        paths.append(part)
    return paths


def raise_price(line: str) -> str:
    """A catalogue line (SERVICENAME,CATEGORY,BASEPRICE) with its price raised by 1, when it has one."""
    head, _, price = line.rstrip("\n").rpartition(",")
    try:
        return f"{head},{Decimal(price) + 1}\n"
    except ArithmeticError:
        return line


def second_catalogue_line(line: str) -> str:
    """The second catalogue's version of a line: the RECATEGORISED services in NEW_CATEGORY, prices kept."""
    name, _, rest = line.partition(",")
    if name not in RECATEGORISED:
        return line
    return f"{name},{NEW_CATEGORY},{rest.rstrip().rpartition(',')[2]}\n"


def table_rows(pg: psycopg.Connection, table: str) -> list[tuple]:
    # as text: Python's datetime has no -infinity / infinity, the users history's open ends
    return sorted(pg.execute(f"select t::text from {table} as t").fetchall())


RAW_INSERTS = {
    table: f"insert into {table} (kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, message_key,"
    " message_value, message_value_json) values (%s, %s, %s, '2999-01-01T00:00:00Z', %s, %s, %s::jsonb)"
    for table in ("raw.jobs", "raw.payments")
}


def land_event(pg: psycopg.Connection, table: str, offset: int, key: str, payload: dict[str, str] | None) -> None:
    """One message in REPLAY_PARTITION of the table's topic, far ahead in Kafka time (it wins its key), landed
    the way the extractor lands it; a None payload is a tombstone."""
    topic = pg.execute(f"select kafka_topic from {table} limit 1").fetchone()[0]
    value = None if payload is None else json.dumps(payload)
    pg.execute(RAW_INSERTS[table], (topic, REPLAY_PARTITION, offset, key, value, value))


def land_replay_event(pg: psycopg.Connection, job_id: str, offset: int, revenue: str) -> None:
    """One usable event of `job_id`."""
    payload = {
        "JOBIDENTIFIER": job_id,
        "USERID": "replay-user",
        "JOBDATE": "2025-01-01T10:00:00Z",
        "LOCATION": "LOC_REPLAY",
        "REVENUE": revenue,
    }
    land_event(pg, "raw.jobs", offset, job_id, payload)


def land_payment(pg: psycopg.Connection, offset: int, payment_id: str, job_id: str, amount: str) -> None:
    payload = {
        "PAYMENTID": payment_id,
        "JOBIDENTIFIER": job_id,
        "AMOUNT": amount,
        "CURRENCY": "TRY",
        "PAIDAT": "2025-02-01T10:00:00Z",
    }
    land_event(pg, "raw.payments", offset, payment_id, payload)


def one(pg: psycopg.Connection, query: str, *params: object) -> object:
    return pg.execute(query, params).fetchone()[0]


def change_payments(pg: psycopg.Connection) -> dict[str, str]:
    """After the first build: a late payment for an old job without one, a payment corrected to another job,
    and a job with payments deleted. Returns who is who."""
    paid = "select job_id from marts.job_payments where payment_count > 0"
    case = {"late": one(pg, "select min(job_id) from marts.job_payments where payment_count = 0")}
    case["moved"], case["moved_from"] = pg.execute(
        "select payment_id, job_id from staging.stg_kafka__payments where not is_deleted order by payment_id limit 1"
    ).fetchone()
    case["moved_to"] = one(pg, f"select min(job_id) from ({paid}) as p where job_id <> %s", case["moved_from"])
    case["deleted_job"] = one(pg, f"select max(job_id) from ({paid}) as p")
    land_payment(pg, 0, "late-payment", case["late"], "12.34")
    land_payment(pg, 1, case["moved"], case["moved_to"], "1.00")
    land_event(pg, "raw.jobs", 20, case["deleted_job"], None)
    return case


def delete_payment(pg: psycopg.Connection, case: dict[str, str]) -> None:
    """Before the last build: a payment of a job that keeps others, deleted by a tombstone."""
    case["deleted_payment"], case["deleted_payment_job"] = pg.execute(
        "select payment_id, job_id from staging.stg_kafka__payments where not is_deleted and payment_id <> %s"
        " and job_id in (select job_id from marts.job_payments where payment_count > 1) order by payment_id limit 1",
        (case["moved"],),
    ).fetchone()
    land_event(pg, "raw.payments", 2, case["deleted_payment"], None)


def test_incremental_runs_equal_a_full_refresh(settings: Settings, pg: psycopg.Connection, tmp_path: Path) -> None:
    data = tmp_path / "data"
    summary = generate_files(data, users=USERS, jobs=JOBS, seed=SEED)
    job_parts = split_lines(summary.jobs_path, JOB_BATCHES, tmp_path)
    payment_parts = split_lines(data / "payments.kafka", JOB_BATCHES, tmp_path)
    # The catalogue arrives twice: as generated, then with every price of its first services raised.
    services_first = data / "services.csv"
    services_second = tmp_path / "services.second.csv"
    catalogue = services_first.read_text().splitlines(keepends=True)
    raised = [raise_price(line) for line in catalogue[1:20]]
    services_second.write_text("".join(second_catalogue_line(line) for line in catalogue[:1] + raised + catalogue[20:]))
    late_listed = {line.split(",", 1)[0] for line in catalogue[LATE_LISTED]}
    services_first = tmp_path / "services.first.csv"
    services_first.write_text(
        "".join(
            line for number, line in enumerate(catalogue) if number not in range(LATE_LISTED.start, LATE_LISTED.stop)
        )
    )
    # The users file arrives twice: first its first half, later the whole file (a second load).
    users_lines = summary.users_path.read_bytes().splitlines(keepends=True)
    users_first = tmp_path / "users.first.ndjson"
    users_first.write_bytes(b"".join(users_lines[: len(users_lines) // 2]))

    replay_job = None
    case: dict[str, str] = {}
    for batch, part in enumerate(job_parts):
        run_cli(settings, "produce", str(part))
        run_cli(settings, "produce", "--source", "payments", str(payment_parts[batch]))
        if batch == 0:
            run_cli(settings, "users", str(users_first))
            run_cli(settings, "run", "--until-end", "services", env={"SERVICES_FILE": str(services_first)})
        if batch == JOB_BATCHES - 1:
            run_cli(settings, "users", str(summary.users_path))
            run_cli(settings, "run", "--until-end", "services", env={"SERVICES_FILE": str(services_second)})
        run_cli(settings, "run", "--until-end", "jobs", "payments")
        if batch == 0:
            # The replay partition's newest event (offset 10), far ahead in Kafka time, wins for this job.
            replay_job = pg.execute(
                "select message_key from raw.jobs where message_key <> '' order by load_seq limit 1"
            ).fetchone()[0]
            land_replay_event(pg, replay_job, 10, "111.11")
        if batch == 1:
            # An older event of the same partition (offset 5) lands a run later: it must not win.
            land_replay_event(pg, replay_job, 5, "55.55")
            uncategorised = (
                "select count(*) from marts.job_payments where category = 'UNCATEGORISED' and service_name = any(%s)"
            )
            assert one(pg, uncategorised, list(late_listed)) > 0
            case = change_payments(pg)
        if batch == JOB_BATCHES - 1:
            delete_payment(pg, case)
        run_dbt(settings, tmp_path, "build", *SCOPED)

    winner = pg.execute(
        "select kafka_partition, kafka_offset, revenue, event_count, has_known_user from marts.jobs where job_id = %s",
        (replay_job,),
    ).fetchone()
    assert winner[:3] == (REPLAY_PARTITION, 10, Decimal("111.11"))
    assert winner[3] >= 3  # its own events plus both replayed ones
    assert (
        pg.execute("select count(*) from staging.stg_files__user_lines").fetchone()[0] == USERS + len(users_lines) // 2
    )
    # A user known only from the second load turned jobs booked before it into known-user jobs.
    known = "select bool_and(has_known_user) from marts.jobs where user_id in (select user_id from marts.users)"
    assert pg.execute(known).fetchone()[0]

    # What the incremental job_payments had to follow, followed (the full refresh below checks every value).
    payment_counts = dict(pg.execute("select job_id, payment_count from marts.job_payments").fetchall())
    assert payment_counts[case["late"]] == 1
    assert case["deleted_job"] not in payment_counts
    assert (
        one(pg, "select job_id from staging.stg_kafka__payments where payment_id = %s", case["moved"])
        == case["moved_to"]
    )
    assert one(pg, "select is_deleted from staging.stg_kafka__payments where payment_id = %s", case["deleted_payment"])
    recategorised = "select array_agg(distinct category) from marts.job_payments where service_name = any(%s)"
    assert one(pg, recategorised, list(RECATEGORISED)) == [NEW_CATEGORY]
    assert one(pg, uncategorised, list(late_listed)) == 0
    assert one(pg, "select paid_job_count from marts.revenue_reconciliation_by_category where category = 'UNKNOWN_JOB'")

    incremental = {table: table_rows(pg, table) for table in TABLES}
    assert all(incremental[table] for table in TABLES if not table.startswith("marts.non_local_top_revenue"))
    # Both catalogue loads and every payment batch took part.
    assert pg.execute("select count(distinct load_id) from staging.stg_files__service_lines").fetchone()[0] == 2
    assert pg.execute("select count(*) from raw.payments").fetchone()[0] == 3 + sum(
        len(part.read_bytes().splitlines()) for part in payment_parts
    )

    run_dbt(settings, tmp_path, "build", "--full-refresh")
    for table in TABLES:
        assert table_rows(pg, table) == incremental[table], f"{table} differs after --full-refresh"

    # A run with nothing new changes nothing either.
    run_dbt(settings, tmp_path, "build", *SCOPED)
    for table in TABLES:
        assert table_rows(pg, table) == incremental[table], f"{table} changed on an empty incremental run"
