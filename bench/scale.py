"""(11) Cost that follows new data, not history: for each history size in BENCH_HISTORY, land that many
jobs (with their users, payments and the service catalogue), build them from scratch (full refresh), then
land the same new events (BENCH_NEW_EVENTS job events, and the payments generated with them) and build
incrementally. The new events reuse the history's job and payment ids from the first on, so they are job
updates and late or corrected payments of old jobs, the changes an incremental mart has to follow. Flat
means the incremental build, and its data tests above all, cost about the same at every history size; the
nodes whose incremental time grows most between the smallest and the largest history are listed. Its own
module because it is the one item that repeats the pipeline at several sizes; `make bench-scale` runs it
alone."""

from __future__ import annotations

import time
from pathlib import Path

from bench.dbt_build import LOCKED_DBT, SCHEDULED_BUILD, dbt
from bench.extractor import extract_jobs
from bench.harness import WORK, Harness, log

# The bound the flat-cost table is held to: the incremental build at the largest history may take at most
# this much longer than at the smallest, and its data tests at most this share of a full build's tests at
# that history. At a small history the share cannot be small: the ~150 scoped test nodes cost dbt's fixed
# per-node time whatever the size, while a full build's tests are then cheap too; the results keep every
# size's share.
INCREMENTAL_GROWTH_MAX = 1.3
TESTS_SHARE_MAX = 0.1
# How many of the nodes that grow most with history the results name.
GROWING_NODES = 15


def _generated(harness: Harness, name: str, *, jobs: int, users: int, seed: int):  # noqa: ANN202
    from extract.sample_data.jobs import generate_files  # noqa: PLC0415 - only the parent generates

    directory = WORK / f"{name}-u{users}-j{jobs}-s{seed}"
    if not (directory / ".complete").exists():
        started = time.monotonic()
        generate_files(directory, users=users, jobs=jobs, seed=seed)
        (directory / ".complete").touch()
        log(f"generated {directory.name} in {time.monotonic() - started:.1f}s")
    return directory


def _land_payments(harness: Harness, env: dict[str, str], path: Path) -> int:
    """Send a payments file to the payments topic `env` names and land it in raw.payments; messages sent."""
    sent = int(harness.cli(env, "produce", "--source", "payments", str(path)).stdout.split()[1])
    harness.cli(env, "run", "--until-end", "payments")
    return sent


def measure(harness: Harness, histories: list[int], new_events: int) -> dict[str, object]:
    started = time.monotonic()
    c = harness.config
    increment = _generated(harness, "scale-new", jobs=new_events, users=100, seed=c.seed + 7)
    rows = []
    for history in histories:
        began = time.monotonic()
        data = _generated(harness, "scale", jobs=history, users=c.users, seed=c.seed)
        topic = f"bench_scale_{history}"
        database = harness.fresh_database(f"scale{history}")
        env = harness.env(database, topic, f"bench-scale-{history}") | {
            "KAFKA_PAYMENTS_TOPIC": f"{topic}_payments",
            "SERVICES_FILE": str(data / "services.csv"),
        }
        produced = harness.produce(data / "jobs.kafka", topic)
        extract_jobs(harness, database, topic, f"bench-scale-{history}", int(produced["messages"]))
        history_payments = _land_payments(harness, env, data / "payments.kafka")
        harness.cli(env, "users", str(data / "users.ndjson"))
        harness.cli(env, "run", "--until-end", "services")
        log(f"(11) history {history:,} (+{history_payments:,} payments): dbt build --full-refresh ...")
        full = dbt(harness, database, "build", "--full-refresh", "--vars", "'{test_scope: recent}'")
        added = harness.produce(increment / "jobs.kafka", topic)
        extract_jobs(harness, database, topic, f"bench-scale-{history}")
        added_payments = _land_payments(harness, env, increment / "payments.kafka")
        log(
            f"(11) history {history:,}: + {added['messages']:,} new job events and {added_payments:,} payments,"
            " dbt build (incremental) ..."
        )
        incremental = dbt(harness, database, "build", *SCHEDULED_BUILD, dbt_command=LOCKED_DBT)
        harness.drop(database)
        full_tests = full.get("node_seconds_by_type", {}).get("test", 0.0)
        incremental_tests = incremental.get("node_seconds_by_type", {}).get("test", 0.0)
        row = {
            "history": history,
            "history_messages": produced["messages"],
            "history_payment_messages": history_payments,
            "new_events": added["messages"],
            "new_payment_events": added_payments,
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
    return {
        "histories": histories,
        "new_events": new_events,
        "rows": rows,
        "growing_nodes": growing_nodes(smallest["incremental"], largest["incremental"]),
        "incremental_growth": growth,
        "incremental_growth_max": INCREMENTAL_GROWTH_MAX,
        "tests_share_max": TESTS_SHARE_MAX,
        "tests_share_at_largest_history": largest["tests_share_of_full_tests"],
        "seconds": time.monotonic() - started,
    }


def growing_nodes(smallest: dict[str, object], largest: dict[str, object], top: int = GROWING_NODES) -> list:
    """The nodes whose incremental time grew most from the smallest history to the largest:
    [unique_id, seconds at the smallest, seconds at the largest], largest growth first."""
    before, after = smallest.get("node_seconds", {}), largest.get("node_seconds", {})
    grown = sorted(after, key=lambda node: before.get(node, 0.0) - after[node])
    return [[node, before.get(node, 0.0), after[node]] for node in grown[:top]]


def table(result: dict[str, object]) -> str:
    """The flat-cost table, as docs/performance.md shows it."""
    lines = [
        "| history | new events | full refresh | incremental build | of which data tests (node time) |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['history']:,} jobs | +{row['new_events']:,} (+{row.get('new_payment_events', 0):,} payments)"
            f" | {row['full_refresh_seconds']:.1f} s"
            f" | {row['incremental_seconds']:.1f} s ({row['incremental_share_of_full']:.2f} of full)"
            f" | {row['incremental_tests_seconds']:.1f} s (full build: {row['full_tests_seconds']:.1f} s) |"
        )
    growing = result.get("growing_nodes") or []
    if growing:
        lines.append("\nincremental node time, smallest -> largest history (most growth first):")
        lines.extend(f"  {node}: {small:.2f} s -> {large:.2f} s" for node, small, large in growing)
    lines.append(
        f"\nincremental build, largest / smallest history: {result['incremental_growth']:.2f}x"
        f" (bound {INCREMENTAL_GROWTH_MAX}x); data tests vs a full build's at the largest history:"
        f" {result['tests_share_at_largest_history']:.3f} (bound {TESTS_SHARE_MAX}; by size: "
        + ", ".join(f"{row['tests_share_of_full_tests']:.3f} at {row['history']:,}" for row in result["rows"])
        + f"); the whole run took"
        f" {result['seconds'] / 60:.1f} min"
    )
    return "\n".join(lines)
