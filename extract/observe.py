"""Hooks into the Kafka extractor's loop for everything that watches it without steering it: the audit
trail (extract/audit.py), Prometheus metrics and health (extract/service.py) and the progress bar.

An observer's failure is logged and swallowed: watching must never stop or slow the landing of data."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kafka import TopicPartition

    from extract.kafka_extractor import KafkaExtractor
    from extract.raw_sink import BatchResult

log = logging.getLogger(__name__)


class ExtractObserver:
    """Every method is optional; all run on the extractor's own thread (the consumer is not thread-safe)."""

    def on_start(self, extractor: KafkaExtractor, until_end: bool) -> None:
        """The raw schema exists; the consumer is about to be created."""

    def on_poll(self, extractor: KafkaExtractor) -> None:
        """After every poll, with or without messages (and after the batch, if there was one)."""

    def on_batch(
        self,
        extractor: KafkaExtractor,
        polled: Mapping[TopicPartition, Sequence[Any]],
        result: BatchResult,
        seconds: float,
    ) -> None:
        """A batch and its offsets committed in Postgres; `seconds` is the write's wall time."""

    def on_db_error(self, extractor: KafkaExtractor, what: str, error: BaseException) -> None:
        """A database operation failed and will be retried (or the budget is spent)."""

    def on_end(self, extractor: KafkaExtractor, error: BaseException | None) -> None:
        """The run is over: drained, stopped by a signal (error None) or failed (the error)."""


def notify(observers: Sequence[ExtractObserver], event: str, *args: object) -> None:
    for observer in observers:
        try:
            getattr(observer, event)(*args)
        except Exception:
            log.warning("observer %s failed in %s; ignored", type(observer).__name__, event, exc_info=True)
