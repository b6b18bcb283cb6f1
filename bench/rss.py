"""(5) The extractor's peak memory on a small and on the main topic: flat growth shows it streams rather
than holds what it reads. Its own module so the memory claim has one place that measures it."""

from __future__ import annotations

from bench.extractor import extract_jobs
from bench.harness import Harness, log


def measure(harness: Harness, topic: str, small_total: int, large: dict[str, object], total: int) -> dict[str, object]:
    """Drain `topic` (`small_total` messages) and set its peak RSS beside that of (2), `large`."""
    database = harness.fresh_database("small")
    small = extract_jobs(harness, database, topic, "bench-extract-small", small_total)
    result = {
        "small_messages": small_total,
        "small_max_rss_mb": small["max_rss_mb"],
        "large_messages": total,
        "large_max_rss_mb": large["max_rss_mb"],
        "growth": large["max_rss_mb"] / small["max_rss_mb"],
    }
    log(f"(5) peak RSS: {result['small_max_rss_mb']:.0f} MB vs {result['large_max_rss_mb']:.0f} MB")
    return result
