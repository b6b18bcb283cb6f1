"""Sample data for two more datasets, derived from a generated jobs file so that they join:
`payments.kafka` (a `key|{json}` file for the payments topic) and `services.csv` (the service catalogue).

Both stream and are deterministic per seed; neither changes the users or jobs files."""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from extract.sample_data.messy import SERVICE_COUNT, break_json, format_timestamp

CATEGORIES = (
    "Cleaning",
    "Moving",
    "Repair",
    "Renovation",
    "Plumbing",
    "Electrical",
    "Gardening",
    "Painting",
    "Tutoring",
    "Pet Care",
    "Beauty",
    "Events",
)
_FIRST_PAYMENT_ID = 70_000_000
_PARTIAL_SHARE = 0.04  # completed jobs paid short: the reconciliation mart must flag them
_DOUBLE_SHARE = 0.02  # a payment sent twice under two ids: overpaid
_MINOR_UNITS_SHARE = 0.30  # amounts as integer minor units (AMOUNT_MINOR) instead of AMOUNT
_CORRUPT_SHARE = 0.01


@dataclass(frozen=True)
class PaymentsSummary:
    payments_path: Path
    services_path: Path
    payment_lines: int
    service_lines: int
    mess: dict[str, int]


def _completed_jobs(jobs_path: Path) -> Iterator[tuple[str, int]]:
    """(job id, revenue in cents) of every parsable COMPLETED job line, in file order.

    A job re-sent with a new revenue gets paid again at that revenue: real feeds double-pay too."""
    with jobs_path.open("rb") as lines:
        for line in lines:
            _, _, value = line.partition(b"|")
            try:
                job = json.loads(value)
                revenue = round(float(str(job["REVENUE"]).strip()) * 100)
                status = str(job.get("JOBSTATUS") or "").strip().upper()
                job_id = str(job["JOBIDENTIFIER"]).strip()
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if status == "COMPLETED" and revenue > 0 and job_id:
                yield job_id, revenue


def _amount_fields(rng: random.Random, cents: int, mess: Counter[str]) -> list[tuple[str, str]]:
    if rng.random() < _MINOR_UNITS_SHARE:
        mess["amount_minor_units"] += 1
        return [("AMOUNT_MINOR", str(cents))]
    number = f"{cents // 100}.{cents % 100:02d}"
    if rng.random() < 0.4:
        mess["amount_string"] += 1
        return [("AMOUNT", f'"{number}"')]
    return [("AMOUNT", number)]


def _split(rng: random.Random, cents: int) -> list[int]:
    parts = 1 if rng.random() < 0.8 else rng.choice((2, 3))
    if parts == 1 or cents < parts:
        return [cents]
    cuts = sorted(rng.sample(range(1, cents), parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, cents], strict=True)]


def _payment_line(rng: random.Random, payment_id: int, job_id: str, cents: int, mess: Counter[str]) -> bytes:
    currency = rng.choice(('"TRY"', '"TRY"', '"TRY"', '"try"', '" TRY "'))
    paid_at = format_timestamp(rng, rng.randrange(1_672_531_200_000, 1_767_225_600_000))
    fields = [("PAYMENTID", f'"{payment_id}"'), ("JOBIDENTIFIER", f'"{job_id}"')]
    fields += _amount_fields(rng, cents, mess)
    fields += [("CURRENCY", currency), ("PAIDAT", paid_at)]
    kind = None
    if rng.random() < _CORRUPT_SHARE:
        kind = rng.choice(("invalid_json", "missing_job_id", "invalid_amount", "missing_currency"))
        mess[kind] += 1
        if kind == "missing_job_id":
            fields = [field for field in fields if field[0] != "JOBIDENTIFIER"]
        elif kind == "invalid_amount":
            fields = [(k, '"lots"' if k.startswith("AMOUNT") else v) for k, v in fields]
        elif kind == "missing_currency":
            fields = [field for field in fields if field[0] != "CURRENCY"]
    text = "{" + ", ".join(f'"{k}": {v}' for k, v in fields) + "}"
    if kind == "invalid_json":
        text = break_json(rng, text)
    return f"{payment_id}|{text}\n".encode()


def generate_payment_files(out_dir: Path, jobs_path: Path, *, seed: int) -> PaymentsSummary:
    rng = random.Random(f"payments-{seed}")
    mess: Counter[str] = Counter()
    payments_path = out_dir / "payments.kafka"
    payment_id = _FIRST_PAYMENT_ID
    lines = 0
    partial = payments_path.with_suffix(".partial")
    with partial.open("wb", buffering=1 << 20) as out:
        for job_id, cents in _completed_jobs(jobs_path):
            due = cents
            if rng.random() < _PARTIAL_SHARE:
                mess["partially_paid_job"] += 1
                due = max(1, cents - rng.randrange(1, max(2, cents // 2)))
            parts = _split(rng, due)
            if rng.random() < _DOUBLE_SHARE:
                mess["double_paid_job"] += 1
                parts.append(parts[-1])
            for part in parts:
                out.write(_payment_line(rng, payment_id, job_id, part, mess))
                payment_id += 1
                lines += 1
    # Readers never see half a file: the same rename the jobs and users files get.
    os.replace(partial, payments_path)
    services_path, service_lines = _write_services(out_dir, rng, mess)
    return PaymentsSummary(payments_path, services_path, lines, service_lines, dict(sorted(mess.items())))


def _write_services(out_dir: Path, rng: random.Random, mess: Counter[str]) -> tuple[Path, int]:
    path = out_dir / "services.csv"
    rows = ["SERVICENAME,CATEGORY,BASEPRICE"]
    for number in range(1, SERVICE_COUNT + 1):
        category = CATEGORIES[(number * 7) % len(CATEGORIES)]
        price = f"{rng.randrange(50, 2500)}.{rng.choice(('00', '50', '90', '99'))}"
        rows.append(f"SERVICE_{number},{category},{price}")
    # The mess a hand-kept catalogue has: a quoted comma, a blank line, a row with too few fields,
    # a price that is not a number, and a service listed again with a new price (the later row wins).
    rows[5] = rows[5].split(",")[0] + ',"Cleaning, deep",120.00'
    rows.insert(40, "")
    rows.insert(80, "SERVICE_80,Repair")
    rows[120] = rows[120].rsplit(",", 1)[0] + ",call us"
    rows.append("SERVICE_42,Cleaning,199.00")
    mess.update(
        ["service_quoted_comma", "service_blank_line", "service_short_row", "service_bad_price", "service_listed_twice"]
    )
    path.write_text("\n".join(rows) + "\n")
    return path, len(rows)
