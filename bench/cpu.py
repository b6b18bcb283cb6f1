"""CPU seconds of the processes that share the machine during a landing: the extractor (from wait4), the
PostgreSQL server (every `postgres` process on this host: the backend, and the WAL writer and checkpointer
that its writes cost) and the Tansu broker, read from /proc. Per message, their sum says how many messages
a second would keep every core busy, the bound no number of extractor processes can pass on this host."""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _seconds(pid: int) -> float:
    """The process's CPU plus that of its children that ended: a backend lives only as long as its
    connection, and its CPU then shows in the postmaster's cutime and cstime."""
    # /proc/<pid>/stat fields 14-17 (utime, stime, cutime, cstime), counted after the ")" closing the name
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(value) for value in fields[11:15]) / _TICK


def _named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:  # ended meanwhile
                continue
    return pids


def snapshot(broker_pid: int | None) -> dict[str, float]:
    """CPU seconds so far of the local PostgreSQL processes and the broker (absent ones count nothing)."""
    totals = {"postgres": 0.0, "broker": 0.0}
    for label, pids in (("postgres", _named("postgres")), ("broker", [broker_pid] if broker_pid else [])):
        for pid in pids:
            try:
                totals[label] += _seconds(pid)
            except (OSError, ValueError, IndexError):
                continue
    return totals


def per_message(
    before: dict[str, float], after: dict[str, float], extractor_seconds: float, messages: int
) -> dict[str, object]:
    """Microseconds of CPU per message by part, and the rate at which they would fill every core."""
    parts = {
        "extractor": extractor_seconds,
        "postgres": after["postgres"] - before["postgres"],
        "broker": after["broker"] - before["broker"],
    }
    us = {part: seconds / messages * 1e6 for part, seconds in parts.items()}
    total = sum(us.values())
    cores = os.cpu_count() or 1
    return {
        "cpu_us_per_message": {part: round(value, 2) for part, value in us.items()},
        "cpu_us_per_message_total": round(total, 2),
        "cores": cores,
        "cpu_bound_rate": cores / total * 1e6 if total else None,
        "postgres_seen": after["postgres"] > 0,
    }
