"""The writer thread that overlaps landing a batch with polling the next (batch_writer.py): it does overlap,
keeps one batch in flight and the poll order, and no error of a batch is lost."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from extract.landing.batch_writer import BatchWriter
from extract.landing.raw_sink import BatchResult


def result(messages: Sequence[object]) -> BatchResult:
    return BatchResult(len(messages), len(messages), 0, {})


def test_a_batch_lands_while_the_extractor_goes_on() -> None:
    started, release = threading.Event(), threading.Event()

    def write(messages: Sequence[object]) -> BatchResult:
        started.set()
        assert release.wait(10)
        return result(messages)

    writer = BatchWriter(write)
    writer.submit({"p": [1, 2]}, [1, 2])
    assert started.wait(10)
    assert writer.landed() == []  # submit returned while the write was still running
    release.set()
    (landed,) = writer.landed(wait=True)
    assert (landed.polled, landed.result.messages) == ({"p": [1, 2]}, 2)
    writer.close()


def test_batches_land_one_at_a_time_in_the_order_submitted() -> None:
    running, order, overlaps = [0], [], []
    lock = threading.Lock()

    def write(messages: Sequence[int]) -> BatchResult:
        with lock:
            running[0] += 1
            overlaps.append(running[0])
        threading.Event().wait(0.01)
        order.append(messages[0])
        with lock:
            running[0] -= 1
        return result(messages)

    writer = BatchWriter(write)
    for batch in range(20):
        writer.submit({}, [batch])
    landed = writer.landed(wait=True)
    writer.close()
    assert order == list(range(20))
    assert max(overlaps) == 1
    assert [batch.result.messages for batch in landed] == [1] * 20


def test_an_error_waits_for_the_extractor_and_stops_further_batches() -> None:
    def write(messages: Sequence[object]) -> BatchResult:
        raise RuntimeError("database gone")

    writer = BatchWriter(write)
    writer.submit({}, [1])
    writer.wait()  # what a rebalance callback calls: it must not raise there (kafka-python would drop it)
    with pytest.raises(RuntimeError, match="database gone"):
        writer.landed()
    with pytest.raises(RuntimeError, match="database gone"):
        writer.submit({}, [2])
    writer.close()
