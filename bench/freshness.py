"""(10) Freshness under continuous load: a producer sends at a steady rate while `extract serve` lands the
topic and builds as new rows arrive; for every message, the time from its Kafka timestamp until marts.jobs
has been built past it. Its own module because it is the one item that runs the service end to end.

How "visible" is observed: every 0.5 s the bench reads marts.jobs' highest last_event_load_seq, so a
message counts as visible at the first observation at or past its raw load_seq (resolution 0.5 s). The
latency splits into landing (Kafka timestamp -> raw.loaded_at) and the rest (waiting for and running a
build); the service's own log gives each build's duration, which is what bounds the total."""

from __future__ import annotations

import bisect
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import PY, ROOT, RUN_DIR, WORK, Harness, log

TOPIC = "bench_fresh"
OBSERVE_EVERY_S = 0.5


def measure(harness: Harness, *, rate: int, seconds: float) -> dict[str, object]:
    """Send new job events to a fresh topic at `rate` msg/s for `seconds` while the service runs."""
    from extract.core import db  # noqa: PLC0415 - the bench process creates the raw layer up front
    from extract.core.settings import Settings  # noqa: PLC0415
    from extract.landing.producer import ensure_topic  # noqa: PLC0415
    from extract.local import embedded  # noqa: PLC0415
    from extract.sample_data.jobs import generate_files  # noqa: PLC0415

    # Enough distinct jobs for the whole run: a resent event would not move the marts' watermark.
    jobs = int(rate * seconds * 1.05) + 1000
    data = WORK / f"fresh-j{jobs}-s{harness.config.seed + 2}"
    if not (data / ".complete").exists():
        generate_files(data, users=2_000, jobs=jobs, seed=harness.config.seed + 2)
        (data / ".complete").touch()
    source = data / "jobs.kafka"

    database = harness.fresh_database("fresh")
    env = harness.env(database, TOPIC, "bench-fresh") | {
        "EXTRACT_METRICS_PORT": str(embedded.free_port()),
        "EXTRACT_METRICS_HOST": "127.0.0.1",
        # One full build at start, then only builds triggered by new rows for the whole run.
        "DBT_BUILD_INTERVAL_S": "86400",
        # The audit (every test on every row) runs on its own, nightly cadence, and holds the dbt lock while it
        # runs; its first run right after the first build would stall the builds measured here.
        "DBT_AUDIT_INTERVAL_S": "0",
        "DBT_BUILD_POLL_S": os.environ.get("DBT_BUILD_POLL_S", "1"),
        "DBT_PROFILES_DIR": str(ROOT / "dbt_project"),
        "DBT_TARGET_PATH": str(RUN_DIR / "fresh-target"),
        "DBT_LOG_PATH": str(RUN_DIR / "fresh-logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    settings = Settings.from_env(env, use_state=False)
    ensure_topic(settings)  # before the service subscribes, so it has the configured partitions
    with db.connect(settings) as conn:
        db.ensure_raw_schema(conn, settings.sources())
    service_log = RUN_DIR / "fresh-serve.log"
    with service_log.open("wb") as err:
        service = subprocess.Popen(
            [PY, "-m", "extract", "--log-format", "json", "serve"], env=env, cwd=ROOT, stderr=err, stdout=err
        )
    timeline: list[tuple[float, int]] = []
    try:
        first_build = _wait_for_build(service, service_log, timeline)
        log(f"(10) service up, first build done; producing {rate:,} msg/s for {seconds:.0f}s")
        producer = subprocess.Popen(
            [PY, "-m", "bench.freshness", str(source), TOPIC, str(rate), str(seconds)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        while producer.poll() is None:
            _observe(harness, database, timeline)
            time.sleep(OBSERVE_EVERY_S)
        sent = json.loads(producer.stdout.read().strip().splitlines()[-1]) if producer.stdout else {}
        # The tail: until the marts have caught up with everything landed (or two minutes pass).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with harness.connect(database) as conn:
                landed = conn.execute("select count(*), coalesce(max(load_seq), 0) from raw.jobs").fetchone()
            if landed[0] >= sent.get("messages", 0) and timeline and timeline[-1][1] >= landed[1]:
                break
            _observe(harness, database, timeline)
            time.sleep(OBSERVE_EVERY_S)
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(60)
        except subprocess.TimeoutExpired:
            service.kill()
    result = _latencies(harness, database, timeline, first_build)
    result.update(
        {
            "target_rate": rate,
            "seconds": seconds,
            "sent": sent,
            "builds": _builds(service_log),
            "poll_s": float(env["DBT_BUILD_POLL_S"]),
        }
    )
    harness.drop(database)
    log(
        f"(10) freshness: p50 {result['p50_s']:.1f}s, p95 {result['p95_s']:.1f}s over {result['messages']:,} msgs"
        f" (builds: {result['builds']['count']}, median {result['builds']['median_s']:.1f}s)"
    )
    return result


def _observe(harness: Harness, database: str, timeline: list[tuple[float, int]]) -> None:
    with harness.connect(database) as conn:
        if not conn.execute("select to_regclass('marts.jobs') is not null").fetchone()[0]:
            return
        mark = conn.execute("select coalesce(max(last_event_load_seq), 0) from marts.jobs").fetchone()[0]
    if not timeline or mark > timeline[-1][1]:
        timeline.append((time.time(), mark))


def _wait_for_build(service: subprocess.Popen[bytes], service_log: Path, timeline: list[tuple[float, int]]) -> float:
    """Wait for the service's first build (of everything, from empty) to end; the run measures from there."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise RuntimeError(f"extract serve exited with {service.returncode}; see {service_log}")
        if '"dbt_build_end"' in service_log.read_text(errors="replace"):
            timeline.append((time.time(), 0))
            return time.time()
        time.sleep(OBSERVE_EVERY_S)
    raise RuntimeError("the service's first dbt build did not finish within 15 minutes")


def _latencies(
    harness: Harness, database: str, timeline: list[tuple[float, int]], first_build: float
) -> dict[str, object]:
    with harness.connect(database) as conn:
        rows = conn.execute(
            "select load_seq, extract(epoch from kafka_timestamp)::float8, extract(epoch from loaded_at)::float8"
            " from raw.jobs where kafka_timestamp is not null order by load_seq"
        ).fetchall()
    marks = [mark for _, mark in timeline]
    visible, landing, missing = [], [], 0
    for load_seq, sent_at, loaded_at in rows:
        if sent_at < first_build:
            continue
        index = bisect.bisect_left(marks, load_seq)
        if index == len(marks):
            missing += 1
            continue
        visible.append(timeline[index][0] - sent_at)
        landing.append(loaded_at - sent_at)
    return {
        "messages": len(visible),
        "not_visible_at_end": missing,
        "p50_s": _percentile(visible, 50),
        "p95_s": _percentile(visible, 95),
        "max_s": max(visible, default=0.0),
        "landing_p50_s": _percentile(landing, 50),
        "landing_p95_s": _percentile(landing, 95),
        "observe_every_s": OBSERVE_EVERY_S,
    }


def _percentile(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _builds(path: Path) -> dict[str, object]:
    """The service's dbt builds, from its JSON log: how many, how long (the bound on freshness)."""
    durations, selective = [], 0
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "dbt_build_end":
            durations.append(float(record.get("seconds", 0)))
        if record.get("event") == "dbt_build_start" and record.get("select", "everything") != "everything":
            selective += 1
    return {
        "count": len(durations),
        "selective": selective,
        "median_s": statistics.median(durations) if durations else 0.0,
        "p95_s": _percentile(durations, 95),
        "max_s": max(durations, default=0.0),
    }


def child(path: str, topic: str, rate: int, seconds: float) -> None:
    """In the child: send the lines of `path` (cycled) at `rate` msg/s for `seconds`; one JSON line out."""
    from kafka import KafkaProducer  # noqa: PLC0415

    from extract.core.settings import Settings  # noqa: PLC0415
    from extract.landing.producer import ensure_topic, parse_line  # noqa: PLC0415

    settings = Settings.from_env()
    ensure_topic(settings)
    with open(path, "rb") as handle:
        messages = [parsed for parsed in map(parse_line, handle) if parsed is not None]
    producer = KafkaProducer(linger_ms=5, batch_size=256 * 1024, **settings.kafka_client_config())
    started = time.monotonic()
    sent = 0
    tick = 0.01
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            key, value = messages[sent % len(messages)]
            producer.send(topic, key=key, value=value)
            sent += 1
        time.sleep(tick)
    producer.flush()
    producer.close()
    print(json.dumps({"messages": sent, "seconds": time.monotonic() - started, "rate": sent / seconds}))


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
