"""The harness every benchmark shares: paths, the log line, child processes with their peak RSS, the
throw-away databases, the Tansu broker, the generated data, and the results file. Here once so that each
benchmark module holds only what it measures, and all of them point the CLI at the same services the same
way. The only module that imports the package's service and settings code at its top."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench.config import Config
from extract.core.settings import Settings
from extract.local import embedded

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
WORK = Path(os.environ.get("BENCH_WORK_DIR", BENCH / ".work"))
# Child output, dbt's target and logs, the broker log: per run, so two runs never mix them up.
RUN_DIR = WORK / "runs" / str(os.getpid())
PY = sys.executable

# Group timeouts of the bench's own consumers (1, 3), and the extractor's default poll size, which the
# raw consumer uses too and the results file records.
GROUP_TIMEOUTS = {"session_timeout_ms": 6_000, "heartbeat_interval_ms": 1_000}
DEFAULT_MAX_POLL_RECORDS = Settings.max_poll_records


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def max_poll_records() -> int:
    return int(os.environ.get("EXTRACT_MAX_POLL_RECORDS", DEFAULT_MAX_POLL_RECORDS))


# -- processes ----------------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    returncode: int
    max_rss_mb: float
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0  # user + system, from wait4


def run_child(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> Run:
    """Run a child to completion; its peak RSS comes from wait4's rusage (ru_maxrss, the child's own
    VmHWM), so nothing has to sample it while it runs."""
    out_path, err_path = RUN_DIR / "child.out", RUN_DIR / "child.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.monotonic()
        process = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    return Run(
        seconds,
        process.returncode,
        usage.ru_maxrss / 1024,
        out_path.read_text(errors="replace"),
        err_path.read_text(errors="replace"),
        usage.ru_utime + usage.ru_stime,
    )


def check(run: Run, what: str) -> Run:
    if run.returncode != 0:
        tail = "\n".join((run.stderr or run.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"{what} failed with exit code {run.returncode}:\n{tail}")
    return run


def bench_child(module: str, *args: str) -> list[str]:
    """The command that runs a benchmark module's own child entry point (`python -m bench.<module>`);
    children run with the repository root as working directory, so the package is found."""
    return [PY, "-m", f"bench.{module}", *args]


# -- services -----------------------------------------------------------------------------------------


class Harness:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.base = Settings.from_env()
        self.broker = ""
        self.broker_pid: int | None = None
        self.databases: list[str] = []

    # connection helpers
    def conninfo(self, database: str) -> dict[str, object]:
        s = self.base
        return {
            "host": s.pg_host,
            "port": s.pg_port,
            "user": s.pg_user,
            "password": s.pg_password or None,
            "dbname": database,
        }

    def connect(self, database: str, *, autocommit: bool = True) -> psycopg.Connection:
        return psycopg.connect(**self.conninfo(database), autocommit=autocommit)

    def fresh_database(self, suffix: str) -> str:
        """A new database `bench_elt_<pid>_<suffix>`: concurrent bench runs never touch each other's data."""
        name = f"bench_elt_{os.getpid()}_{suffix}"
        with self.connect("postgres") as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
            conn.execute(f'create database "{name}"')
        if name not in self.databases:
            self.databases.append(name)
        return name

    def drop(self, database: str) -> None:
        with self.connect("postgres") as conn:
            conn.execute(f'drop database if exists "{database}" with (force)')
        self.databases.remove(database)

    def drop_databases(self) -> None:
        with self.connect("postgres") as conn:
            for name in self.databases:
                conn.execute(f'drop database if exists "{name}" with (force)')
        self.databases.clear()

    def server_version(self) -> str:
        with self.connect("postgres") as conn:
            return conn.execute("show server_version").fetchone()[0]

    def env(self, database: str, topic: str = "bench_jobs", group: str = "bench") -> dict[str, str]:
        """The environment a user would export to point the CLI and dbt at these embedded."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(("PG", "KAFKA_", "EXTRACT_"))}
        env.update(replace(self.base, pg_database=database).dbt_env())
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.broker,
                "KAFKA_TOPIC": topic,
                "KAFKA_GROUP_ID": group,
                "KAFKA_TOPIC_PARTITIONS": str(self.config.partitions),
                "ELT_STATE_DIR": str(RUN_DIR / "no-state"),
            }
        )
        for name in ("EXTRACT_MAX_POLL_RECORDS", "EXTRACT_POLL_TIMEOUT_MS"):
            if name in os.environ:
                env[name] = os.environ[name]
        return env

    def cli(self, env: dict[str, str], *args: str) -> Run:
        return check(run_child([PY, "-m", "extract", "--log-format", "json", *args], env), f"extract {args[0]}")

    @contextmanager
    def tansu(self) -> Iterator[None]:
        port = embedded.free_port()
        process = embedded.start_tansu(port, RUN_DIR / "tansu.log")
        self.broker = f"127.0.0.1:{port}"
        self.broker_pid = process.pid
        log(f"Tansu broker on {self.broker} (pid {process.pid}, memory storage)")
        try:
            yield
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    # -- data ------------------------------------------------------------------------------------------

    def data(self) -> dict[str, Path]:
        from extract.sample_data.jobs import generate_files  # noqa: PLC0415 - children never generate

        c = self.config
        main = WORK / f"data-u{c.users}-j{c.jobs}-s{c.seed}"
        increment = WORK / f"inc-j{c.increment}-s{c.seed + 1}"
        for directory, users, jobs, seed in (
            (main, c.users, c.jobs, c.seed),
            (increment, 100, c.increment, c.seed + 1),
        ):
            if not (directory / ".complete").exists():
                started = time.monotonic()
                generate_files(directory, users=users, jobs=jobs, seed=seed)
                (directory / ".complete").touch()
                log(f"generated {directory.name} in {time.monotonic() - started:.1f}s")
        small = WORK / f"small-j{c.small_jobs}-of-{main.name}.kafka"
        if not small.exists():
            with (main / "jobs.kafka").open("rb") as source, small.open("wb") as target:
                for number, line in enumerate(source):
                    if number >= c.small_jobs:
                        break
                    target.write(line)
        return {
            "users": main / "users.ndjson",
            "jobs": main / "jobs.kafka",
            "small": small,
            "increment": increment / "jobs.kafka",
        }

    def produce(self, path: Path, topic: str) -> dict[str, object]:
        run = self.cli(self.env("postgres", topic), "produce", str(path))
        sent = int(run.stdout.split()[1])
        log(f"produced {sent} messages to {topic} in {run.seconds:.1f}s")
        return {"messages": sent, "seconds": run.seconds}

    # -- results file ----------------------------------------------------------------------------------

    def meta(self, seconds: float) -> dict[str, object]:
        """Where, when and at which sizes the figures were measured: the `meta` block of the results file."""
        c = self.config
        return {
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(seconds, 1),
            "git_commit": os.environ.get("BENCH_GIT_COMMIT") or _git("rev-parse", "--short", "HEAD"),
            "kafka_python_crc32c_in_c": _crc32c_in_c(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()},
            "postgres": self.server_version(),
            "broker": "Tansu (memory storage)",
            "sizes": {
                "jobs": c.jobs,
                "users": c.users,
                "small_jobs": c.small_jobs,
                "baseline": c.baseline,
                "lookup_calls": c.lookup_calls,
                "partitions": c.partitions,
                "freshness_seconds": c.freshness_seconds,
                "freshness_rate": c.freshness_rate,
                "history": c.histories,
                "new_events": c.new_events,
            },
            "quick": c.quick,
            "max_poll_records": max_poll_records(),
        }


def write_results(report: dict[str, object], name: str) -> Path:
    """bench/results/<name>.json: `latest` for `make bench`, `quick` for the smoke run."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path


def _crc32c_in_c() -> bool:
    """Whether kafka-python checks record CRCs with the crc32c C module (else in pure Python, ~5x slower)."""
    try:
        from kafka.record.util import crc32c_c  # noqa: PLC0415
    except ImportError:
        return False
    return crc32c_c is not None


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


# -- child processes: the bench's own consumers (1, 3) --------------------------------------------------


def kafka_consumer(topic: str, group: str, on_assigned: Callable[[], None], **extra: object):  # noqa: ANN201
    """A kafka-python group member configured like the extractor's (same client settings from the
    environment), calling `on_assigned` when the group hands it partitions."""
    from kafka import ConsumerRebalanceListener, KafkaConsumer  # noqa: PLC0415

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked: object) -> None:
            pass

        def on_partitions_assigned(self, assigned: object) -> None:
            on_assigned()

    settings = Settings.from_env()
    consumer = KafkaConsumer(
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **GROUP_TIMEOUTS,
        **extra,
        **settings.kafka_client_config(),
    )
    consumer.subscribe([topic], listener=Listener())
    return consumer
