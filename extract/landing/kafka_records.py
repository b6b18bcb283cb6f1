"""Lets kafka-python read every record a broker can hold, so that no single message can stop a partition.

kafka-python (3.0.12) decodes a record's header keys as strict UTF-8, and one key that is not raises
CorruptRecordError for the whole fetch, on every run. Header keys are bytes on the wire (the broker does
not check them), so such a record is read again here over a buffer whose slices decode leniently: the key
becomes a HeaderKeyBytes (its text with U+FFFD, its exact bytes kept) and the raw sink lands it as hex.
Importing this module installs the fallback; records with valid keys take kafka-python's path unchanged."""

from __future__ import annotations

from typing import Any, SupportsIndex

from kafka.record.default_records import DefaultRecordBatch

from extract.landing.payload import HeaderKeyBytes


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


_strict_read_msg = DefaultRecordBatch._read_msg


def _read_msg(self: DefaultRecordBatch, *args: Any, **kwargs: Any) -> Any:
    try:
        return _strict_read_msg(self, *args, **kwargs)
    except UnicodeDecodeError:
        # Header keys are the only text a record decodes, and a failed read leaves the position unmoved.
        strict = self._buffer
        self._buffer = _LenientBuffer(strict)
        try:
            return _strict_read_msg(self, *args, **kwargs)
        finally:
            self._buffer = strict


DefaultRecordBatch._read_msg = _read_msg
