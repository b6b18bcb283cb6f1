"""Deterministic, streaming generator of realistic, messy sample data (over 500 lines because the users and
jobs writers draw from one random stream per seed: split apart, every seed's files would change).

Writes `users.ndjson` (one JSON object per line) and `jobs.kafka` (`key|value` lines for
`kafka-console-producer --property parse.key=true --property key.separator='|'`). The mess follows
docs/data-model.md: every corrupted line is otherwise valid, so it earns exactly the quarantine reason it
was built for and the summary counts can be checked against staging.

Memory stays bounded whatever the size: users cost a few bytes each (home location, spend factor) and
jobs are never kept, except a capped heap of jobs waiting to be re-sent with a newer status.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import os
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from extract.core.progress import Bar
from extract.sample_data.messy import SERVICE_COUNT, break_json, format_timestamp
from extract.sample_data.payments import generate_payment_files

logger = logging.getLogger(__name__)

HEADLINE_LOCATION = 1294
LOCATION_COUNT = 2000
BUSY_SERVICES = (42, 3)
STATUSES = ("CREATED", "SCHEDULED", "IN_PROGRESS", "COMPLETED", "CANCELLED")
_CREATED, _SCHEDULED, _IN_PROGRESS, _COMPLETED, _CANCELLED = range(5)

_FIRST_USER_ID = 100_000
# Far from the real ids so a user who only books jobs can never collide with one in the users file.
_FIRST_GHOST_USER_ID = 900_000_000
_FIRST_JOB_ID = 50_000_000
_JOB_START_MS = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp()) * 1000
_JOB_END_MS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1000
_MAX_CREATE_LEAD_MS = 30 * 24 * 3600 * 1000
_MAX_CENTS = 5_000_000  # 50k: a big job, still far below the 1M revenue bound

_RESEND_SHARE = 0.05  # share of new jobs that are re-sent later
_RESEND_HEAP_CAP = 5_000  # the only per-job memory; caps the share on huge files, never the correctness
_GHOST_SHARE = 0.02  # jobs of users absent from the users file
_HUB_SHARE = 0.04  # jobs at the headline location whoever books them: it must have non-local users
_HOME_SHARE = 0.70  # the rest mostly happen where the user lives

# Quarantine kinds, each an otherwise valid line; ~2.3% of lines in all.
USER_CORRUPTIONS: tuple[tuple[str, float], ...] = (
    ("blank_line", 0.008),
    ("invalid_json", 0.005),
    ("json_not_object", 0.002),
    ("missing_user_id", 0.003),
    ("missing_location", 0.003),
    ("line_not_text", 0.001),
)
# A usable line that moves an earlier user to another location: the later line wins.
_USER_DUPLICATE_SHARE = 0.015

JOB_CORRUPTIONS: tuple[tuple[str, float], ...] = (
    ("invalid_json", 0.004),
    ("json_not_object", 0.001),
    ("missing_job_id", 0.0015),
    ("key_mismatch", 0.0015),
    ("missing_user_id", 0.0015),
    ("missing_location", 0.0015),
    ("missing_revenue", 0.0015),
    ("invalid_revenue", 0.002),
    ("revenue_out_of_range", 0.002),
    ("missing_job_date", 0.001),
    ("invalid_job_date", 0.002),
    ("job_date_out_of_range", 0.0005),
    ("invalid_job_created_date", 0.0015),
)

_INVALID_TIMESTAMPS = (
    '"2023-02-30T10:00:00Z"',
    '"2024-02-30 08:15:00"',
    '"31.04.2024 09:15"',
    '"2024-13-01T10:00:00+03:00"',
    '"2025-02-29T12:00:00.500"',
    '"29.02.2023 18:45:10"',
    '"2024-06-10T25:61:00Z"',
    '"yesterday"',
    '"2024/03/05 14:22"',
    '"17096485"',
    '""',
)
_OUT_OF_RANGE_TIMESTAMPS = (
    '"2099-05-01T00:00:00Z"',
    '"1969-12-31T23:59:59Z"',
    "4102444800000",
    '"01.01.2150 10:00"',
)
_INVALID_REVENUES = ('"12,50"', '"N/A"', '""', '"  "', "true", '"1.2.3"', '{"amount": 10}', '"TRY 99"')
_NOT_OBJECTS = ("[]", "null", '"job"', "42", "true")
_EXTRA_FIELDS = (
    ('"CHANNEL"', ('"app"', '"web"', '"call_center"')),
    ('"CURRENCY"', ('"TRY"',)),
    ('"PROMO_CODE"', ("null", '"SPRING24"', '"WELCOME"')),
    ('"SCHEMA_VERSION"', ("3", "4")),
    ('"NOTE"', ('"call before|after 5pm"', '"gate code 1234"', '"ring twice"')),
    ('"RATING"', ("4.5", "5", "null")),
)
_USER_EXTRA_FIELDS = (
    ('"SEGMENT"', ('"consumer"', '"pro"', '"business"')),
    ('"SIGNUP_CHANNEL"', ('"app"', '"web"')),
    ('"MARKETING_OPT_IN"', ("true", "false")),
)


@dataclass(frozen=True)
class GenerateSummary:
    """What was written. `*_mess` counts lines per kind of mess; corruption kinds use the quarantine
    reason names of docs/data-model.md, variation kinds (usable lines) use their own names."""

    users_path: Path
    jobs_path: Path
    user_lines: int
    job_lines: int
    distinct_users: int
    distinct_jobs: int
    user_mess: Mapping[str, int]
    job_mess: Mapping[str, int]
    payments_path: Path | None = None
    services_path: Path | None = None
    payment_lines: int = 0
    service_lines: int = 0
    payment_mess: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(slots=True)
class _PendingJob:
    """A job to be re-sent later with a newer status and revenue."""

    job_id: int
    user_id: str
    location: int
    service: int
    job_at_ms: int
    created_at_ms: int | None
    status: int
    cents: int
    quote_cents: int
    resends_left: int


class _Zipf:
    """Heavy-tailed draws over ranks 0..n-1 (rank 0 the busiest)."""

    def __init__(self, n: int, exponent: float) -> None:
        total = 0.0
        self._cumulative: list[float] = []
        for rank in range(n):
            total += 1.0 / (rank + 1) ** exponent
            self._cumulative.append(total)
        self._total = total

    def draw(self, rng: random.Random) -> int:
        return bisect.bisect_left(self._cumulative, rng.random() * self._total)


def _pick_kind(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str | None:
    r = rng.random()
    for kind, rate in table:
        if r < rate:
            return kind
        r -= rate
    return None


def _forced_positions(rng: random.Random, lines: int, kinds: list[str]) -> dict[int, str]:
    """One guaranteed line per kind in the second half, so even small files show every kind of mess
    and re-sends/duplicates have something earlier to refer to."""
    if lines < 4 * len(kinds):
        return {}
    return dict(zip(rng.sample(range(lines // 2, lines), len(kinds)), kinds, strict=True))


def _messy_location(rng: random.Random, number: int, mess: Counter[str]) -> str:
    if rng.random() >= 0.08:
        return f'"LOC_{number}"'
    mess["messy_location"] += 1
    variant = rng.randrange(6)
    text = (
        f" loc_{number}",
        f"Loc_{number} ",
        f" LOC_{number} ",
        f"loc_{number}",
        f"LOC _{number}",
        f"\tLoc_{number}",
    )[variant]
    return '"' + text.replace("\t", "\\t") + '"'


def _id_text(rng: random.Random, value: str, mess: Counter[str], name: str) -> str:
    r = rng.random()
    if r < 0.25:
        mess[f"integer_{name}"] += 1
        return value
    if r < 0.26:
        mess[f"padded_{name}"] += 1
        return f'" {value} "'
    return f'"{value}"'


def _revenue_text(rng: random.Random, cents: int, mess: Counter[str]) -> str:
    number = f"{cents // 100}.{cents % 100:02d}"
    r = rng.random()
    if r < 0.55:
        return number
    if r < 0.95:
        mess["revenue_string"] += 1
        return f'"{number}"'
    mess["revenue_padded_string"] += 1
    return f'"  {number} "' if r < 0.98 else f'" {number}"'


def _label_text(rng: random.Random, label: str, mess: Counter[str], kind: str) -> str | None:
    """An optional upper-case label, sometimes absent or in stray case/whitespace."""
    r = rng.random()
    if r < 0.02:
        mess[f"missing_optional_{kind}"] += 1
        return None if r < 0.01 else "null"
    if r < 0.05:
        mess[f"messy_{kind}"] += 1
        return f'" {label.lower()}"' if r < 0.035 else f'"{label.title()} "'
    return f'"{label}"'


def _render(fields: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{name}: {value}" for name, value in fields) + "}"


class _UsersWriter:
    def __init__(self, rng: random.Random, locations: list[int], location_zipf: _Zipf) -> None:
        self.rng = rng
        self.locations = locations
        self.location_zipf = location_zipf
        # Current home rank and spend factor per user index: the jobs need both, nothing else.
        self.homes: list[int] = []
        self.spend: list[float] = []
        self.mess: Counter[str] = Counter()

    def _new_user(self) -> tuple[str, int]:
        index = len(self.homes)
        self.homes.append(self.location_zipf.draw(self.rng))
        self.spend.append(min(self.rng.lognormvariate(0.0, 0.8), 12.0))
        return str(_FIRST_USER_ID + index), index

    def _fields(self, user_id: str | None, rank: int) -> list[tuple[str, str]]:
        rng = self.rng
        fields = [] if user_id is None else [('"USERID"', _id_text(rng, user_id, self.mess, "user_id"))]
        fields.append(('"LOCATION"', _messy_location(rng, self.locations[rank], self.mess)))
        if rng.random() < 0.05:
            self.mess["extra_fields"] += 1
            name, values = _USER_EXTRA_FIELDS[rng.randrange(len(_USER_EXTRA_FIELDS))]
            fields.append((name, values[rng.randrange(len(values))]))
        return fields

    def line(self, forced: str | None) -> bytes:
        rng = self.rng
        kind = forced or _pick_kind(rng, USER_CORRUPTIONS)
        if kind is None and self.homes and rng.random() < _USER_DUPLICATE_SHARE:
            kind = "duplicate_user"
        if kind == "duplicate_user" and not self.homes:
            kind = None
        if kind is not None:
            self.mess[kind] += 1
        if kind == "blank_line":
            return b"\n"
        if kind == "json_not_object":
            return (_NOT_OBJECTS[rng.randrange(len(_NOT_OBJECTS))] + "\n").encode()
        if kind == "missing_user_id":
            fields = self._fields(None, self.location_zipf.draw(rng))
            if rng.random() < 0.5:
                fields.insert(0, ('"USERID"', "null"))
            return (_render(fields) + "\n").encode()
        if kind == "duplicate_user":
            index = rng.randrange(len(self.homes))
            moved = self.location_zipf.draw(rng)
            if moved == self.homes[index]:
                moved = (moved + 1 + rng.randrange(LOCATION_COUNT - 1)) % LOCATION_COUNT
            self.homes[index] = moved
            return (_render(self._fields(str(_FIRST_USER_ID + index), moved)) + "\n").encode()
        # Everything else is (a damaged record of) a new user: damaged users end up missing from staging.
        user_id, index = self._new_user()
        fields = self._fields(user_id, self.homes[index])
        if kind == "missing_location":
            fields = [fields[0], ('"LOCATION"', "null"), *fields[2:]] if rng.random() < 0.5 else [fields[0]]
        text = _render(fields)
        if kind == "invalid_json":
            text = break_json(rng, text)
        if kind == "line_not_text":
            # A Latin-1 write in a UTF-8 file: the byte \xe9 alone is not valid UTF-8.
            return text[:-1].encode() + b', "NAME": "Jos\xe9"}\n'
        return (text + "\n").encode()


class _JobsWriter:
    def __init__(
        self,
        rng: random.Random,
        users: _UsersWriter,
        locations: list[int],
        location_zipf: _Zipf,
        max_delay: int,
    ) -> None:
        self.rng = rng
        self.users = users
        self.locations = locations
        self.location_zipf = location_zipf
        self.headline_rank = locations.index(HEADLINE_LOCATION)
        self.service_zipf = _Zipf(SERVICE_COUNT, 1.1)
        # Price level per service rank: some trades are cheap, some expensive.
        self.service_price = [rng.lognormvariate(4.2, 0.7) for _ in range(SERVICE_COUNT)]
        self.services = list(range(1, SERVICE_COUNT + 1))
        rng.shuffle(self.services)
        # The services the case study and its examples look up are busy ones, so look-ups return 5 rows.
        for rank, service in enumerate(BUSY_SERVICES, start=1):
            other = self.services.index(service)
            self.services[rank], self.services[other] = self.services[other], self.services[rank]
        self.max_delay = max_delay
        self.pending: list[tuple[int, int, _PendingJob]] = []
        self.sequence = 0
        self.next_job_id = _FIRST_JOB_ID
        self.mess: Counter[str] = Counter()

    def _new_job(self, line_number: int) -> _PendingJob:
        rng = self.rng
        homes = self.users.homes
        if not homes or rng.random() < _GHOST_SHARE:
            self.mess["ghost_user"] += 1
            user_id = str(_FIRST_GHOST_USER_ID + rng.randrange(len(homes) // 10 + 1))
            home, spend = self.location_zipf.draw(rng), 1.0
        else:
            # Skewed towards low indexes: a few users book a lot, most book rarely.
            index = int(len(homes) * rng.random() ** 1.5)
            user_id, home, spend = str(_FIRST_USER_ID + index), homes[index], self.users.spend[index]
        r = rng.random()
        if r < _HUB_SHARE:
            location = self.headline_rank
        elif r < _HUB_SHARE + _HOME_SHARE:
            location = home
        else:
            location = self.location_zipf.draw(rng)
        service = self.service_zipf.draw(rng)
        price = self.service_price[service] * spend * rng.lognormvariate(0.0, 0.5)
        if location == self.headline_rank and home != self.headline_rank:
            price *= rng.paretovariate(1.3)  # visitors at the hub spend unevenly: a clear top 5
        quote = max(1, min(_MAX_CENTS, int(price * 100)))
        job_at = rng.randrange(_JOB_START_MS, _JOB_END_MS)
        created: int | None = job_at - rng.randrange(_MAX_CREATE_LEAD_MS)
        if rng.random() < 0.03:
            created = None
        job = _PendingJob(self.next_job_id, user_id, location, service, job_at, created, 0, quote, quote, 0)
        self.next_job_id += 1
        if rng.random() < _RESEND_SHARE and len(self.pending) < _RESEND_HEAP_CAP:
            job.status = _CREATED if rng.random() < 0.6 else _SCHEDULED
            r = rng.random()
            job.resends_left = 1 if r < 0.7 else 2 if r < 0.95 else 3
            self._schedule(job, line_number)
            return job
        job.status = rng.choices(range(5), weights=(10, 15, 10, 55, 10))[0]
        if job.status == _CANCELLED:
            job.cents = 0 if rng.random() < 0.8 else max(1, quote // 10)  # cancellation fee
        return job

    def _schedule(self, job: _PendingJob, line_number: int) -> None:
        self.sequence += 1
        due = line_number + self.rng.randint(1, self.max_delay)
        heapq.heappush(self.pending, (due, self.sequence, job))

    def _resend(self, line_number: int) -> _PendingJob:
        rng = self.rng
        job = heapq.heappop(self.pending)[2]
        self.mess["resend"] += 1
        job.resends_left -= 1
        if job.resends_left == 0:
            if rng.random() < 0.85:
                job.status = _COMPLETED
                job.cents = max(1, min(_MAX_CENTS, int(job.quote_cents * rng.uniform(0.9, 1.4))))
            else:
                job.status, job.cents = _CANCELLED, 0
        else:
            job.status = min(job.status + 1, _IN_PROGRESS)
            job.cents = max(1, min(_MAX_CENTS, int(job.quote_cents * rng.uniform(0.95, 1.15))))
            self._schedule(job, line_number)
        return job

    def line(self, line_number: int, forced: str | None) -> bytes:
        rng = self.rng
        if self.pending and self.pending[0][0] <= line_number:
            job = self._resend(line_number)
        else:
            job = self._new_job(line_number)
        kind = forced or _pick_kind(rng, JOB_CORRUPTIONS)
        mess = self.mess
        if kind is not None:
            mess[kind] += 1
        key = str(job.job_id)
        fields: dict[str, str | None] = {
            '"JOBIDENTIFIER"': _id_text(rng, key, mess, "job_id"),
            '"USERID"': _id_text(rng, job.user_id, mess, "user_id"),
            '"JOBCREATEDATE"': None if job.created_at_ms is None else format_timestamp(rng, job.created_at_ms),
            '"JOBDATE"': format_timestamp(rng, job.job_at_ms),
            '"JOBSTATUS"': _label_text(rng, STATUSES[job.status], mess, "status"),
            '"LOCATION"': _messy_location(rng, self.locations[job.location], mess),
            '"REVENUE"': _revenue_text(rng, job.cents, mess),
            '"SERVICENAME"': _label_text(rng, f"SERVICE_{self.services[job.service]}", mess, "service"),
        }
        if job.created_at_ms is None:
            mess["missing_optional_created_date"] += 1
            if rng.random() < 0.5:
                fields['"JOBCREATEDATE"'] = "null"
        if rng.random() < 0.05:
            mess["extra_fields"] += 1
            for _ in range(rng.randint(1, 2)):
                name, values = _EXTRA_FIELDS[rng.randrange(len(_EXTRA_FIELDS))]
                fields[name] = values[rng.randrange(len(values))]
                if name == '"NOTE"' and "|" in fields[name]:
                    mess["pipe_in_value"] += 1
        if kind is not None:
            key = self._corrupt(kind, key, fields)
        value = _render([(name, text) for name, text in fields.items() if text is not None])
        if kind == "invalid_json":
            value = break_json(rng, value)
        elif kind == "json_not_object":
            value = _NOT_OBJECTS[rng.randrange(len(_NOT_OBJECTS))] if rng.random() < 0.6 else f"[{value}]"
        return f"{key}|{value}\n".encode()

    def _corrupt(self, kind: str, key: str, fields: dict[str, str | None]) -> str:
        """Damage one field so that `kind` is the first quarantine reason that applies."""
        rng = self.rng
        absent = None if rng.random() < 0.5 else "null"
        field = {
            "missing_job_id": '"JOBIDENTIFIER"',
            "missing_user_id": '"USERID"',
            "missing_location": '"LOCATION"',
            "missing_revenue": '"REVENUE"',
            "missing_job_date": '"JOBDATE"',
        }.get(kind)
        if field is not None:
            fields[field] = absent
        elif kind == "key_mismatch":
            # A producer bug: the key of another job, or a prefixed id.
            return str(int(key) + rng.randint(1, 999)) if rng.random() < 0.7 else f"JOB-{key}"
        elif kind == "invalid_revenue":
            fields['"REVENUE"'] = _INVALID_REVENUES[rng.randrange(len(_INVALID_REVENUES))]
        elif kind == "revenue_out_of_range":
            cents = rng.randrange(100, 100_000)
            negative = f"-{cents // 100}.{cents % 100:02d}"
            fields['"REVENUE"'] = rng.choice((negative, f'"{negative}"', f'" {negative}"', "2500000.00"))
        elif kind == "invalid_job_date":
            fields['"JOBDATE"'] = _INVALID_TIMESTAMPS[rng.randrange(len(_INVALID_TIMESTAMPS))]
        elif kind == "job_date_out_of_range":
            fields['"JOBDATE"'] = _OUT_OF_RANGE_TIMESTAMPS[rng.randrange(len(_OUT_OF_RANGE_TIMESTAMPS))]
        elif kind == "invalid_job_created_date":
            fields['"JOBCREATEDATE"'] = _INVALID_TIMESTAMPS[rng.randrange(len(_INVALID_TIMESTAMPS))]
        return key


def _write_lines(path: Path, count: int, make_line: Callable[[int], bytes]) -> None:
    """Write via a temporary file so a reader never sees half a file."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb", buffering=1 << 20) as out, Bar(count, f"generate {path.name}", unit="lines") as bar:
        for line_number in range(count):
            out.write(make_line(line_number))
            bar.update()
    os.replace(partial, path)


def generate_files(out_dir: Path, *, users: int, jobs: int, seed: int) -> GenerateSummary:
    """Write `out_dir/users.ndjson` (`users` lines) and `out_dir/jobs.kafka` (`jobs` lines).

    Line counts include the mess, so the files have exactly the requested sizes. Same arguments give
    byte-identical files."""
    if users < 0 or jobs < 0:
        raise ValueError("users and jobs must not be negative")
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    locations = list(range(1, LOCATION_COUNT + 1))
    rng.shuffle(locations)
    # The headline location is the third busiest: plenty of jobs, and plenty of visitors.
    hub = locations.index(HEADLINE_LOCATION)
    locations[2], locations[hub] = locations[hub], locations[2]
    location_zipf = _Zipf(LOCATION_COUNT, 1.0)

    users_writer = _UsersWriter(rng, locations, location_zipf)
    user_kinds = [kind for kind, _ in USER_CORRUPTIONS] + ["duplicate_user"]
    forced_users = _forced_positions(rng, users, user_kinds)
    users_path = out_dir / "users.ndjson"
    _write_lines(users_path, users, lambda n: users_writer.line(forced_users.get(n)))

    jobs_writer = _JobsWriter(rng, users_writer, locations, location_zipf, max(20, min(20_000, jobs // 4)))
    forced_jobs = _forced_positions(rng, jobs, [kind for kind, _ in JOB_CORRUPTIONS])
    jobs_path = out_dir / "jobs.kafka"
    _write_lines(jobs_path, jobs, lambda n: jobs_writer.line(n, forced_jobs.get(n)))

    # The payments and service catalogue are derived from the jobs file, with their own random stream,
    # so adding them left the users and jobs files byte-identical per seed.
    extras = generate_payment_files(out_dir, jobs_path, seed=seed)
    summary = GenerateSummary(
        payments_path=extras.payments_path,
        services_path=extras.services_path,
        payment_lines=extras.payment_lines,
        service_lines=extras.service_lines,
        payment_mess=MappingProxyType(extras.mess),
        users_path=users_path,
        jobs_path=jobs_path,
        user_lines=users,
        job_lines=jobs,
        distinct_users=len(users_writer.homes),
        distinct_jobs=jobs_writer.next_job_id - _FIRST_JOB_ID,
        user_mess=MappingProxyType(dict(sorted(users_writer.mess.items()))),
        job_mess=MappingProxyType(dict(sorted(jobs_writer.mess.items()))),
    )
    logger.info("wrote %d user lines to %s and %d job lines to %s", users, users_path, jobs, jobs_path)
    return summary
