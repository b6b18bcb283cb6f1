"""(7) The look-up functions (marts.jobs_by_location, marts.jobs_by_service) with the planner allowed to
use the indexes and forbidden to, on the same data and values, plans included. Its own module because it
is the one item that measures the serving side rather than loading."""

from __future__ import annotations

import statistics
import time

import psycopg

from bench.harness import Harness, log

FUNCTIONS = ("jobs_by_location", "jobs_by_service")


def measure(harness: Harness, database: str) -> dict[str, object]:
    calls = harness.config.lookup_calls
    out: dict[str, object] = {}
    with harness.connect(database) as conn:
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
            for row in conn.execute("select indexdef from pg_indexes where schemaname = 'marts' and tablename = 'jobs'")
        ]
    for function, values in sample.items():
        entry: dict[str, object] = {"values": len(values)}
        for mode in ("index", "no_index"):
            # A connection per mode: prepared statements keep the plan they were made with, so the
            # planner settings must be in place before the first call.
            off = "off" if mode == "no_index" else "on"
            options = f"-c enable_indexscan={off} -c enable_bitmapscan={off} -c enable_indexonlyscan={off}"
            with psycopg.connect(**harness.conninfo(database), autocommit=True, options=options) as conn:
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
    for function in FUNCTIONS:
        entry = out[function]
        log(f"(7) {function}: {entry['index']['median_ms']:.2f} ms vs {entry['no_index']['median_ms']:.2f} ms")
    return out
