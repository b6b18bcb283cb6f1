"""How one arrived payload is split over the raw columns: text when Postgres text can hold it, bytes
otherwise, and a jsonb copy when Postgres jsonb will accept it."""

from __future__ import annotations

import json
from typing import NamedTuple


class Payload(NamedTuple):
    text: str | None
    raw_bytes: bytes | None
    is_json: bool


def _reject_constant(name: str) -> None:
    # NaN and Infinity are Python extensions; jsonb refuses them.
    raise ValueError(name)


_decoder = json.JSONDecoder(parse_constant=_reject_constant)


def jsonb_accepts(text: str) -> bool:
    """True when jsonb will (almost certainly) parse `text`; the database has the last word."""
    if "\\u0000" in text:
        return False
    try:
        parsed = _decoder.decode(text)
    except ValueError:
        return False
    except RecursionError:
        # Nested deeper than Python's parser goes, but jsonb may well take it: the database decides
        # (the raw sink falls back to a per-row cast that yields null where jsonb refuses).
        return True
    if "\\u" in text:
        try:
            # A lone surrogate escape is valid JSON text but not valid Unicode, and jsonb rejects it.
            json.dumps(parsed, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


def split_payload(data: bytes | None, *, check_json: bool = True) -> Payload:
    if data is None:
        return Payload(None, None, False)
    if b"\x00" in data:
        return Payload(None, data, False)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Payload(None, data, False)
    return Payload(text, None, check_json and jsonb_accepts(text))


def headers_json(headers: list[tuple[str, bytes | None]] | None) -> str | None:
    if not headers:
        return None
    rendered = []
    for key, value in headers:
        payload = split_payload(value)
        if payload.raw_bytes is not None:
            rendered.append({"key": key, "value_hex": payload.raw_bytes.hex()})
        else:
            rendered.append({"key": key, "value": payload.text})
    return json.dumps(rendered)
