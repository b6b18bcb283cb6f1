"""Child processes as /proc shows them: the members `run --processes` started, and whether a pid still runs
(a zombie whose parent is gone counts as ended: init reaps it)."""

from __future__ import annotations

from pathlib import Path


def children(pid: int) -> list[int]:
    try:
        return sorted(int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"
