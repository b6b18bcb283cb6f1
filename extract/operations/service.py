"""`python -m extract serve`: the extractor as a long-running service, with Prometheus metrics, a health
endpoint and `dbt build` whenever new rows have landed (only what they affect), plus a full build every
DBT_BUILD_INTERVAL_S; every build is `make build`'s (dbt_build.py), so a rule change reaches old rows;
`python -m extract schedule` is the dbt scheduler alone.

HTTP on EXTRACT_METRICS_HOST:EXTRACT_METRICS_PORT (default 127.0.0.1:9108; 0.0.0.0 in a container):
  GET|HEAD /metrics   Prometheus text format
  GET|HEAD /health    200 {"status": "ok", ...} when healthy, else 503 with the reasons and every check

Checks: the database answers; when extracting, the broker answers the consumer's heartbeats and the
consumer has joined its group and polled within EXTRACT_HEALTH_POLL_S (default 60 s); when building,
the last dbt build succeeded. /health turns unhealthy once a check has failed for longer than
EXTRACT_HEALTH_GRACE_S (default 20 s), so a blip does not flap it. SIGTERM/SIGINT stop it cleanly: the
current batch commits, a running dbt build is interrupted (dbt cancels its queries), the consumer
leaves the group."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from psycopg import sql

from extract.core import db
from extract.core.settings import Settings, env_float, env_int
from extract.core.sources_config import KafkaSource, SourcesConfig
from extract.landing.observers import ExtractObserver
from extract.operations.build_trigger import NewRows, selection
from extract.operations.dbt_build import BuildResult, Dbt, Unchanged, build_locked, rule_change_message
from extract.operations.dbt_runner import dbt_lock
from extract.operations.health import Health

if TYPE_CHECKING:
    from kafka import TopicPartition

    from extract.landing.kafka_extractor import KafkaExtractor
    from extract.landing.raw_sink import BatchResult

log = logging.getLogger(__name__)

BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FAILED_BUILD_PAUSE_S = 30.0
# The service's builds: make build's defaults (TEST_SCOPE=recent, the location of dbt_project.yml)
BUILD_VARS = {"test_scope": "recent"}


@dataclass(frozen=True)
class ServiceSettings:
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108
    dbt_build_interval_s: float = 300.0
    # the full check (every test on every row): nightly by default, 0 = never
    dbt_audit_interval_s: float = 86400.0
    # Build as soon as new raw rows are seen (looked for every dbt_poll_s), not only every interval.
    dbt_build_on_new_rows: bool = True
    dbt_poll_s: float = 2.0
    health_poll_s: float = 60.0
    # `python -m extract retention` in the service: at start, then every this many seconds; 0 turns it off.
    retention_interval_s: float = 3600.0
    health_grace_s: float = 20.0
    dbt_project_dir: Path = Path("dbt_project")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServiceSettings:
        env = os.environ if env is None else env
        return cls(
            metrics_host=env.get("EXTRACT_METRICS_HOST") or cls.metrics_host,
            metrics_port=env_int(env, "EXTRACT_METRICS_PORT", cls.metrics_port, minimum=0, maximum=65535),
            dbt_build_interval_s=env_float(env, "DBT_BUILD_INTERVAL_S", cls.dbt_build_interval_s),
            dbt_audit_interval_s=env_float(env, "DBT_AUDIT_INTERVAL_S", cls.dbt_audit_interval_s),
            dbt_build_on_new_rows=(env.get("DBT_BUILD_ON_NEW_ROWS") or "1").lower() not in ("0", "false", "no"),
            dbt_poll_s=env_float(env, "DBT_BUILD_POLL_S", cls.dbt_poll_s, minimum=0.1),
            health_poll_s=env_float(env, "EXTRACT_HEALTH_POLL_S", cls.health_poll_s, minimum=0.1),
            retention_interval_s=env_float(env, "RETENTION_INTERVAL_S", cls.retention_interval_s),
            health_grace_s=env_float(env, "EXTRACT_HEALTH_GRACE_S", cls.health_grace_s),
            dbt_project_dir=Path(env.get("DBT_PROJECT_DIR") or cls.dbt_project_dir),
        )


class Metrics(ExtractObserver):
    """Prometheus metrics of the extractor and the scheduler, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter("extract_messages_consumed", "Kafka messages consumed", ["topic"], registry=r)
        self.bytes = Counter("extract_bytes_consumed", "Key + value bytes consumed", ["topic"], registry=r)
        self.rows = Counter("extract_rows_inserted", "New rows landed in raw (replays add none)", ["topic"], registry=r)
        self.batches = Counter("extract_batches", "Batches committed to Postgres", registry=r)
        self.batch_seconds = Histogram(
            "extract_batch_duration_seconds",
            "Wall time to write one batch and its offsets in one transaction",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "extract_consumer_lag", "Messages behind the partition's high watermark", ["topic", "partition"], registry=r
        )
        self.last_commit = Gauge(
            "extract_last_commit_timestamp_seconds", "Unix time of the last batch committed to Postgres", registry=r
        )
        self.failures = Counter(
            "extract_failures",
            "Failures by kind: db_error (retried), run (extractor stopped by an error), dbt_build, dbt_audit,"
            " retention",
            ["kind"],
            registry=r,
        )
        self.quarantined = Gauge(
            "extract_quarantined_records",
            "Rows in staging.quarantined_records, as of the last dbt build",
            ["source", "reason"],
            registry=r,
        )
        self.dbt_builds = Counter("extract_dbt_builds", "dbt build runs by outcome", ["outcome"], registry=r)
        self.dbt_seconds = Gauge("extract_dbt_build_duration_seconds", "Duration of the last dbt build", registry=r)
        self.last_dbt_build = Gauge(
            "extract_last_dbt_build_timestamp_seconds", "Unix time the last successful dbt build ended", registry=r
        )
        self.dbt_audits = Counter(
            "extract_dbt_audits", "dbt audit runs (every test on every row) by outcome", ["outcome"], registry=r
        )
        self.healthy = Gauge("extract_healthy", "1 when the last health check passed", registry=r)
        self.check_ok = Gauge(
            "extract_health_check_ok", "1 when this check of /health passes right now (no grace)", ["check"], registry=r
        )
        self.raw_rows = Gauge(
            "extract_raw_rows",
            "Rows in each source's raw table (labelled like the quarantine), as of the last dbt build",
            ["source"],
            registry=r,
        )
        # process_start_time_seconds and friends: the alert rules measure "nothing landed" from the start.
        ProcessCollector(registry=r)
        for kind in ("db_error", "run", "dbt_build", "dbt_audit", "retention"):
            self.failures.labels(kind)
        for outcome in ("success", "failure"):
            self.dbt_builds.labels(outcome)
            self.dbt_audits.labels(outcome)

    def on_batch(
        self,
        extractor: KafkaExtractor,
        polled: Mapping[TopicPartition, Sequence[Any]],
        result: BatchResult,
        seconds: float,
    ) -> None:
        per_topic: dict[str, int] = {}
        for tp, records in polled.items():
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + len(records)
        for topic, count in per_topic.items():
            self.messages.labels(topic).inc(count)
        if len(per_topic) == 1:
            topic = next(iter(per_topic))
            self.bytes.labels(topic).inc(result.payload_bytes)
            self.rows.labels(topic).inc(result.inserted)
        else:  # several topics in one batch: bytes are counted per message
            for tp, records in polled.items():
                self.bytes.labels(tp.topic).inc(sum(len(m.value or b"") + len(m.key or b"") for m in records))
            for topic, count in per_topic.items():
                self.rows.labels(topic).inc(result.inserted * count / max(result.messages, 1))
        self.batches.inc()
        self.batch_seconds.observe(seconds)
        self.last_commit.set(time.time())

    def on_poll(self, extractor: KafkaExtractor) -> None:
        for tp, (position, highwater) in extractor.partition_positions().items():
            if highwater is not None:
                self.lag.labels(tp.topic, str(tp.partition)).set(max(highwater - position, 0))

    def on_db_error(self, extractor: KafkaExtractor, what: str, error: BaseException) -> None:
        self.failures.labels("db_error").inc()

    def on_end(self, extractor: KafkaExtractor, error: BaseException | None) -> None:
        if error is not None:
            self.failures.labels("run").inc()

    def record_health(self, healthy: bool, body: Mapping[str, Any]) -> None:
        self.healthy.set(1 if healthy else 0)
        for name, check in body["checks"].items():
            self.check_ok.labels(name).set(1 if check["ok"] else 0)

    def refresh_quarantine(self, settings: Settings) -> None:
        try:
            with db.connect(settings, autocommit=True) as conn:
                if not conn.execute("select to_regclass('staging.quarantined_records') is not null").fetchone()[0]:
                    return
                rows = conn.execute(
                    "select source_name, quarantine_reason, count(*) from staging.quarantined_records group by 1, 2"
                ).fetchall()
                raw_rows = _raw_row_counts(conn, settings.sources())
        except psycopg.errors.InsufficientPrivilege:
            log.info("this role may not read staging.quarantined_records; quarantine metrics come from the scheduler")
            return
        except psycopg.Error as error:
            log.warning("could not count the quarantine: %s", " ".join(str(error).split()))
            return
        self.quarantined.clear()
        for source, reason, count in rows:
            self.quarantined.labels(source, reason).set(count)
        for source, count in raw_rows.items():
            self.raw_rows.labels(source).set(count)


def _raw_row_counts(conn: psycopg.Connection, config: SourcesConfig) -> dict[str, int]:
    """Rows per raw table, keyed by the quarantine's source label, so that an alert can divide the two."""
    counts: dict[str, int] = {}
    for source in config.sources:
        label = source.dbt.quarantine_source_name or (
            f"{'kafka' if source.kind == 'kafka' else 'files'}.{source.raw_table.rpartition('.')[2]}"
        )
        if conn.execute("select to_regclass(%s) is not null", (source.raw_table,)).fetchone()[0]:
            query = sql.SQL("select count(*) from {}").format(db.table_identifier(source.raw_table))
            counts[label] = conn.execute(query).fetchone()[0]
    return counts


def start_http(
    service: ServiceSettings, metrics: Metrics, health: Health
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._send(*self._answer())

        def do_HEAD(self) -> None:  # load balancers and probes: GET's status and headers, no body
            self._send(*self._answer(), with_body=False)

        def _answer(self) -> tuple[int, bytes, str]:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                metrics.record_health(*health.report())
                return 200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST
            if path in ("/health", "/healthz"):
                healthy, body = health.report()
                metrics.record_health(healthy, body)
                return 200 if healthy else 503, json.dumps(body).encode(), "application/json"
            return 404, b"not found: try /metrics or /health\n", "text/plain"

        def _send(self, code: int, body: bytes, content_type: str, *, with_body: bool = True) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http: " + format, *args)

    server = ThreadingHTTPServer((service.metrics_host, service.metrics_port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    log.info(
        "metrics on http://%s:%d/metrics, health on /health",
        service.metrics_host,
        server.server_address[1],
        extra={"fields": {"metrics_port": server.server_address[1]}},
    )
    return server, thread


class DbtScheduler:
    """`dbt build` of everything now and every `interval_s` seconds (from the end of the last full build),
    in between, as soon as new rows have landed, a build of only what they affect, and the audit (every test
    on every row) when `dbt_audit_interval_s` has passed since the last one began; all under the database's
    dbt lock, so they never overlap each other or a `make build`. Every build is dbt_build's: after a rule
    change it rebuilds what the change touches, in place of a selection by new rows, and a successful one
    saves the manifest the next compares with."""

    def __init__(
        self,
        settings: Settings,
        service: ServiceSettings,
        metrics: Metrics,
        stop: threading.Event,
        *,
        health: Health | None = None,
        config: SourcesConfig | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.service = service
        self.metrics = metrics
        self.stop = stop
        self.health = health
        self.builds = 0
        self.audits = 0
        self.last_audit_at: float | None = None
        self.dbt = Dbt(settings, service.dbt_project_dir, stop=stop)
        self.unchanged = Unchanged()

    def audit_args(self) -> list[str]:
        # its own target path: other vars than the builds', and sharing one would re-parse each time
        target = ["--target-path", str(self.dbt.project / "target" / "audit")]
        return ["--selector", "audit", *target, "--vars", "{test_scope: all}"]

    def build_once(self, kind: str = "build", select: Sequence[str] = ()) -> bool:
        """One dbt build (of everything, or of `select`: dbt node selection arguments) or the audit."""
        with dbt_lock(self.settings, self.stop) as held:
            if not held:  # stopped while another build held the lock
                return False
            what = " ".join(select) if select else "everything"
            log.info(
                "dbt %s starting: %s", kind, what, extra={"fields": {"event": f"dbt_{kind}_start", "select": what}}
            )
            if kind == "audit":
                began = time.monotonic()
                call = self.dbt("test", *self.audit_args())
                result = BuildResult(call.returncode == 0, call.returncode, (), call.output, time.monotonic() - began)
            else:
                state = self.settings.dbt_state_dir
                result = build_locked(
                    self.dbt, state, BUILD_VARS, select, announce=self._rule_change, unchanged=self.unchanged
                )
            return self._record(kind, result)

    @staticmethod
    def _rule_change(stale: Sequence[str]) -> None:
        fields = {"event": "dbt_rule_change", "models": list(stale)}
        log.info(rule_change_message(stale), extra={"fields": fields})

    def _record(self, kind: str, result: BuildResult) -> bool:
        ok, code, seconds = result.ok, result.returncode, result.seconds
        fields: dict[str, object] = {"event": f"dbt_{kind}_end", "returncode": code, "seconds": round(seconds, 2)}
        if result.stale:
            fields["rebuilt"] = list(result.stale)
        if kind == "audit":
            self.audits += 1
            self.metrics.dbt_audits.labels("success" if ok else "failure").inc()
        else:
            self.builds += 1
            self.metrics.dbt_seconds.set(seconds)
            self.metrics.dbt_builds.labels("success" if ok else "failure").inc()
            if ok:
                self.metrics.last_dbt_build.set(time.time())
        if ok:
            log.info("dbt %s succeeded in %.1fs", kind, seconds, extra={"fields": fields})
        elif self.stop.is_set():
            log.info("dbt %s interrupted by shutdown", kind, extra={"fields": fields})
        else:
            self.metrics.failures.labels(f"dbt_{kind}").inc()
            tail = result.output.strip().splitlines()[-15:]
            log.error("dbt %s failed (exit %s):\n%s", kind, code, "\n".join(tail), extra={"fields": fields})
        if result.state_error:
            # the data is built; the next build compares with the older manifest and rebuilds once more
            log.error("dbt %s: %s", kind, result.state_error, extra={"fields": {"event": "dbt_state_not_saved"}})
        if kind == "build":
            if self.health is not None and not (self.stop.is_set() and not ok):
                self.health.on_dbt_build(ok)
            self.metrics.refresh_quarantine(self.settings)
        return ok

    def audit_due(self) -> bool:
        every = self.service.dbt_audit_interval_s
        return every > 0 and (self.last_audit_at is None or time.monotonic() - self.last_audit_at >= every)

    def run(self) -> None:
        watch = NewRows(self.settings, self.config or self.settings.sources())
        select: list[str] = []
        full_due = 0.0
        poll = self.service.dbt_poll_s if self.service.dbt_build_on_new_rows else self.service.dbt_build_interval_s
        while not self.stop.is_set():
            marks = watch.read()  # what this build covers; rows landing while it runs trigger the next
            ok = self.build_once(select=select)
            if ok:
                watch.mark_built(marks)
            if not select:
                full_due = time.monotonic() + self.service.dbt_build_interval_s
            select = []
            if not self.stop.is_set() and self.audit_due():
                self.last_audit_at = time.monotonic()
                self.build_once("audit")
            # After a failure, new rows trigger a build again only after a pause, not on every poll.
            quiet_until = time.monotonic() + (0 if ok else min(self.service.dbt_build_interval_s, FAILED_BUILD_PAUSE_S))
            while not self.stop.wait(min(poll, max(full_due - time.monotonic(), 0))):
                if time.monotonic() >= full_due:
                    break
                if time.monotonic() < quiet_until or not self.service.dbt_build_on_new_rows:
                    continue
                changed = watch.changed(watch.read())
                if changed:
                    select = selection(changed)
                    break

    def interrupt(self) -> None:
        self.dbt.interrupt()


def run_retention(settings: Settings, service: ServiceSettings, metrics: Metrics, stop: threading.Event) -> None:
    """Retention on its own cadence: a failed pass is logged and counted, and the next one tries again."""
    from extract.operations.retention import apply_retention  # noqa: PLC0415

    while not stop.is_set():
        try:
            outcomes = apply_retention(settings, settings.sources().sources, settings.archive_dir)
            archived = sum(1 for outcome in outcomes if outcome.action == "archived")
            log.info(
                "retention: %d partition(s) archived, %d past retention kept",
                archived,
                len(outcomes) - archived,
                extra={"fields": {"event": "retention", "archived": archived, "kept": len(outcomes) - archived}},
            )
        except Exception as error:  # the service goes on; the next pass retries
            metrics.failures.labels("retention").inc()
            log.error("retention failed: %s", error, extra={"fields": {"event": "retention_failed"}})
        if stop.wait(service.retention_interval_s):
            break


def serve(
    settings: Settings,
    service: ServiceSettings,
    stop: threading.Event,
    *,
    sources: Sequence[KafkaSource] = (),
    config: SourcesConfig | None = None,
    run_dbt: bool = True,
) -> int:
    """Run the extractor (when `sources`) and the dbt scheduler (when `run_dbt` and the interval is > 0)
    until `stop` is set or the extractor fails; returns the exit code."""
    from extract.landing.kafka_extractor import run_kafka_sources  # noqa: PLC0415
    from extract.operations.audit import RunAudit  # noqa: PLC0415 - avoid an import cycle through cli

    metrics = Metrics()
    building = run_dbt and service.dbt_build_interval_s > 0
    health = Health(
        settings, service.health_poll_s, extracting=bool(sources), building=building, grace_s=service.health_grace_s
    )
    metrics.refresh_quarantine(settings)
    server, _ = start_http(service, metrics, health)
    scheduler = DbtScheduler(settings, service, metrics, stop, health=health, config=config)
    threads: list[threading.Thread] = []
    if building:
        threads.append(threading.Thread(target=scheduler.run, name="dbt-scheduler", daemon=True))
        log.info(
            "dbt build of everything every %.0fs%s",
            service.dbt_build_interval_s,
            f", and of what new rows affect as they land (checked every {service.dbt_poll_s:g}s)"
            if service.dbt_build_on_new_rows
            else "",
        )
    if sources and service.retention_interval_s > 0:
        retention = threading.Thread(
            target=run_retention, args=(settings, service, metrics, stop), name="retention", daemon=True
        )
        threads.append(retention)
        log.info("raw retention every %.0fs", service.retention_interval_s)
    failure: BaseException | None = None
    try:
        for thread in threads:
            thread.start()
        if sources:
            assert config is not None
            observers = [RunAudit(settings, "serve"), metrics, health]
            run_kafka_sources(settings, sources, until_end=False, stop=stop, config=config, observers=observers)
        else:
            stop.wait()
    except BaseException as error:
        failure = error
        raise
    finally:
        stop.set()
        scheduler.interrupt()
        for thread in threads:
            thread.join(60)
        server.shutdown()
        server.server_close()
        log.info("service stopped%s", f" after an error: {failure}" if failure else "")
    return 0
