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
    BENCH_ITEMS=1,2,3,4,5,6,7,8,9,10        which items to run (2 runs whenever any of 1-10 does)
    BENCH_FRESHNESS_SECONDS=240             (10) how long the producer sends while `serve` runs
    BENCH_FRESHNESS_RATE=3000               (10) its rate, messages per second
    BENCH_HISTORY=200000,2000000            (11) history sizes for the flat-cost table (none by default;
                                            `make bench-scale` runs (11) alone at 200k and 2M)
    BENCH_NEW_EVENTS=20000                  (11) new events built incrementally on each history
    BENCH_QUICK=1                           tiny sizes, for a smoke run (a few minutes; (11) at 5k and 10k)

Timing bases, so the ratios compare like with like:
- consumers (1, 2): "steady" rates run from the moment the consumer group assigned the partitions to the
  end of the drain, so the ~3 s group join (session_timeout_ms=6000) is excluded; "wall" rates are the
  whole process, interpreter start and join included. Both are in the JSON.
- baseline (3): from its first message to its last commit.
- users load (4): the whole CLI process, interpreter start included, against a plain COPY of the same
  file over one already open connection (so the ratio is the strict one).
- scale-out (8): wall clock of the whole run for 1 and 3 processes (joins included: with 3 members the
  group rebalances as they arrive, which is part of the cost of scaling out).
- server-side COPY (9): the rows (2) landed, dumped to a file and COPied into an empty table of raw.jobs'
  shape in one transaction: the database alone, no Kafka and no Python row building. The extractor's
  target is 0.8x the lower of (1) and (9).
- freshness (10): per message, Kafka timestamp to the first 0.5 s observation of marts.jobs built past
  it, while a producer sends at a steady rate and `extract serve` lands and builds on new rows.
- scale (11): per history size, full refresh, then +BENCH_NEW_EVENTS and an incremental build; dbt's
  node times split models from data tests.

Layout: harness.py (broker, databases, timing, child processes, results file), suite.py (the order the
items run in), one module per item (raw_consume, extractor, baseline, users_load, rss, dbt_build,
lookups, scale_out, copy_ceiling, freshness, scale; profiling for BENCH_PROFILE), report.py (targets and
table) and chart.py. `--results NAME` writes bench/results/NAME.json (latest; quick for --quick; scale
for `make bench-scale`).
"""
