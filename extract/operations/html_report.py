"""`python -m extract report`: one static HTML page of where the pipeline stands and what it answers.

The case answer, the two look-up examples, rows per layer, quarantine by reason, Kafka lag, and two
charts drawn here as inline SVG (no JavaScript, no network, no plotting library): revenue by location
and throughput over recent extract runs. Every number that the tests compare with the database carries
a `data-check` attribute."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from extract.core import db
from extract.core.settings import Settings
from extract.operations import answers, status

LOOKUP_EXAMPLES = (("location", "LOC_1294"), ("service", "SERVICE_42"))
TOP_LOCATIONS = 15
RECENT_RUNS = 20

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1100px;
       color: #1f2933; padding: 0 16px; background: #fff; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #e4e7eb; }
.meta { color: #616e7c; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0; } th, td { padding: 4px 10px; border-bottom: 1px solid #e4e7eb; }
th { text-align: left; background: #f5f7fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { border: 1px solid #e4e7eb; border-radius: 8px; padding: 10px 16px; min-width: 140px; }
.card .v { font-size: 22px; font-weight: 600; } .card .k { color: #616e7c; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; } .empty { color: #9aa5b1; }
svg text { font: 11px system-ui, sans-serif; fill: #3e4c59; }
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: object) -> bool:
    return isinstance(value, int | float) or type(value).__name__ == "Decimal"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], check: str | None = None) -> str:
    """A table; with `check`, each cell gets data-check="<check>:<row>:<column>"."""
    if not rows:
        return '<p class="empty">(no rows)</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for r, row in enumerate(rows):
        cells = []
        for c, value in enumerate(row):
            attrs = ' class="num"' if _num(value) else ""
            if check:
                attrs += f' data-check="{_e(check)}:{r}:{c}"'
            cells.append(f"<td{attrs}>{_e(value)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def bar_chart(
    items: Sequence[tuple[str, float]], *, title: str, unit: str = "", horizontal: bool = True, check: str = ""
) -> str:
    """A bar chart as inline SVG."""
    if not items:
        return f'<figure><figcaption>{_e(title)}</figcaption><p class="empty">(no data yet)</p></figure>'
    peak = max(value for _, value in items) or 1.0
    bars = []
    if horizontal:
        width, label_w, row_h = 520, 90, 20
        height = row_h * len(items) + 10
        for i, (label, value) in enumerate(items):
            y = 5 + i * row_h
            length = (width - label_w - 90) * value / peak
            bars.append(
                f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{_e(label)}</text>'
                f'<rect x="{label_w}" y="{y + 2}" width="{length:.1f}" height="{row_h - 5}" fill="#3e7bfa"'
                f' data-check="{_e(check)}:{_e(label)}" data-value="{value:.2f}"><title>{_e(label)}: {value:,.2f}'
                f" {_e(unit)}</title></rect>"
                f'<text x="{label_w + length + 4:.1f}" y="{y + 13}">{value:,.0f}</text>'
            )
    else:
        width, height, base = 520, 220, 190
        slot = min((width - 40) / len(items), 60.0)
        for i, (label, value) in enumerate(items):
            bar_h = (base - 20) * value / peak
            x = 30 + i * slot
            bars.append(
                f'<rect x="{x + slot * 0.15:.1f}" y="{base - bar_h:.1f}" width="{slot * 0.7:.1f}" height="{bar_h:.1f}"'
                f' fill="#0f9d58" data-check="{_e(check)}:{_e(label)}" data-value="{value:.2f}">'
                f"<title>{_e(label)}: {value:,.0f} {_e(unit)}</title></rect>"
                f'<text x="{x + slot / 2:.1f}" y="{base + 14}" text-anchor="middle">{_e(label)}</text>'
                f'<text x="{x + slot / 2:.1f}" y="{base - bar_h - 4:.1f}" text-anchor="middle">{value:,.0f}</text>'
            )
        bars.append(f'<line x1="25" y1="{base}" x2="{width - 5}" y2="{base}" stroke="#9aa5b1"/>')
    return (
        f"<figure><figcaption><b>{_e(title)}</b></figcaption>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img"'
        f' aria-label="{_e(title)}">{"".join(bars)}</svg></figure>'
    )


def collect(settings: Settings) -> dict[str, Any]:
    data = status.collect(settings)
    engine = db.make_engine(settings)
    try:
        data["answer_location"], data["answer"] = answers.top_revenue(engine)
        data["lookups"] = [(kind, value, *answers.lookup(engine, kind, value)) for kind, value in LOOKUP_EXAMPLES]
    finally:
        engine.dispose()
    with db.connect(settings, autocommit=True) as conn:
        data["revenue_by_location"] = conn.execute(
            "select location_id, sum(revenue)::float8 from marts.jobs group by 1 order by 2 desc, 1 limit %s",
            (TOP_LOCATIONS,),
        ).fetchall()
        runs = []
        if conn.execute("select to_regclass('raw.extract_runs') is not null").fetchone()[0]:
            runs = conn.execute(
                "select run_id, messages / greatest(extract(epoch from coalesce(ended_at, updated_at) - started_at),"
                " 0.001)::float8 from raw.extract_runs where messages > 0 order by run_id desc limit %s",
                (RECENT_RUNS,),
            ).fetchall()
        data["throughput"] = [(f"#{run_id}", rate) for run_id, rate in reversed(runs)]
    return data


def render(data: dict[str, Any]) -> str:
    layers = data["layers"]
    cards = "".join(
        f'<div class="card"><div class="v" data-check="layer:{_e(name)}">{rows:,}</div><div class="k">rows in'
        f" {_e(name)}</div></div>"
        for name, rows in layers.items()
    )
    quarantined = sum(q["rows"] for q in data["quarantine"])
    cards += (
        f'<div class="card"><div class="v" data-check="quarantined">{quarantined:,}</div>'
        '<div class="k">quarantined</div></div>'
        f'<div class="card"><div class="v" data-check="total_lag">{data["total_lag"]:,}</div>'
        '<div class="k">Kafka lag (messages)</div></div>'
    )
    answer_headers = ["rank", "user_id", "home_location", "total_revenue", "jobs"]
    lookups = "".join(
        f"<h3>marts.jobs_by_{_e(kind)}('{_e(value)}')</h3>{table(headers, rows, f'lookup_{kind}')}"
        for kind, value, headers, rows in data["lookups"]
    )
    lag_rows = [
        [p["topic"], p["partition"], p["end_offset"], p["stored_offset"], p["lag"]] for p in data["kafka"]["partitions"]
    ]
    runs = [
        [r["run_id"], r["command"], r["status"], r["started_at"], round(r["seconds"] or 0, 1), r["messages"]]
        for r in data["extract_runs"]
    ]
    generated = datetime.fromisoformat(data["generated_at"]).strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>jobs-elt report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>jobs-elt pipeline report</h1>
<p class="meta">Generated {_e(generated)} from database <code>{_e(data.get("database", ""))}</code>.</p>
<div class="cards">{cards}</div>

<h2>The case answer: top non-local users by revenue at {_e(data["answer_location"] or "(none)")}</h2>
{table(answer_headers, data["answer"], "answer")}

<h2>Look-ups</h2>
{lookups}

<h2>Charts</h2>
<div class="grid">
{
        bar_chart(
            data["revenue_by_location"],
            title=f"Revenue by location (top {TOP_LOCATIONS}, marts.jobs)",
            unit="revenue",
            check="revenue",
        )
    }
{
        bar_chart(
            data["throughput"],
            title=f"Throughput of the last {RECENT_RUNS} extract runs (messages/s)",
            unit="msg/s",
            horizontal=False,
            check="throughput",
        )
    }
</div>

<h2>Rows per table</h2>
{table(["schema", "table", "type", "rows"], [[t["schema"], t["name"], t["type"], t["rows"]] for t in data["tables"]])}

<h2>Quarantine by reason (staging.quarantined_records)</h2>
{table(["source", "reason", "rows"], [[q["source"], q["reason"], q["rows"]] for q in data["quarantine"]], "quarantine")}

<h2>Kafka lag</h2>
{table(["topic", "partition", "end offset", "stored offset", "lag"], lag_rows, "lag")}

<h2>Recent extract runs</h2>
{table(["run", "command", "status", "started at", "seconds", "messages"], runs)}
</body></html>
"""


def write_report(settings: Settings, out: Path) -> Path:
    data = collect(settings)
    data["database"] = settings.pg_database
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(render(data), encoding="utf-8")
    partial.replace(out)
    return out
