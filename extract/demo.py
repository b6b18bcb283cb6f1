"""`python -m extract demo`: the whole pipeline on the local default, one line per phase, then the answer.

The phases are the make targets `up reset generate produce extract build answer`, run in one process so each
can say in one line what it moved and how long it took. Quiet by default: dbt's full output goes to a log
file and only its warnings and failures come back, one line each with what they mean; `-v` shows everything.
Part of the CLI room: it is the one place that drives the local default, the sample data and the pipeline."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from extract.core import db, progress
from extract.core.settings import Settings, state_dir
from extract.core.sources_config import FileSource, KafkaSource
from extract.landing.file_loader import load_file
from extract.landing.kafka_extractor import run_kafka_sources
from extract.landing.producer import produce_file
from extract.local import embedded
from extract.local.reset import reset_everything
from extract.operations import answers
from extract.operations.audit import RunAudit
from extract.operations.dbt_build import save_manifest
from extract.operations.dbt_runner import dbt_environment, dbt_executable, dbt_lock

# What the warnings every demo build shows mean: the generator makes this mess on purpose. Keyed by the
# start of the test's name in dbt's run results: (what a failing row is, what it means). Anything else is
# shown with dbt's own message.
KNOWN_WARNINGS = {
    "relationships_jobs_user_id": (
        "jobs",
        "their user is not in the users file (the generator makes such orphans on purpose); they stay in"
        " marts.jobs with has_known_user = false and never count as non-local",
    ),
    "no_rows_schema_drift_keys": (
        "unmapped keys",
        "fields staging does not map (the generator adds CHANNEL, NOTE, SEGMENT ... on purpose), listed in"
        " staging.schema_drift_keys; map one by adding it to a *_keys var in dbt_project.yml",
    ),
}
# dbt's statuses that need a look; success/pass, skipped and the no-op of exposures do not.
REPORTED = {"warn": "warning", "fail": "error", "error": "error", "runtime error": "error"}


@dataclass(frozen=True)
class BuildOutcome:
    ok: bool
    passed: int
    lines: list[str]


def _say(line: str) -> None:
    print(line, flush=True)


@contextmanager
def _phase(name: str) -> Iterator[list[str]]:
    """Print `name: <what moved> (<seconds>)` once the phase is done; the body appends what moved."""
    started = time.monotonic()
    moved: list[str] = []
    yield moved
    _say(f"{name:<9} {'; '.join(moved)} ({time.monotonic() - started:.1f} s)")


def _shown(path: Path) -> Path:
    """A path relative to the working directory when it is below it: shorter lines."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def _count(value: int) -> str:
    return f"{value:,}"


def run_dbt_build(settings: Settings, location: str, log_path: Path, *, verbose: bool) -> BuildOutcome:
    """`dbt build` with the demo's settings, under the database's dbt lock; its whole output goes to `log_path`
    (and the terminal with -v). The reset left nothing built, so there is no rule change to look for; the
    manifest is saved as `make build` saves it, so the next `make build` compares with what the demo built."""
    project = Path(os.environ.get("DBT_PROJECT_DIR", "dbt_project")).resolve()
    env = {**dbt_environment(settings), "DBT_PROFILES_DIR": str(project)}
    command = [dbt_executable(), "build", "--vars", json.dumps({"location": location, "test_scope": "recent"})]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with dbt_lock(settings), log_path.open("w") as log_file:
        process = subprocess.Popen(
            command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        for line in process.stdout:
            log_file.write(line)
            if verbose:
                sys.stdout.write(line)
        returncode = process.wait()
    target = Path(env.get("DBT_TARGET_PATH") or "target")
    target = target if target.is_absolute() else project / target
    if returncode == 0:
        try:
            save_manifest(target / "manifest.json", settings.dbt_state_dir)
        except OSError as error:  # the answer stands; only the next make build's comparison is lost
            _say(f"  warning: could not save dbt's manifest to {settings.dbt_state_dir}: {error}")
    return summarise_run_results(target, returncode == 0)


def summarise_run_results(target: Path, ok: bool) -> BuildOutcome:
    """One line per warning or failure of dbt's last run, saying what it means when it is a known one."""
    try:
        results = json.loads((target / "run_results.json").read_text())["results"]
    except (OSError, ValueError, KeyError):
        return BuildOutcome(ok, 0, [] if ok else ["dbt build failed before it wrote run_results.json"])
    lines = []
    passed = 0
    for result in results:
        status = str(result.get("status", "")).lower()
        name = result["unique_id"].split(".")[2] if result["unique_id"].count(".") >= 2 else result["unique_id"]
        if status in {"success", "pass"}:
            passed += 1
        if status not in REPORTED:
            continue
        rows = result.get("failures")
        known = next((value for prefix, value in KNOWN_WARNINGS.items() if name.startswith(prefix)), None)
        if known:
            noun, meaning = known
            lines.append(f"  {REPORTED[status]}: {rows:,} {noun} ({name}): {meaning}")
        else:
            count = f" ({rows:,} rows)" if rows else ""
            message = " ".join(str(result.get("message") or status).split())[:200]
            lines.append(f"  {REPORTED[status]}: {name}{count}: {message}")
    return BuildOutcome(ok, passed, lines)


def add_parser(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="the whole pipeline on the local default (up, reset, generate, produce, extract, build, answer),"
        " one line per phase",
    )
    demo.add_argument("-v", "--verbose", action="store_true", help="show every log line and dbt's full output")
    demo.add_argument("--adopt", action="store_true", help="reset a database this project did not create")
    demo.add_argument("--users", type=int, default=10_000)
    demo.add_argument("--jobs", type=int, default=100_000)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--out", default="data")
    demo.add_argument("--location", default="LOC_1294")
    demo.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace, _settings: Settings) -> int:
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
        progress.disable()
    started = time.monotonic()
    out = Path(args.out)

    with _phase("up") as moved:
        state = embedded.up()
        settings = Settings.from_env()
        where = "embedded" if state.get("EMBEDDED_PGPORT") else "existing"
        moved.append(f"{where} PostgreSQL {settings.pg_host}:{settings.pg_port}/{settings.pg_database}")
        moved.append(f"Kafka {settings.kafka_bootstrap_servers}")

    config = settings.sources()
    with _phase("reset") as moved:
        reset_everything(settings, adopt=args.adopt)
        topics = ", ".join(source.topic for source in config.kafka_sources())
        moved.append(f"emptied {settings.pg_database} and the topics {topics}")

    with _phase("generate") as moved:
        from extract.sample_data.jobs import generate_files  # noqa: PLC0415 - only the demo needs the generator

        summary = generate_files(out, users=args.users, jobs=args.jobs, seed=args.seed)
        moved.append(
            f"{_count(summary.user_lines)} users, {_count(summary.job_lines)} job events,"
            f" {_count(summary.payment_lines)} payments, {_count(summary.service_lines)} services in {out}/"
        )

    with _phase("produce") as moved:
        for name, path in (("jobs", summary.jobs_path), ("payments", summary.payments_path)):
            source = config.get(name)
            if isinstance(source, KafkaSource) and path is not None:
                result = produce_file(settings, Path(path), source.topic, source.partitions)
                moved.append(f"{_count(result.sent)} messages to {source.topic}")

    with _phase("extract") as moved:
        files = {"users": summary.users_path, "services": summary.services_path}
        for source in config.sources:
            if isinstance(source, FileSource) and files.get(source.name) is not None:
                loaded = load_file(settings, source, Path(files[source.name]), config)
                moved.append(f"{_count(loaded.lines)} lines to {source.raw_table}")
        stats = run_kafka_sources(
            settings,
            config.kafka_sources(),
            until_end=True,
            stop=threading.Event(),
            config=config,
            observers=[RunAudit(settings, "demo")],
        )
        moved.append(f"{_count(stats.inserted)} messages to raw")

    log_path = _shown(state_dir() / "logs" / "dbt-build.log")
    with _phase("build") as moved:
        outcome = run_dbt_build(settings, args.location, log_path, verbose=args.verbose)
        warnings = sum(1 for line in outcome.lines if "warning:" in line)
        moved.append(f"dbt build: {outcome.passed} nodes passed, {warnings} warnings, log in {log_path}")
    for line in outcome.lines:
        _say(line)
    if not outcome.ok:
        print(f"error: dbt build failed; the full log is {log_path}", file=sys.stderr)
        return 1

    location, rows = answers.top_revenue(db.make_engine(settings))
    _say(f"\nTop non-local users by revenue at {location or '(no rows)'}")
    _say(answers.format_table(["rank", "user_id", "home_location", "total_revenue", "jobs"], rows))
    _say(f"\ndone in {time.monotonic() - started:.0f} s")
    return 0
