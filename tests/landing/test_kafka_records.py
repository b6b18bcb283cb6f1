"""Record batches built by hand, byte by byte, that kafka-python cannot read: what its fetcher hands the
extractor for them (placeholders for exactly the unreadable offsets, every readable record as it is)."""

from __future__ import annotations

import struct

import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import Fetcher
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder
from kafka.record.util import calc_crc32c

from extract.landing import kafka_records  # noqa: F401 - installs the placeholders under test
from extract.landing.payload import UnreadableHeaders

TP = TopicPartition("jobs", 0)
CRC_AT, ATTRIBUTES_AT, DELTA_AT, COUNT_AT, RECORDS_AT = 17, 21, 23, 57, 61


def batch(base: int, count: int) -> bytearray:
    """`count` records at offsets base.., as a broker stores them (it writes the base offset, outside the CRC)."""
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    for i in range(count):
        builder.append(timestamp=1_700_000_000_000, key=None, value=f"v{base + i}".encode(), headers=[])
    builder.close()
    data = bytearray(builder.buffer())
    struct.pack_into(">q", data, 0, base)
    return data


def recrc(data: bytearray) -> bytearray:
    """Make the batch's CRC match again: a broken structure the CRC does not catch."""
    struct.pack_into(">I", data, CRC_AT, calc_crc32c(bytes(data[ATTRIBUTES_AT:])))
    return data


def read(*batches: bytearray, fetch_offset: int = 0) -> dict[int, str]:
    """offset -> the value, or 'unreadable: <error>' for a placeholder, as kafka-python's fetcher yields them."""
    part = Fetcher.PartitionRecords(fetch_offset, TP, MemoryRecords(b"".join(batches)))
    records = part.take()
    out = {}
    for record in records:
        assert record.offset not in out, f"offset {record.offset} twice"
        if isinstance(record.headers, UnreadableHeaders):
            assert record.key is None and record.value is None
            out[record.offset] = f"unreadable: {record.headers.reason}"
        else:
            out[record.offset] = record.value.decode()
    return out


def test_readable_batches_are_read_as_before() -> None:
    assert read(batch(0, 2), batch(2, 3)) == {i: f"v{i}" for i in range(5)}


def test_a_batch_failing_its_crc_becomes_one_placeholder_per_offset() -> None:
    corrupt = batch(2, 3)
    corrupt[-1] ^= 0xFF
    got = read(batch(0, 2), corrupt, batch(5, 1))
    assert {o: v for o, v in got.items() if not v.startswith("unreadable")} == {0: "v0", 1: "v1", 5: "v5"}
    assert sorted(o for o, v in got.items() if "failed its CRC check" in v) == [2, 3, 4]


def test_a_codec_kafka_does_not_define_replaces_its_batch() -> None:
    unknown = batch(2, 2)
    struct.pack_into(">h", unknown, ATTRIBUTES_AT, 6)  # codec ids end at 4 (zstd)
    got = read(batch(0, 2), recrc(unknown), batch(4, 1))
    assert got[0] == "v0" and got[1] == "v1" and got[4] == "v4"
    assert got[2].startswith("unreadable: UnsupportedCodecError") and got[3] == got[2]


def test_a_malformed_record_keeps_the_records_read_before_it() -> None:
    malformed = batch(2, 3)
    struct.pack_into(">i", malformed, COUNT_AT, 4)  # one record more than the batch holds
    struct.pack_into(">i", malformed, DELTA_AT, 3)
    got = read(recrc(malformed), batch(6, 1), fetch_offset=2)
    assert got == {2: "v2", 3: "v3", 4: "v4", 5: got[5], 6: "v6"}
    assert got[5].startswith("unreadable: CorruptRecordError")


def test_a_crc_failure_never_replaces_the_next_batch() -> None:
    lying = batch(2, 1)
    struct.pack_into(">i", lying, DELTA_AT, 1000)  # its last offset delta reaches far into the next batch
    got = read(batch(0, 2), lying, batch(3, 2))
    assert got == {0: "v0", 1: "v1", 2: got[2], 3: "v3", 4: "v4"}
    assert got[2].startswith("unreadable")


@pytest.mark.parametrize("length", [0, 20])
def test_a_batch_header_that_cannot_be_read_gives_one_placeholder_at_the_next_offset(length: int) -> None:
    broken = batch(2, 2)
    struct.pack_into(">i", broken, 8, length)  # a batch length shorter than any batch header
    got = read(batch(0, 2), broken[: 12 + length], batch(4, 1))
    assert got[0] == "v0" and got[1] == "v1" and got[2].startswith("unreadable") and set(got) == {0, 1, 2}
