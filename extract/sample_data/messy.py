"""What the jobs and payments generators share: the size of the service catalogue, and the ways a real feed
writes an instant or breaks a JSON line."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

SERVICE_COUNT = 250

_OFFSETS = ("+03:00", "-05:00", "+05:30", "+01:00", "-08:00", "+00:00", "+09:00", "-03:30", "+02:00")


def format_timestamp(rng: random.Random, ms: int) -> str:
    """The instant as raw JSON in one of the documented formats, picked at random."""
    seconds, millis = divmod(ms, 1000)
    dt = datetime.fromtimestamp(seconds, UTC)
    r = rng.random()
    if r < 0.06:
        text = str(seconds)
    elif r < 0.10:
        text = f'"{seconds}"'
    elif r < 0.15:
        text = str(ms)
    elif r < 0.18:
        text = f'"{ms}"'
    elif r < 0.36:
        text = dt.strftime('"%Y-%m-%dT%H:%M:%SZ"')
    elif r < 0.56:
        offset = _OFFSETS[rng.randrange(len(_OFFSETS))]
        minutes = (int(offset[1:3]) * 60 + int(offset[4:6])) * (1 if offset[0] == "+" else -1)
        local = (dt + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S")
        zone = offset if rng.random() < 0.6 else offset.replace(":", "")
        text = f'"{local}{zone}"'
    elif r < 0.68:
        text = dt.strftime('"%Y-%m-%dT%H:%M:%S') + f'.{millis:03d}"'
    elif r < 0.84:
        text = dt.strftime('"%Y-%m-%d %H:%M:%S"')
    elif r < 0.93:
        text = dt.strftime('"%d.%m.%Y %H:%M:%S"')
    else:
        text = dt.strftime('"%d.%m.%Y %H:%M"')
    return text


def break_json(rng: random.Random, text: str) -> str:
    r = rng.random()
    if r < 0.5:
        return text[: rng.randrange(1, len(text) - 1)]  # a cut-off write
    if r < 0.75:
        return text[:-1] + ", }"  # trailing comma
    return text.replace('"', "'")  # a Python repr instead of JSON
