"""A tiny progress bar for people at a terminal: percentage, counts, rate and ETA on one stderr line.

Quiet (every call a no-op) when stderr is not a TTY, when CI is set, with EXTRACT_PROGRESS=0 and with
`--log-format json`, so logs, pipes and CI output stay clean."""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import TextIO

_disabled = False
REFRESH_S = 0.2
WIDTH = 28


def disable() -> None:
    global _disabled  # noqa: PLW0603 - one switch for the whole process
    _disabled = True


def enabled(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    if _disabled or os.environ.get("CI") or os.environ.get("EXTRACT_PROGRESS", "1") == "0":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _human(value: float, unit: str) -> str:
    if unit == "B":
        for prefix in ("", "Ki", "Mi", "Gi"):
            if abs(value) < 1024 or prefix == "Gi":
                return f"{value:.0f} {prefix}B" if not prefix else f"{value:.1f} {prefix}B"
            value /= 1024
    for prefix, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f}{prefix}"
    return f"{value:.0f}"


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Bar:
    """`with Bar(total, "produce", unit="B") as bar: bar.update(n)`; `total` may grow (set_total)."""

    def __init__(self, total: float | None, desc: str, unit: str = "", stream: TextIO | None = None) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.count = 0.0
        self.stream = stream or sys.stderr
        self.active = enabled(self.stream)
        self._started = time.monotonic()
        self._drawn_at = 0.0

    def __enter__(self) -> Bar:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close(done=kind is None)

    def set_total(self, total: float | None) -> None:
        self.total = total

    def update(self, amount: float = 1) -> None:
        self.count += amount
        if self.active:
            now = time.monotonic()
            if now - self._drawn_at >= REFRESH_S:
                self._drawn_at = now
                self._draw(now)

    def set_count(self, count: float) -> None:
        self.count = count
        self.update(0)

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self._started, 1e-9)
        rate = self.count / elapsed
        unit = self.unit if self.unit == "B" else (f" {self.unit}" if self.unit else "")
        rate_text = f"{_human(rate, self.unit)}{unit}/s"
        if self.total:
            fraction = min(self.count / self.total, 1.0)
            filled = int(fraction * WIDTH)
            eta = (self.total - self.count) / rate if rate > 0 else 0
            return (
                f"{self.desc} {fraction * 100:5.1f}% |{'#' * filled}{' ' * (WIDTH - filled)}|"
                f" {_human(self.count, self.unit)}/{_human(self.total, self.unit)}"
                f" {rate_text} elapsed {_clock(elapsed)} ETA {_clock(eta)}"
            )
        return f"{self.desc} {_human(self.count, self.unit)}{unit} {rate_text} elapsed {_clock(elapsed)}"

    def _draw(self, now: float) -> None:
        self.stream.write("\r\x1b[2K" + self.line(now))
        self.stream.flush()

    def close(self, done: bool = True) -> None:
        if not self.active:
            return
        if done and self.total:
            self.count = max(self.count, self.total)
        self._draw(time.monotonic())
        self.stream.write("\n")
        self.stream.flush()
        self.active = False
