"""The pipeline as a service end to end: serve lands the topic and its scheduler runs `dbt build`; then
`extract report` writes the HTML page, its numbers match the database, and headless Chromium renders it."""

from __future__ import annotations

import shutil
import signal
import struct
import subprocess
import zlib
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import psycopg
import pytest

from extract.core.settings import Settings
from extract.local import embedded
from extract.sample_data.jobs import generate_files
from tests.conftest import run_cli
from tests.support.ops_helpers import http_get, metric, send, start_cli, wait_for

pytestmark = pytest.mark.slow


class Checks(HTMLParser):
    """data-check attribute -> the element's text (or its data-value for chart bars)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if "data-check" in found:
            if "data-value" in found:
                self.values[found["data-check"]] = found["data-value"]
            else:
                self._open = found["data-check"]
                self.values[self._open] = ""

    def handle_data(self, data: str) -> None:
        if self._open:
            self.values[self._open] += data

    def handle_endtag(self, tag: str) -> None:
        self._open = None


def cells(checks: dict[str, str], prefix: str) -> list[list[str]]:
    rows: dict[int, dict[int, str]] = {}
    for key, value in checks.items():
        name, row, column = key.rsplit(":", 2) if key.count(":") >= 2 else (key, "-1", "-1")
        if name == prefix:
            rows.setdefault(int(row), {})[int(column)] = value
    return [[row[c] for c in sorted(row)] for _, row in sorted(rows.items())]


def as_text(rows: list[tuple[object, ...]]) -> list[list[str]]:
    return [["" if value is None else str(value) for value in row] for row in rows]


def png_size_and_colours(path: Path) -> tuple[int, int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat, offset = b"", 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        if kind == b"IDAT":
            idat += data[offset + 8 : offset + 8 + length]
        offset += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def test_served_pipeline_report_matches_the_database_and_renders(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium is needed: `make chromium` installs it"
    summary = generate_files(tmp_path / "data", users=200, jobs=1500, seed=11)
    run_cli(settings, "users", str(summary.users_path))
    run_cli(settings, "produce", str(summary.jobs_path))
    run_cli(settings, "jobs", "--until-end")

    port = embedded.free_port()
    process = start_cli(
        settings,
        "serve",
        "--dbt-interval",
        "3600",
        env={
            "EXTRACT_METRICS_PORT": str(port),
            "DBT_TARGET_PATH": str(tmp_path / "target"),
            "DBT_LOG_PATH": str(tmp_path),
            "DBT_STATE": str(tmp_path / "dbt-last-success"),
        },
    )
    try:
        send(settings, 10, start=900_000)  # landed by the service

        def built() -> bool:
            text = http_get(f"http://127.0.0.1:{port}/metrics")[1]
            failed = metric(text, 'extract_dbt_builds_total{outcome="failure"}')
            assert not failed, "the scheduled dbt build failed"
            return bool(metric(text, 'extract_dbt_builds_total{outcome="success"}'))

        wait_for(built, 600, "the scheduled dbt build", process)
        wait_for(
            lambda: pg.execute("select count(*) from raw.jobs").fetchone()[0] == 1510, 60, "10 served messages", process
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    assert process.returncode == 0
    send(settings, 4, partition=2, start=950_000)  # lag 4

    out = tmp_path / "report" / "report.html"
    run_cli(settings, "report", "--out", str(out))
    parser = Checks()
    parser.feed(out.read_text())
    checks = parser.values

    answer = pg.execute(
        "select revenue_rank, user_id, home_location_id, total_revenue, job_count"
        " from marts.non_local_top_revenue order by revenue_rank"
    ).fetchall()
    assert len(answer) == 5 and cells(checks, "answer") == as_text(answer)
    for kind, value in (("location", "LOC_1294"), ("service", "SERVICE_42")):
        rows = pg.execute(f"select * from marts.jobs_by_{kind}(%s)", (value,)).fetchall()
        assert rows and cells(checks, f"lookup_{kind}") == as_text(rows)
    for layer in ("raw", "staging", "marts"):
        # A day partition's rows are already counted through its partitioned table.
        tables = pg.execute(
            "select c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
            " where n.nspname = %s and c.relkind in ('r', 'p', 'v') and not c.relispartition",
            (layer,),
        ).fetchall()
        total = sum(pg.execute(f'select count(*) from {layer}."{name}"').fetchone()[0] for (name,) in tables)
        assert checks[f"layer:{layer}"] == f"{total:,}"
    quarantine = pg.execute(
        "select source_name, quarantine_reason, count(*) from staging.quarantined_records group by 1, 2"
    ).fetchall()
    assert sorted(cells(checks, "quarantine")) == sorted(as_text(quarantine))
    assert checks["quarantined"] == f"{sum(n for _, _, n in quarantine):,}"
    assert checks["total_lag"] == "4"
    # serve consumes every Kafka source: the jobs topic lags by the 4 messages sent since, payments by none
    rows = cells(checks, "lag")
    assert {(int(p), int(n)) for topic, p, _, _, n in rows if topic == settings.kafka_topic} == {(0, 0), (1, 0), (2, 4)}
    assert {topic for topic, *_ in rows} == {settings.kafka_topic, f"{settings.kafka_topic}_payments"}
    assert all(n == "0" for topic, *_, n in rows if topic != settings.kafka_topic)
    revenue = pg.execute(
        "select location_id, sum(revenue) from marts.jobs group by 1 order by 2 desc, 1 limit 15"
    ).fetchall()
    bars = {key.split(":", 1)[1]: Decimal(value) for key, value in checks.items() if key.startswith("revenue:")}
    assert bars == {location: total for location, total in revenue}
    runs = [key for key in checks if key.startswith("throughput:")]
    assert len(runs) == pg.execute("select count(*) from raw.extract_runs where messages > 0").fetchone()[0] == 2

    browser = [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'chromium'}"]
    dom = subprocess.run(
        [*browser, "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "<svg" in dom and "jobs-elt pipeline report" in dom and answer[0][1] in dom
    shot = tmp_path / "report.png"
    subprocess.run(
        [*browser, "--hide-scrollbars", "--window-size=1200,1600", f"--screenshot={shot}", out.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    width, height, colours = png_size_and_colours(shot)
    assert (width, height) == (1200, 1600) and colours > 20, "the page rendered as more than a blank canvas"
