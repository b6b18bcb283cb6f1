"""(11) Cost that follows new data, not history: for each history size in BENCH_HISTORY, land that many
jobs, build them from scratch (full refresh), then land the same number of new events (BENCH_NEW_EVENTS)
and build incrementally. Flat means the incremental build, and its data tests above all, cost about the
same at every history size. Its own module because it is the one item that repeats the pipeline at
several sizes; `make bench-scale` runs it alone."""

from __future__ import annotations

import time

from bench.dbt_build import LOCKED_DBT, SCHEDULED_BUILD, dbt
from bench.extractor import extract_jobs
from bench.harness import WORK, Harness, log

# The bound the flat-cost table is held to: the incremental build at the largest history may take at most
# this much longer than at the smallest, and its data tests at most this share of a full build's tests.
INCREMENTAL_GROWTH_MAX = 1.3
TESTS_SHARE_MAX = 0.1


def _generated(harness: Harness, name: str, *, jobs: int, users: int, seed: int):  # noqa: ANN202
    from extract.sample_data.jobs import generate_files  # noqa: PLC0415 - only the parent generates

    directory = WORK / f"{name}-u{users}-j{jobs}-s{seed}"
    if not (directory / ".complete").exists():
        started = time.monotonic()
        generate_files(directory, users=users, jobs=jobs, seed=seed)
        (directory / ".complete").touch()
        log(f"generated {directory.name} in {time.monotonic() - started:.1f}s")
    return directory


def measure(harness: Harness, histories: list[int], new_events: int) -> dict[str, object]:
    started = time.monotonic()
    c = harness.config
    increment = _generated(harness, "scale-new", jobs=new_events, users=100, seed=c.seed + 7) / "jobs.kafka"
    rows = []
    for history in histories:
        began = time.monotonic()
        data = _generated(harness, "scale", jobs=history, users=c.users, seed=c.seed)
        topic = f"bench_scale_{history}"
        database = harness.fresh_database(f"scale{history}")
        produced = harness.produce(data / "jobs.kafka", topic)
        extract_jobs(harness, database, topic, f"bench-scale-{history}", int(produced["messages"]))
        harness.cli(harness.env(database, topic), "users", str(data / "users.ndjson"))
        log(f"(11) history {history:,}: dbt build --full-refresh ...")
        full = dbt(harness, database, "build", "--full-refresh", "--vars", "'{test_scope: recent}'")
        added = harness.produce(increment, topic)
        extract_jobs(harness, database, topic, f"bench-scale-{history}")
        log(f"(11) history {history:,}: + {added['messages']:,} new events, dbt build (incremental) ...")
        incremental = dbt(harness, database, "build", *SCHEDULED_BUILD, dbt_command=LOCKED_DBT)
        harness.drop(database)
        full_tests = full.get("node_seconds_by_type", {}).get("test", 0.0)
        incremental_tests = incremental.get("node_seconds_by_type", {}).get("test", 0.0)
        row = {
            "history": history,
            "history_messages": produced["messages"],
            "new_events": added["messages"],
            "full_refresh_seconds": full["seconds"],
            "incremental_seconds": incremental["seconds"],
            "incremental_share_of_full": incremental["seconds"] / max(full["seconds"], 1e-9),
            "incremental_tests_seconds": incremental_tests,
            "full_tests_seconds": full_tests,
            "incremental_models_seconds": incremental.get("node_seconds_by_type", {}).get("model", 0.0),
            "tests_share_of_full_tests": incremental_tests / max(full_tests, 1e-9),
            "full_refresh_ok": full["returncode"] == 0,
            "incremental_ok": incremental["returncode"] == 0,
            "seconds": time.monotonic() - began,
            "full_refresh": full,
            "incremental": incremental,
        }
        rows.append(row)
        log(
            f"(11) history {history:,}: full {full['seconds']:.1f}s, incremental {incremental['seconds']:.1f}s"
            f" (tests {incremental_tests:.1f}s vs {full_tests:.1f}s in the full build)"
        )
    smallest, largest = rows[0], rows[-1]
    growth = largest["incremental_seconds"] / max(smallest["incremental_seconds"], 1e-9)
    worst_tests_share = max(row["tests_share_of_full_tests"] for row in rows)
    return {
        "histories": histories,
        "new_events": new_events,
        "rows": rows,
        "incremental_growth": growth,
        "incremental_growth_max": INCREMENTAL_GROWTH_MAX,
        "tests_share_max": TESTS_SHARE_MAX,
        "worst_tests_share": worst_tests_share,
        "seconds": time.monotonic() - started,
    }


def table(result: dict[str, object]) -> str:
    """The flat-cost table, as docs/performance.md shows it."""
    lines = [
        "| history | new events | full refresh | incremental build | of which data tests (node time) |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['history']:,} jobs | +{row['new_events']:,} | {row['full_refresh_seconds']:.1f} s"
            f" | {row['incremental_seconds']:.1f} s ({row['incremental_share_of_full']:.2f} of full)"
            f" | {row['incremental_tests_seconds']:.1f} s (full build: {row['full_tests_seconds']:.1f} s) |"
        )
    lines.append(
        f"\nincremental build, largest / smallest history: {result['incremental_growth']:.2f}x"
        f" (bound {INCREMENTAL_GROWTH_MAX}x); data tests vs a full build's: at most"
        f" {result['worst_tests_share']:.2f} (bound {TESTS_SHARE_MAX}); the whole run took"
        f" {result['seconds'] / 60:.1f} min"
    )
    return "\n".join(lines)
