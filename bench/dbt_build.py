"""(6) dbt build: a full refresh of the landed main topic, then an incremental build after a 1% increment.
Also runs the full refresh that (7) needs before it can query the marts. Its own module because dbt runs
the way the Makefile runs it (settings from `extract env`, from dbt_project/) and its run results are
summarised per node type here."""

from __future__ import annotations

import json
from pathlib import Path

from bench.extractor import extract_jobs
from bench.harness import PY, RUN_DIR, Harness, log, run_child

DBT = str(Path(PY).parent / "dbt")
# As `make build`: under the database's dbt lock, the models and the data tests of the new rows
# (dbt_project/selectors.yml, macros/tests/test_scope.sql). The full refresh builds and tests everything
# (every data and unit test on every row), so its test time is the whole check's.
SCHEDULED_BUILD = ("--selector", "scheduled_build", "--vars", "'{test_scope: recent}'")
LOCKED_DBT = f"{PY} -m extract dbt --"


def full_refresh(harness: Harness, database: str) -> dict[str, object]:
    log("(6) dbt build --full-refresh ...")
    full = dbt(harness, database, "build", "--full-refresh", "--vars", "'{test_scope: recent}'")
    log(f"(6) full refresh: {full['seconds']:.1f}s")
    return full


def incremental(
    harness: Harness, database: str, topic: str, increment: Path, *, total: int, full: dict[str, object]
) -> dict[str, object]:
    """Send `increment` to `topic`, land it, build incrementally and set that beside `full`."""
    produced = harness.produce(increment, topic)
    extracted = extract_jobs(harness, database, topic, "bench-extract-1")
    log("(6) dbt build (incremental) ...")
    build = dbt(harness, database, "build", *SCHEDULED_BUILD, dbt_command=LOCKED_DBT)
    result = {
        "base_messages": total,
        "added_messages": produced["messages"],
        "added_landed": extracted["messages"],
        "full_refresh": full,
        "incremental": build,
        "ratio": build["seconds"] / full["seconds"],
    }
    log(f"(6) incremental: {build['seconds']:.1f}s ({result['ratio']:.2f} of full)")
    return result


def dbt(harness: Harness, database: str, *args: str, dbt_command: str = DBT) -> dict[str, object]:
    """One dbt command; a failure is recorded in the summary (with the tail of its output), not raised."""
    target = RUN_DIR / "dbt-target"
    env = harness.env(database) | {
        "DBT_PROFILES_DIR": ".",
        "DBT_TARGET_PATH": str(target),
        "DBT_LOG_PATH": str(RUN_DIR / "dbt-logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
    }
    # Exactly the Makefile's invocation: the CLI prints the settings, dbt runs from dbt_project/.
    command = f'eval "$({PY} -m extract env)" && cd dbt_project && {dbt_command} {" ".join(args)}'
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
        seconds = {node["unique_id"]: float(node.get("execution_time") or 0) for node in nodes}
        timed = sorted(seconds, key=lambda node: -seconds[node])
        summary["slowest"] = [[node, round(seconds[node], 2)] for node in timed[:5]]
        # Every node's time, slowest first: (11) compares them across history sizes to name what grows.
        summary["node_seconds"] = {node: round(seconds[node], 3) for node in timed}
    if run.returncode != 0:
        summary["failure_tail"] = run.stdout.strip().splitlines()[-12:]
        log(f"dbt {' '.join(args)} exited {run.returncode} (recorded, not fatal)")
    return summary
