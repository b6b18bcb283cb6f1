"""The service's dbt scheduler builds when new raw rows land, selecting only what they affect, and builds
everything on its interval; checked against a real database, with dbt itself replaced by a recorder (what
dbt then does with the selection is dbt's, and the e2e and fault suites run it for real)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from extract.core import db
from extract.core.settings import Settings
from extract.operations.build_trigger import selection
from extract.operations.dbt_build import steps
from extract.operations.dbt_runner import dbt_environment
from extract.operations.service import BUILD_VARS, DbtScheduler, Metrics, ServiceSettings

NO_AUDIT_OR_UNIT_TESTS = ["--exclude", "tag:audit", "resource_type:unit_test"]


class RecordingScheduler(DbtScheduler):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.calls: list[list[str]] = []

    def build_once(self, kind: str = "build", select: list[str] | tuple[str, ...] = ()) -> bool:
        assert kind == "build", "the audit is off in these tests"
        self.calls.append(list(select))
        return True


def land(pg: psycopg.Connection, table: str, offset: int) -> None:
    insert = sql.SQL("insert into {} (kafka_topic, kafka_partition, kafka_offset) values ('t', 0, %s)")
    pg.execute(insert.format(db.table_identifier(table)), (offset,))


def wait_calls(scheduler: RecordingScheduler, count: int, timeout: float = 10.0) -> list[list[str]]:
    deadline = time.monotonic() + timeout
    while len(scheduler.calls) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return scheduler.calls


def test_new_rows_trigger_a_build_of_what_they_affect(settings: Settings, pg: psycopg.Connection) -> None:
    config = settings.sources()
    with db.connect(settings) as conn:
        db.ensure_raw_schema(conn, config)
    pg.commit()
    stop = threading.Event()
    service = ServiceSettings(dbt_build_interval_s=3600, dbt_poll_s=0.05, dbt_audit_interval_s=0)
    scheduler = RecordingScheduler(settings, service, Metrics(), stop, config=config)
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    try:
        assert wait_calls(scheduler, 1) == [[]]  # everything, at start
        time.sleep(0.5)
        assert len(scheduler.calls) == 1, "no new rows, no build before the interval"
        land(pg, "raw.jobs", 0)
        assert wait_calls(scheduler, 2)[1] == ["--select", "source:kafka.jobs+", *NO_AUDIT_OR_UNIT_TESTS]
        with pg.transaction():  # both at once, or a poll in between would see them apart
            land(pg, "raw.payments", 0)
            land(pg, "raw.jobs", 1)
        assert wait_calls(scheduler, 3)[2] == [
            "--select",
            "source:kafka.jobs+",
            "source:kafka.payments+",
            *NO_AUDIT_OR_UNIT_TESTS,
        ]
        time.sleep(0.5)
        assert len(scheduler.calls) == 3
    finally:
        stop.set()
        thread.join(10)


def test_a_full_build_comes_on_the_interval_without_new_rows(settings: Settings, pg: psycopg.Connection) -> None:
    stop = threading.Event()
    service = ServiceSettings(dbt_build_interval_s=0.3, dbt_poll_s=0.05, dbt_audit_interval_s=0)
    scheduler = RecordingScheduler(settings, service, Metrics(), stop, config=settings.sources())
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    try:
        assert wait_calls(scheduler, 3)[:3] == [[], [], []]
    finally:
        stop.set()
        thread.join(10)


def test_selection_names_dbt_sources() -> None:
    config = Settings().sources()
    assert selection([config.get("jobs"), config.get("users")]) == [
        "--select",
        "source:files.users+",
        "source:kafka.jobs+",
        *NO_AUDIT_OR_UNIT_TESTS,
    ]
    assert selection([]) == []


def test_a_triggered_build_runs_the_selection_unless_a_rule_changed(tmp_path: Path) -> None:
    chosen = selection([Settings().sources().get("jobs")])
    assert steps([], chosen, tmp_path) == [chosen]
    assert steps([], [], tmp_path) == [["--selector", "scheduled_build"]]  # a full build
    # After a rule change: everything else as usual, then what the change touches from scratch; the
    # selection by new rows gives way (those rows are in the rebuild).
    rest, rebuilt = steps(["stg_kafka__job_events"], chosen, tmp_path)
    assert rest == ["--state", str(tmp_path), "--exclude", "state:modified+", *NO_AUDIT_OR_UNIT_TESTS[1:]]
    assert rebuilt == [
        "--state",
        str(tmp_path),
        "--select",
        "state:modified+",
        *NO_AUDIT_OR_UNIT_TESTS,
        "--full-refresh",
    ]
    assert BUILD_VARS == {"test_scope": "recent"}


def test_every_dbt_child_gets_the_connection_but_not_dbt_state(monkeypatch: pytest.MonkeyPatch) -> None:
    # dbt would read DBT_STATE as --state on every command; the builds that compare pass it themselves.
    monkeypatch.setenv("DBT_STATE", "/somewhere/dbt-last-success")
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    settings = Settings.from_env({"PGHOST": "db.example", "PGDATABASE": "warehouse"}, use_state=False)
    env = dbt_environment(settings)
    assert "DBT_STATE" not in env and env["SOMETHING_ELSE"] == "kept"
    assert env.items() >= settings.dbt_env().items()
