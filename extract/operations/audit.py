"""The audit trail in the raw schema (tables in extract/sql/schema.sql).

- raw.extract_runs: one row per Kafka extract run, inserted when it starts, brought up to date at most
  every FLUSH_S seconds while batches commit (a service runs for weeks) and closed with its outcome.
- raw.file_load_attempts: written by the file loader itself (extract/landing/file_loader.py).

Audit writes use their own autocommit connection and are best effort: a failed audit write is logged,
never allowed to stop or roll back the landing of data."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg

from extract.core import db
from extract.core.settings import Settings
from extract.landing.observers import ExtractObserver

if TYPE_CHECKING:
    from kafka import TopicPartition

    from extract.landing.kafka_extractor import KafkaExtractor
    from extract.landing.raw_sink import BatchResult

log = logging.getLogger(__name__)

FLUSH_S = 5.0


@dataclass
class _PartitionRange:
    first_offset: int
    last_offset: int
    messages: int = 0


@dataclass
class _Run:
    run_id: int | None
    conn: psycopg.Connection | None
    ranges: dict[tuple[str, int], _PartitionRange] = field(default_factory=dict)
    flushed_at: float = 0.0


class RunAudit(ExtractObserver):
    """Keeps raw.extract_runs up to date for every extractor it observes (one row per consumer)."""

    def __init__(self, settings: Settings, command: str) -> None:
        self.settings = settings
        self.command = command
        self._runs: dict[int, _Run] = {}
        self._lock = threading.Lock()

    def run_ids(self) -> list[int]:
        with self._lock:
            return [run.run_id for run in self._runs.values() if run.run_id is not None]

    def _write(self, run: _Run, query: str, params: Sequence[object]) -> tuple[Any, ...] | None:
        try:
            if run.conn is None or run.conn.closed:
                run.conn = db.connect(self.settings, autocommit=True)
            return run.conn.execute(query, params).fetchone()
        except psycopg.Error as error:
            log.warning("could not write the audit row of this run: %s", " ".join(str(error).split()))
            if run.conn is not None:
                run.conn.close()
            return None

    def on_start(self, extractor: KafkaExtractor, until_end: bool) -> None:
        run = _Run(run_id=None, conn=None)
        with self._lock:
            self._runs[id(extractor)] = run
        try:
            run.conn = db.connect(self.settings, autocommit=True)
            db.ensure_audit_tables(run.conn)
        except psycopg.Error as error:
            log.warning("audit tables unavailable: %s", " ".join(str(error).split()))
        row = self._write(
            run,
            "insert into raw.extract_runs (command, topics, consumer_group, host, pid)"
            " values (%s, %s, %s, %s, %s) returning run_id",
            (
                self.command,
                sorted(extractor.tables),
                self.settings.kafka_group_id,
                socket.gethostname(),
                os.getpid(),
            ),
        )
        run.run_id = row[0] if row else None
        run.flushed_at = _now()
        if run.run_id is not None:
            log.debug("extract run %d started", run.run_id, extra={"fields": {"run_id": run.run_id}})

    def on_batch(
        self,
        extractor: KafkaExtractor,
        polled: Mapping[TopicPartition, Sequence[Any]],
        result: BatchResult,
        seconds: float,
    ) -> None:
        run = self._runs.get(id(extractor))
        if run is None:
            return
        for tp, records in polled.items():
            if not records:
                continue
            span = run.ranges.get((tp.topic, tp.partition))
            first, last = records[0].offset, records[-1].offset
            if span is None:
                span = run.ranges[(tp.topic, tp.partition)] = _PartitionRange(first, last)
            span.first_offset = min(span.first_offset, first)
            span.last_offset = max(span.last_offset, last)
            span.messages += len(records)
        if _now() - run.flushed_at >= FLUSH_S:
            self._flush(extractor, run, status=None, error=None)

    def on_end(self, extractor: KafkaExtractor, error: BaseException | None) -> None:
        with self._lock:
            run = self._runs.get(id(extractor))
        if run is None:
            return
        if error is not None:
            status, message = "failed", " ".join(str(error).split()) or type(error).__name__
        else:
            status, message = ("stopped" if extractor.stop.is_set() else "succeeded"), None
        self._flush(extractor, run, status=status, error=message)
        if run.conn is not None:
            run.conn.close()

    def _flush(self, extractor: KafkaExtractor, run: _Run, *, status: str | None, error: str | None) -> None:
        if run.run_id is None:
            return
        stats = extractor.stats
        partitions = [
            {"topic": topic, "partition": partition, **span.__dict__}
            for (topic, partition), span in sorted(run.ranges.items())
        ]
        self._write(
            run,
            "update raw.extract_runs set messages = %s, rows_inserted = %s, payload_bytes = %s, batches = %s,"
            " partitions = %s::jsonb, updated_at = now(), status = coalesce(%s, status), error = %s,"
            " ended_at = case when %s::text is null then ended_at else now() end"
            " where run_id = %s returning run_id",
            (
                stats.messages,
                stats.inserted,
                stats.payload_bytes,
                stats.batches,
                json.dumps(partitions),
                status,
                error,
                status,
                run.run_id,
            ),
        )
        run.flushed_at = _now()


def _now() -> float:
    return time.monotonic()
