"""BENCH_PROFILE=1: the extractor draining the main topic once more under py-spy, summarised per function
for its main thread. Not a numbered item: it explains the figures of (2) rather than adding one, so it
sits apart and runs only when asked."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.extractor import drain_result
from bench.harness import PY, RESULTS, Harness, check, log, run_child


def measure(harness: Harness, topic: str, expect: int) -> dict[str, object]:
    """The extractor draining `topic` under py-spy (idle samples included, so time spent waiting for
    Postgres shows), summarised per function for the main thread."""
    database = harness.fresh_database("profile")
    raw = RESULTS / "profile.txt"
    RESULTS.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy", path=str(Path(PY).parent)) or "py-spy"
    command = [spy, "record", "--idle", "--format", "raw", "--rate", "200", "--output", str(raw), "--"]
    command += [PY, "-m", "extract", "--log-format", "json", "jobs", "--until-end"]
    run = check(run_child(command, harness.env(database, topic, "bench-profile")), "py-spy record")
    result = drain_result(harness, run, database, topic, expect)
    harness.drop(database)
    summary = summarise_profile(raw)
    summary["run"] = result
    log(f"profile: {summary['samples']} main-thread samples in {raw}")
    return summary


def summarise_profile(path: Path, top: int = 25) -> dict[str, object]:
    """Inclusive and self shares per function of py-spy's collapsed stacks, main thread only."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if "_run_module_as_main" not in stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [_frame_name(frame) for frame in stack.split(";")]
        for name in set(frames):
            inclusive[name] = inclusive.get(name, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count

    def ranked(counts: dict[str, int]) -> list[tuple[str, float]]:
        ordered = sorted(counts.items(), key=lambda item: -item[1])
        return [(name, round(100 * count / max(samples, 1), 1)) for name, count in ordered[:top]]

    return {"samples": samples, "inclusive_percent": ranked(inclusive), "self_percent": ranked(own)}


def _frame_name(frame: str) -> str:
    # "write_batch (extract/landing/raw_sink.py:123)" -> "write_batch (raw_sink.py)"
    name, _, where = frame.partition(" (")
    file_name = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({file_name})"
