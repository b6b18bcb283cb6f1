"""The service's dbt scheduler builds when new raw rows land, selecting only what they affect, and builds
everything on its interval; checked against a real database, with dbt itself replaced by a recorder (what
dbt then does with the selection is dbt's, and the e2e and fault suites run it for real)."""

from __future__ import annotations

import threading
import time

import psycopg
from psycopg import sql

from extract.core import db
from extract.core.settings import Settings
from extract.operations.build_trigger import selection
from extract.operations.service import DbtScheduler, Metrics, ServiceSettings

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


def test_a_triggered_build_runs_the_selection_in_place_of_the_scheduled_selector(settings: Settings) -> None:
    scheduler = DbtScheduler(settings, ServiceSettings(), Metrics(), threading.Event())
    chosen = selection([settings.sources().get("jobs")])
    command = scheduler.command(select=chosen)
    assert command[command.index("--select") :][: len(chosen)] == chosen
    assert "--selector" not in command
    assert command[command.index("--vars") + 1] == "{test_scope: recent}"
    assert "--selector" in scheduler.command()  # a full build: scheduled_build
    own = DbtScheduler(settings, ServiceSettings(), Metrics(), threading.Event(), ["--select", "stg_kafka__jobs"])
    assert "source:kafka.jobs+" not in own.command(select=chosen), "a caller's own --select wins"
