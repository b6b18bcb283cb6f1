"""The sample-data generator: deterministic, streaming, messy in every documented way, and
with a non-trivial answer to the case query. Checked through the independent reference."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from extract.sample_data.jobs import GenerateSummary, generate_files
from tests.support.reference import iter_kafka_lines, latest_jobs, load_jobs, load_users, top_revenue

JOB_REASONS = {
    "invalid_json",
    "json_not_object",
    "missing_job_id",
    "key_mismatch",
    "missing_user_id",
    "missing_location",
    "missing_revenue",
    "invalid_revenue",
    "revenue_out_of_range",
    "missing_job_date",
    "invalid_job_date",
    "job_date_out_of_range",
    "invalid_job_created_date",
}
USER_REASONS = {"blank_line", "line_not_text", "invalid_json", "json_not_object", "missing_user_id", "missing_location"}


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> GenerateSummary:
    return generate_files(tmp_path_factory.mktemp("medium"), users=2_000, jobs=30_000, seed=7)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    first = generate_files(tmp_path / "a", users=500, jobs=5_000, seed=3)
    again = generate_files(tmp_path / "b", users=500, jobs=5_000, seed=3)
    other = generate_files(tmp_path / "c", users=500, jobs=5_000, seed=4)
    for name in ("users.ndjson", "jobs.kafka"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()
    assert first.user_mess == again.user_mess
    assert first.job_mess == again.job_mess
    assert first.job_mess != other.job_mess


def test_exact_line_counts_and_no_leftovers(tmp_path: Path) -> None:
    summary = generate_files(tmp_path, users=123, jobs=456, seed=1)
    assert summary.users_path.read_bytes().count(b"\n") == summary.user_lines == 123
    assert summary.jobs_path.read_bytes().count(b"\n") == summary.job_lines == 456
    assert summary.payments_path.read_bytes().count(b"\n") == summary.payment_lines > 0
    assert summary.services_path.read_bytes().count(b"\n") == summary.service_lines
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["jobs.kafka", "payments.kafka", "services.csv", "users.ndjson"]
    empty = generate_files(tmp_path / "empty", users=0, jobs=0, seed=1)
    assert empty.users_path.read_bytes() == empty.jobs_path.read_bytes() == b""


def test_jobs_only_still_works(tmp_path: Path) -> None:
    summary = generate_files(tmp_path, users=0, jobs=200, seed=1)
    assert summary.job_mess["ghost_user"] == 200 - summary.job_mess.get("resend", 0)


_PEAK_RSS = """
import resource, sys
from pathlib import Path
from extract.sample_data.jobs import generate_files
generate_files(Path(sys.argv[1]), users=2_000, jobs=int(sys.argv[2]), seed=5)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_rss_kib(out_dir: Path, jobs: int) -> int:
    # A fresh process per size: tracemalloc would slow 200k jobs ten-fold, and RSS is what runs out.
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(out_dir), str(jobs)], capture_output=True, check=True, text=True
    )
    return int(done.stdout.strip())


def test_streaming_memory_is_bounded(tmp_path: Path) -> None:
    small = _peak_rss_kib(tmp_path / "small", 2_000)
    large = _peak_rss_kib(tmp_path / "large", 200_000)
    # Keeping even just the 200k job ids in a set would cost over 20 MB more.
    assert large - small < 8 * 1024, f"{small} KiB -> {large} KiB"


def test_every_quarantine_kind_matches_the_reference(medium: GenerateSummary) -> None:
    jobs = load_jobs(medium.jobs_path)
    users = load_users(medium.users_path)
    assert jobs.raw_count == medium.job_lines
    assert users.raw_count == medium.user_lines
    # Each injected corruption earns exactly its own reason, and nothing else is quarantined.
    assert set(jobs.quarantine) == JOB_REASONS
    assert set(users.quarantine) == USER_REASONS
    assert dict(jobs.quarantine) == {k: v for k, v in medium.job_mess.items() if k in JOB_REASONS}
    assert dict(users.quarantine) == {k: v for k, v in medium.user_mess.items() if k in USER_REASONS}
    # Small enough that most data is usable.
    assert 0.01 < jobs.quarantine.total() / jobs.raw_count < 0.04
    assert 0.01 < users.quarantine.total() / users.raw_count < 0.04


def test_small_files_still_show_every_kind(tmp_path: Path) -> None:
    summary = generate_files(tmp_path, users=300, jobs=3_000, seed=11)
    assert set(load_jobs(summary.jobs_path).quarantine) == JOB_REASONS
    assert set(load_users(summary.users_path).quarantine) == USER_REASONS
    assert summary.user_mess["duplicate_user"] >= 1


def test_usable_variations_appear(medium: GenerateSummary) -> None:
    for kind in (
        "resend",
        "ghost_user",
        "integer_job_id",
        "integer_user_id",
        "padded_job_id",
        "revenue_string",
        "revenue_padded_string",
        "messy_location",
        "messy_service",
        "messy_status",
        "extra_fields",
        "pipe_in_value",
        "missing_optional_created_date",
    ):
        assert medium.job_mess.get(kind, 0) > 0, kind
    assert 0.03 < medium.job_mess["resend"] / medium.job_lines < 0.12
    for kind in ("duplicate_user", "integer_user_id", "messy_location", "extra_fields"):
        assert medium.user_mess.get(kind, 0) > 0, kind


def test_raw_shapes_in_the_files(medium: GenerateSummary) -> None:
    sends: Counter[str] = Counter()
    shapes: Counter[str] = Counter()
    for _, key, value in iter_kafka_lines(medium.jobs_path):
        sends[key.decode()] += 1
        for pattern, shape in (
            (rb'"JOBDATE": "\d{4}-\d\d-\d\dT[\d:]{8}Z"', "iso_z"),
            (rb'"JOBDATE": "\d{4}-\d\d-\d\dT[\d:]{8}[+-]\d\d:\d\d"', "iso_offset_colon"),
            (rb'"JOBDATE": "\d{4}-\d\d-\d\dT[\d:]{8}[+-]\d{4}"', "iso_offset_compact"),
            (rb'"JOBDATE": "[^"]*-05:00"', "minus_five"),
            (rb'"JOBDATE": "[^"]*\+0530"', "plus_0530"),
            (rb'"JOBDATE": "\d{4}-\d\d-\d\dT[\d:]{8}\.\d{3}"', "iso_fraction"),
            (rb'"JOBDATE": "\d{4}-\d\d-\d\d [\d:]{8}"', "space"),
            (rb'"JOBDATE": "\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d"', "dmy_seconds"),
            (rb'"JOBDATE": "\d\d\.\d\d\.\d{4} \d\d:\d\d"', "dmy_minutes"),
            (rb'"JOBDATE": \d{10}[,}]', "epoch_number"),
            (rb'"JOBDATE": "\d{10}"', "epoch_string"),
            (rb'"JOBDATE": \d{13}[,}]', "millis_number"),
            (rb'"JOBDATE": "\d{13}"', "millis_string"),
            (rb'"REVENUE": "-', "negative_string"),
            (rb'"REVENUE": -', "negative_number"),
            (rb'"LOCATION": " loc_\d+"', "lower_leading_blank"),
            (rb'"LOCATION": "Loc_\d+ "', "title_trailing_blank"),
            (rb'"JOBDATE": "2023-02-30', "february_30"),
        ):
            if re.search(pattern, value):
                shapes[shape] += 1
    assert len(shapes) == 18, shapes
    assert max(sends.values()) >= 3  # some jobs are sent more than twice
    assert all(key for key in sends)


def test_usable_jobs_fall_in_2023_to_2025(medium: GenerateSummary) -> None:
    jobs = load_jobs(medium.jobs_path)
    start, end = datetime(2023, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    assert all(start <= job.job_at < end for job in jobs.jobs.values())
    statuses = {job.job_status for job in jobs.jobs.values()}
    assert statuses == {"CREATED", "SCHEDULED", "IN_PROGRESS", "COMPLETED", "CANCELLED", None}


def test_users_and_locations_are_realistic(medium: GenerateSummary) -> None:
    jobs = load_jobs(medium.jobs_path)
    users = load_users(medium.users_path)
    assert users.superseded > 0  # users listed twice; the later line wins
    missing = {job.user_id for job in jobs.jobs.values()} - set(users.users)
    assert len(missing) > 10  # jobs of users missing from the users file
    per_location = Counter(job.location_id for job in jobs.jobs.values())
    assert 1_000 < len(per_location) <= 2_000
    assert all(re.fullmatch(r"LOC_\d{1,4}", location) for location in per_location)
    busiest = [count for _, count in per_location.most_common()]
    # Heavy-tailed: the top 1% of locations take far more than 1% of the jobs.
    assert sum(busiest[: len(busiest) // 100]) > 0.15 * sum(busiest)
    assert per_location["LOC_1294"] >= busiest[5]
    services = {job.service_name for job in jobs.jobs.values()} - {None}
    assert all(re.fullmatch(r"SERVICE_\d+", service) for service in services)


@pytest.mark.parametrize("seed", [1, 2, 3, 42])
def test_headline_query_has_five_rows_at_small_size(tmp_path: Path, seed: int) -> None:
    summary = generate_files(tmp_path, users=300, jobs=3_000, seed=seed)
    jobs, users = load_jobs(summary.jobs_path), load_users(summary.users_path)
    rows = top_revenue(jobs, users)
    assert len(rows) == 5
    assert all(total > 0 for _, total in rows)
    assert len({total for _, total in rows}) == 5  # skewed enough that the order means something
    local = {u for u, user in users.users.items() if user.location_id == "LOC_1294"}
    assert local
    assert not local & {user_id for user_id, _ in rows}
    # The look-ups of the case study (and the e2e test) have full answers too.
    for kind, value in (("location", "LOC_1294"), ("service", "SERVICE_42"), ("service", "service_3")):
        assert len(latest_jobs(jobs, **{kind: value})) == 5, value


def test_value_json_is_the_only_place_for_mess(medium: GenerateSummary) -> None:
    # The console producer reads lines; every line must carry a key and a value.
    for line in medium.jobs_path.read_bytes().split(b"\n")[:-1]:
        assert line.partition(b"|")[0]
        assert b"\r" not in line


def test_payments_pay_for_generated_jobs_in_both_amount_styles(tmp_path: Path) -> None:
    summary = generate_files(tmp_path, users=300, jobs=3000, seed=5)
    again = generate_files(tmp_path / "again", users=300, jobs=3000, seed=5)
    assert summary.payments_path.read_bytes() == again.payments_path.read_bytes()
    assert summary.services_path.read_bytes() == again.services_path.read_bytes()

    job_ids = set()
    for line in summary.jobs_path.read_bytes().splitlines():
        try:
            job_ids.add(str(json.loads(line.split(b"|", 1)[1])["JOBIDENTIFIER"]).strip())
        except (ValueError, KeyError, TypeError):
            continue
    styles, unknown_jobs, broken = set(), 0, 0
    for line in summary.payments_path.read_bytes().splitlines():
        key, _, value = line.partition(b"|")
        try:
            payment = json.loads(value)
        except ValueError:
            broken += 1
            continue
        assert payment["PAYMENTID"] == key.decode()
        styles |= {name for name in ("AMOUNT", "AMOUNT_MINOR") if name in payment}
        unknown_jobs += payment.get("JOBIDENTIFIER") not in job_ids
    assert styles == {"AMOUNT", "AMOUNT_MINOR"}
    assert broken > 0
    # Only the payments whose job id was deliberately dropped point nowhere.
    assert unknown_jobs == summary.payment_mess.get("missing_job_id", 0)

    header, *rows = summary.services_path.read_text().splitlines()
    assert header == "SERVICENAME,CATEGORY,BASEPRICE"
    assert sum(row.startswith("SERVICE_42,") for row in rows) == 2
