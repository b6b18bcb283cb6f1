"""What watches the extractor without steering it (the audit trail, metrics and health, the progress bar):
ExtractObserver, called through notify(), which logs and swallows an observer's failure, since watching must
never stop or slow the landing; and ExtractStats, the counts a run reports."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka import TopicPartition

from extract.landing.raw_sink import BatchResult

log = logging.getLogger(__name__)


@dataclass
class ExtractStats:
    messages: int = 0
    inserted: int = 0
    payload_bytes: int = 0
    batches: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def add(self, result: BatchResult) -> None:
        self.messages += result.messages
        self.inserted += result.inserted
        self.payload_bytes += result.payload_bytes
        self.batches += 1

    def merge(self, other: ExtractStats) -> None:
        self.messages += other.messages
        self.inserted += other.inserted
        self.payload_bytes += other.payload_bytes
        self.batches += other.batches

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started_at


class Observed(Protocol):
    """What an observer reads of the extractor it watches (a KafkaExtractor)."""

    stats: ExtractStats
    tables: dict[str, str]
    stop: threading.Event

    @property
    def joined(self) -> bool: ...

    @property
    def in_flight(self) -> int: ...

    def partition_positions(self) -> dict[TopicPartition, tuple[int, int | None]]: ...

    def broker_answered_at(self) -> float | None: ...


class ExtractObserver:
    """Every method is optional; all run on the extractor's own thread (the consumer is not thread-safe)."""

    def on_start(self, extractor: Observed, until_end: bool) -> None:
        """The raw schema exists; the consumer is about to be created."""

    def on_poll(self, extractor: Observed) -> None:
        """After every poll, with or without messages (and after the batch, if there was one)."""

    def on_batch(
        self,
        extractor: Observed,
        polled: Mapping[TopicPartition, Sequence[Any]],
        result: BatchResult,
        seconds: float,
    ) -> None:
        """A batch and its offsets committed in Postgres; `seconds` is the write's wall time."""

    def on_db_error(self, extractor: Observed, what: str, error: BaseException) -> None:
        """A database operation failed and will be retried (or the budget is spent). The one exception to
        the rule above: a batch's write fails on the writer thread, and this is called there."""

    def on_end(self, extractor: Observed, error: BaseException | None) -> None:
        """The run is over: drained, stopped by a signal (error None) or failed (the error)."""


def notify(observers: Sequence[ExtractObserver], event: str, *args: object) -> None:
    for observer in observers:
        try:
            getattr(observer, event)(*args)
        except Exception:
            log.warning("observer %s failed in %s; ignored", type(observer).__name__, event, exc_info=True)
