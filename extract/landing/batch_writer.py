"""Lands polled batches on a thread of its own, so that the next poll overlaps the database's work on the
previous batch.

Landing a batch is mostly the server's work (parsing the COPY, casting jsonb, updating the indexes), done on
another core while this process waits; polling is this process's work (kafka-python decoding records).
Done one after the other, each waits for the other; overlapped, the extractor runs at about the slower of the
two. One batch is in flight at most and batches commit in the order they were polled, each with its offsets
in one transaction, so what a crash leaves behind is exactly what it was without the overlap."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from extract.landing.copy_text import Message
from extract.landing.raw_sink import BatchResult


@dataclass(frozen=True)
class Landed:
    """A batch committed in Postgres: what was polled, what the write did, and its wall time."""

    polled: Mapping[Any, Sequence[Any]]
    result: BatchResult
    seconds: float


class BatchWriter:
    """Runs `write(messages)` for one batch at a time on a writer thread. Every method is called from the
    extractor's thread; the writer thread touches nothing but the database connection `write` uses, which
    nothing else may use while a batch is in flight (wait() first)."""

    def __init__(self, write: Callable[[Sequence[Message]], BatchResult]) -> None:
        self._write = write
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{threading.current_thread().name}-writer")
        self._in_flight: tuple[Future[tuple[BatchResult, float]], Mapping[Any, Sequence[Any]]] | None = None
        self._landed: list[Landed] = []
        self._error: BaseException | None = None

    def _timed(self, messages: Sequence[Message]) -> tuple[BatchResult, float]:
        began = time.perf_counter()
        result = self._write(messages)
        return result, time.perf_counter() - began

    def submit(self, polled: Mapping[Any, Sequence[Any]], messages: Sequence[Message]) -> None:
        """Start landing a batch once the one before it has committed (raising that one's error, if any)."""
        self.wait()
        self._raise()
        self._in_flight = (self._pool.submit(self._timed, messages), polled)

    def wait(self) -> None:
        """Block until no batch is in flight. Never raises: an error waits for landed(), so that a rebalance
        callback (where kafka-python would log and drop an exception) can call it."""
        if self._in_flight is None:
            return
        future, polled = self._in_flight
        self._in_flight = None
        try:
            result, seconds = future.result()
        except BaseException as error:  # raised from landed(), on the extractor's own terms
            self._error = self._error or error
        else:
            self._landed.append(Landed(polled, result, seconds))

    def landed(self, *, wait: bool = False) -> list[Landed]:
        """The batches committed since the last call, oldest first; raises the error of one that failed.
        With `wait`, the batch in flight is included (its commit awaited)."""
        if wait or (self._in_flight is not None and self._in_flight[0].done()):
            self.wait()
        self._raise()
        landed, self._landed = self._landed, []
        return landed

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Let a batch in flight finish (its transaction commits or rolls back whole), then stop the thread."""
        self.wait()
        self._pool.shutdown(wait=True)
