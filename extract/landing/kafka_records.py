"""Lets kafka-python read every record a broker can hold, so that no single message can stop a partition.
Importing this module installs both fallbacks below; readable records take kafka-python's path unchanged.

Header keys.

kafka-python (3.0.12) decodes a record's header keys as strict UTF-8, and one key that is not raises
CorruptRecordError for the whole fetch, on every run. Header keys are bytes on the wire (the broker does
not check them), so the rest of such a batch, from that record on, is read again here over a buffer whose
slices decode leniently: the key becomes a HeaderKeyBytes (its text with U+FFFD, its exact bytes kept) and
the raw sink lands it as hex. The switch happens once per batch that needs it, not as a wrapper around
every record's read (which cost 9% of kafka-python's decoding).

Unreadable batches. A batch failing its CRC, a malformed record, a codec Kafka does not define: kafka-python
raises CorruptRecordError (or the codec's error) for the partition and fetches the same bytes again on every
poll, forever. Here such a batch becomes placeholder records instead, one per offset of the batch (base offset
to base + last offset delta, read from its header) that was not read already, each with null key and value
and the error as UnreadableHeaders; the raw sink lands them (kafka_read_error) with the offsets like any
batch, and the partition moves on. Records of the batch read before the failure are kept as they are. When
not even a batch header can be read, the range is unknown: one placeholder at the next offset, the rest of
that fetch dropped, and the next fetch starts one offset later (one placeholder per poll until a readable
batch comes). A good record is never replaced: only offsets inside an unreadable batch get placeholders."""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from typing import Any, SupportsIndex

from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError

from extract.landing.payload import HeaderKeyBytes, UnreadableHeaders

log = logging.getLogger(__name__)


class _LenientSlice(bytes):
    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        try:
            return bytes.decode(self, encoding, errors)
        except UnicodeDecodeError:
            return HeaderKeyBytes(bytes(self))


class _LenientBuffer(bytearray):
    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        item = super().__getitem__(index)
        return _LenientSlice(item) if isinstance(index, slice) else item


class _Placeholder:
    """Stands for one record kafka-python could not read, with the fields its fetcher reads from a record."""

    timestamp = None
    timestamp_type = None
    key = None
    value = None
    checksum = None
    size_in_bytes = 0

    def __init__(self, offset: int, reason: str) -> None:
        self.offset = offset
        self.headers = UnreadableHeaders(reason)

    def validate_crc(self) -> bool:
        return True


class _PlaceholderBatch:
    """A batch of placeholders, for offsets first..last (none when last < first), in place of one that
    cannot be read."""

    magic = 2
    is_control_batch = False

    def __init__(self, first: int, last: int, reason: str, leader_epoch: int = -1) -> None:
        self.base_offset, self.last_offset, self.next_offset = first, last, last + 1
        self.leader_epoch = leader_epoch
        self._reason = reason

    def has_producer_id(self) -> bool:
        return False

    def validate_crc(self) -> bool:
        return True

    def __iter__(self) -> Iterator[_Placeholder]:
        return (_Placeholder(offset, self._reason) for offset in range(self.base_offset, self.last_offset + 1))


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class _GuardedBatch:
    """A batch whose CRC passed (or is not checked): its records as kafka-python reads them, until one
    cannot be read; then placeholders for that offset to the batch's last."""

    def __init__(self, batch: Any, tp: Any) -> None:
        self._batch = batch
        self._tp = tp

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def validate_crc(self) -> bool:
        return True  # checked by _GuardedRecords, before any record was read

    def __next__(self) -> Any:
        # Only a control batch is read this way (its one marker record); an unreadable marker makes no row.
        try:
            return next(self._batch)
        except StopIteration:
            raise
        except Exception:
            return None

    def __iter__(self) -> Iterator[Any]:
        batch = self._batch
        read_up_to = None
        try:
            while True:
                try:
                    for record in batch:
                        read_up_to = record.offset
                        yield record
                    return
                except CorruptRecordError as error:
                    if not _header_key_not_utf8(error) or isinstance(batch._buffer, _LenientBuffer):
                        raise
                    # The failed read left the batch's position on that record: read on, leniently.
                    batch._buffer = _LenientBuffer(batch._buffer)
        except Exception as error:
            # A legacy batch (magic 0 or 1) has no last offset; its base offset is its last record's.
            last = getattr(batch, "last_offset", batch.base_offset)
            first = batch.base_offset if read_up_to is None else read_up_to + 1
            reason = _describe(error)
            # Past the batch's last offset (every record read, then trailing bytes) there is nothing to
            # replace: those offsets belong to the next batch.
            log.warning("%s offsets %d-%d cannot be read (%s); landing placeholders", self._tp, first, last, reason)
            yield from _PlaceholderBatch(first, last, reason, batch.leader_epoch)


def _header_key_not_utf8(error: CorruptRecordError) -> bool:
    """kafka-python turns the UnicodeDecodeError of a header key into CorruptRecordError; the only text a
    record decodes is its header keys."""
    return isinstance(error.__context__, UnicodeDecodeError)


class _GuardedRecords:
    """The batches of one fetch, each either readable (guarded while its records are read) or replaced by
    placeholders: a batch failing its CRC by one per offset of its header's range, a batch whose header
    cannot be read by one at the next offset (and the rest of the fetch is dropped)."""

    def __init__(self, records: Any, partition_records: Any) -> None:
        self._records = records
        self._part = partition_records
        self._next_offset: int | None = None
        self._broken = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._records, name)

    def next_batch(self) -> Any:
        if self._broken:
            return None
        part = self._part
        expected = max(part.next_fetch_offset, self._next_offset or 0)
        try:
            batch = self._records.next_batch()
            if batch is None:
                return None
            base, last = batch.base_offset, getattr(batch, "last_offset", None)
            valid = not part.check_crcs or batch.validate_crc()
        except Exception as error:
            self._broken = True
            reason = _describe(error)
            log.warning(
                "%s offset %d: no batch header can be read (%s); landing a placeholder",
                part.topic_partition,
                expected,
                reason,
            )
            return _PlaceholderBatch(expected, expected, reason, part.leader_epoch)
        if last is not None:
            self._next_offset = last + 1
        if valid:
            return _GuardedBatch(batch, part.topic_partition)
        # Neither the base offset nor the last offset delta can be trusted blindly (the CRC covers only the
        # delta): the range starts at the next offset unless the base lies between it and the fetch's next
        # batch, and a range that runs into that batch is cut short there, so its records are read.
        following = _next_base_offset(self._records)
        in_reach = last is not None and base >= expected and (following is None or base < following)
        first = base if in_reach else expected
        if last is None or last < first:
            last = first
        if following is not None:
            last = min(last, following - 1)  # first > last: no offset of its own left, no placeholder
        reason = f"CorruptRecordError: record batch at offset {base} failed its CRC check"
        log.warning("%s offsets %d-%d: %s; landing placeholders", part.topic_partition, first, last, reason)
        return _PlaceholderBatch(first, last, reason, batch.leader_epoch)


def _next_base_offset(records: Any) -> int | None:
    """The base offset of the fetch's next batch, from the slice MemoryRecords holds for it, if any."""
    following = getattr(records, "_next_slice", None)
    if following is None or len(following) < 8:
        return None
    return int(struct.unpack_from(">q", following, 0)[0])


_strict_unpack_records = Fetcher.PartitionRecords._unpack_records


def _unpack_records(self: Any, tp: Any, records: Any, *args: Any, **kwargs: Any) -> Any:
    return _strict_unpack_records(self, tp, _GuardedRecords(records, self), *args, **kwargs)


Fetcher.PartitionRecords._unpack_records = _unpack_records
