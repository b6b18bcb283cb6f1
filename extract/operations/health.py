"""What the service's /health says: each check (database, broker, consumer, last dbt build) knows since
when it has been failing, and the service is unhealthy once one has failed for longer than the grace time
(EXTRACT_HEALTH_GRACE_S), with the reasons in plain words."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg

from extract.core.settings import Settings
from extract.landing.observers import ExtractObserver

if TYPE_CHECKING:
    from extract.landing.kafka_extractor import KafkaExtractor

DB_CHECK_CACHE_S = 5.0
# Heartbeats go out every second; a broker that has not answered one for this long is silent.
BROKER_SILENT_S = 5.0


class Health(ExtractObserver):
    """What /health reports. Each check knows since when it has been failing; the service is unhealthy
    once one has failed for longer than `grace_s`. The consumer and broker state come from the
    extractor's own thread, the dbt outcome from the scheduler's, the database is probed here."""

    def __init__(
        self,
        settings: Settings,
        poll_within_s: float,
        *,
        extracting: bool,
        building: bool = False,
        grace_s: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.poll_within_s = poll_within_s
        self.extracting = extracting
        self.building = building
        self.grace_s = grace_s
        self.clock = clock
        self.started = clock()
        self.last_poll: float | None = None
        self.assigned: list[str] = []
        self.joined = False
        self.running = extracting
        self.error: str | None = None
        self.broker_answered: dict[int, float | None] = {}  # per extractor (one per topic in worker_per_topic)
        self.dbt_failed_since: float | None = None
        self.dbt_builds = 0
        self._failing_since: dict[str, float] = {}
        self._db_checked_at: float | None = None
        self._db_ok = False
        self._db_error: str | None = None
        self._lock = threading.Lock()
        self._db_lock = threading.Lock()

    def on_poll(self, extractor: KafkaExtractor) -> None:
        self.last_poll = self.clock()
        self.joined = self.joined or extractor.joined
        self.assigned = [f"{tp.topic}[{tp.partition}]" for tp in sorted(extractor.partition_positions())]
        self.broker_answered[id(extractor)] = extractor.broker_answered_at()

    def on_end(self, extractor: KafkaExtractor, error: BaseException | None) -> None:
        self.running = False
        if error is not None:
            self.error = " ".join(str(error).split()) or type(error).__name__

    def on_dbt_build(self, ok: bool) -> None:
        """The scheduler's outcome of one build: a failure counts from the first failed build on."""
        self.dbt_builds += 1
        if ok:
            self.dbt_failed_since = None
        elif self.dbt_failed_since is None:
            self.dbt_failed_since = self.clock()

    def _database(self) -> tuple[bool, str | None]:
        with self._db_lock:
            if self._db_checked_at is None or self.clock() - self._db_checked_at >= DB_CHECK_CACHE_S:
                try:
                    with psycopg.connect(
                        host=self.settings.pg_host,
                        port=self.settings.pg_port,
                        user=self.settings.pg_user,
                        password=self.settings.pg_password or None,
                        dbname=self.settings.pg_database,
                        connect_timeout=3,
                        application_name="jobs-elt-health",
                    ) as conn:
                        conn.execute("select 1")
                    self._db_ok, self._db_error = True, None
                except psycopg.Error as error:
                    self._db_ok, self._db_error = False, " ".join(str(error).split())
                self._db_checked_at = self.clock()
            return self._db_ok, self._db_error

    def _failing_for(self, name: str, ok: bool, since: float | None = None) -> float | None:
        """Seconds the check has been failing (None when it passes); `since` when the check knows."""
        now = self.clock()
        if ok:
            self._failing_since.pop(name, None)
            return None
        began = since if since is not None else self._failing_since.setdefault(name, now)
        return max(now - began, 0.0)

    def _broker(self) -> tuple[dict[str, Any], str | None]:
        now = self.clock()
        answers = list(self.broker_answered.values()) or [None]
        # The stalest member counts; before its first answer, the wait counts from the service's start.
        oldest = min(self.started if answered is None else answered for answered in answers)
        age = now - oldest
        ok = None not in answers and age <= BROKER_SILENT_S
        failing = self._failing_for("broker", ok, None if ok else oldest)
        check = {"ok": ok, "last_answer_age_s": round(age, 3), "failing_for_s": _rounded(failing)}
        servers = self.settings.kafka_bootstrap_servers
        return check, None if failing is None else f"the broker at {servers} has not answered for {age:.0f}s"

    def report(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            return self._report()

    def _report(self) -> tuple[bool, dict[str, Any]]:
        reasons: list[tuple[float | None, str]] = []
        db_ok, db_error = self._database()
        failing = self._failing_for("database", db_ok)
        checks: dict[str, Any] = {"database": {"ok": db_ok, "error": db_error, "failing_for_s": _rounded(failing)}}
        where = f"{self.settings.pg_host}:{self.settings.pg_port}/{self.settings.pg_database}"
        reasons.append((failing, f"the database {where} is unreachable: {db_error}"))
        if self.extracting:
            checks["broker"], broker_reason = self._broker()
            reasons.append((checks["broker"]["failing_for_s"], broker_reason or ""))
            age = None if self.last_poll is None else self.clock() - self.last_poll
            polled = age is not None and age <= self.poll_within_s
            consumer_ok = self.running and self.joined and polled
            failing = self._failing_for("consumer", consumer_ok)
            checks["consumer"] = {
                "ok": consumer_ok,
                "running": self.running,
                "joined_group": self.joined,
                "assigned": self.assigned,
                "last_poll_age_s": None if age is None else round(age, 3),
                "error": self.error,
                "failing_for_s": _rounded(failing),
            }
            state = "stopped: " + (self.error or "no error") if not self.running else "has not polled or joined"
            reasons.append((failing, f"the consumer {state}"))
        if self.building:
            dbt_ok = self.dbt_failed_since is None
            failing = self._failing_for("dbt_build", dbt_ok, self.dbt_failed_since)
            checks["dbt_build"] = {"ok": dbt_ok, "builds": self.dbt_builds, "failing_for_s": _rounded(failing)}
            reasons.append((failing, "the last dbt build failed (its log tail is in the service's log)"))
        beyond = [
            f"{text} (failing for {seconds:.0f}s, grace {self.grace_s:g}s)"
            for seconds, text in reasons
            if seconds is not None and seconds >= self.grace_s
        ]
        healthy = not beyond
        body = {"status": "ok" if healthy else "unhealthy", "reasons": beyond, "grace_s": self.grace_s}
        return healthy, {**body, "checks": checks}


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
