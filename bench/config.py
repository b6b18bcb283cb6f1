"""What to run and at which sizes: the environment (BENCH_*) or the matching flags, read once. A module of
its own so the harness and every benchmark take one plain object instead of parsing arguments."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

import bench


@dataclass
class Config:
    jobs: int = 1_000_000
    users: int = 200_000
    small_jobs: int = 100_000
    baseline: int = 10_000
    lookup_calls: int = 200
    partitions: int = 3
    seed: int = 42
    increment: int = 0  # jobs added before (6)'s incremental build; 0 = 1% of jobs
    items: set[int] = field(default_factory=lambda: set(range(1, 11)))
    histories: list[int] = field(default_factory=list)
    new_events: int = 20_000
    results: str = "latest"
    freshness_seconds: float = 240.0
    freshness_rate: int = 3_000
    quick: bool = False
    profile: bool = False

    @classmethod
    def quick_sizes(cls) -> Config:
        return cls(
            jobs=20_000,
            users=5_000,
            small_jobs=5_000,
            baseline=1_000,
            lookup_calls=30,
            freshness_seconds=40.0,
            freshness_rate=1_000,
            new_events=2_000,
        )

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> Config:
        parser = argparse.ArgumentParser(
            prog="python -m bench", description=bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        env = os.environ
        quick = env.get("BENCH_QUICK", "") not in ("", "0")
        base = cls.quick_sizes() if quick else cls()
        parser.add_argument("--quick", action="store_true", default=quick, help="tiny sizes for a smoke run")
        parser.add_argument("--jobs", type=int, default=int(env.get("BENCH_JOBS", base.jobs)))
        parser.add_argument("--users", type=int, default=int(env.get("BENCH_USERS", base.users)))
        parser.add_argument("--small-jobs", type=int, default=int(env.get("BENCH_SMALL_JOBS", base.small_jobs)))
        parser.add_argument("--baseline", type=int, default=int(env.get("BENCH_BASELINE", base.baseline)))
        parser.add_argument("--lookup-calls", type=int, default=int(env.get("BENCH_LOOKUP_CALLS", base.lookup_calls)))
        parser.add_argument(
            "--increment",
            type=int,
            default=int(env.get("BENCH_INCREMENT", 0)),
            help="jobs in (6)'s incremental build (default 1%% of --jobs); the same at two --jobs sizes"
            " compares incremental cost across history",
        )
        parser.add_argument("--items", default=env.get("BENCH_ITEMS", "1,2,3,4,5,6,7,8,9,10"))
        parser.add_argument(
            "--freshness-seconds",
            type=float,
            default=float(env.get("BENCH_FRESHNESS_SECONDS", base.freshness_seconds)),
            help="(10) how long the producer sends while the service lands and builds",
        )
        parser.add_argument(
            "--freshness-rate",
            type=int,
            default=int(env.get("BENCH_FRESHNESS_RATE", base.freshness_rate)),
            help="(10) messages per second the producer sends",
        )
        parser.add_argument(
            "--history",
            default=env.get("BENCH_HISTORY", "5000,10000" if quick else ""),
            help="(11) history sizes in jobs, comma-separated (e.g. 200000,2000000): the flat-cost table",
        )
        parser.add_argument(
            "--new-events",
            type=int,
            default=int(env.get("BENCH_NEW_EVENTS", base.new_events)),
            help="(11) new events landed on top of each history before the incremental build",
        )
        parser.add_argument(
            "--results", default=None, help="results file name in bench/results (default: latest, quick for --quick)"
        )
        parser.add_argument(
            "--profile",
            action="store_true",
            default=env.get("BENCH_PROFILE", "") not in ("", "0"),
            help="also drain the main topic once more under py-spy: bench/results/profile.txt and a summary",
        )
        args = parser.parse_args(argv)
        if args.quick and not quick:
            base = cls.quick_sizes()
            args.jobs, args.users, args.small_jobs = base.jobs, base.users, base.small_jobs
            args.baseline, args.lookup_calls = base.baseline, base.lookup_calls
            args.freshness_seconds, args.freshness_rate = base.freshness_seconds, base.freshness_rate
            args.new_events = base.new_events
            if "BENCH_HISTORY" not in env:
                args.history = "5000,10000"
        histories = sorted({int(part) for part in args.history.split(",") if part.strip()})
        items = {int(part) for part in args.items.split(",") if part.strip()}
        if histories:
            items.add(11)
        else:
            items.discard(11)
        if items - {11}:
            items.add(2)  # the others build on what (2) landed
        return cls(
            jobs=args.jobs,
            users=args.users,
            small_jobs=min(args.small_jobs, args.jobs),
            baseline=min(args.baseline, args.small_jobs, args.jobs),
            lookup_calls=args.lookup_calls,
            histories=histories,
            new_events=args.new_events,
            results=args.results or ("quick" if args.quick else "latest"),
            freshness_seconds=args.freshness_seconds,
            freshness_rate=args.freshness_rate,
            items=items,
            quick=args.quick,
            profile=args.profile,
            increment=args.increment or max(1, args.jobs // 100),
        )
