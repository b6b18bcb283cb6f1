"""An independent, pure-Python reading of docs/data-model.md: staging rules, deduplication and marts,
computed straight from the generated files. The pipeline's answers are checked against this, so it
is written from the spec alone and shares no code with `extract/`.

Jobs file order is Kafka order for a job (key = job id, equal keys go to the same partition), so the
latest usable line per job id wins.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

MAX_REVENUE = Decimal(1_000_000)
MIN_JOB_AT = datetime(1970, 1, 1, tzinfo=UTC)
_CENT = Decimal("0.01")
_MICRO = Decimal("0.000001")
_BOM = b"\xef\xbb\xbf"
_WHITESPACE = " \t\r\n\f\v"

_ISO = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})[T ](?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
    r"(?P<frac>\.\d+)?(?P<zone>Z|[+-]\d{2}:?\d{2})?"
)
_DMY = re.compile(r"(?P<d>\d{2})\.(?P<mo>\d{2})\.(?P<y>\d{4}) (?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?")
_EPOCH_SECONDS = re.compile(r"\d{9,10}")
_EPOCH_MILLIS = re.compile(r"\d{12,13}")
_NUMERIC = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_INNER_WHITESPACE = re.compile(r"\s+")

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------- fields


def parse_timestamp(value: object) -> datetime | None:
    """A JSON value in one of the documented timestamp formats as an aware UTC datetime, else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip(_WHITESPACE)
    else:
        return None  # floats, booleans, objects, arrays: no documented format
    try:
        return _parse_timestamp_text(text)
    except ValueError:
        return None  # impossible dates and times, such as 2023-02-30 or 25:61


def _parse_timestamp_text(text: str) -> datetime | None:
    if _EPOCH_SECONDS.fullmatch(text) or _EPOCH_MILLIS.fullmatch(text):
        return _from_epoch_digits(text)
    if match := _ISO.fullmatch(text):
        return _from_parts(match, match["frac"], match["zone"])
    if match := _DMY.fullmatch(text):
        return _from_parts(match, None, None)
    return None


def _from_epoch_digits(digits: str) -> datetime | None:
    if _EPOCH_SECONDS.fullmatch(digits):
        return datetime.fromtimestamp(int(digits), UTC)
    if _EPOCH_MILLIS.fullmatch(digits):
        seconds, millis = divmod(int(digits), 1000)
        return datetime.fromtimestamp(seconds, UTC) + timedelta(milliseconds=millis)
    return None


def _from_parts(match: re.Match[str], fraction: str | None, zone: str | None) -> datetime:
    tz = UTC
    if zone and zone != "Z":
        hours, minutes = int(zone[1:3]), int(zone[-2:])
        if minutes >= 60:
            raise ValueError(zone)
        sign = -1 if zone[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    parsed = datetime(
        int(match["y"]),
        int(match["mo"]),
        int(match["d"]),
        int(match["h"]),
        int(match["mi"]),
        int(match["s"] or 0),
        tzinfo=tz,
    )
    if fraction:
        # Postgres keeps microseconds and rounds the rest.
        micros = (Decimal(fraction).quantize(_MICRO, rounding=ROUND_HALF_UP) * 1_000_000).to_integral_value()
        parsed += timedelta(microseconds=int(micros))
    return parsed.astimezone(UTC)


def parse_revenue(value: object) -> Decimal | None:
    """A JSON number or numeric string (blanks around allowed) as numeric(14,2), else None.

    The range is not checked here: out of range is its own quarantine reason."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str) and _NUMERIC.fullmatch(value.strip(_WHITESPACE)):
        number = Decimal(value.strip(_WHITESPACE))
    else:
        return None
    if not number.is_finite():
        return None
    try:
        return number.quantize(_CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return None  # too many digits to round: certainly out of range, but not a number we can hold


def normalise_location(value: object) -> str | None:
    """Trimmed, upper-cased, inner whitespace removed; None when absent, empty or not text."""
    text = _scalar_text(value)
    if text is None:
        return None
    return _INNER_WHITESPACE.sub("", text).upper() or None


def normalise_label(value: object) -> str | None:
    """SERVICENAME / JOBSTATUS: trimmed and upper-cased; None when absent, empty or not text."""
    text = _scalar_text(value)
    if text is None:
        return None
    return text.strip(_WHITESPACE).upper() or None


def normalise_id(value: object) -> str | None:
    """JOBIDENTIFIER / USERID: a JSON string or integer as trimmed text; None when absent or empty."""
    text = _scalar_text(value)
    if text is None:
        return None
    return text.strip(_WHITESPACE) or None


def _scalar_text(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    return None


def _loads(text: str) -> Any:
    """json.loads, but rejecting what Postgres jsonb rejects (NaN/Infinity, \\u0000)."""
    if "\\u0000" in text:
        raise ValueError("jsonb has no NUL")
    return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _max_job_at(now: datetime) -> datetime:
    try:
        return now.replace(year=now.year + 5)
    except ValueError:  # 29 February
        return now.replace(year=now.year + 5, day=28)


# ------------------------------------------------------------------------------------------------ jobs


@dataclass(frozen=True)
class ReferenceJob:
    job_id: str
    user_id: str
    location_id: str
    service_name: str | None
    job_status: str | None
    revenue: Decimal
    job_at: datetime
    job_created_at: datetime | None
    line_number: int


@dataclass
class ReferenceJobs:
    jobs: dict[str, ReferenceJob] = field(default_factory=dict)
    quarantine: Counter[str] = field(default_factory=Counter)
    raw_count: int = 0
    staged_count: int = 0
    superseded: int = 0  # usable events replaced by a later usable event of the same job


class _Reject(Exception):
    """A row is quarantined: the first reason that applies, raised where it is found."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _require(value: T | None, reason: str) -> T:
    if value is None:
        raise _Reject(reason)
    return value


def _parsed_field(payload: dict[str, Any], name: str, parse: Callable[[object], T | None], reason: str) -> T:
    """A required field: absent (missing key or null) and unparsable are different reasons."""
    raw = _require(payload.get(name), f"missing_{reason}")
    return _require(parse(raw), f"invalid_{reason}")


def _json_object(data: bytes, *, not_text: str) -> dict[str, Any]:
    if b"\x00" in data:
        raise _Reject(not_text)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Reject(not_text) from None
    try:
        payload = _loads(text)
    except ValueError:
        raise _Reject("invalid_json") from None
    if not isinstance(payload, dict):
        raise _Reject("json_not_object")
    return payload


def is_tombstone_delete(key: bytes | None, value: bytes | None) -> bool:
    """A null value under a non-empty UTF-8 key: deletes that key. Without a usable key: null_value."""
    if value is not None or not key or b"\x00" in key:
        return False
    try:
        key.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def classify_job(
    key: bytes | None, value: bytes | None, line_number: int = 0, *, now: datetime | None = None
) -> tuple[str | None, ReferenceJob | None]:
    """(quarantine reason, None) or (None, job) for one Kafka message, the first reason in spec order;
    (None, None) for a tombstone with a text key, which deletes the job (is_tombstone_delete)."""
    if is_tombstone_delete(key, value):
        return None, None
    try:
        payload = _json_object(_require(value, "null_value"), not_text="value_not_text")
        job_id = _require(normalise_id(payload.get("JOBIDENTIFIER")), "missing_job_id")
        if key and key != job_id.encode("utf-8"):
            raise _Reject("key_mismatch")
        user_id = _require(normalise_id(payload.get("USERID")), "missing_user_id")
        location_id = _require(normalise_location(payload.get("LOCATION")), "missing_location")
        revenue = _parsed_field(payload, "REVENUE", parse_revenue, "revenue")
        if not Decimal(0) <= revenue <= MAX_REVENUE:
            raise _Reject("revenue_out_of_range")
        job_at = _parsed_field(payload, "JOBDATE", parse_timestamp, "job_date")
        if not MIN_JOB_AT <= job_at <= _max_job_at(now or datetime.now(UTC)):
            raise _Reject("job_date_out_of_range")
        created_raw = payload.get("JOBCREATEDATE")
        created_at = None
        if created_raw is not None:
            created_at = _require(parse_timestamp(created_raw), "invalid_job_created_date")
    except _Reject as reject:
        return reject.reason, None
    return None, ReferenceJob(
        job_id=job_id,
        user_id=user_id,
        location_id=location_id,
        service_name=normalise_label(payload.get("SERVICENAME")),
        job_status=normalise_label(payload.get("JOBSTATUS")),
        revenue=revenue,
        job_at=job_at,
        job_created_at=created_at,
        line_number=line_number,
    )


def iter_kafka_lines(path: Path) -> Iterator[tuple[int, bytes, bytes]]:
    """(line number, key, value) per line of a console-producer file; lines it would reject raise."""
    with path.open("rb") as lines:
        for line_number, raw in enumerate(lines, start=1):
            line = raw.removesuffix(b"\n")
            if b"\r" in line:
                raise ValueError(f"{path}:{line_number}: CR splits a line for the console producer")
            key, separator, value = line.partition(b"|")
            if not separator:
                raise ValueError(f"{path}:{line_number}: no key separator, the console producer rejects it")
            yield line_number, key, value


def load_jobs(path: Path, *, now: datetime | None = None) -> ReferenceJobs:
    result = ReferenceJobs()
    now = now or datetime.now(UTC)
    for line_number, key, value in iter_kafka_lines(path):
        result.raw_count += 1
        reason, job = classify_job(key, value, line_number, now=now)
        if reason is None and job is None:  # a tombstone deletes its job
            result.staged_count += 1
            result.jobs.pop(key.decode("utf-8"), None)
            continue
        if job is None:
            result.quarantine[str(reason)] += 1
            continue
        result.staged_count += 1
        if job.job_id in result.jobs:
            result.superseded += 1
        result.jobs[job.job_id] = job
    return result


# ----------------------------------------------------------------------------------------------- users


@dataclass(frozen=True)
class ReferenceUser:
    user_id: str
    location_id: str
    line_number: int


@dataclass
class ReferenceUsers:
    users: dict[str, ReferenceUser] = field(default_factory=dict)
    quarantine: Counter[str] = field(default_factory=Counter)
    raw_count: int = 0
    staged_count: int = 0
    superseded: int = 0  # usable lines replaced by a later usable line of the same user


def classify_user_line(line: bytes, line_number: int) -> tuple[str | None, ReferenceUser | None]:
    """(quarantine reason, None) or (None, user) for one raw line (newline already removed)."""
    if line_number == 1:
        line = line.removeprefix(_BOM)
    line = line.removesuffix(b"\r")
    try:
        if not line.strip(_WHITESPACE.encode()):
            raise _Reject("blank_line")
        payload = _json_object(line, not_text="line_not_text")
        user_id = _require(normalise_id(payload.get("USERID")), "missing_user_id")
        location_id = _require(normalise_location(payload.get("LOCATION")), "missing_location")
    except _Reject as reject:
        return reject.reason, None
    return None, ReferenceUser(user_id, location_id, line_number)


def load_users(path: Path) -> ReferenceUsers:
    """One file is one load, so the highest usable line number per user wins."""
    result = ReferenceUsers()
    with path.open("rb") as lines:
        for line_number, raw in enumerate(lines, start=1):
            result.raw_count += 1
            reason, user = classify_user_line(raw.removesuffix(b"\n"), line_number)
            if user is None:
                result.quarantine[str(reason)] += 1
                continue
            result.staged_count += 1
            if user.user_id in result.users:
                result.superseded += 1
            result.users[user.user_id] = user
    return result


# ----------------------------------------------------------------------------------------------- marts


def top_revenue(
    jobs: ReferenceJobs, users: ReferenceUsers, location: str = "LOC_1294", limit: int = 5
) -> list[tuple[str, Decimal]]:
    """The case query: non-local users (by current location) with the most revenue at `location`."""
    wanted = normalise_location(location)
    totals: dict[str, Decimal] = {}
    for job in jobs.jobs.values():
        user = users.users.get(job.user_id)
        if job.location_id != wanted or user is None or user.location_id == wanted:
            continue
        totals[job.user_id] = totals.get(job.user_id, Decimal(0)) + job.revenue
    ranked = sorted(((u, total) for u, total in totals.items() if total > 0), key=lambda r: (-r[1], r[0]))
    return ranked[:limit]


def latest_jobs(
    jobs: ReferenceJobs, *, location: str | None = None, service: str | None = None, limit: int = 5
) -> list[ReferenceJob]:
    """The latest jobs by job_at (ties: job_id descending) for a location and/or service."""
    wanted_location = normalise_location(location) if location is not None else None
    wanted_service = normalise_label(service) if service is not None else None
    selected: Iterable[ReferenceJob] = (
        job
        for job in jobs.jobs.values()
        if (location is None or job.location_id == wanted_location)
        and (service is None or job.service_name == wanted_service)
    )
    return sorted(selected, key=lambda job: (job.job_at, job.job_id), reverse=True)[:limit]


# -------------------------------------------------------------------------------------------- payments

REPORTING_CURRENCY = "TRY"
_WHOLE_NUMBER = re.compile(r"[+-]?\d{1,19}")
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True)
class ReferencePayment:
    payment_id: str
    job_id: str
    amount: Decimal
    currency: str
    paid_at: datetime
    minor_units: bool


@dataclass
class ReferencePayments:
    payments: dict[str, ReferencePayment] = field(default_factory=dict)
    quarantine: Counter[str] = field(default_factory=Counter)
    raw_count: int = 0
    minor_units: int = 0  # usable payment events whose amount came as AMOUNT_MINOR


def parse_minor_units(value: object) -> Decimal | None:
    """AMOUNT_MINOR: a whole number of minor units (JSON integer or integer string) in major units."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value) / 100
    if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip(_WHITESPACE)):
        return Decimal(int(value.strip(_WHITESPACE))) / 100
    return None  # fractions of a minor unit, floats, other types


def _payment_amount(payload: dict[str, Any]) -> tuple[Decimal, bool]:
    major, minor = payload.get("AMOUNT"), payload.get("AMOUNT_MINOR")
    if major is None and minor is None:
        raise _Reject("missing_amount")
    if major is not None and minor is not None:
        raise _Reject("invalid_amount")  # two amounts: which one?
    amount = parse_revenue(major) if major is not None else parse_minor_units(minor)
    amount = _require(amount, "invalid_amount")
    if not Decimal(0) <= amount <= MAX_REVENUE:
        raise _Reject("amount_out_of_range")
    return amount, major is None


def classify_payment(
    key: bytes | None, value: bytes | None, *, now: datetime | None = None
) -> tuple[str | None, ReferencePayment | None]:
    """(quarantine reason, None) or (None, payment) for one payments message, first reason in spec order;
    (None, None) for a tombstone with a text key, which deletes the payment."""
    if is_tombstone_delete(key, value):
        return None, None
    try:
        payload = _json_object(_require(value, "null_value"), not_text="value_not_text")
        payment_id = _require(normalise_id(payload.get("PAYMENTID")), "missing_payment_id")
        if key and key != payment_id.encode("utf-8"):
            raise _Reject("key_mismatch")
        job_id = _require(normalise_id(payload.get("JOBIDENTIFIER")), "missing_job_id")
        amount, minor_units = _payment_amount(payload)
        currency_raw = _require(payload.get("CURRENCY"), "missing_currency")
        currency = (_scalar_text(currency_raw) or "").strip(_WHITESPACE).upper()
        if not _CURRENCY_CODE.fullmatch(currency):
            raise _Reject("invalid_currency")
        paid_at = _parsed_field(payload, "PAIDAT", parse_timestamp, "paid_at")
        if not MIN_JOB_AT <= paid_at <= _max_job_at(now or datetime.now(UTC)):
            raise _Reject("paid_at_out_of_range")
    except _Reject as reject:
        return reject.reason, None
    return None, ReferencePayment(payment_id, job_id, amount, currency, paid_at, minor_units)


def load_payments(path: Path, *, now: datetime | None = None) -> ReferencePayments:
    """Key = payment id, so equal ids share a partition and file order is offset order: the last wins."""
    result = ReferencePayments()
    for _, key, value in iter_kafka_lines(path):
        result.raw_count += 1
        reason, payment = classify_payment(key, value, now=now)
        if reason is None and payment is None:  # a tombstone deletes its payment
            result.payments.pop(key.decode("utf-8"), None)
            continue
        if payment is None:
            result.quarantine[str(reason)] += 1
            continue
        result.minor_units += payment.minor_units
        result.payments[payment.payment_id] = payment
    return result


# -------------------------------------------------------------------------------------------- services


@dataclass(frozen=True)
class ReferenceService:
    service_name: str
    category: str
    base_price: Decimal
    line_number: int


@dataclass
class ReferenceServices:
    services: dict[str, ReferenceService] = field(default_factory=dict)
    quarantine: Counter[str] = field(default_factory=Counter)
    raw_count: int = 0


def _csv_fields(text: str, width: int) -> list[str]:
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error:
        raise _Reject("invalid_csv") from None
    if len(rows) != 1 or len(rows[0]) != width:
        raise _Reject("invalid_csv")
    return rows[0]


def classify_service_line(
    line: bytes, line_number: int, header: list[str]
) -> tuple[str | None, ReferenceService | None]:
    try:
        if line_number == 1:
            raise _Reject("header_row")
        if not line.strip(_WHITESPACE.encode()):
            raise _Reject("blank_line")
        if b"\x00" in line:
            raise _Reject("line_not_text")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise _Reject("line_not_text") from None
        row = dict(zip(header, _csv_fields(text.removesuffix("\r"), len(header)), strict=True))
        service_name = _require(normalise_label(row.get("SERVICENAME")), "missing_service_name")
        category = _require(row.get("CATEGORY", "").strip(_WHITESPACE) or None, "missing_category")
        price_text = _require(row.get("BASEPRICE", "").strip(_WHITESPACE) or None, "missing_base_price")
        if not _NUMERIC.fullmatch(price_text):
            raise _Reject("invalid_base_price")
        price = Decimal(price_text).quantize(_CENT, rounding=ROUND_HALF_UP)
        if not Decimal(0) <= price <= MAX_REVENUE:
            raise _Reject("invalid_base_price")
    except _Reject as reject:
        return reject.reason, None
    return None, ReferenceService(service_name, category, price, line_number)


def load_services(path: Path) -> ReferenceServices:
    """One file is one load: the last usable line of a service name wins."""
    result = ReferenceServices()
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    first = lines[0].removeprefix(_BOM).removesuffix(b"\r").decode("utf-8")
    header = [name.strip() for name in next(csv.reader([first]))]
    for line_number, line in enumerate(lines, start=1):
        result.raw_count += 1
        reason, service = classify_service_line(line, line_number, header)
        if service is None:
            result.quarantine[str(reason)] += 1
            continue
        result.services[service.service_name] = service
    return result


# -------------------------------------------------------------------------------- revenue reconciliation


@dataclass(frozen=True)
class ReferenceJobPayments:
    category: str
    job_status: str | None
    revenue: Decimal
    amount_due: Decimal
    paid_amount: Decimal
    payment_count: int
    foreign_currency_payment_count: int
    mismatch_reason: str | None
    is_fully_paid: bool


def job_payments(
    jobs: ReferenceJobs, payments: ReferencePayments, services: ReferenceServices
) -> dict[str, ReferenceJobPayments]:
    """Per job: what is due (revenue of a COMPLETED job), what was paid in the reporting currency, and why
    they differ: foreign_currency, paid_not_completed, underpaid, overpaid (the first that applies)."""
    by_job: dict[str, list[ReferencePayment]] = {}
    for payment in payments.payments.values():
        by_job.setdefault(payment.job_id, []).append(payment)
    result = {}
    for job in jobs.jobs.values():
        paid_for = by_job.get(job.job_id, [])
        paid = sum((p.amount for p in paid_for if p.currency == REPORTING_CURRENCY), Decimal("0.00"))
        foreign = sum(1 for p in paid_for if p.currency != REPORTING_CURRENCY)
        completed = job.job_status == "COMPLETED"
        due = job.revenue if completed else Decimal("0.00")
        reason = None
        if foreign:
            reason = "foreign_currency"
        elif not completed and paid > 0:
            reason = "paid_not_completed"
        elif paid < due:
            reason = "underpaid"
        elif paid > due:
            reason = "overpaid"
        service = services.services.get(job.service_name or "")
        result[job.job_id] = ReferenceJobPayments(
            category=service.category if service else "UNCATEGORISED",
            job_status=job.job_status,
            revenue=job.revenue,
            amount_due=due,
            paid_amount=paid,
            payment_count=len(paid_for),
            foreign_currency_payment_count=foreign,
            mismatch_reason=reason,
            is_fully_paid=completed and reason is None,
        )
    return result


def reconciliation_by_category(
    jobs: ReferenceJobs, payments: ReferencePayments, services: ReferenceServices
) -> dict[str, tuple[int, int, int, int, int, Decimal, Decimal, Decimal]]:
    """category -> (jobs, completed, paid jobs, mismatched jobs, foreign payments, revenue, due, paid);
    payments for jobs that are not staged are the category UNKNOWN_JOB."""
    totals: dict[str, list[Any]] = {}
    for job_id, row in job_payments(jobs, payments, services).items():
        total = totals.setdefault(row.category, [0, 0, 0, 0, 0, Decimal(0), Decimal(0), Decimal(0)])
        total[0] += 1
        total[1] += row.job_status == "COMPLETED"
        total[2] += row.payment_count > 0
        total[3] += row.mismatch_reason is not None
        total[4] += row.foreign_currency_payment_count
        total[5] += row.revenue
        total[6] += row.amount_due
        total[7] += row.paid_amount
        assert job_id in jobs.jobs
    unknown = [p for p in payments.payments.values() if p.job_id not in jobs.jobs]
    if unknown:
        paid = sum((p.amount for p in unknown if p.currency == REPORTING_CURRENCY), Decimal(0))
        ids = len({p.job_id for p in unknown})
        foreign = sum(1 for p in unknown if p.currency != REPORTING_CURRENCY)
        totals["UNKNOWN_JOB"] = [0, 0, ids, ids, foreign, Decimal(0), Decimal(0), paid]
    return {category: tuple(values) for category, values in totals.items()}  # type: ignore[misc]
