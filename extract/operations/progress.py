"""The extractor's progress bar: an observer that sums, over every consumer of one run, the messages landed
and those left between the stored offsets and the partitions' high watermarks."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from extract.core.progress import Bar
from extract.landing.observers import ExtractObserver

if TYPE_CHECKING:
    from extract.landing.kafka_extractor import KafkaExtractor


class ExtractProgress(ExtractObserver):
    """One bar for `jobs --until-end` / `run --until-end`: messages landed of those between the stored
    offsets and the partitions' high watermarks, summed over every consumer of the run."""

    def __init__(self, desc: str = "extract") -> None:
        self.bar = Bar(None, desc, unit="msg")
        self._done: dict[int, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def on_poll(self, extractor: KafkaExtractor) -> None:
        remaining = extractor.in_flight + sum(
            max(highwater - position, 0)
            for position, highwater in extractor.partition_positions().values()
            if highwater is not None
        )
        with self._lock:
            self._done[id(extractor)] = (extractor.stats.messages, remaining)
            landed = sum(done for done, _ in self._done.values())
            self.bar.set_total(landed + sum(left for _, left in self._done.values()) or None)
            self.bar.set_count(landed)

    def on_end(self, extractor: KafkaExtractor, error: BaseException | None) -> None:
        with self._lock:
            self._done.pop(id(extractor), None)
            if not self._done:
                self.bar.close(done=error is None)
