"""Read-only queries of the marts for people: the headline answer and the two look-ups."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, text

TOP_REVENUE = text(
    "select revenue_rank, user_id, home_location_id, total_revenue, job_count"
    " from marts.non_local_top_revenue order by revenue_rank"
)
# The case read at job time: the location the user had when the job took place (marts.users_location_history).
TOP_REVENUE_AT_JOB_TIME = text(
    "select revenue_rank, user_id, current_location_id, total_revenue, job_count"
    " from marts.non_local_top_revenue_at_job_time order by revenue_rank"
)
ANSWER_LOCATION = text("select max(location_id) from marts.non_local_top_revenue")
ANSWER_LOCATION_AT_JOB_TIME = text("select max(location_id) from marts.non_local_top_revenue_at_job_time")
LOOKUPS = {
    "location": text("select * from marts.jobs_by_location(:value)"),
    "service": text("select * from marts.jobs_by_service(:value)"),
}


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(header) for header in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [" | ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def top_revenue(engine: Engine, *, at_job_time: bool = False) -> tuple[str, list[Sequence[object]]]:
    with engine.connect() as conn:
        rows = [tuple(row) for row in conn.execute(TOP_REVENUE_AT_JOB_TIME if at_job_time else TOP_REVENUE)]
        location = conn.execute(ANSWER_LOCATION_AT_JOB_TIME if at_job_time else ANSWER_LOCATION).scalar()
    return location or "", rows


def lookup(engine: Engine, kind: str, value: str) -> tuple[list[str], list[Sequence[object]]]:
    with engine.connect() as conn:
        result = conn.execute(LOOKUPS[kind], {"value": value})
        return list(result.keys()), [tuple(row) for row in result]
