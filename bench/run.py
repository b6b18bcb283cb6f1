"""`make bench`: the pipeline's throughput, memory and look-up speed, measured side by side in one run.

Everything runs through the package's public entry points (`python -m extract ...`, `generate_files`,
`dbt build`) against a Tansu broker started here (memory storage, its own port) and throw-away
`bench_elt*` databases on the configured PostgreSQL, which are dropped at the end. Results go to
bench/results/latest.json and latest.png, and a table is printed.

Sizes come from the environment (or the matching --flags):

    BENCH_JOBS=1000000 BENCH_USERS=200000   main topic and users file
    BENCH_SMALL_JOBS=100000                 second topic, for the peak-RSS comparison
    BENCH_BASELINE=10000                    messages for the one-INSERT-one-commit baseline
    BENCH_LOOKUP_CALLS=200                  calls per look-up function and mode
    BENCH_ITEMS=1,2,3,4,5,6,7,8             which items to run (2 always runs: the others build on it)
    BENCH_QUICK=1                           tiny sizes, for a smoke run (about a minute)

Timing bases, so the ratios compare like with like:
- consumers (1, 2): "steady" rates run from the moment the consumer group assigned the partitions to the
  end of the drain, so the ~3 s group join (session_timeout_ms=6000) is excluded; "wall" rates are the
  whole process, interpreter start and join included. Both are in the JSON.
- baseline (3): from its first message to its last commit.
- users load (4): the whole CLI process, interpreter start included, against a plain COPY of the same
  file over one already open connection (so the ratio is the strict one).
- scale-out (8): wall clock of the whole run for 1 and 3 processes (joins included: with 3 members the
  group rebalances as they arrive, which is part of the cost of scaling out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
WORK = Path(os.environ.get("BENCH_WORK_DIR", BENCH / ".work"))
# Child output, dbt's target and logs, the broker log: per run, so two runs never mix them up.
RUN_DIR = WORK / "runs" / str(os.getpid())
PY = sys.executable
DBT = str(Path(PY).parent / "dbt")
# As `make build`: staging data tests that opt in check only the rows written since the last passing
# build (dbt_project/macros/tests/test_scope.sql); --full-refresh checks every row.
DBT_BUILD_VARS = "--vars '{test_scope: recent}'"

sys.path.insert(0, str(ROOT))

from extract import services  # noqa: E402 - after the path fix, so a plain `python bench/run.py` works
from extract.settings import Settings  # noqa: E402

# The fetch settings of the extractor's consumer (extract/jobs_extractor.py), so the ceiling in (1) is
# measured with the same client configuration as (2).
CONSUMER_FETCH = {"fetch_max_bytes": 64 * 1024 * 1024, "max_partition_fetch_bytes": 16 * 1024 * 1024}
GROUP_TIMEOUTS = {"session_timeout_ms": 6_000, "heartbeat_interval_ms": 1_000}
DEFAULT_MAX_POLL_RECORDS = Settings.max_poll_records  # the extractor's default, for the raw consumer too


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- configuration ------------------------------------------------------------------------------------


@dataclass
class Config:
    jobs: int = 1_000_000
    users: int = 200_000
    small_jobs: int = 100_000
    baseline: int = 10_000
    lookup_calls: int = 200
    partitions: int = 3
    seed: int = 42
    items: set[int] = field(default_factory=lambda: set(range(1, 9)))
    quick: bool = False
    profile: bool = False

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> Config:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        env = os.environ
        quick = env.get("BENCH_QUICK", "") not in ("", "0")
        base = cls(jobs=20_000, users=5_000, small_jobs=5_000, baseline=1_000, lookup_calls=30) if quick else cls()
        parser.add_argument("--quick", action="store_true", default=quick, help="tiny sizes for a smoke run")
        parser.add_argument("--jobs", type=int, default=int(env.get("BENCH_JOBS", base.jobs)))
        parser.add_argument("--users", type=int, default=int(env.get("BENCH_USERS", base.users)))
        parser.add_argument("--small-jobs", type=int, default=int(env.get("BENCH_SMALL_JOBS", base.small_jobs)))
        parser.add_argument("--baseline", type=int, default=int(env.get("BENCH_BASELINE", base.baseline)))
        parser.add_argument("--lookup-calls", type=int, default=int(env.get("BENCH_LOOKUP_CALLS", base.lookup_calls)))
        parser.add_argument("--items", default=env.get("BENCH_ITEMS", "1,2,3,4,5,6,7,8"))
        parser.add_argument(
            "--profile",
            action="store_true",
            default=env.get("BENCH_PROFILE", "") not in ("", "0"),
            help="also drain the main topic once more under py-spy: bench/results/profile.txt and a summary",
        )
        args = parser.parse_args(argv)
        if args.quick and not quick:
            base = cls(jobs=20_000, users=5_000, small_jobs=5_000, baseline=1_000, lookup_calls=30)
            args.jobs, args.users, args.small_jobs = base.jobs, base.users, base.small_jobs
            args.baseline, args.lookup_calls = base.baseline, base.lookup_calls
        items = {int(part) for part in args.items.split(",") if part.strip()} | {2}
        return cls(
            jobs=args.jobs,
            users=args.users,
            small_jobs=min(args.small_jobs, args.jobs),
            baseline=min(args.baseline, args.small_jobs, args.jobs),
            lookup_calls=args.lookup_calls,
            items=items,
            quick=args.quick,
            profile=args.profile,
        )


# -- processes ----------------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    returncode: int
    max_rss_mb: float
    stdout: str
    stderr: str


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
    )


def run_children(commands: list[list[str]], env: dict[str, str]) -> tuple[float, list[Run]]:
    """Start several children at once; wall clock until the last one ends."""
    started = time.monotonic()
    handles = []
    for index, args in enumerate(commands):
        out = (RUN_DIR / f"child{index}.out").open("wb")
        err = (RUN_DIR / f"child{index}.err").open("wb")
        process = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        handles.append((index, process, out, err, started))
    runs: list[Run | None] = [None] * len(commands)
    for index, process, out, err, begun in handles:
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.close()
        err.close()
        runs[index] = Run(
            time.monotonic() - begun,
            process.returncode,
            usage.ru_maxrss / 1024,
            (RUN_DIR / f"child{index}.out").read_text(errors="replace"),
            (RUN_DIR / f"child{index}.err").read_text(errors="replace"),
        )
    return time.monotonic() - started, [run for run in runs if run is not None]


def check(run: Run, what: str) -> Run:
    if run.returncode != 0:
        tail = "\n".join((run.stderr or run.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"{what} failed with exit code {run.returncode}:\n{tail}")
    return run


# -- services -----------------------------------------------------------------------------------------


class Bench:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.base = Settings.from_env()
        self.broker = ""
        self.databases: list[str] = []
        self.results: dict[str, dict[str, object]] = {}

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

    def drop_databases(self) -> None:
        with self.connect("postgres") as conn:
            for name in self.databases:
                conn.execute(f'drop database if exists "{name}" with (force)')
        self.databases.clear()

    def env(self, database: str, topic: str = "bench_jobs", group: str = "bench") -> dict[str, str]:
        """The environment a user would export to point the CLI and dbt at these services."""
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
        port = services.free_port()
        process = services.start_tansu(port, RUN_DIR / "tansu.log")
        self.broker = f"127.0.0.1:{port}"
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
        from extract.generate import generate_files  # noqa: PLC0415

        c = self.config
        main = WORK / f"data-u{c.users}-j{c.jobs}-s{c.seed}"
        increment = WORK / f"inc-j{max(1, c.jobs // 100)}-s{c.seed + 1}"
        for directory, users, jobs, seed in (
            (main, c.users, c.jobs, c.seed),
            (increment, 100, max(1, c.jobs // 100), c.seed + 1),
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

    # -- measurements ----------------------------------------------------------------------------------

    def raw_consume(self, topic: str, expect: int) -> dict[str, object]:
        run = check(
            run_child([PY, str(Path(__file__)), "_raw-consume", topic, str(expect)], self.env("postgres", topic)),
            "raw consumption",
        )
        result = json.loads(run.stdout.strip().splitlines()[-1])
        result["wall_seconds"] = run.seconds
        result["wall_rate"] = expect / run.seconds
        result["max_rss_mb"] = run.max_rss_mb
        return result

    def extract_jobs(self, database: str, topic: str, group: str, expect: int | None = None) -> dict[str, object]:
        run = self.cli(self.env(database, topic, group), "jobs", "--until-end")
        return self._extract_result(run, database, topic, expect)

    def _extract_result(self, run: Run, database: str, topic: str, expect: int | None) -> dict[str, object]:
        assigned, ended = _log_span(run.stderr)
        with self.connect(database) as conn:
            landed = conn.execute("select count(*) from raw.jobs where kafka_topic = %s", (topic,)).fetchone()[0]
        if expect is not None and landed != expect:
            raise RuntimeError(f"extractor landed {landed} rows of {topic}, expected {expect}")
        messages = _landed_messages(run.stdout)
        steady = (ended - assigned) if assigned is not None and ended is not None else None
        return {
            "messages": messages,
            "rows_in_raw": landed,
            "wall_seconds": run.seconds,
            "wall_rate": messages / run.seconds,
            "steady_seconds": steady,
            "steady_rate": messages / steady if steady else None,
            "max_rss_mb": run.max_rss_mb,
        }

    def baseline(self, database: str, topic: str, limit: int) -> dict[str, object]:
        run = check(
            run_child([PY, str(Path(__file__)), "_baseline", topic, str(limit)], self.env(database, topic)),
            "per-message baseline",
        )
        result = json.loads(run.stdout.strip().splitlines()[-1])
        result["wall_seconds"] = run.seconds
        return result

    def users_load(self, database: str, path: Path) -> dict[str, object]:
        env = self.env(database)
        startup = check(run_child([PY, "-m", "extract", "env"], env), "extract env").seconds
        run = self.cli(env, "users", str(path))
        with self.connect(database) as conn:
            lines = conn.execute("select count(*) from raw.users").fetchone()[0]
            conn.execute("create schema if not exists bench; drop table if exists bench.users_plain")
            conn.execute("create table bench.users_plain (line text)")
            with open(path, "rb") as handle, conn.transaction(), conn.cursor() as cur:
                started = time.monotonic()
                # Every byte accepted as is (latin1 maps each byte to a character), no quoting, no
                # escapes: the cheapest way to get every line of the file into a table.
                copy_sql = (
                    "copy bench.users_plain (line) from stdin"
                    " with (format csv, delimiter e'\\x01', quote e'\\x02', encoding 'latin1')"
                )
                with cur.copy(copy_sql) as copy:
                    while chunk := handle.read(1 << 20):
                        copy.write(chunk)
            copy_seconds = time.monotonic() - started
            copied = conn.execute("select count(*) from bench.users_plain").fetchone()[0]
            conn.execute("drop schema bench cascade")
        return {
            "lines": lines,
            "loader_seconds": run.seconds,
            "loader_rate": lines / run.seconds,
            "loader_seconds_net_of_startup": run.seconds - startup,
            "cli_startup_seconds": startup,
            "copy_lines": copied,
            "copy_seconds": copy_seconds,
            "copy_rate": copied / copy_seconds,
            "ratio": (lines / run.seconds) / (copied / copy_seconds),
            "ratio_net_of_startup": (lines / (run.seconds - startup)) / (copied / copy_seconds),
        }

    def dbt(self, database: str, *args: str) -> dict[str, object]:
        target = RUN_DIR / "dbt-target"
        env = self.env(database) | {
            "DBT_PROFILES_DIR": ".",
            "DBT_TARGET_PATH": str(target),
            "DBT_LOG_PATH": str(RUN_DIR / "dbt-logs"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_USE_COLORS": "false",
        }
        # Exactly the Makefile's invocation: the CLI prints the settings, dbt runs from dbt_project/.
        command = f'eval "$({PY} -m extract env)" && cd dbt_project && {DBT} {" ".join(args)}'
        run = run_child(["bash", "-c", command], env)
        summary: dict[str, object] = {"seconds": run.seconds, "returncode": run.returncode}
        results_file = target / "run_results.json"
        if results_file.exists():
            nodes = json.loads(results_file.read_text())["results"]
            by_kind: dict[str, float] = {}
            statuses: dict[str, int] = {}
            for node in nodes:
                kind = node["unique_id"].split(".")[0]
                by_kind[kind] = by_kind.get(kind, 0.0) + float(node.get("execution_time") or 0)
                statuses[node["status"]] = statuses.get(node["status"], 0) + 1
            summary["node_seconds_by_type"] = {kind: round(value, 2) for kind, value in by_kind.items()}
            summary["statuses"] = statuses
            summary["slowest"] = [
                [node["unique_id"], round(float(node.get("execution_time") or 0), 2)]
                for node in sorted(nodes, key=lambda n: -float(n.get("execution_time") or 0))[:5]
            ]
        if run.returncode != 0:
            summary["failure_tail"] = run.stdout.strip().splitlines()[-12:]
            log(f"dbt {' '.join(args)} exited {run.returncode} (recorded, not fatal)")
        return summary

    def lookups(self, database: str) -> dict[str, object]:
        calls = self.config.lookup_calls
        out: dict[str, object] = {}
        with self.connect(database) as conn:
            jobs = conn.execute("select count(*) from marts.jobs").fetchone()[0]
            out["marts_jobs_rows"] = jobs
            sample = {
                "jobs_by_location": [
                    row[0]
                    for row in conn.execute(
                        "select location_id from marts.jobs group by 1 order by count(*) desc, 1 limit 20"
                    )
                ],
                "jobs_by_service": [
                    row[0]
                    for row in conn.execute(
                        "select service_name from marts.jobs where service_name is not null"
                        " group by 1 order by count(*) desc, 1 limit 20"
                    )
                ],
            }
            out["indexes"] = [
                row[0]
                for row in conn.execute(
                    "select indexdef from pg_indexes where schemaname = 'marts' and tablename = 'jobs'"
                )
            ]
        for function, values in sample.items():
            entry: dict[str, object] = {"values": len(values)}
            for mode in ("index", "no_index"):
                # A connection per mode: prepared statements keep the plan they were made with, so the
                # planner settings must be in place before the first call.
                off = "off" if mode == "no_index" else "on"
                options = f"-c enable_indexscan={off} -c enable_bitmapscan={off} -c enable_indexonlyscan={off}"
                with psycopg.connect(**self.conninfo(database), autocommit=True, options=options) as conn:
                    query = f"select * from marts.{function}(%s)"
                    for value in values[:3]:  # warm the cache the same way for both modes
                        conn.execute(query, (value,), prepare=True).fetchall()
                    latencies = []
                    for number in range(calls):
                        value = values[number % len(values)]
                        started = time.perf_counter()
                        conn.execute(query, (value,), prepare=True).fetchall()
                        latencies.append((time.perf_counter() - started) * 1000)
                    plan = "\n".join(
                        row[0]
                        for row in conn.execute(
                            f"explain (analyze, costs off, timing off, summary off) {query}", (values[0],)
                        )
                    )
                entry[mode] = {
                    "median_ms": statistics.median(latencies),
                    "p95_ms": sorted(latencies)[int(0.95 * (len(latencies) - 1))],
                    "calls": calls,
                    "plan": plan,
                    "plan_uses_index": "Index" in plan,
                }
            entry["speedup"] = entry["no_index"]["median_ms"] / entry["index"]["median_ms"]
            out[function] = entry
        return out

    # -- the run ---------------------------------------------------------------------------------------

    def run(self) -> dict[str, object]:  # noqa: PLR0915 - one linear script of steps
        c = self.config
        r = self.results
        started = time.monotonic()
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        files = self.data()
        with self.tansu():
            r["produce"] = {
                "main": self.produce(files["jobs"], "bench_jobs"),
                "small": self.produce(files["small"], "bench_small"),
            }
            total = int(r["produce"]["main"]["messages"])
            small_total = int(r["produce"]["small"]["messages"])

            if 1 in c.items:
                r["1_raw_consume"] = self.raw_consume("bench_jobs", total)
                log(f"(1) raw kafka-python: {r['1_raw_consume']['steady_rate']:,.0f} msg/s steady")

            main_db = self.fresh_database("main")
            r["2_extractor"] = self.extract_jobs(main_db, "bench_jobs", "bench-extract-1", total)
            log(
                f"(2) extractor: {_fmt(r['2_extractor']['steady_rate'])} msg/s steady,"
                f" {r['2_extractor']['wall_seconds']:.1f}s wall"
            )

            if c.profile:
                r["profile"] = self.profile("bench_jobs", total)

            if 3 in c.items:
                base_db = self.fresh_database("baseline")
                r["3_baseline"] = self.baseline(base_db, "bench_small", c.baseline)
                log(f"(3) per-message baseline: {r['3_baseline']['rate']:,.0f} msg/s")

            if 5 in c.items:
                small_db = self.fresh_database("small")
                small = self.extract_jobs(small_db, "bench_small", "bench-extract-small", small_total)
                r["5_rss"] = {
                    "small_messages": small_total,
                    "small_max_rss_mb": small["max_rss_mb"],
                    "large_messages": total,
                    "large_max_rss_mb": r["2_extractor"]["max_rss_mb"],
                    "growth": r["2_extractor"]["max_rss_mb"] / small["max_rss_mb"],
                }
                log(f"(5) peak RSS: {r['5_rss']['small_max_rss_mb']:.0f} MB vs {r['5_rss']['large_max_rss_mb']:.0f} MB")

            if 8 in c.items:
                scale_db = self.fresh_database("scale3")
                env = self.env(scale_db, "bench_jobs", "bench-extract-3")
                command = [PY, "-m", "extract", "--log-format", "json", "jobs", "--until-end"]
                wall, runs = run_children([command] * c.partitions, env)
                for index, child in enumerate(runs):
                    check(child, f"extractor {index + 1} of {c.partitions}")
                with self.connect(scale_db) as conn:
                    landed = conn.execute("select count(*) from raw.jobs").fetchone()[0]
                if landed != total:
                    raise RuntimeError(f"{c.partitions} extractors landed {landed} rows, expected {total}")
                one = r["2_extractor"]["wall_seconds"]
                r["8_scale_out"] = {
                    "processes": c.partitions,
                    "messages": total,
                    "rows_in_raw": landed,
                    "per_process_messages": [_landed_messages(child.stdout) for child in runs],
                    "one_process_wall_seconds": one,
                    "wall_seconds": wall,
                    "one_process_rate": total / one,
                    "rate": total / wall,
                    "speedup": one / wall,
                    "max_rss_mb": [child.max_rss_mb for child in runs],
                }
                self.drop(scale_db)
                log(f"(8) {c.partitions} processes: {wall:.1f}s vs {one:.1f}s for one")

            if c.items & {4, 6, 7}:
                r["4_users"] = self.users_load(main_db, files["users"])
                log(f"(4) users: {r['4_users']['loader_rate']:,.0f} rows/s vs COPY {r['4_users']['copy_rate']:,.0f}")

            if c.items & {6, 7}:
                log("(6) dbt build --full-refresh ...")
                full = self.dbt(main_db, "build", "--full-refresh", DBT_BUILD_VARS)
                log(f"(6) full refresh: {full['seconds']:.1f}s")
                if 7 in c.items:
                    r["7_lookups"] = self.lookups(main_db)
                    for function in ("jobs_by_location", "jobs_by_service"):
                        entry = r["7_lookups"][function]
                        log(
                            f"(7) {function}: {entry['index']['median_ms']:.2f} ms"
                            f" vs {entry['no_index']['median_ms']:.2f} ms"
                        )
                if 6 in c.items:
                    increment = self.produce(files["increment"], "bench_jobs")
                    extracted = self.extract_jobs(main_db, "bench_jobs", "bench-extract-1")
                    log("(6) dbt build (incremental) ...")
                    incremental = self.dbt(main_db, "build", DBT_BUILD_VARS)
                    r["6_dbt"] = {
                        "base_messages": total,
                        "added_messages": increment["messages"],
                        "added_landed": extracted["messages"],
                        "full_refresh": full,
                        "incremental": incremental,
                        "ratio": incremental["seconds"] / full["seconds"],
                    }
                    log(f"(6) incremental: {incremental['seconds']:.1f}s ({r['6_dbt']['ratio']:.2f} of full)")
        self.drop_databases()
        return self.report(time.monotonic() - started)

    def profile(self, topic: str, expect: int) -> dict[str, object]:
        """The extractor draining `topic` under py-spy (idle samples included, so time spent waiting for
        Postgres shows), summarised per function for the main thread."""
        database = self.fresh_database("profile")
        raw = RESULTS / "profile.txt"
        RESULTS.mkdir(parents=True, exist_ok=True)
        spy = shutil.which("py-spy", path=str(Path(PY).parent)) or "py-spy"
        command = [spy, "record", "--idle", "--format", "raw", "--rate", "200", "--output", str(raw), "--"]
        command += [PY, "-m", "extract", "--log-format", "json", "jobs", "--until-end"]
        run = check(run_child(command, self.env(database, topic, "bench-profile")), "py-spy record")
        result = self._extract_result(run, database, topic, expect)
        self.drop(database)
        summary = summarise_profile(raw)
        summary["run"] = result
        log(f"profile: {summary['samples']} main-thread samples in {raw}")
        return summary

    def drop(self, database: str) -> None:
        with self.connect("postgres") as conn:
            conn.execute(f'drop database if exists "{database}" with (force)')
        self.databases.remove(database)

    def report(self, seconds: float) -> dict[str, object]:
        c = self.config
        r = self.results
        return {
            "meta": {
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "seconds": round(seconds, 1),
                "git_commit": os.environ.get("BENCH_GIT_COMMIT") or _git("rev-parse", "--short", "HEAD"),
                "kafka_python_crc32c_in_c": _crc32c_in_c(),
                "load_average_1m_at_end": round(os.getloadavg()[0], 2),
                "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()},
                "postgres": self._server_version(),
                "broker": "Tansu (memory storage)",
                "sizes": {
                    "jobs": c.jobs,
                    "users": c.users,
                    "small_jobs": c.small_jobs,
                    "baseline": c.baseline,
                    "lookup_calls": c.lookup_calls,
                    "partitions": c.partitions,
                },
                "quick": c.quick,
                "max_poll_records": int(os.environ.get("EXTRACT_MAX_POLL_RECORDS", DEFAULT_MAX_POLL_RECORDS)),
            },
            "results": r,
            "targets": targets(r),
        }

    def _server_version(self) -> str:
        with self.connect("postgres") as conn:
            return conn.execute("show server_version").fetchone()[0]


# -- targets, table, chart ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    item: str
    what: str
    measured: float | None
    goal: str
    met: bool | None
    detail: str = ""


def targets(r: dict[str, dict]) -> list[dict[str, object]]:
    out: list[Target] = []
    raw, ext = r.get("1_raw_consume"), r.get("2_extractor")
    if raw and ext and ext.get("steady_rate"):
        ratio = ext["steady_rate"] / raw["steady_rate"]
        out.append(
            Target(
                "2/1",
                "extractor vs raw kafka-python (steady)",
                ratio,
                ">= 0.8",
                ratio >= 0.8,
                f"{ext['steady_rate']:,.0f} vs {raw['steady_rate']:,.0f} msg/s",
            )
        )
    base = r.get("3_baseline")
    if base and ext and ext.get("steady_rate"):
        ratio = ext["steady_rate"] / base["rate"]
        out.append(
            Target(
                "2/3",
                "extractor vs one-INSERT-one-commit",
                ratio,
                ">= 20",
                ratio >= 20,
                f"{ext['steady_rate']:,.0f} vs {base['rate']:,.0f} msg/s",
            )
        )
    users = r.get("4_users")
    if users:
        out.append(
            Target(
                "4",
                "users loader vs plain COPY (whole CLI)",
                users["ratio"],
                ">= 0.5",
                users["ratio"] >= 0.5,
                f"{users['loader_rate']:,.0f} vs {users['copy_rate']:,.0f} rows/s",
            )
        )
    rss = r.get("5_rss")
    if rss:
        peak = max(rss["small_max_rss_mb"], rss["large_max_rss_mb"])
        flat = rss["growth"] <= 1.25
        out.append(
            Target(
                "5",
                f"extractor peak RSS, and growth {rss['small_messages']:,} -> {rss['large_messages']:,} msgs",
                peak,
                "< 300 MB, growth <= 1.25x",
                peak < 300 and flat,
                f"{rss['small_max_rss_mb']:.0f} MB -> {rss['large_max_rss_mb']:.0f} MB (x{rss['growth']:.2f})",
            )
        )
    dbt = r.get("6_dbt")
    if dbt:
        full, incremental = dbt["full_refresh"], dbt["incremental"]
        models = ""
        if "node_seconds_by_type" in full and "node_seconds_by_type" in incremental:
            full_models = full["node_seconds_by_type"].get("model", 0.0)
            incremental_models = incremental["node_seconds_by_type"].get("model", 0.0)
            models = (
                f"; models alone {incremental_models:.1f}s vs {full_models:.1f}s"
                f" ({incremental_models / max(full_models, 1e-9):.2f}), tests"
                f" {incremental['node_seconds_by_type'].get('test', 0.0):.1f}s vs"
                f" {full['node_seconds_by_type'].get('test', 0.0):.1f}s"
            )
        out.append(
            Target(
                "6",
                "dbt build incremental (+1%) vs full refresh",
                dbt["ratio"],
                "<= 0.2",
                dbt["ratio"] <= 0.2,
                f"{incremental['seconds']:.1f}s vs {full['seconds']:.1f}s{models}",
            )
        )
    lookups = r.get("7_lookups")
    if lookups:
        for function in ("jobs_by_location", "jobs_by_service"):
            entry = lookups[function]
            speedup = entry["speedup"]
            used = entry["index"]["plan_uses_index"]
            out.append(
                Target(
                    "7",
                    f"{function}: seq scan / index median",
                    speedup,
                    ">= 20, plan uses index",
                    speedup >= 20 and used,
                    f"{entry['index']['median_ms']:.2f} vs {entry['no_index']['median_ms']:.2f} ms,"
                    f" index in plan: {used}",
                )
            )
    scale = r.get("8_scale_out")
    if scale:
        out.append(
            Target(
                "8",
                f"{scale['processes']} extractor processes vs 1 (wall)",
                scale["speedup"],
                "(no target)",
                None,
                f"{scale['wall_seconds']:.1f}s vs {scale['one_process_wall_seconds']:.1f}s",
            )
        )
    return [target.__dict__ for target in out]


def _fmt(value: object, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def table(report: dict[str, object]) -> str:
    r = report["results"]
    rows: list[tuple[str, str, str]] = []

    def add(item: str, what: str, value: str) -> None:
        rows.append((item, what, value))

    if "1_raw_consume" in r:
        raw = r["1_raw_consume"]
        add(
            "1",
            "raw kafka-python consumption",
            f"{_fmt(raw['steady_rate'])} msg/s steady, {_fmt(raw['wall_rate'])} wall",
        )
    ext = r["2_extractor"]
    add(
        "2",
        "extractor -> raw.jobs (1 process)",
        f"{_fmt(ext['steady_rate'])} msg/s steady, {_fmt(ext['wall_rate'])} wall",
    )
    if "3_baseline" in r:
        add(
            "3",
            "one INSERT + one commit per message",
            f"{_fmt(r['3_baseline']['rate'])} msg/s ({r['3_baseline']['messages']} msgs)",
        )
    if "4_users" in r:
        u = r["4_users"]
        add(
            "4",
            "users loader (CLI) / plain COPY",
            f"{_fmt(u['loader_rate'])} / {_fmt(u['copy_rate'])} rows/s"
            f" ({u['loader_seconds']:.2f} s, {u['cli_startup_seconds']:.2f} s of it CLI start-up; COPY"
            f" {u['copy_seconds']:.2f} s)",
        )
    if "5_rss" in r:
        s = r["5_rss"]
        add(
            "5",
            f"peak RSS at {s['small_messages']:,} / {s['large_messages']:,} msgs",
            f"{s['small_max_rss_mb']:.0f} / {s['large_max_rss_mb']:.0f} MB",
        )
    if "6_dbt" in r:
        d = r["6_dbt"]
        add(
            "6",
            "dbt build full refresh / incremental +1%",
            f"{d['full_refresh']['seconds']:.1f} / {d['incremental']['seconds']:.1f} s",
        )
    if "7_lookups" in r:
        for function in ("jobs_by_location", "jobs_by_service"):
            e = r["7_lookups"][function]
            add(
                "7",
                f"{function} median, index / no index",
                f"{e['index']['median_ms']:.2f} / {e['no_index']['median_ms']:.2f} ms",
            )
    if "8_scale_out" in r:
        s = r["8_scale_out"]
        add(
            "8",
            f"1 / {s['processes']} extractor processes (wall)",
            f"{s['one_process_wall_seconds']:.1f} / {s['wall_seconds']:.1f} s"
            f" ({_fmt(s['one_process_rate'])} / {_fmt(s['rate'])} msg/s)",
        )
    lines = _grid(("item", "measurement", "value"), rows)
    target_rows = [
        (
            t["item"],
            t["what"],
            "-" if t["measured"] is None else f"{t['measured']:.2f}",
            t["goal"],
            {True: "met", False: "NOT met", None: "-"}[t["met"]],
            t["detail"],
        )
        for t in report["targets"]
    ]
    return lines + "\n\n" + _grid(("item", "target", "measured", "goal", "", "detail"), target_rows)


def _grid(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    line = lambda row: "| " + " | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def chart(report: dict[str, object], path: Path) -> None:  # noqa: PLR0915 - one panel after another
    import matplotlib  # noqa: PLC0415 - only the chart needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    r = report["results"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    sizes = report["meta"]["sizes"]
    fig.suptitle(
        f"make bench: {sizes['jobs']:,} jobs, {sizes['users']:,} users, {sizes['partitions']} partitions,"
        f" {report['meta']['host']['cpus']} CPUs ({report['meta']['finished_at']})"
    )

    def bars(ax, labels: list[str], values: list[float], title: str, unit: str, *, log_scale: bool = False) -> None:  # noqa: ANN001
        colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
        drawn = ax.bar(labels, values, color=colours[: len(values)])
        ax.set_title(title)
        ax.set_ylabel(unit)
        if log_scale:
            ax.set_yscale("log")
        for rect, value in zip(drawn, values, strict=True):
            ax.annotate(
                f"{value:,.0f}" if value >= 10 else f"{value:.2f}",
                (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.tick_params(axis="x", labelsize=8)

    labels, values = [], []
    if "1_raw_consume" in r:
        labels.append("kafka-python\nraw (1)")
        values.append(r["1_raw_consume"]["steady_rate"])
    labels.append("extractor\n(2)")
    values.append(r["2_extractor"]["steady_rate"] or r["2_extractor"]["wall_rate"])
    if "3_baseline" in r:
        labels.append("INSERT+commit\nper msg (3)")
        values.append(r["3_baseline"]["rate"])
    bars(axes[0][0], labels, values, "Kafka -> Postgres, steady state", "messages/s (log)", log_scale=True)

    if "4_users" in r:
        u = r["4_users"]
        bars(
            axes[0][1],
            ["users loader\n(CLI)", "plain COPY"],
            [u["loader_rate"], u["copy_rate"]],
            "(4) users file load",
            "rows/s",
        )
    if "5_rss" in r:
        s = r["5_rss"]
        bars(
            axes[0][2],
            [f"{s['small_messages']:,} msgs", f"{s['large_messages']:,} msgs"],
            [s["small_max_rss_mb"], s["large_max_rss_mb"]],
            "(5) extractor peak RSS",
            "MB",
        )
        axes[0][2].axhline(300, color="grey", linestyle="--", linewidth=1)
    if "6_dbt" in r:
        d = r["6_dbt"]
        bars(
            axes[1][0],
            ["full refresh", "incremental\n+1%"],
            [d["full_refresh"]["seconds"], d["incremental"]["seconds"]],
            "(6) dbt build",
            "seconds",
        )
    if "7_lookups" in r:
        l7 = r["7_lookups"]
        ax = axes[1][1]
        names = ["jobs_by_location", "jobs_by_service"]
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], [l7[n]["index"]["median_ms"] for n in names], 0.4, label="index")
        ax.bar([x + 0.2 for x in xs], [l7[n]["no_index"]["median_ms"] for n in names], 0.4, label="no index")
        ax.set_xticks(list(xs), names, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("median ms (log)")
        ax.set_title(f"(7) look-ups at {l7['marts_jobs_rows']:,} jobs")
        ax.legend(fontsize=8)
    if "8_scale_out" in r:
        s = r["8_scale_out"]
        bars(
            axes[1][2],
            ["1 process", f"{s['processes']} processes"],
            [s["one_process_rate"], s["rate"]],
            "(8) scale-out, wall clock incl. group join",
            "messages/s",
        )
    for ax in axes.flat:
        if not ax.has_data():
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# -- helpers ------------------------------------------------------------------------------------------


def summarise_profile(path: Path, top: int = 25) -> dict[str, object]:
    """Inclusive and self shares per function of py-spy's collapsed stacks, main thread only."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if "_run_module_as_main" not in stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [_frame_name(frame) for frame in stack.split(";")]
        for name in set(frames):
            inclusive[name] = inclusive.get(name, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count

    def ranked(counts: dict[str, int]) -> list[tuple[str, float]]:
        ordered = sorted(counts.items(), key=lambda item: -item[1])
        return [(name, round(100 * count / max(samples, 1), 1)) for name, count in ordered[:top]]

    return {"samples": samples, "inclusive_percent": ranked(inclusive), "self_percent": ranked(own)}


def _frame_name(frame: str) -> str:
    # "write_batch (extract/raw_sink.py:123)" -> "write_batch (raw_sink.py)"
    name, _, where = frame.partition(" (")
    file_name = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({file_name})"


def _log_span(stderr: str) -> tuple[float | None, float | None]:
    """(time the group first assigned partitions, time of the last log line) from the extractor's JSON logs."""
    assigned = last = None
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        moment = datetime.strptime(record["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
        if assigned is None and "assigned" in record.get("message", ""):
            assigned = moment
        last = moment
    return assigned, last


def _landed_messages(stdout: str) -> int:
    # "landed N new of M messages from 'topic'"
    words = stdout.split()
    try:
        return int(words[words.index("of") + 1])
    except (ValueError, IndexError):
        return 0


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


# -- child processes: the raw ceiling and the per-message baseline ------------------------------------


def _consumer(topic: str, group: str, on_assigned: Callable[[], None], **extra: object):  # noqa: ANN202
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


def child_raw_consume(topic: str, expect: int) -> None:
    """(1): a kafka-python consumer group member that only counts what it polls."""
    max_records = int(os.environ.get("EXTRACT_MAX_POLL_RECORDS", DEFAULT_MAX_POLL_RECORDS))
    marks: dict[str, float] = {"start": time.monotonic()}
    consumer = _consumer(
        topic, f"bench-raw-{os.getpid()}", lambda: marks.setdefault("assigned", time.monotonic()), **CONSUMER_FETCH
    )
    count = 0
    payload = 0
    deadline = time.monotonic() + 120
    while count < expect and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=1000, max_records=max_records).values():
            deadline = time.monotonic() + 120
            count += len(batch)
            for message in batch:
                payload += len(message.value or b"")
    marks["end"] = time.monotonic()
    consumer.close(autocommit=False)
    steady = marks["end"] - marks["assigned"]
    print(
        json.dumps(
            {
                "messages": count,
                "payload_bytes": payload,
                "steady_seconds": steady,
                "steady_rate": count / steady,
                "join_seconds": marks["assigned"] - marks["start"],
                "max_poll_records": max_records,
            }
        )
    )


def child_baseline(topic: str, limit: int) -> None:
    """(3): the original case code's approach - one INSERT and one commit per message - landing the same
    raw row as the extractor (same columns, same text/bytes/json split, same unique key) but no offsets
    table (the original left offsets to Kafka's auto-commit)."""
    from extract.landing import headers_json, split_payload  # noqa: PLC0415

    settings = Settings.from_env()
    conn = psycopg.connect(
        host=settings.pg_host,
        port=settings.pg_port,
        user=settings.pg_user,
        password=settings.pg_password or None,
        dbname=settings.pg_database,
    )
    conn.execute(
        "create table if not exists baseline_jobs (load_seq bigint generated always as identity primary key,"
        " kafka_topic text not null, kafka_partition integer not null, kafka_offset bigint not null,"
        " kafka_timestamp timestamptz, kafka_timestamp_type smallint, message_key text, message_key_bytes bytea,"
        " message_value text, message_value_bytes bytea, message_value_json jsonb, message_headers jsonb,"
        " loaded_at timestamptz not null default now(), unique (kafka_topic, kafka_partition, kafka_offset))"
    )
    conn.commit()
    consumer = _consumer(topic, f"bench-baseline-{os.getpid()}", lambda: None)
    insert = (
        "insert into baseline_jobs (kafka_topic, kafka_partition, kafka_offset, kafka_timestamp,"
        " kafka_timestamp_type, message_key, message_key_bytes, message_value, message_value_bytes,"
        " message_value_json, message_headers)"
        " values (%s, %s, %s, to_timestamp(%s / 1000.0), %s, %s, %s, %s, %s, %s::jsonb, %s)"
        " on conflict do nothing"
    )
    count = 0
    first = None
    deadline = time.monotonic() + 120
    while count < limit and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=1000, max_records=500).values():
            deadline = time.monotonic() + 120
            for message in batch:
                if count >= limit:
                    break
                if first is None:
                    first = time.monotonic()
                key, value = split_payload(message.key), split_payload(message.value)
                conn.execute(
                    insert,
                    (
                        topic,
                        message.partition,
                        message.offset,
                        message.timestamp,
                        message.timestamp_type,
                        key.text,
                        key.raw_bytes,
                        value.text,
                        value.raw_bytes,
                        value.text if value.is_json else None,
                        headers_json(message.headers),
                    ),
                )
                conn.commit()
                count += 1
    seconds = time.monotonic() - (first or time.monotonic())
    consumer.close(autocommit=False)
    conn.close()
    print(json.dumps({"messages": count, "seconds": seconds, "rate": count / seconds}))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_raw-consume":
        child_raw_consume(argv[1], int(argv[2]))
        return 0
    if argv and argv[0] == "_baseline":
        child_baseline(argv[1], int(argv[2]))
        return 0
    config = Config.from_args(argv)
    log(
        f"jobs={config.jobs:,} users={config.users:,} small={config.small_jobs:,} baseline={config.baseline:,}"
        f" items={sorted(config.items)}"
    )
    bench = Bench(config)
    try:
        report = bench.run()
    finally:
        bench.drop_databases()
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "quick" if config.quick else "latest"
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    try:
        chart(report, RESULTS / f"{name}.png")
    except ImportError:
        log("matplotlib is not installed (pip install -e '.[bench]'); no chart")
    print()
    print(table(report))
    print(f"\nwrote {RESULTS / (name + '.json')} and {name}.png in {report['meta']['seconds']:.0f}s")
    if config.quick:
        print("(quick mode: a smoke run; the targets are meant for the default sizes, 1M jobs and 200k users)")
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    if os.environ.get("BENCH_KEEP_DATA", "1") == "0":
        shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
