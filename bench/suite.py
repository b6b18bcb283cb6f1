"""The order the items run in and what each hands the next: the main topic is landed once by (2) and its
database is then reused by (4), (6) and (7). One short linear script so that order, the only coupling
between the benchmark modules, is visible in one place."""

from __future__ import annotations

import time

from bench import (
    baseline,
    copy_ceiling,
    dbt_build,
    extractor,
    freshness,
    lookups,
    profiling,
    raw_consume,
    raw_storage,
    rss,
    scale,
    scale_out,
    users_load,
)
from bench.harness import RUN_DIR, Harness
from bench.report import targets

MAIN_TOPIC = "bench_jobs"
SMALL_TOPIC = "bench_small"


def run(harness: Harness) -> dict[str, object]:
    """Every selected item, then the report: `meta`, `results` (keyed by item) and `targets`."""
    c = harness.config
    r: dict[str, dict[str, object]] = {}
    started = time.monotonic()
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    main = bool(c.items - {11})
    files = harness.data() if main else {}
    with harness.tansu():
        if main:
            _main_topic(harness, files, r)
        if 11 in c.items:
            r["11_scale"] = scale.measure(harness, c.histories, c.new_events)
    harness.drop_databases()
    seconds = time.monotonic() - started
    return {"meta": harness.meta(seconds), "results": r, "targets": targets(r)}


def _main_topic(harness: Harness, files: dict[str, object], r: dict[str, dict[str, object]]) -> None:
    """Items 1-10: the main topic landed once by (2), its database reused by (4), (6), (7) and (9)."""
    c = harness.config
    r["produce"] = {
        "main": harness.produce(files["jobs"], MAIN_TOPIC),
        "small": harness.produce(files["small"], SMALL_TOPIC),
    }
    total = int(r["produce"]["main"]["messages"])
    small_total = int(r["produce"]["small"]["messages"])

    if 1 in c.items:
        r["1_raw_consume"] = raw_consume.measure(harness, MAIN_TOPIC, total)

    main_db = harness.fresh_database("main")
    r["2_extractor"] = extractor.measure(harness, main_db, MAIN_TOPIC, total)
    r["2_raw_storage"] = raw_storage.measure(harness, main_db)

    if 9 in c.items:
        r["9_copy_ceiling"] = copy_ceiling.measure(harness, main_db, total)

    if c.profile:
        r["profile"] = profiling.measure(harness, MAIN_TOPIC, total)

    if 3 in c.items:
        r["3_baseline"] = baseline.measure(harness, SMALL_TOPIC, c.baseline)

    if 5 in c.items:
        r["5_rss"] = rss.measure(harness, SMALL_TOPIC, small_total, r["2_extractor"], total)

    if 8 in c.items:
        r["8_scale_out"] = scale_out.measure(harness, MAIN_TOPIC, total, r["2_extractor"])

    if c.items & {4, 6, 7}:
        r["4_users"] = users_load.measure(harness, main_db, files["users"])

    if c.items & {6, 7}:
        full = dbt_build.full_refresh(harness, main_db)
        if 7 in c.items:
            r["7_lookups"] = lookups.measure(harness, main_db)
        if 6 in c.items:
            r["6_dbt"] = dbt_build.incremental(harness, main_db, MAIN_TOPIC, files["increment"], total=total, full=full)
    if 10 in c.items:
        r["10_freshness"] = freshness.measure(harness, rate=c.freshness_rate, seconds=c.freshness_seconds)
