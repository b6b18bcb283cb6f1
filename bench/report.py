"""What the figures mean: the targets each item is held to (met or not, with the numbers behind it) and
the printed table. Pure functions of the results, apart from the measuring code, so a results file can
be judged again without rerunning anything."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    item: str
    what: str
    measured: float | None
    goal: str
    met: bool | None
    detail: str = ""


def _extractor_targets(r: dict[str, dict]) -> list[Target]:
    """The extractor against its two ceilings: the Kafka client alone (1) and the database alone (9)."""
    out: list[Target] = []
    raw, ext, ceiling = r.get("1_raw_consume"), r.get("2_extractor"), r.get("9_copy_ceiling")
    if raw and ext and ext.get("steady_rate"):
        ratio = ext["steady_rate"] / raw["steady_rate"]
        out.append(
            Target(
                "2/1",
                "extractor vs raw kafka-python (steady)",
                ratio,
                "(see 2/min)",
                None,
                f"{ext['steady_rate']:,.0f} vs {raw['steady_rate']:,.0f} msg/s",
            )
        )
    if ceiling and ext and ext.get("steady_rate"):
        ratio = ext["steady_rate"] / ceiling["rate"]
        out.append(
            Target(
                "2/9",
                "extractor vs server-side COPY of the same rows",
                ratio,
                "(see 2/min)",
                None,
                f"{ext['steady_rate']:,.0f} vs {ceiling['rate']:,.0f} rows/s",
            )
        )
    if raw and ceiling and ext and ext.get("steady_rate"):
        lower = min(raw["steady_rate"], ceiling["rate"])
        which = "kafka-python consume (1)" if lower == raw["steady_rate"] else "server-side COPY (9)"
        ratio = ext["steady_rate"] / lower
        out.append(
            Target(
                "2/min",
                "extractor (1 process) vs the lower ceiling",
                ratio,
                ">= 0.8",
                ratio >= 0.8,
                f"{ext['steady_rate']:,.0f} msg/s vs {lower:,.0f} ({which})",
            )
        )
    return out


def _freshness_and_scale_targets(r: dict[str, dict]) -> list[Target]:
    """Minutes-fresh marts under load (10) and build cost flat in history (11)."""
    out: list[Target] = []
    fresh = r.get("10_freshness")
    if fresh:
        out.append(
            Target(
                "10",
                f"freshness p95 under {fresh['target_rate']:,} msg/s (Kafka timestamp -> visible in marts.jobs)",
                fresh["p95_s"],
                "< 30 s",
                fresh["p95_s"] < 30,
                f"p50 {fresh['p50_s']:.1f}s, landing p95 {fresh['landing_p95_s']:.1f}s, {fresh['builds']['count']}"
                f" builds (median {fresh['builds']['median_s']:.1f}s, p95 {fresh['builds']['p95_s']:.1f}s)",
            )
        )
    grown = r.get("11_scale")
    if grown and len(grown["rows"]) > 1:
        out.append(
            Target(
                "11",
                f"incremental build (+{grown['new_events']:,}), largest / smallest history",
                grown["incremental_growth"],
                f"<= {grown['incremental_growth_max']}",
                grown["incremental_growth"] <= grown["incremental_growth_max"],
                " vs ".join(f"{row['incremental_seconds']:.1f}s at {row['history']:,}" for row in grown["rows"]),
            )
        )
    if grown:
        out.append(
            Target(
                "11",
                "data tests of an incremental build / of a full build, at the largest history",
                grown["tests_share_at_largest_history"],
                f"<= {grown['tests_share_max']}",
                grown["tests_share_at_largest_history"] <= grown["tests_share_max"],
                " / ".join(
                    f"{row['incremental_tests_seconds']:.1f}s vs {row['full_tests_seconds']:.1f}s"
                    for row in grown["rows"]
                ),
            )
        )
    return out


def targets(r: dict[str, dict]) -> list[dict[str, object]]:
    out: list[Target] = []
    out.extend(_extractor_targets(r))
    ext = r.get("2_extractor")
    base = r.get("3_baseline")
    if base and ext and ext.get("steady_rate"):
        ratio = ext["steady_rate"] / base["rate"]
        out.append(
            Target(
                "2/3",
                "extractor vs one-INSERT-one-commit",
                ratio,
                ">= 20",
                ratio >= 20,
                f"{ext['steady_rate']:,.0f} vs {base['rate']:,.0f} msg/s",
            )
        )
    users = r.get("4_users")
    if users:
        out.append(
            Target(
                "4",
                "users loader vs plain COPY (whole CLI)",
                users["ratio"],
                ">= 0.5",
                users["ratio"] >= 0.5,
                f"{users['loader_rate']:,.0f} vs {users['copy_rate']:,.0f} rows/s",
            )
        )
    rss = r.get("5_rss")
    if rss:
        peak = max(rss["small_max_rss_mb"], rss["large_max_rss_mb"])
        flat = rss["growth"] <= 1.25
        out.append(
            Target(
                "5",
                f"extractor peak RSS, and growth {rss['small_messages']:,} -> {rss['large_messages']:,} msgs",
                peak,
                "< 300 MB, growth <= 1.25x",
                peak < 300 and flat,
                f"{rss['small_max_rss_mb']:.0f} MB -> {rss['large_max_rss_mb']:.0f} MB (x{rss['growth']:.2f})",
            )
        )
    dbt = r.get("6_dbt")
    if dbt:
        full, incremental = dbt["full_refresh"], dbt["incremental"]
        models = ""
        if "node_seconds_by_type" in full and "node_seconds_by_type" in incremental:
            full_models = full["node_seconds_by_type"].get("model", 0.0)
            incremental_models = incremental["node_seconds_by_type"].get("model", 0.0)
            models = (
                f"; models alone {incremental_models:.1f}s vs {full_models:.1f}s"
                f" ({incremental_models / max(full_models, 1e-9):.2f}), tests"
                f" {incremental['node_seconds_by_type'].get('test', 0.0):.1f}s vs"
                f" {full['node_seconds_by_type'].get('test', 0.0):.1f}s"
            )
        out.append(
            Target(
                "6",
                "dbt build incremental (+1%) vs full refresh",
                dbt["ratio"],
                "<= 0.2",
                dbt["ratio"] <= 0.2,
                f"{incremental['seconds']:.1f}s vs {full['seconds']:.1f}s{models}",
            )
        )
    lookups = r.get("7_lookups")
    if lookups:
        for function in ("jobs_by_location", "jobs_by_service"):
            entry = lookups[function]
            speedup = entry["speedup"]
            used = entry["index"]["plan_uses_index"]
            out.append(
                Target(
                    "7",
                    f"{function}: seq scan / index median",
                    speedup,
                    ">= 20, plan uses index",
                    speedup >= 20 and used,
                    f"{entry['index']['median_ms']:.2f} vs {entry['no_index']['median_ms']:.2f} ms,"
                    f" index in plan: {used}",
                )
            )
    scale = r.get("8_scale_out")
    for run in scale["runs"] if scale else []:
        out.append(
            Target(
                "8",
                f"run --processes {run['processes']} vs 1 process (steady)",
                run["steady_speedup"],
                "(no target)",
                None,
                f"{fmt(run['steady_rate'])} vs {fmt(scale['one_process_steady_rate'])} msg/s steady;"
                f" wall {run['wall_seconds']:.1f}s vs {scale['one_process_wall_seconds']:.1f}s",
            )
        )
    out.extend(_freshness_and_scale_targets(r))
    return [target.__dict__ for target in out]


def fmt(value: object, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def table(report: dict[str, object]) -> str:
    r = report["results"]
    rows: list[tuple[str, str, str]] = []

    def add(item: str, what: str, value: str) -> None:
        rows.append((item, what, value))

    if "1_raw_consume" in r:
        raw = r["1_raw_consume"]
        add(
            "1",
            "raw kafka-python consumption",
            f"{fmt(raw['steady_rate'])} msg/s steady, {fmt(raw['wall_rate'])} wall",
        )
    if "2_extractor" in r:
        ext = r["2_extractor"]
        add(
            "2",
            "extractor -> raw.jobs (1 process)",
            f"{fmt(ext['steady_rate'])} msg/s steady, {fmt(ext['wall_rate'])} wall",
        )
        if ext.get("cpu_bound_rate"):
            us, share = ext["cpu_us_per_message"], (ext["steady_rate"] or ext["wall_rate"]) / ext["cpu_bound_rate"]
            add(
                "2c",
                "CPU per message: extractor + Postgres + broker",
                f"{us['extractor']:.1f} + {us['postgres']:.1f} + {us['broker']:.1f} us"
                f" = {ext['cpu_us_per_message_total']:.1f} us: {ext['cores']} cores busy at"
                f" {fmt(ext['cpu_bound_rate'])} msg/s; (2) = {share:.2f} of it",
            )
    if "2_raw_storage" in r:
        st = r["2_raw_storage"]
        add(
            "2b",
            "raw.jobs bytes on disk per message / payload",
            f"{st['raw_bytes_per_message']:.0f} / {st['mean_payload_bytes']:.0f} B"
            f" (value as text {st['mean_value_text_bytes']:.0f} B + jsonb {st['mean_value_jsonb_bytes']:.0f} B)",
        )
    if "9_copy_ceiling" in r:
        c9 = r["9_copy_ceiling"]
        add(
            "9",
            "server-side COPY into the raw table's shape",
            f"{fmt(c9['rate'])} rows/s ({c9['rows']:,} rows, {c9['bytes_per_row']:.0f} B/row in {c9['seconds']:.1f} s)",
        )
    if "3_baseline" in r:
        add(
            "3",
            "one INSERT + one commit per message",
            f"{fmt(r['3_baseline']['rate'])} msg/s ({r['3_baseline']['messages']} msgs)",
        )
    if "4_users" in r:
        u = r["4_users"]
        add(
            "4",
            "users loader (CLI) / plain COPY",
            f"{fmt(u['loader_rate'])} / {fmt(u['copy_rate'])} rows/s"
            f" ({u['loader_seconds']:.2f} s, {u['cli_startup_seconds']:.2f} s of it CLI start-up; COPY"
            f" {u['copy_seconds']:.2f} s)",
        )
    if "5_rss" in r:
        s = r["5_rss"]
        add(
            "5",
            f"peak RSS at {s['small_messages']:,} / {s['large_messages']:,} msgs",
            f"{s['small_max_rss_mb']:.0f} / {s['large_max_rss_mb']:.0f} MB",
        )
    if "6_dbt" in r:
        d = r["6_dbt"]
        add(
            "6",
            "dbt build full refresh / incremental +1%",
            f"{d['full_refresh']['seconds']:.1f} / {d['incremental']['seconds']:.1f} s",
        )
    if "7_lookups" in r:
        for function in ("jobs_by_location", "jobs_by_service"):
            e = r["7_lookups"][function]
            add(
                "7",
                f"{function} median, index / no index",
                f"{e['index']['median_ms']:.2f} / {e['no_index']['median_ms']:.2f} ms",
            )
    scale = r.get("8_scale_out") or {"runs": []}
    for run in scale["runs"]:
        add(
            "8",
            f"run --processes {run['processes']} / 1 process, steady (wall)",
            f"{fmt(run['steady_rate'])} / {fmt(scale['one_process_steady_rate'])} msg/s"
            f" ({run['wall_seconds']:.1f} / {scale['one_process_wall_seconds']:.1f} s)",
        )
    _freshness_and_scale_rows(r, add)
    lines = _grid(("item", "measurement", "value"), rows)
    target_rows = [
        (
            t["item"],
            t["what"],
            "-" if t["measured"] is None else f"{t['measured']:.2f}",
            t["goal"],
            {True: "met", False: "NOT met", None: "-"}[t["met"]],
            t["detail"],
        )
        for t in report["targets"]
    ]
    return lines + "\n\n" + _grid(("item", "target", "measured", "goal", "", "detail"), target_rows)


def _freshness_and_scale_rows(r: dict[str, dict], add: Callable[[str, str, str], None]) -> None:
    if "10_freshness" in r:
        f10 = r["10_freshness"]
        add(
            "10",
            f"freshness at {f10['target_rate']:,} msg/s for {f10['seconds']:.0f} s, p50 / p95",
            f"{f10['p50_s']:.1f} / {f10['p95_s']:.1f} s over {f10['messages']:,} msgs (landing p95"
            f" {f10['landing_p95_s']:.1f} s; builds median {f10['builds']['median_s']:.1f} s)",
        )
    if "11_scale" in r:
        for row in r["11_scale"]["rows"]:
            add(
                "11",
                f"history {row['history']:,} + {row['new_events']:,}: full / incremental (tests)",
                f"{row['full_refresh_seconds']:.1f} / {row['incremental_seconds']:.1f} s"
                f" ({row['incremental_tests_seconds']:.1f} s vs {row['full_tests_seconds']:.1f} s)",
            )


def _grid(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    line = lambda row: "| " + " | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])
