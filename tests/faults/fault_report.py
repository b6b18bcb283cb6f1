"""Prints the fault-injection table from what tests/faults/test_faults.py recorded, and optionally writes it as
Markdown: `python tests/faults/fault_report.py RESULTS.json [--markdown OUT.md]` (`make faults` does both)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COLUMNS = [
    ("case", "case"),
    ("produced", "messages produced"),
    ("landed", "landed"),
    ("lost", "lost"),
    ("duplicated", "duplicated"),
    ("quarantined", "quarantined"),
    ("recovery_s", "recovery time (s)"),
]


def rows(cases: list[dict[str, object]]) -> list[list[str]]:
    return [[str(case[key]) for key, _ in COLUMNS] for case in sorted(cases, key=lambda c: str(c["case"]))]


def text_table(cases: list[dict[str, object]]) -> str:
    header = [title for _, title in COLUMNS]
    body = rows(cases)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return " | ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), "-+-".join("-" * width for width in widths), *map(line, body)])


def markdown_table(cases: list[dict[str, object]]) -> str:
    header = [title for _, title in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows(cases)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--markdown", type=Path, help="also write the table and the details here")
    args = parser.parse_args(argv)
    if not args.results.is_file():
        print(f"no fault results at {args.results}: run `make faults`", file=sys.stderr)
        return 1
    data = json.loads(args.results.read_text())
    cases = data["cases"]
    print(text_table(cases))
    for case in sorted(cases, key=lambda c: str(c["case"])):
        print(f"  {case['case']}: {case['detail']}")
    if args.markdown:
        details = "\n".join(f"- **{c['case']}**: {c['detail']}" for c in sorted(cases, key=lambda c: str(c["case"])))
        args.markdown.write_text(
            "# Fault injection: latest results\n\n"
            "Written by `make faults` (tests/faults/test_faults.py, seed "
            f"{data.get('seed')}); lost and duplicated compare raw with the broker's acknowledged"
            " (partition, offset, sha256 of the value), quarantined is staging.quarantined_records after dbt.\n\n"
            f"{markdown_table(cases)}\n\n{details}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
