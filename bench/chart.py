"""bench/results/latest.png: one panel per item, drawn from the results file alone. Apart from the table
because it is the one part that needs matplotlib (the `bench` extra), imported only when drawing."""

from __future__ import annotations

from pathlib import Path


def chart(report: dict[str, object], path: Path) -> None:  # noqa: PLR0915 - one panel after another
    import matplotlib  # noqa: PLC0415 - only the chart needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    r = report["results"]
    fig, axes = plt.subplots(3, 3, figsize=(15, 12.5))
    sizes = report["meta"]["sizes"]
    fig.suptitle(
        f"make bench: {sizes['jobs']:,} jobs, {sizes['users']:,} users, {sizes['partitions']} partitions,"
        f" {report['meta']['host']['cpus']} CPUs ({report['meta']['finished_at']})"
    )

    def bars(ax, labels: list[str], values: list[float], title: str, unit: str, *, log_scale: bool = False) -> None:  # noqa: ANN001
        colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
        drawn = ax.bar(labels, values, color=colours[: len(values)])
        ax.set_title(title)
        ax.set_ylabel(unit)
        if log_scale:
            ax.set_yscale("log")
        for rect, value in zip(drawn, values, strict=True):
            ax.annotate(
                f"{value:,.0f}" if value >= 10 else f"{value:.2f}",
                (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.tick_params(axis="x", labelsize=8)

    labels, values = [], []
    if "1_raw_consume" in r:
        labels.append("kafka-python\nraw (1)")
        values.append(r["1_raw_consume"]["steady_rate"])
    if "9_copy_ceiling" in r:
        labels.append("server COPY\nceiling (9)")
        values.append(r["9_copy_ceiling"]["rate"])
    if "2_extractor" in r:
        labels.append("extractor\n(2)")
        values.append(r["2_extractor"]["steady_rate"] or r["2_extractor"]["wall_rate"])
    if "3_baseline" in r:
        labels.append("INSERT+commit\nper msg (3)")
        values.append(r["3_baseline"]["rate"])
    if values:
        bars(axes[0][0], labels, values, "Kafka -> Postgres, steady state", "messages/s (log)", log_scale=True)

    if "4_users" in r:
        u = r["4_users"]
        bars(
            axes[0][1],
            ["users loader\n(CLI)", "plain COPY"],
            [u["loader_rate"], u["copy_rate"]],
            "(4) users file load",
            "rows/s",
        )
    if "5_rss" in r:
        s = r["5_rss"]
        bars(
            axes[0][2],
            [f"{s['small_messages']:,} msgs", f"{s['large_messages']:,} msgs"],
            [s["small_max_rss_mb"], s["large_max_rss_mb"]],
            "(5) extractor peak RSS",
            "MB",
        )
        axes[0][2].axhline(300, color="grey", linestyle="--", linewidth=1)
    if "6_dbt" in r:
        d = r["6_dbt"]
        bars(
            axes[1][0],
            ["full refresh", "incremental\n+1%"],
            [d["full_refresh"]["seconds"], d["incremental"]["seconds"]],
            "(6) dbt build",
            "seconds",
        )
    if "7_lookups" in r:
        l7 = r["7_lookups"]
        ax = axes[1][1]
        names = ["jobs_by_location", "jobs_by_service"]
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], [l7[n]["index"]["median_ms"] for n in names], 0.4, label="index")
        ax.bar([x + 0.2 for x in xs], [l7[n]["no_index"]["median_ms"] for n in names], 0.4, label="no index")
        ax.set_xticks(list(xs), names, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("median ms (log)")
        ax.set_title(f"(7) look-ups at {l7['marts_jobs_rows']:,} jobs")
        ax.legend(fontsize=8)
    if "8_scale_out" in r:
        s = r["8_scale_out"]
        bars(
            axes[1][2],
            ["1 process", *(f"--processes {run['processes']}" for run in s["runs"])],
            [s["one_process_steady_rate"], *(run["steady_rate"] or 0 for run in s["runs"])],
            "(8) scale-out: one group, steady rate",
            "messages/s",
        )
    _new_panels(r, axes[2], bars)
    for ax in axes.flat:
        if not ax.has_data():
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _new_panels(r: dict[str, object], row, bars) -> None:  # noqa: ANN001 - matplotlib axes and the bars helper
    """(10) freshness under load and (11) build cost against history size."""
    if "10_freshness" in r:
        f = r["10_freshness"]
        bars(
            row[0],
            ["landing p95", "visible p50", "visible p95", "build median"],
            [f["landing_p95_s"], f["p50_s"], f["p95_s"], f["builds"]["median_s"]],
            f"(10) freshness at {f['target_rate']:,} msg/s",
            "seconds",
        )
        row[0].axhline(30, color="grey", linestyle="--", linewidth=1)
    if "11_scale" in r:
        s = r["11_scale"]
        ax = row[1]
        names = [f"{item['history']:,}" for item in s["rows"]]
        xs = range(len(names))
        width = 0.27
        ax.bar([x - width for x in xs], [item["full_refresh_seconds"] for item in s["rows"]], width, label="full")
        ax.bar(list(xs), [item["incremental_seconds"] for item in s["rows"]], width, label="incremental")
        ax.bar(
            [x + width for x in xs], [item["incremental_tests_seconds"] for item in s["rows"]], width, label="its tests"
        )
        ax.set_xticks(list(xs), names, fontsize=8)
        ax.set_xlabel("history (jobs)")
        ax.set_ylabel("seconds")
        ax.set_title(f"(11) dbt build, +{s['new_events']:,} new events")
        ax.legend(fontsize=8)
