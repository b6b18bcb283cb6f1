"""`python -m bench` (what `make bench` and `make bench-quick` run): sizes in, results file, chart and
table out. Kept apart from the suite so the run order reads without the command-line plumbing."""

from __future__ import annotations

import os
import shutil
import sys

from bench import suite
from bench.chart import chart
from bench.config import Config
from bench.harness import RESULTS, RUN_DIR, WORK, Harness, log, write_results
from bench.report import table
from bench.scale import table as scale_table


def main(argv: list[str] | None = None) -> int:
    config = Config.from_args(argv)
    log(
        f"jobs={config.jobs:,} users={config.users:,} small={config.small_jobs:,} baseline={config.baseline:,}"
        f" items={sorted(config.items)} history={config.histories}"
    )
    harness = Harness(config)
    try:
        report = suite.run(harness)
    finally:
        harness.drop_databases()
    name = config.results
    write_results(report, name)
    try:
        chart(report, RESULTS / f"{name}.png")
    except ImportError:
        log("matplotlib is not installed (pip install -e '.[bench]'); no chart")
    print()
    print(table(report))
    if "11_scale" in report["results"]:
        print()
        print(scale_table(report["results"]["11_scale"]))
    print(f"\nwrote {RESULTS / (name + '.json')} and {name}.png in {report['meta']['seconds']:.0f}s")
    if config.quick:
        print("(quick mode: a smoke run; the targets are meant for the default sizes, 1M jobs and 200k users)")
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    if os.environ.get("BENCH_KEEP_DATA", "1") == "0":
        shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
