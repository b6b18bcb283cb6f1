"""`python -m extract`: generate, produce, land and look at the data. Run with --help.

The module runs over 500 lines because it is the whole command line in one place: each subcommand's parser
next to its handler, each handler a few lines that call into operations/, landing/ or local/ and print the
outcome."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import signal
import sys
import threading
from pathlib import Path

import psycopg
from kafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError

from extract.build import add_parser as add_build_parser
from extract.core import db, progress
from extract.core.errors import describe_error
from extract.core.kafka_probe import KafkaUnreachable
from extract.core.logs import setup_logging
from extract.core.settings import Settings, SettingsError
from extract.core.sources_config import FileSource, KafkaSource, SourcesConfigError
from extract.demo import add_parser as add_demo_parser
from extract.landing.file_loader import FileLoadResult, FileSourceError, load_file
from extract.landing.kafka_extractor import ExtractError, KafkaExtractor, run_kafka_sources
from extract.landing.members import MAX_PROCESSES, landed_line, run_members
from extract.landing.observers import ExtractObserver
from extract.landing.producer import COMPRESSION_CODECS, ProduceError, ensure_topic, produce_file
from extract.local import embedded
from extract.local.reset import NotOwnedError
from extract.operations import answers, retention
from extract.operations.audit import RunAudit
from extract.operations.progress import ExtractProgress

log = logging.getLogger("extract")

EXPECTED_ERRORS = (
    ExtractError,
    ProduceError,
    FileSourceError,
    SourcesConfigError,
    retention.RetentionError,
    SettingsError,
    db.DatabaseRefused,
    KafkaUnreachable,
    embedded.ServiceError,
    NotOwnedError,
    psycopg.Error,
    DBAPIError,
    KafkaError,
    OSError,
)


def _generate(args: argparse.Namespace, _settings: Settings) -> int:
    from extract.sample_data.jobs import generate_files  # noqa: PLC0415 - only this command needs it

    summary = generate_files(Path(args.out), users=args.users, jobs=args.jobs, seed=args.seed)
    print(
        f"wrote {summary.user_lines} user lines ({summary.distinct_users} users) to {summary.users_path} and"
        f" {summary.job_lines} job lines ({summary.distinct_jobs} jobs) to {summary.jobs_path}; and"
        f" {summary.payment_lines} payments to {summary.payments_path}, {summary.service_lines} catalogue lines"
        f" to {summary.services_path}"
    )
    return 0


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    source = settings.sources().get(args.source)
    if not isinstance(source, KafkaSource):
        raise SourcesConfigError(f"source {args.source!r} is a file source, not a Kafka topic")
    result = produce_file(
        settings,
        Path(args.file),
        source.topic,
        source.partitions,
        compression=args.compression,
        skip_invalid=args.skip_invalid,
    )
    skipped = f"; skipped {len(result.invalid_lines_skipped)} invalid lines" if result.invalid_lines_skipped else ""
    print(f"sent {result.sent} messages to {source.topic!r}{skipped}")
    return 0


def _print_load(result: FileLoadResult) -> None:
    if result.already_loaded:
        print(f"{result.file_name}: already loaded as load {result.load_id} of {result.source}; nothing added")
    else:
        print(f"{result.file_name}: {result.lines} lines landed as load {result.load_id} of {result.source}")


def _users(args: argparse.Namespace, settings: Settings) -> int:
    config = settings.sources()
    source = config.get("users")
    assert isinstance(source, FileSource)
    _print_load(load_file(settings, source, Path(args.file), config))
    return 0


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _extract_observers(settings: Settings, command: str, until_end: bool) -> list[ExtractObserver]:
    """The audit row of every run, and a progress bar when draining at a terminal."""
    audit = RunAudit(settings, command if until_end else f"{command} (service)")
    return [audit, ExtractProgress(command)] if until_end and progress.enabled() else [audit]


def _jobs(args: argparse.Namespace, settings: Settings) -> int:
    observers = _extract_observers(settings, "jobs", args.until_end)
    stats = KafkaExtractor(settings, stop=_stop_on_signals(), observers=observers).run(until_end=args.until_end)
    print(landed_line(stats.inserted, stats.messages, repr(settings.kafka_topic)))
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    """Every selected file source, then every selected Kafka source; one failing file does not stop
    the others, but makes the exit code non-zero."""
    config = settings.sources()
    selected = [source for source in config.select(args.sources) if args.kind in (None, source.kind)]
    failures = 0
    for source in selected:
        if not isinstance(source, FileSource):
            continue
        paths = source.files(Path.cwd())
        if not paths:
            log.warning("source %s: no file matches %s", source.name, source.path)
        for path in paths:
            try:
                _print_load(load_file(settings, source, path, config))
            except FileSourceError as error:
                failures += 1
                print(f"error: source {source.name}: {error}", file=sys.stderr)
    kafka_sources = [source for source in selected if isinstance(source, KafkaSource)]
    topics = ", ".join(source.topic for source in kafka_sources)
    if args.processes > 1 and not kafka_sources:
        log.warning("--processes %d applies to Kafka sources, and none is selected", args.processes)
    if kafka_sources and args.processes > 1:
        member_args = [*_logging_args(args), "run", "--kind", "kafka", *(["--until-end"] if args.until_end else [])]
        members = run_members(
            args.processes,
            [*member_args, *(source.name for source in kafka_sources)],
            until_end=args.until_end,
            stop=_stop_on_signals(),
        )
        for failure in members.failures:
            print(f"error: {failure}", file=sys.stderr)
        print(f"{landed_line(members.inserted, members.messages, topics)} ({args.processes} processes)")
        failures += len(members.failures)
    elif kafka_sources:
        stats = run_kafka_sources(
            settings,
            kafka_sources,
            until_end=args.until_end,
            stop=_stop_on_signals(),
            config=config,
            observers=_extract_observers(settings, "run", args.until_end),
        )
        print(landed_line(stats.inserted, stats.messages, topics))
    return 1 if failures else 0


def _logging_args(args: argparse.Namespace) -> list[str]:
    return ["--log-level", args.log_level, "--log-format", args.log_format]


def _processes(text: str) -> int:
    number = int(text)
    if not 1 <= number <= MAX_PROCESSES:
        raise argparse.ArgumentTypeError(f"between 1 and {MAX_PROCESSES}")
    return number


def _topics(_args: argparse.Namespace, settings: Settings) -> int:
    """Where the broker does not create topics on first use (a production Kafka), they exist before anyone
    produces or consumes; idempotent."""
    sources = settings.sources().kafka_sources()
    for source in sources:
        ensure_topic(settings, source.topic, source.partitions)
    print(f"topics ready: {', '.join(f'{s.topic} ({s.partitions} partitions)' for s in sources) or 'none declared'}")
    return 0


def _roles(_args: argparse.Namespace, settings: Settings) -> int:
    from extract.local.roles import GROUPS, create_roles  # noqa: PLC0415

    users = create_roles(settings)
    print(f"roles {', '.join(GROUPS)} ready in {settings.pg_database!r}; login users: {', '.join(users) or 'none'}")
    return 0


def _env(_args: argparse.Namespace, settings: Settings) -> int:
    for name, value in {
        **settings.dbt_env(),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC": settings.kafka_topic,
        "KAFKA_GROUP_ID": settings.kafka_group_id,
    }.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _up(_args: argparse.Namespace, _settings: Settings) -> int:
    state = embedded.up()
    for name in ("PGHOST", "PGPORT", "PGDATABASE", "KAFKA_BOOTSTRAP_SERVERS"):
        print(f"{name}={state[name]}")
    return 0


def _down(_args: argparse.Namespace, _settings: Settings) -> int:
    stopped = embedded.down()
    print(f"stopped {', '.join(stopped)}" if stopped else "nothing to stop")
    return 0


def _reset(args: argparse.Namespace, settings: Settings) -> int:
    if not args.yes:
        print(
            "reset drops the raw, staging and marts schemas and deletes the topic; pass --yes",
            file=sys.stderr,
        )
        return 2
    from extract.local.reset import reset_everything  # noqa: PLC0415

    reset_everything(settings, adopt=args.adopt, keep_topics=args.keep_topics)
    topics = "kept the topics" if args.keep_topics else "deleted the topics"
    print(f"dropped raw, staging and marts of {settings.pg_database!r} and {topics}")
    return 0


def _answer(args: argparse.Namespace, settings: Settings) -> int:
    location, rows = answers.top_revenue(db.make_engine(settings), at_job_time=args.at_job_time)
    if args.at_job_time:
        headers = ["rank", "user_id", "current_location", "total_revenue", "jobs"]
        print(f"Top users by revenue at {location or '(no rows)'} who lived elsewhere at the time of the job")
    else:
        headers = ["rank", "user_id", "home_location", "total_revenue", "jobs"]
        print(f"Top non-local users by revenue at {location or '(no rows)'}")
    print(answers.format_table(headers, rows))
    return 0


def _lookup(args: argparse.Namespace, settings: Settings) -> int:
    headers, rows = answers.lookup(db.make_engine(settings), args.kind, args.value)
    print(f"Latest jobs for {args.kind} {args.value!r}")
    print(answers.format_table(headers, rows))
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from extract.operations import status  # noqa: PLC0415

    current = status.collect(settings)
    print(json.dumps(current, indent=2, default=str) if args.json else status.render(current))
    return 0


def _dbt(args: argparse.Namespace, settings: Settings) -> int:
    from extract.operations import dbt_runner  # noqa: PLC0415

    dbt_args = args.dbt_args[1:] if args.dbt_args[:1] == ["--"] else args.dbt_args
    return dbt_runner.run_locked(settings, dbt_args)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from extract.operations import service  # noqa: PLC0415 - only the service needs prometheus_client

    config = settings.sources()
    sources = [source for source in config.select(args.sources) if isinstance(source, KafkaSource)]
    if not sources:
        names = ", ".join(args.sources) or "sources.yml"
        raise SourcesConfigError(f"serve consumes Kafka sources; none among {names}")
    options = service.ServiceSettings.from_env()
    if args.dbt_interval is not None:
        options = dataclasses.replace(options, dbt_build_interval_s=args.dbt_interval)
    return service.serve(settings, options, _stop_on_signals(), sources=sources, config=config, run_dbt=True)


def _schedule(args: argparse.Namespace, settings: Settings) -> int:
    from extract.operations import service  # noqa: PLC0415

    options = service.ServiceSettings.from_env()
    if args.dbt_interval is not None:
        options = dataclasses.replace(options, dbt_build_interval_s=args.dbt_interval)
    if options.dbt_build_interval_s <= 0:
        raise SourcesConfigError("schedule needs a positive interval (DBT_BUILD_INTERVAL_S or --dbt-interval)")
    return service.serve(settings, options, _stop_on_signals(), run_dbt=True)


def _retention(args: argparse.Namespace, settings: Settings) -> int:
    archive_dir = Path(args.archive_dir) if args.archive_dir else settings.archive_dir
    if args.restore:
        rows = retention.restore_partition(settings, args.restore, archive_dir)
        print(f"{args.restore}: restored {rows} rows from {archive_dir}")
        return 0
    config = settings.sources()
    with db.connect(settings) as conn:
        db.ensure_raw_schema(conn, config)
    outcomes = retention.apply_retention(settings, config.select(args.sources), archive_dir)
    if args.json:
        print(json.dumps(retention.describe(outcomes), indent=2))
        return 0
    for outcome in outcomes:
        rows = "" if outcome.rows is None else f" ({outcome.rows} rows)"
        print(f"{outcome.partition}: {outcome.action}{rows}{f' -> {outcome.file}' if outcome.file else ''}")
    archived = sum(1 for outcome in outcomes if outcome.action == "archived")
    print(f"{archived} partition(s) archived to {archive_dir}, {len(outcomes) - archived} past retention kept")
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from extract.operations.html_report import write_report  # noqa: PLC0415

    print(f"wrote {write_report(settings, Path(args.out))}")
    return 0


def _sources(args: argparse.Namespace, settings: Settings) -> int:
    from extract.operations import dbt_sources  # noqa: PLC0415 - only this command needs it

    config = dbt_sources.load_for_dbt(settings.sources_file)
    if args.write:
        written = dbt_sources.write(config)
        print(f"wrote {', '.join(written)}" if written else "dbt sources already in sync with sources.yml")
        return 0
    if args.check:
        diffs = dbt_sources.drift(config)
        if diffs:
            print(dbt_sources.summarise(diffs))
            print("error: dbt sources drift from sources.yml; run `python -m extract sources --write`", file=sys.stderr)
            return 1
        print("dbt sources in sync with sources.yml")
        return 0
    for path, text in dbt_sources.render(config).items():
        print(f"# --- {path}\n{text}", end="")
    return 0


def _add_sources_command(commands: argparse._SubParsersAction) -> None:
    sources = commands.add_parser(
        "sources", help="generate dbt's sources files from sources.yml (print, --write, or --check for drift)"
    )
    mode = sources.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the generated files into dbt_project/")
    mode.add_argument("--check", action="store_true", help="exit 1 with a diff when the committed files drift")
    sources.set_defaults(handler=_sources)


def _add_landing_commands(commands: argparse._SubParsersAction) -> None:
    generate = commands.add_parser(
        "generate", help="write deterministic, messy users.ndjson, jobs.kafka, payments.kafka, services.csv"
    )
    generate.add_argument("--users", type=int, default=10_000)
    generate.add_argument("--jobs", type=int, default=100_000)
    generate.add_argument("--seed", type=int, default=42)
    generate.add_argument("--out", default="data")
    generate.set_defaults(handler=_generate)

    produce = commands.add_parser("produce", help="send a key|value file to a topic (console-producer style)")
    produce.add_argument("file")
    produce.add_argument("--source", default="jobs", help="the Kafka source (sources.yml) whose topic gets the file")
    produce.add_argument(
        "--compression", default="none", choices=COMPRESSION_CODECS, help="the codec of the record batches sent"
    )
    produce.add_argument(
        "--skip-invalid",
        action="store_true",
        help="send the valid lines and report the invalid ones (default: an invalid line sends nothing)",
    )
    produce.set_defaults(handler=_produce)

    users = commands.add_parser("users", help="land every line of a users file in raw.users (once per content)")
    users.add_argument("file")
    users.set_defaults(handler=_users)

    jobs = commands.add_parser("jobs", help="consume the topic into raw.jobs; a service unless --until-end")
    jobs.add_argument("--until-end", action="store_true", help="drain to the current end of every partition, exit")
    jobs.set_defaults(handler=_jobs)

    run = commands.add_parser("run", help="land any or all sources of sources.yml (files first, then topics)")
    run.add_argument("sources", nargs="*", metavar="SOURCE", help="source names (default: all)")
    run.add_argument("--until-end", action="store_true", help="drain the topics to their current end, then exit")
    run.add_argument("--kind", choices=["file", "kafka"], help="only the sources of this kind (default: both)")
    run.add_argument(
        "--processes",
        type=_processes,
        default=1,
        metavar="N",
        help="land the topics with N processes, members of one consumer group (about one per core; members"
        " beyond the partitions stay idle); a member that exits is started again unless --until-end",
    )
    run.set_defaults(handler=_run)

    commands.add_parser(
        "topics", help="create every Kafka topic of sources.yml the broker lacks (partitions from sources.yml)"
    ).set_defaults(handler=_topics)

    _add_sources_command(commands)


def _add_operations_commands(commands: argparse._SubParsersAction) -> None:
    up = commands.add_parser("up", help="start the embedded PostgreSQL and Tansu broker if none is configured")
    up.set_defaults(handler=_up)
    commands.add_parser("down", help="stop what `up` started").set_defaults(handler=_down)
    commands.add_parser(
        "env", help='print the effective connection settings as shell exports: eval "$(python -m extract env)"'
    ).set_defaults(handler=_env)

    dbt = commands.add_parser(
        "dbt",
        help="run dbt (in the current directory) holding the database's dbt lock: one build at a time per"
        " database, shared with the service and `build`; make audit / make run use it",
    )
    dbt.add_argument("dbt_args", nargs=argparse.REMAINDER, metavar="-- DBT_ARGS")
    dbt.set_defaults(handler=_dbt)
    add_build_parser(commands)

    reset = commands.add_parser(
        "reset", help="drop every layer's schema and delete the topics, in a database the project created"
    )
    reset.add_argument("--yes", action="store_true", help="really do it")
    reset.add_argument(
        "--adopt", action="store_true", help="also in a database `up` did not create (marks it as the project's)"
    )
    reset.add_argument(
        "--keep-topics", action="store_true", help="drop the schemas only; the topics and their messages stay"
    )
    reset.set_defaults(handler=_reset)

    commands.add_parser(
        "roles",
        help="create the least-privilege roles elt_loader, elt_transformer, elt_analyst (as an administrator);"
        " LOGIN members too when ELT_LOADER_PASSWORD / ELT_TRANSFORMER_PASSWORD / ELT_ANALYST_PASSWORD are set",
    ).set_defaults(handler=_roles)


def _add_query_commands(commands: argparse._SubParsersAction) -> None:
    answer_cmd = commands.add_parser("answer", help="print the non-local top revenue table (after dbt build)")
    answer_cmd.add_argument(
        "--at-job-time",
        action="store_true",
        help="users who lived elsewhere when the job took place (marts.non_local_top_revenue_at_job_time)",
    )
    answer_cmd.set_defaults(handler=_answer)

    lookup = commands.add_parser("lookup", help="latest 5 jobs for a location or a service")
    lookup.add_argument("kind", choices=sorted(answers.LOOKUPS))
    lookup.add_argument("value")
    lookup.set_defaults(handler=_lookup)

    status = commands.add_parser(
        "status", help="lag per partition, rows per layer, quarantine, freshness per source, the last runs"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status)

    retention_cmd = commands.add_parser(
        "retention",
        help="archive raw day partitions past their source's retention (sources.yml) to gzip files and drop them",
    )
    retention_cmd.add_argument("sources", nargs="*", help="source names (default: every source with a retention)")
    retention_cmd.add_argument("--archive-dir", help="where the files and manifest.json go (default ELT_ARCHIVE_DIR)")
    retention_cmd.add_argument(
        "--restore", metavar="PARTITION", help="put an archived partition back (raw.jobs_p20261001)"
    )
    retention_cmd.add_argument("--json", action="store_true", help="print the outcome as JSON")
    retention_cmd.set_defaults(handler=_retention)

    report_cmd = commands.add_parser("report", help="write one static HTML page: answer, look-ups, counts, charts")
    report_cmd.add_argument("--out", default="reports/report.html")
    report_cmd.set_defaults(handler=_report)


def _add_service_commands(commands: argparse._SubParsersAction) -> None:
    interval_help = (
        "seconds between full dbt builds (default: DBT_BUILD_INTERVAL_S, else 300; 0 = no dbt); in between, new raw"
        " rows trigger a build of what they affect (DBT_BUILD_ON_NEW_ROWS=0 turns that off)"
    )
    serve = commands.add_parser(
        "serve",
        help="the extractor as a service with Prometheus metrics and /health (EXTRACT_METRICS_PORT, default 9108)"
        " and dbt build on an interval; stops cleanly on SIGTERM/SIGINT",
    )
    serve.add_argument("sources", nargs="*", metavar="SOURCE", help="Kafka sources to consume (default: every one)")
    serve.add_argument("--dbt-interval", type=float, default=None, help=interval_help)
    serve.set_defaults(handler=_serve)

    schedule = commands.add_parser("schedule", help="dbt build on an interval only, with metrics and /health")
    schedule.add_argument("--dbt-interval", type=float, default=None, help=interval_help)
    schedule.set_defaults(handler=_schedule)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m extract",
        description="Land the sources of sources.yml (Kafka topics and files) in Postgres' raw schema exactly as"
        " they arrived, run the pipeline as a service, and show the answers. Connections come from"
        " PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE and KAFKA_* variables.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_landing_commands(commands)
    _add_operations_commands(commands)
    _add_query_commands(commands)
    _add_service_commands(commands)
    add_demo_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    if args.log_format == "json":
        progress.disable()
    settings: Settings | None = None
    try:
        settings = Settings.from_env()
        return args.handler(args, settings)
    except EXPECTED_ERRORS as error:
        message, code = describe_error(error, settings)
        print(f"error: {message}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
