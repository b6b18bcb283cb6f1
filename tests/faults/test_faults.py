"""Fault injection: real extractor processes, a real broker and a real Postgres, and the faults a
pipeline meets in production (kill -9, a dropped or restarted database, a frozen broker, a dead
consumer-group member, dbt running while data streams in, a crash in the middle of a users load).

Every case produces a known set of messages (the producer's acknowledgements give each message's
partition and offset), injects its fault, lets the pipeline recover and then checks that raw holds exactly
the produced set, compared by (partition, offset) and a sha256 of each value, and that the counts reconcile
through dbt: raw = staged + quarantined. While the faults happen, every committed snapshot must be whole:
each partition's rows are exactly the offsets below the offset stored with them (no partial batch).

`make faults` runs this module alone and prints the table the tests record (tests/faults/fault_report.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaProducer

from extract.core import db
from extract.core.settings import Settings
from extract.landing.producer import ensure_topic, parse_line
from extract.local import embedded
from extract.sample_data.jobs import generate_files
from tests.conftest import ROOT, env_for, run_cli, run_dbt
from tests.support.processes import alive, children

pytestmark = pytest.mark.faults

RESULTS_PATH = Path(os.environ.get("FAULTS_RESULTS", ROOT / ".state" / "fault-results.json"))
SEED = int(os.environ.get("FAULTS_SEED", "20240611"))
JOBS = 30_000
KILLS = 20
APP_NAME = "jobs-elt"

_results: list[dict[str, object]] = []


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def fault_report() -> Iterator[None]:
    """Write what the cases recorded, for `make faults` (tests/faults/fault_report.py) to print."""
    yield
    if _results:
        # The latest result of every case: a run of some cases replaces their rows and keeps the others.
        kept: list[dict[str, object]] = []
        if RESULTS_PATH.is_file():
            ran = {result["test"] for result in _results}
            kept = [case for case in json.loads(RESULTS_PATH.read_text())["cases"] if case.get("test") not in ran]
        RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_PATH.write_text(json.dumps({"seed": SEED, "cases": kept + _results}, indent=2) + "\n")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tuple[bytes | None, bytes]], Path]:
    """The generator's messy job events (about 2% of them earn a quarantine reason) and its users file."""
    out = tmp_path_factory.mktemp("faults-data")
    summary = generate_files(out, users=1_000, jobs=JOBS, seed=SEED % 1000)
    with summary.jobs_path.open("rb") as handle:
        messages = [parsed for parsed in map(parse_line, handle) if parsed is not None]
    return messages, summary.users_path


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every process a test starts; whatever is still running at the end is killed (by its pid)."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


# -- producing and checking ----------------------------------------------------------------------------


def digest(value: bytes | None) -> str:
    return "null" if value is None else hashlib.sha256(value).hexdigest()


class Produced(dict[tuple[int, int], str]):
    """(partition, offset) -> sha256 of the value, from the broker's acknowledgements."""

    def send(self, bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=20,
            batch_size=512 * 1024,
            retries=0,
            enable_idempotence=False,
        )
        try:
            futures = [(producer.send(topic, key=key, value=value), value) for key, value in messages]
            producer.flush(120)
            for future, value in futures:
                metadata = future.get(60)
                self[(metadata.partition, metadata.offset)] = digest(value)
        finally:
            producer.close(10)
        self.check_contiguous()

    def check_contiguous(self) -> None:
        # The snapshot invariant below relies on each partition's offsets being 0, 1, 2, ...
        for partition in {p for p, _ in self}:
            offsets = sorted(o for p, o in self if p == partition)
            assert offsets == list(range(len(offsets))), f"partition {partition}: offsets are not 0..n-1"


def conninfo(settings: Settings) -> dict[str, object]:
    return {
        "host": settings.pg_host,
        "port": settings.pg_port,
        "user": settings.pg_user,
        "password": settings.pg_password or None,
        "dbname": settings.pg_database,
        "connect_timeout": 5,
        "autocommit": True,
    }


def query(settings: Settings, sql: str, params: object = None) -> list[tuple[object, ...]]:
    """One statement on a fresh connection: the database may have been restarted under us."""
    with psycopg.connect(**conninfo(settings)) as conn:
        return conn.execute(sql, params).fetchall()


def progress(settings: Settings) -> int:
    """Sum of the next offsets stored for the test's topic: it moves exactly when a batch commits."""
    try:
        return int(
            query(
                settings,
                "select coalesce(sum(next_offset), 0) from raw.kafka_offsets where kafka_topic = %s",
                (settings.kafka_topic,),
            )[0][0]
        )
    except psycopg.errors.UndefinedTable:
        return 0
    except psycopg.OperationalError:
        return -1


def partition_offsets(settings: Settings) -> dict[int, int]:
    rows = query(
        settings,
        "select kafka_partition, next_offset from raw.kafka_offsets where kafka_topic = %s",
        (settings.kafka_topic,),
    )
    return {int(p): int(o) for p, o in rows}


_SNAPSHOT = """
with
rows as (
    select kafka_partition, count(*) as n, min(kafka_offset) as lo, max(kafka_offset) as hi
    from {table} where kafka_topic = %(topic)s group by kafka_partition
),
stored as (
    select kafka_partition, next_offset from raw.kafka_offsets where kafka_topic = %(topic)s
)
select kafka_partition, rows.n, rows.lo, rows.hi, stored.next_offset
from rows full join stored using (kafka_partition)
"""


def assert_whole_snapshot(settings: Settings, table: str = "raw.jobs") -> None:
    """In one committed snapshot, every partition's rows are exactly offsets 0 .. next_offset - 1: no
    partial batch, no rows ahead of or behind their stored offset."""
    try:
        rows = query(settings, _SNAPSHOT.format(table=table), {"topic": settings.kafka_topic})
    except (psycopg.errors.UndefinedTable, psycopg.OperationalError):
        return
    for partition, n, lo, hi, next_offset in rows:
        assert next_offset is not None and (n or 0) == next_offset, (
            f"partition {partition}: {n} rows, stored {next_offset}"
        )
        if n:
            assert (lo, hi) == (0, next_offset - 1), f"partition {partition}: rows {lo}..{hi}, stored {next_offset}"


@dataclasses.dataclass
class Tally:
    produced: int
    landed: int
    lost: int
    duplicated: int
    mismatched: int


def tally(settings: Settings, produced: dict[tuple[int, int], str], table: str = "raw.jobs") -> Tally:
    rows = query(
        settings,
        f"select kafka_partition, kafka_offset, encode(sha256(coalesce(message_value_bytes,"
        f" convert_to(message_value, 'UTF8'))), 'hex'), message_value is null and message_value_bytes is null"
        f" from {table} where kafka_topic = %s",
        (settings.kafka_topic,),
    )
    positions = Counter((p, o) for p, o, _, _ in rows)
    landed_hashes = Counter("null" if tombstone else h for _, _, h, tombstone in rows)
    produced_hashes = Counter(produced.values())
    duplicated = max(
        sum(n - 1 for n in positions.values()) + sum(n for key, n in positions.items() if key not in produced),
        sum(max(0, n - produced_hashes[h]) for h, n in landed_hashes.items()),
    )
    mismatched = sum(
        1 for p, o, h, tombstone in rows if (p, o) in produced and produced[(p, o)] != ("null" if tombstone else h)
    )
    return Tally(
        produced=len(produced),
        landed=len(rows),
        lost=sum(1 for key in produced if key not in positions),
        duplicated=duplicated,
        mismatched=mismatched,
    )


def assert_exactly_once(settings: Settings, produced: dict[tuple[int, int], str]) -> Tally:
    result = tally(settings, produced)
    assert (result.lost, result.duplicated, result.mismatched) == (0, 0, 0), result
    assert result.landed == result.produced, result
    assert_whole_snapshot(settings)
    return result


def reconcile_through_dbt(settings: Settings, tmp_path: Path, source: str, *, build: bool = True) -> int:
    """Build the per-row staging models and the quarantine with dbt, run dbt's reconciliation test on the
    raw source, check raw = staged + quarantined ourselves too, and return the quarantined count."""
    if build:
        run_dbt(
            settings,
            tmp_path,
            "build",
            "--select",
            "+quarantined_records",
            f"source:{source}",
            "--indirect-selection",
            "cautious",
            "--exclude-resource-type",
            "unit_test",
        )
    raw_table, staged, name = {
        "kafka.jobs": ("raw.jobs", "staging.stg_kafka__job_events", "kafka.jobs"),
        "files.users": ("raw.users", "staging.stg_files__user_lines", "files.users"),
    }[source]
    raw, per_row, usable, quarantined = query(
        settings,
        f"select (select count(*) from {raw_table}), (select count(*) from {staged}),"
        f" (select count(*) from {staged} where quarantine_reason is null),"
        " (select count(*) from staging.quarantined_records where source_name = %s)",
        (name,),
    )[0]
    assert per_row == raw, (raw, per_row)
    assert raw == usable + quarantined, (raw, usable, quarantined)
    assert quarantined > 0, "the data set is meant to exercise the quarantine"
    return int(quarantined)


def record(case: str, result: Tally, quarantined: int, recovery_s: float, detail: str) -> None:
    _results.append(
        {
            "test": os.environ.get("PYTEST_CURRENT_TEST", case).split(" ")[0],
            "case": case,
            "produced": result.produced,
            "landed": result.landed,
            "lost": result.lost,
            "duplicated": result.duplicated,
            "quarantined": quarantined,
            "recovery_s": round(recovery_s, 1),
            "detail": detail,
        }
    )


# -- processes -------------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def start_extractor(
    settings: Settings,
    log_path: Path,
    processes: list[subprocess.Popen[bytes]],
    *,
    until_end: bool = True,
    command: tuple[str, ...] = ("jobs",),
    **extra_env: str,
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "extract", *command, *(["--until-end"] if until_end else [])]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            args,
            env=env_for(settings) | extra_env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    processes.append(process)
    return process


def kill9(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads included (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends(settings: Settings, condition: str = "true") -> list[tuple[object, ...]]:
    """The extractor's server processes (pid, state, query) in the test's database."""
    try:
        return query(
            settings,
            "select pid, state, query from pg_stat_activity"
            f" where datname = %s and application_name = %s and pid <> pg_backend_pid() and ({condition})",
            (settings.pg_database, APP_NAME),
        )
    except psycopg.OperationalError:
        return []


MID_WRITE = "state = 'active' and query !~* '^\\s*select'"


def wait_until_gone(settings: Settings, timeout: float = 30) -> None:
    wait_for(lambda: not backends(settings), timeout, "the killed client's backend to end")


# -- 1. kill -9 ------------------------------------------------------------------------------------------


def test_kill_9_during_a_drain_many_times(settings: Settings, dataset, tmp_path: Path, processes) -> None:
    messages, _ = dataset
    rng = random.Random(SEED)
    produced = Produced()
    ensure_topic(settings, partitions=3)
    produced.send(settings.kafka_bootstrap_servers, settings.kafka_topic, messages)
    log_path = tmp_path / "extractor.log"
    # Small batches make a drain many transactions long, so the kills land in every phase of one.
    env = {"EXTRACT_MAX_POLL_RECORDS": "300"}
    kills: list[str] = []
    recoveries: list[float] = []
    extra = 0
    while len(kills) < KILLS:
        # Offsets of record live in Postgres, so a restart may join the group as a new member; every tenth
        # restart reuses the group, and waits for Kafka to expire the killed member's session first.
        group = settings.kafka_group_id if len(kills) % 10 == 9 else f"{settings.kafka_group_id}-{len(kills)}"
        before = progress(settings)
        started = time.monotonic()
        process = start_extractor(settings, log_path, processes, **env, KAFKA_GROUP_ID=group)
        moment = len(kills) % 3
        if moment == 0:
            # Anywhere: starting up, joining the group, seeking, or writing.
            time.sleep(rng.uniform(0.2, 5.0))
        else:
            wait_for(lambda p=process, b=before: p.poll() is not None or progress(settings) > b, 90, "the first batch")
            recoveries.append(time.monotonic() - started)
            if moment == 1:
                time.sleep(rng.uniform(0.0, 0.6))
            else:
                # In the middle of a batch's transaction (COPY, INSERT or the offsets upsert).
                wait_for(lambda p=process: p.poll() is not None or backends(settings, MID_WRITE), 30, "a write", 0.005)
        if process.poll() is not None:
            # The drain finished before the kill: more messages arrive, and the next run drains those.
            assert process.returncode == 0, log_path.read_text()[-3000:]
            chunk = messages[extra % len(messages) :][:3000]
            extra += len(chunk)
            produced.send(settings.kafka_bootstrap_servers, settings.kafka_topic, chunk)
            continue
        kill9(process)
        kills.append(["anywhere", "after a batch", "mid-transaction"][moment])
        wait_until_gone(settings)
        assert_whole_snapshot(settings)

    final = start_extractor(settings, log_path, processes, **env)
    assert final.wait(300) == 0, log_path.read_text()[-3000:]
    result = assert_exactly_once(settings, produced)
    quarantined = reconcile_through_dbt(settings, tmp_path, "kafka.jobs")
    counts = Counter(kills)
    recoveries.sort()
    record(
        "1. kill -9 the extractor x20",
        result,
        quarantined,
        max(recoveries),
        f"{len(kills)} kills ({', '.join(f'{n} {what}' for what, n in counts.items())});"
        f" restart to first batch: median {recoveries[len(recoveries) // 2]:.1f}s, max {max(recoveries):.1f}s",
    )


# -- 2. the database connection dies, the database restarts ------------------------------------------------


@pytest.fixture
def embedded_pg() -> Iterator[embedded.EmbeddedPostgres]:
    """A server of the test's own, to restart. Its data lives outside pytest's base temp directory, which
    pytest (in any concurrent run) may reset to mode 0700, locking the unprivileged server user out."""
    directory = Path(tempfile.mkdtemp(prefix="elt-faults-pg-"))
    directory.chmod(0o711)
    server = embedded.EmbeddedPostgres(directory / "pgdata", embedded.free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_database_connection_dies_and_database_restarts(
    settings: Settings, dataset, tmp_path: Path, processes, embedded_pg: embedded.EmbeddedPostgres
) -> None:
    messages, _ = dataset
    own = dataclasses.replace(
        settings,
        pg_host="127.0.0.1",
        pg_port=embedded_pg.port,
        pg_user="postgres",
        pg_password="",
        pg_database="faults",
    )
    db.ensure_database(own)
    ensure_topic(own, partitions=3)
    produced = Produced()
    produced.send(own.kafka_bootstrap_servers, own.kafka_topic, messages)
    log_path = tmp_path / "extractor.log"
    process = start_extractor(own, log_path, processes, EXTRACT_MAX_POLL_RECORDS="300", EXTRACT_DB_RETRY_BUDGET_S="120")
    wait_for(lambda: progress(own) > 0, 90, "the first batch")

    recoveries: list[float] = []
    for _ in range(3):
        victims = wait_for(lambda: backends(own, MID_WRITE), 30, "a batch being written", 0.005)
        before = progress(own)
        query(own, "select pg_terminate_backend(pid) from unnest(%s::int[]) as pid", ([v[0] for v in victims],))
        cut = time.monotonic()
        wait_for(lambda b=before: progress(own) > b, 60, "a batch after the terminated connection")
        recoveries.append(time.monotonic() - cut)
        assert_whole_snapshot(own)
        assert process.poll() is None, log_path.read_text()[-3000:]

    # A crash-restart of the server in the middle of a batch, down for several seconds.
    wait_for(lambda: backends(own, MID_WRITE), 30, "a batch being written", 0.005)
    before = progress(own)
    retries_before = log_path.read_text().count("retrying in")
    embedded_pg._run("pg_ctl", "-D", str(embedded_pg.pgdata), "-m", "immediate", "-w", "stop")
    down_at = time.monotonic()
    time.sleep(6)
    embedded_pg.start()
    up_at = time.monotonic()
    before = progress(own)
    wait_for(lambda: progress(own) > before, 90, "a batch after the restart")
    retries_while_down = log_path.read_text().count("retrying in") - retries_before
    recoveries.append(time.monotonic() - up_at)
    assert process.poll() is None, "the extractor must ride out the restart, not exit"
    assert_whole_snapshot(own)

    assert process.wait(300) == 0, log_path.read_text()[-3000:]
    log = log_path.read_text()
    delays = [float(d) for d in re.findall(r"retrying in ([\d.]+)s", log)]
    # Backoff, not a crash loop: a few attempts per fault, with growing waits during the outage.
    assert 4 <= len(delays) <= 20, log[-3000:]
    assert max(delays) >= 2.0, delays
    assert retries_while_down <= 6, f"{retries_while_down} retries in {time.monotonic() - down_at:.0f}s"
    assert "Traceback" not in log, log[-3000:]
    result = assert_exactly_once(own, produced)
    quarantined = reconcile_through_dbt(own, tmp_path, "kafka.jobs")
    record(
        "2. DB connection killed x3, DB crash-restart",
        result,
        quarantined,
        max(recoveries),
        f"one process throughout; {len(delays)} retries, waits {', '.join(f'{d:g}s' for d in delays)};"
        f" after the restart the next batch came {recoveries[-1]:.1f}s later",
    )


# -- 3. the broker stops answering ----------------------------------------------------------------------------


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    port = embedded.free_port()
    process = embedded.start_tansu(port, tmp_path / "tansu.log")
    process.bootstrap = f"127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield process
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        process.wait(10)


def test_broker_freezes_then_resumes(settings: Settings, dataset, tmp_path: Path, processes, own_broker) -> None:
    messages, _ = dataset
    half = len(messages) // 2
    own = dataclasses.replace(settings, kafka_bootstrap_servers=own_broker.bootstrap)
    ensure_topic(own, partitions=3)
    produced = Produced()
    produced.send(own.kafka_bootstrap_servers, own.kafka_topic, messages[:half])
    log_path = tmp_path / "extractor.log"
    process = start_extractor(own, log_path, processes, until_end=False, EXTRACT_MAX_POLL_RECORDS="300")
    wait_for(lambda: progress(own) > 0, 90, "the first batch")

    # Frozen in the middle of the drain: the consumer works through what it has fetched, then waits.
    os.kill(own_broker.pid, signal.SIGSTOP)
    time.sleep(5)
    os.kill(own_broker.pid, signal.SIGCONT)
    wait_for(lambda: progress(own) == len(produced), 120, "the first half to land", 0.1)
    assert process.poll() is None, log_path.read_text()[-3000:]

    # Frozen while the consumer waits for new messages: it must wait without spinning.
    os.kill(own_broker.pid, signal.SIGSTOP)
    try:
        cpu_before, wall_before = cpu_seconds(process.pid), time.monotonic()
        time.sleep(10)
        cpu = cpu_seconds(process.pid) - cpu_before
        wall = time.monotonic() - wall_before
        assert process.poll() is None, log_path.read_text()[-3000:]
    finally:
        os.kill(own_broker.pid, signal.SIGCONT)
    resumed = time.monotonic()
    produced.send(own.kafka_bootstrap_servers, own.kafka_topic, messages[half : half + 300])
    wait_for(lambda: progress(own) == len(produced), 120, "a message sent after the broker resumed", 0.05)
    recovery = time.monotonic() - resumed
    # Waiting, not spinning: a busy loop would burn close to a whole core.
    assert cpu < 0.15 * wall, f"{cpu:.2f}s of CPU in {wall:.1f}s while the broker was frozen"

    produced.send(own.kafka_bootstrap_servers, own.kafka_topic, messages[half + 300 :])
    wait_for(lambda: progress(own) == len(produced), 120, "the second half to land", 0.1)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0, log_path.read_text()[-3000:]
    result = assert_exactly_once(own, produced)
    quarantined = reconcile_through_dbt(own, tmp_path, "kafka.jobs")
    record(
        "3. broker SIGSTOP 5s mid-drain, 10s idle",
        result,
        quarantined,
        recovery,
        f"one process throughout; CPU while frozen and idle: {cpu:.2f}s in {wall:.1f}s ({100 * cpu / wall:.1f}%);"
        f" a message sent after SIGCONT landed {recovery:.1f}s later",
    )


# -- 4. three members, one dies ----------------------------------------------------------------------------------

_OWNERSHIP = re.compile(r"partitions (assigned|revoked): (.*?)(?:; resuming|$)", re.MULTILINE)


def assignment(log_path: Path, topic: str) -> set[int]:
    """The partitions a member owns now, replaying its log's assigned / revoked lines (eager or incremental)."""
    owned: set[int] = set()
    for event, listed in _OWNERSHIP.findall(log_path.read_text()):
        partitions = {int(p) for p in re.findall(re.escape(topic) + r"\[(\d+)\]", listed)}
        owned = owned | partitions if event == "assigned" else owned - partitions
    return owned


@pytest.mark.parametrize("partitions", [3, 6])
def test_group_member_dies_and_partitions_rebalance(
    settings: Settings, dataset, tmp_path: Path, processes, partitions: int
) -> None:
    messages, _ = dataset
    ensure_topic(settings, partitions=partitions)
    logs = [tmp_path / f"member-{i}.log" for i in range(3)]
    members = [
        start_extractor(settings, log, processes, until_end=False, EXTRACT_MAX_POLL_RECORDS="200") for log in logs
    ]
    # The group forms first (processes start at different speeds, and the first one alone could otherwise
    # drain the topic before the others join); then the messages arrive, and one member dies mid-drain.
    wait_for(lambda: all(assignment(log, settings.kafka_topic) for log in logs), 120, "all three to own partitions")
    index = SEED % 3
    orphaned = assignment(logs[index], settings.kafka_topic)
    produced = Produced()
    sender = threading.Thread(
        target=produced.send, args=(settings.kafka_bootstrap_servers, settings.kafka_topic, messages)
    )
    sender.start()
    wait_for(lambda: sum(partition_offsets(settings).get(p, 0) for p in orphaned) > 0, 120, "the victim's first batch")
    at_kill = partition_offsets(settings)
    kill9(members[index])
    killed = time.monotonic()
    sender.join(120)
    ends: dict[int, int] = Counter(p for p, _ in produced)
    assert len(produced) == len(messages)
    unfinished = {p for p in orphaned if at_kill.get(p, 0) < ends[p]}
    assert unfinished, "the member must die with work left"
    wait_for(
        lambda: all(partition_offsets(settings).get(p, 0) > at_kill.get(p, 0) for p in unfinished),
        120,
        "the survivors to take over the dead member's partitions",
        0.1,
    )
    recovery = time.monotonic() - killed
    wait_for(lambda: progress(settings) == len(produced), 180, "every message to land", 0.2)
    survivors = [m for i, m in enumerate(members) if i != index]

    def settled() -> bool:
        """The survivors own every partition between them: the group has settled without the dead member."""
        owned = [assignment(logs[i], settings.kafka_topic) for i in range(3) if i != index]
        return set().union(*owned) == set(range(partitions)) and not set.intersection(*owned)

    wait_for(settled, 60, "the survivors to own every partition between them", 0.2)
    for member in survivors:
        member.send_signal(signal.SIGTERM)
    for member in survivors:
        assert member.wait(60) == 0

    result = assert_exactly_once(settings, produced)
    quarantined = reconcile_through_dbt(settings, tmp_path, "kafka.jobs")
    record(
        f"4. 3 members, {partitions} partitions, one kill -9",
        result,
        quarantined,
        recovery,
        f"killed member owned partitions {sorted(orphaned)}; survivors resumed them {recovery:.1f}s later",
    )


def test_a_member_of_run_processes_dies_and_is_started_again(
    settings: Settings, dataset, tmp_path: Path, processes
) -> None:
    """`run --processes 3`: one supervisor, three members of one group. A member killed mid-drain is started
    again by the supervisor; meanwhile the others take its partitions, and nothing is lost or doubled."""
    messages, _ = dataset
    ensure_topic(settings, partitions=3)
    log_path = tmp_path / "run-processes.log"
    command = ("run", "--kind", "kafka", "--processes", "3", "jobs")
    supervisor = start_extractor(
        settings, log_path, processes, until_end=False, command=command, EXTRACT_MAX_POLL_RECORDS="200"
    )
    wait_for(lambda: len(children(supervisor.pid)) == 3, 60, "three members")
    wait_for(lambda: log_path.read_text().count("partitions assigned") >= 3, 120, "the group to form")
    produced = Produced()
    sender = threading.Thread(
        target=produced.send, args=(settings.kafka_bootstrap_servers, settings.kafka_topic, messages)
    )
    sender.start()
    wait_for(lambda: progress(settings) > 0, 120, "the first batch")
    victim = random.Random(SEED).choice(children(supervisor.pid))
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    replaced = wait_for(
        lambda: len(children(supervisor.pid)) == 3 and victim not in children(supervisor.pid), 60, "a new member"
    )
    recovery = time.monotonic() - killed
    assert replaced
    sender.join(120)
    assert len(produced) == len(messages)
    wait_for(lambda: progress(settings) == len(produced), 180, "every message to land", 0.2)
    assert "was killed by SIGKILL; starting it again" in log_path.read_text()
    survivors = children(supervisor.pid)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(60) == 0, log_path.read_text()[-3000:]
    assert not [pid for pid in survivors if alive(pid)]

    result = assert_exactly_once(settings, produced)
    quarantined = reconcile_through_dbt(settings, tmp_path, "kafka.jobs")
    record(
        "4b. run --processes 3, one member kill -9",
        result,
        quarantined,
        recovery,
        f"the supervisor started a new member {recovery:.1f}s after the kill; the group landed every message once",
    )


# -- 5. a continuous producer, the extractor as a service, dbt build alongside ------------------------------------


def dbt_failures(build: subprocess.CompletedProcess[str]) -> str:
    lines = [
        line for line in build.stdout.splitlines() if re.search(r"\b(FAIL|ERROR)\b|Failure in|Error in|Got \d+", line)
    ]
    return "\n".join(lines[:40]) or build.stdout[-3000:]


def test_dbt_builds_while_messages_stream_in(settings: Settings, dataset, tmp_path: Path, processes) -> None:
    messages, users_path = dataset
    run_cli(settings, "users", str(users_path))
    ensure_topic(settings, partitions=3)
    log_path = tmp_path / "extractor.log"
    service = start_extractor(settings, log_path, processes, until_end=False)
    produced = Produced()
    producing = threading.Event()
    producing.set()
    errors: list[BaseException] = []

    def produce_steadily() -> None:
        try:
            for start in range(0, len(messages), 500):
                produced.send(settings.kafka_bootstrap_servers, settings.kafka_topic, messages[start : start + 500])
                time.sleep(0.8)
        except BaseException as error:  # reported by the test
            errors.append(error)
        finally:
            producing.clear()

    producer = threading.Thread(target=produce_steadily, name="steady-producer")
    producer.start()
    builds: list[tuple[float, str]] = []
    try:
        while producing.is_set() or not builds:
            began = time.monotonic()
            build = run_dbt(settings, tmp_path, "build", check=False)
            builds.append((time.monotonic() - began, "" if build.returncode == 0 else dbt_failures(build)))
            assert_whole_snapshot(settings)
    finally:
        producer.join(300)
    assert not errors, errors
    stopped = time.monotonic()
    wait_for(lambda: progress(settings) == len(produced), 120, "the service to catch up", 0.2)
    caught_up = time.monotonic() - stopped
    service.send_signal(signal.SIGTERM)
    assert service.wait(60) == 0, log_path.read_text()[-3000:]
    final = run_dbt(settings, tmp_path, "build", check=False)
    assert final.returncode == 0, dbt_failures(final)

    result = assert_exactly_once(settings, produced)
    quarantined = reconcile_through_dbt(settings, tmp_path, "kafka.jobs", build=False)
    failed = [(number, failures) for number, (_, failures) in enumerate(builds, start=1) if failures]
    record(
        f"5. producer + service + dbt build x{len(builds) + 1}",
        result,
        quarantined,
        caught_up,
        f"{len(builds)} dbt builds while loading ({', '.join(f'{s:.0f}s' for s, _ in builds)}),"
        f" {len(failed)} failed; the build after passed; the service caught up {caught_up:.1f}s after the"
        " producer stopped",
    )
    # Loading never makes dbt fail: every build while messages stream in passes too.
    assert not failed, "\n".join(f"dbt build {number} failed while loading:\n{text}" for number, text in failed)


# -- 6. a crash in the middle of a users load -----------------------------------------------------------------------


def write_big_users_file(path: Path, lines: int, rng: random.Random) -> list[bytes]:
    """A large users file with the odd unusable line (blank, broken JSON, no location)."""
    content: list[bytes] = []
    for number in range(lines):
        roll = rng.random()
        if roll < 0.002:
            line = b""
        elif roll < 0.004:
            line = b'{"USERID": "%d", "LOCATION": ' % number
        elif roll < 0.006:
            line = b'{"USERID": "%d"}' % number
        else:
            line = b'{"USERID": "%d", "LOCATION": "LOC_%d", "NAME": "user %d"}' % (
                2_000_000 + number,
                rng.randrange(2000),
                number,
            )
        content.append(line)
    path.write_bytes(b"\n".join(content) + b"\n")
    return content


def user_lines(settings: Settings, load_id: int) -> dict[int, str]:
    rows = query(
        settings,
        "select line_number, encode(sha256(coalesce(line_bytes, convert_to(line_text, 'UTF8'))), 'hex')"
        " from raw.users where load_id = %s",
        (load_id,),
    )
    return {int(n): h for n, h in rows}


def test_users_load_is_atomic_under_kill_9(settings: Settings, dataset, tmp_path: Path, processes) -> None:
    _, small_users = dataset
    rng = random.Random(SEED)
    run_cli(settings, "users", str(small_users))
    first_load = query(settings, "select load_id, line_count from raw.file_loads")
    assert len(first_load) == 1
    first_id, first_lines = first_load[0]
    first_hashes = user_lines(settings, first_id)
    assert len(first_hashes) == first_lines

    big = tmp_path / "users-big.ndjson"
    content = write_big_users_file(big, 600_000, rng)
    expected = {number: digest(line) for number, line in enumerate(content, start=1)}
    moments = [
        "copy ",  # streaming the lines (straight into raw.users, or into the staging table)
        None,  # anywhere
        "copy ",
        "update raw.file_loads",  # the last statement before the commit
    ]
    outcomes: list[str] = []
    for moment in moments:
        log_path = tmp_path / "users.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "extract", "users", str(big)],
                env=env_for(settings),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        processes.append(process)
        if moment is None:
            time.sleep(rng.uniform(0.3, 1.5))
        else:
            condition = f"state = 'active' and query ilike '{moment}%%'"
            wait_for(lambda c=condition, p=process: p.poll() is not None or backends(settings, c), 120, moment, 0.01)
            time.sleep(rng.uniform(0.0, 0.2) if moment == "copy " else 0)
        finished = process.poll() is not None
        kill9(process)
        wait_until_gone(settings)
        loads = query(settings, "select load_id, line_count from raw.file_loads where load_id <> %s", (first_id,))
        total = query(settings, "select count(*) from raw.users")[0][0]
        if loads:
            # The whole new load, and nothing else: the kill came after the commit.
            ((load_id, line_count),) = loads
            assert line_count == len(content)
            assert user_lines(settings, load_id) == expected
            assert total == first_lines + len(content)
            outcomes.append("whole load")
            break
        assert total == first_lines, f"{total - first_lines} lines of an uncommitted load are visible"
        assert not finished
        outcomes.append("nothing")
        assert user_lines(settings, first_id) == first_hashes

    # Most kills must have landed in the middle of a load, or the test proves nothing.
    assert outcomes.count("nothing") >= 2, outcomes
    began = time.monotonic()
    rerun = run_cli(settings, "users", str(big))
    took = time.monotonic() - began
    if outcomes[-1] == "whole load":
        assert "already loaded" in rerun.stdout
    else:
        assert f"{len(content)} lines landed" in rerun.stdout, rerun.stdout
    again = run_cli(settings, "users", str(big))
    assert "already loaded" in again.stdout and "nothing added" in again.stdout
    loads = query(settings, "select load_id, line_count from raw.file_loads where load_id <> %s", (first_id,))
    assert len(loads) == 1 and loads[0][1] == len(content)
    landed = user_lines(settings, loads[0][0])
    assert landed == expected
    assert user_lines(settings, first_id) == first_hashes
    quarantined = reconcile_through_dbt(settings, tmp_path, "files.users")
    total = first_lines + len(content)
    rows = query(settings, "select count(*) from raw.users")[0][0]
    assert rows == total
    record(
        f"6. users load kill -9 mid-load x{len(outcomes)}",
        Tally(
            produced=total,
            landed=rows,
            lost=len(set(expected) - set(landed)) + len(set(first_hashes) - set(user_lines(settings, first_id))),
            duplicated=rows - total,
            mismatched=sum(1 for n, h in landed.items() if expected.get(n) != h),
        ),
        quarantined,
        took,
        f"{len(content)}-line file; after each kill: {', '.join(outcomes)};"
        f" the re-run {'found it loaded' if outcomes[-1] == 'whole load' else 'loaded it'} in {took:.1f}s,"
        " a second re-run added nothing",
    )
