"""The reference's rules against hand-written expectations from docs/data-model.md."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.reference import (
    classify_job,
    latest_jobs,
    load_jobs,
    load_users,
    normalise_id,
    normalise_location,
    parse_revenue,
    parse_timestamp,
    top_revenue,
)

EXPECTED = datetime(2024, 3, 5, 14, 22, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-05T14:22:31Z", EXPECTED),
        ("2024-03-05T17:22:31+03:00", EXPECTED),
        ("2024-03-05T17:22:31+0300", EXPECTED),
        ("2024-03-05T09:22:31-05:00", EXPECTED),
        ("2024-03-05T19:52:31+0530", EXPECTED),
        ("2024-03-05T19:52:31+05:30", EXPECTED),
        ("2024-03-05T14:22:31.123", datetime(2024, 3, 5, 14, 22, 31, 123000, tzinfo=UTC)),
        ("2024-03-05 14:22:31", EXPECTED),
        ("05.03.2024 14:22:31", EXPECTED),
        ("05.03.2024 14:22", datetime(2024, 3, 5, 14, 22, tzinfo=UTC)),
        (1709648551, EXPECTED),
        ("1709648551", EXPECTED),
        (1709648551000, EXPECTED),
        ("1709648551123", datetime(2024, 3, 5, 14, 22, 31, 123000, tzinfo=UTC)),
        (123456789, datetime(1973, 11, 29, 21, 33, 9, tzinfo=UTC)),  # 9 digits
        ("123456789012", datetime(1973, 11, 29, 21, 33, 9, 12000, tzinfo=UTC)),  # 12 digits
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),  # a real leap day
        ("2024-01-01T01:30:00+03:00", datetime(2023, 12, 31, 22, 30, tzinfo=UTC)),  # crosses a year
    ],
)
def test_timestamp_formats(value: object, expected: datetime) -> None:
    parsed = parse_timestamp(value)
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() is not None
    assert parsed.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    "value",
    [
        "2023-02-30T10:00:00Z",
        "2024-02-30 08:15:00",
        "2025-02-29T12:00:00",
        "31.04.2024 09:15",
        "2024-13-01T10:00:00Z",
        "2024-06-10T25:00:00Z",
        "2024-03-05",  # a date alone is not a documented format
        "2024/03/05 14:22:31",
        "5.3.2024 14:22",
        "17096485",  # 8 digits: neither seconds nor millis
        "17096485510",  # 11 digits
        "17096485510000",  # 14 digits
        1709648551.5,
        "yesterday",
        "",
        True,
        None,
        {"ts": 1709648551},
    ],
)
def test_timestamp_rejects(value: object) -> None:
    assert parse_timestamp(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (123, Decimal("123.00")),
        (Decimal("123.45"), Decimal("123.45")),
        (123.45, Decimal("123.45")),
        ("123.45", Decimal("123.45")),
        ("  123.45 ", Decimal("123.45")),
        ("0", Decimal("0.00")),
        ("-12.50", Decimal("-12.50")),  # parsable; the range check is separate
        ("10.005", Decimal("10.01")),  # numeric(14,2) rounds half away from zero
        ("10.004", Decimal("10.00")),
    ],
)
def test_revenue(value: object, expected: Decimal) -> None:
    assert parse_revenue(value) == expected


@pytest.mark.parametrize("value", ["12,50", "N/A", "", "  ", "1.2.3", "TRY 99", True, None, {"a": 1}, [1]])
def test_revenue_rejects(value: object) -> None:
    assert parse_revenue(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("LOC_1294", "LOC_1294"),
        (" loc_1294", "LOC_1294"),
        ("Loc_1294 ", "LOC_1294"),
        (" loc_1294 ", "LOC_1294"),
        ("LOC _1294", "LOC_1294"),
        ("\tLoc_ 1294\n", "LOC_1294"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_location(value: object, expected: str | None) -> None:
    assert normalise_location(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("100001", "100001"), (100001, "100001"), (" 100001 ", "100001"), (None, None), (True, None), ("", None)],
)
def test_ids(value: object, expected: str | None) -> None:
    assert normalise_id(value) == expected


GOOD_JOB = (
    '{"JOBIDENTIFIER": "7", "USERID": 42, "JOBCREATEDATE": "2024-03-01T10:00:00Z", '
    '"JOBDATE": "05.03.2024 14:22:31", "JOBSTATUS": " completed", "LOCATION": " loc_1294", '
    '"REVENUE": " 99.90 ", "SERVICENAME": "service_3 "}'
)


def test_good_job_is_normalised() -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    reason, job = classify_job(b"7", GOOD_JOB.encode(), 1, now=now)
    assert reason is None
    assert job is not None
    assert (job.job_id, job.user_id, job.location_id) == ("7", "42", "LOC_1294")
    assert (job.job_status, job.service_name, job.revenue) == ("COMPLETED", "SERVICE_3", Decimal("99.90"))
    assert job.job_at == EXPECTED
    assert job.job_created_at == datetime(2024, 3, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (None, None, "null_value"),  # a tombstone without a key deletes nothing
        (b"", None, "null_value"),
        (b"\xfe\xff", None, "null_value"),
        (b"7", b'{"JOBIDENTIFIER": "7\x00"}', "value_not_text"),
        (b"7", b'{"JOBIDENTIFIER": "Jos\xe9"}', "value_not_text"),
        (b"7", b'{"JOBIDENTIFIER": "7",', "invalid_json"),
        (b"7", b"", "invalid_json"),
        (b"7", b'{"REVENUE": NaN}', "invalid_json"),
        (b"7", b"[1, 2]", "json_not_object"),
        (b"7", b"null", "json_not_object"),
        # The first reason wins: no job id beats a key mismatch and every later field.
        (b"8", b'{"USERID": null, "REVENUE": -1}', "missing_job_id"),
        (b"8", b'{"JOBIDENTIFIER": "7", "REVENUE": -1}', "key_mismatch"),
        (b" 7", b'{"JOBIDENTIFIER": "7"}', "key_mismatch"),  # the key is not trimmed
        (b"7", b'{"JOBIDENTIFIER": " 7 ", "REVENUE": "x"}', "missing_user_id"),  # the id is
        (b"", b'{"JOBIDENTIFIER": "7", "USERID": "1"}', "missing_location"),  # empty key: no check
        (None, b'{"JOBIDENTIFIER": 7, "USERID": 1, "LOCATION": "L"}', "missing_revenue"),
        (b"7", b'{"JOBIDENTIFIER": 7, "USERID": 1, "LOCATION": "L", "REVENUE": null}', "missing_revenue"),
        (b"7", b'{"JOBIDENTIFIER": 7, "USERID": 1, "LOCATION": "L", "REVENUE": "12,5"}', "invalid_revenue"),
        (b"7", b'{"JOBIDENTIFIER": 7, "USERID": 1, "LOCATION": "L", "REVENUE": -0.5}', "revenue_out_of_range"),
        (b"7", b'{"JOBIDENTIFIER": 7, "USERID": 1, "LOCATION": "L", "REVENUE": 1000000.01}', "revenue_out_of_range"),
        (b"7", b'{"JOBIDENTIFIER": 7, "USERID": 1, "LOCATION": "L", "REVENUE": 1}', "missing_job_date"),
        (
            b"7",
            b'{"JOBIDENTIFIER": 7, "USERID": 1, "LOCATION": "L", "REVENUE": 1, "JOBDATE": "2023-02-30 10:00:00"}',
            "invalid_job_date",
        ),
        (
            b"7",
            b'{"JOBIDENTIFIER": 7, "USERID": 1, "LOCATION": "L", "REVENUE": 1, "JOBDATE": "1969-12-31T23:59:59Z"}',
            "job_date_out_of_range",
        ),
        (
            b"7",
            b'{"JOBIDENTIFIER": 7, "USERID": 1, "LOCATION": "L", "REVENUE": 1, "JOBDATE": "2031-01-01T00:00:00Z"}',
            "job_date_out_of_range",
        ),
        (
            b"7",
            b'{"JOBIDENTIFIER": 7, "USERID": 1, "LOCATION": "L", "REVENUE": 1, "JOBDATE": 1709648551, '
            b'"JOBCREATEDATE": "soon"}',
            "invalid_job_created_date",
        ),
    ],
)
def test_job_quarantine_order(key: bytes | None, value: bytes | None, reason: str) -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    assert classify_job(key, value, 1, now=now)[0] == reason


def test_job_limits_are_inclusive() -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    base = '{"JOBIDENTIFIER": 7, "USERID": 1, "LOCATION": "L", '
    assert classify_job(b"7", (base + '"REVENUE": 0, "JOBDATE": 0}').encode(), now=now)[0] == "invalid_job_date"
    edge = base + '"REVENUE": "1000000", "JOBDATE": "2030-06-01T00:00:00Z", "JOBCREATEDATE": null}'
    reason, job = classify_job(b"7", edge.encode(), now=now)
    assert reason is None
    assert job is not None
    assert job.revenue == Decimal("1000000.00")
    assert job.job_created_at is None


def _job(job_id: str, user: str, location: str, revenue: str, date: str, *, service: str = "SERVICE_1") -> str:
    return (
        f'{job_id}|{{"JOBIDENTIFIER": "{job_id}", "USERID": "{user}", "LOCATION": "{location}", '
        f'"REVENUE": "{revenue}", "JOBDATE": "{date}", "SERVICENAME": "{service}"}}\n'
    )


def test_latest_usable_job_wins(tmp_path: Path) -> None:
    path = tmp_path / "jobs.kafka"
    path.write_text(
        _job("1", "10", "LOC_1", "5", "2024-01-01T00:00:00Z")
        + _job("1", "10", "LOC_1", "7", "2024-01-01T00:00:00Z")
        + _job("1", "10", "LOC_1", "-3", "2024-01-01T00:00:00Z")  # unusable: the 7 stays
        + _job("2", "10", "LOC_1", "1", "2024-01-01T00:00:00Z")
        + '9|{"JOBIDENTIFIER": "2", "USERID": "10", "LOCATION": "LOC_1", "REVENUE": 99, "JOBDATE": 1709648551}\n'
    )
    jobs = load_jobs(path)
    assert jobs.raw_count == 5
    assert jobs.staged_count == 3
    assert jobs.superseded == 1
    assert jobs.quarantine == {"revenue_out_of_range": 1, "key_mismatch": 1}
    assert {job_id: job.revenue for job_id, job in jobs.jobs.items()} == {"1": Decimal("7.00"), "2": Decimal(1)}


@pytest.mark.parametrize("content", [b"\n", b"1\n", b"1|{}\r\n"])
def test_unproducible_kafka_lines_are_an_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "jobs.kafka"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="console producer"):
        load_jobs(path)


def test_users_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "users.ndjson"
    path.write_bytes(
        b'\xef\xbb\xbf{"USERID": "1", "LOCATION": "loc_1"}\r\n'  # BOM and CRLF are stripped
        b"\r\n"
        b"   \n"
        b'{"USERID": "2", "LOCATION": "Jos\xe9"}\n'
        b'{"USERID": 3, "LOCATION": "LOC_3"\n'
        b"[1]\n"
        b'{"LOCATION": "LOC_4"}\n'
        b'{"USERID": 5}\n'
        b'{"USERID": "1 ", "LOCATION": " LOC_9 ", "EXTRA": true}\n'
        b'{"USERID": 6, "LOCATION": "LOC_6"}'  # no final newline: still a line
    )
    users = load_users(path)
    assert users.raw_count == 10
    assert users.staged_count == 3
    assert users.superseded == 1
    assert users.quarantine == {
        "blank_line": 2,
        "line_not_text": 1,
        "invalid_json": 1,
        "json_not_object": 1,
        "missing_user_id": 1,
        "missing_location": 1,
    }
    assert {u: (user.location_id, user.line_number) for u, user in users.users.items()} == {
        "1": ("LOC_9", 9),
        "6": ("LOC_6", 10),
    }


def test_bom_only_stripped_on_the_first_line(tmp_path: Path) -> None:
    path = tmp_path / "users.ndjson"
    path.write_bytes(b'{"USERID": "1", "LOCATION": "L"}\n\xef\xbb\xbf{"USERID": "2", "LOCATION": "L"}\n')
    assert load_users(path).quarantine == {"invalid_json": 1}


def test_top_revenue_and_latest_jobs(tmp_path: Path) -> None:
    users = tmp_path / "users.ndjson"
    users.write_text(
        '{"USERID": "a", "LOCATION": "LOC_1294"}\n'  # moves away below: non-local now
        '{"USERID": "b", "LOCATION": "LOC_1"}\n'
        '{"USERID": "c", "LOCATION": "LOC_2"}\n'
        '{"USERID": "d", "LOCATION": "LOC_1294"}\n'  # local: excluded
        '{"USERID": "e", "LOCATION": "LOC_3"}\n'
        '{"USERID": "f", "LOCATION": "LOC_3"}\n'
        '{"USERID": "g", "LOCATION": "LOC_3"}\n'
        '{"USERID": "a", "LOCATION": "LOC_7"}\n'
    )
    jobs = tmp_path / "jobs.kafka"
    jobs.write_text(
        _job("1", "a", "LOC_1294", "10", "2024-01-01T00:00:00Z")
        + _job("2", "a", " loc_1294", "15", "2024-01-02T00:00:00Z")
        + _job("3", "b", "LOC_1294", "25", "2024-01-03T00:00:00Z")
        + _job("4", "c", "LOC_1294", "25", "2024-01-03T00:00:00Z")  # ties b: user_id ascending
        + _job("5", "d", "LOC_1294", "500", "2024-01-04T00:00:00Z")
        + _job("6", "e", "LOC_1294", "0", "2024-01-05T00:00:00Z")  # sum 0: dropped
        + _job("7", "f", "LOC_1294", "1", "2024-01-06T00:00:00Z")
        + _job("8", "g", "LOC_1294", "2", "2024-01-06T00:00:00Z")
        + _job("9", "zz", "LOC_1294", "900", "2024-01-07T00:00:00Z")  # not in users: inner join
        + _job("10", "b", "LOC_5", "900", "2024-01-08T00:00:00Z", service="SERVICE_2")
    )
    ref_jobs, ref_users = load_jobs(jobs), load_users(users)
    assert top_revenue(ref_jobs, ref_users) == [
        ("a", Decimal("25.00")),
        ("b", Decimal("25.00")),
        ("c", Decimal("25.00")),
        ("g", Decimal("2.00")),
        ("f", Decimal("1.00")),
    ]
    assert top_revenue(ref_jobs, ref_users, location="loc_5", limit=1) == [("b", Decimal("900.00"))]
    latest = latest_jobs(ref_jobs, location=" loc_1294 ")
    # Jobs 7 and 8 share a time: the higher job_id text ("8") first.
    assert [job.job_id for job in latest] == ["9", "8", "7", "6", "5"]
    assert [job.job_id for job in latest_jobs(ref_jobs, service=" service_2", limit=5)] == ["10"]
    assert len(latest_jobs(ref_jobs, limit=100)) == 10


def test_a_keyed_tombstone_is_a_delete_not_a_reason() -> None:
    assert classify_job(b"7", None, 1) == (None, None)
