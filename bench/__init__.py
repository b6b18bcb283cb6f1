"""`make bench`: the pipeline's throughput, memory and look-up speed, measured side by side in one run.

Everything runs through the package's public entry points (`python -m extract ...`, `generate_files`,
`dbt build`) against a Tansu broker started here (memory storage, its own port) and throw-away
`bench_elt*` databases on the configured PostgreSQL, which are dropped at the end. Results go to
bench/results/latest.json and latest.png, and a table is printed. Run it from the repository root:
`python -m bench` (or `make bench`).

Sizes come from the environment (or the matching --flags):

    BENCH_JOBS=1000000 BENCH_USERS=200000   main topic and users file
    BENCH_SMALL_JOBS=100000                 second topic, for the peak-RSS comparison
    BENCH_BASELINE=10000                    messages for the one-INSERT-one-commit baseline
    BENCH_LOOKUP_CALLS=200                  calls per look-up function and mode
    BENCH_ITEMS=1,2,3,4,5,6,7,8,9           which items to run (2 always runs: the others build on it)
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

Layout: harness.py (broker, databases, timing, child processes, results file), suite.py (the order the
items run in), one module per item (raw_consume, extractor, baseline, users_load, rss, dbt_build,
lookups, scale_out; profiling for BENCH_PROFILE), report.py (targets and table) and chart.py.
"""
