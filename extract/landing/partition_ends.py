"""Where every partition of some topics ends now, exactly, for `--until-end` to compare with the offsets the
group stored in Postgres.

A listed end offset is not enough on every broker: Tansu lists the base offset of a partition's last record
batch plus one (ten messages sent as one batch at offsets 0-9 list 1), while a fetch response carries the real
end, its high watermark. A member that took such a low end for a partition another member owns would end
while that member still works, and a member leaving makes the group rebalance under the others. So a small
client outside the group fetches once at every listed end and keeps the larger of the two."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from extract.core.settings import Settings

log = logging.getLogger(__name__)

# The fetch at the listed ends answers in milliseconds; a broker that does not answer within this leaves the
# partitions without a watermark at their listed end (logged), rather than holding up the start.
FETCH_WAIT_S = 10.0
FETCH_POLL_MS = 100


def partition_ends(settings: Settings, topics: Iterable[str], stop: threading.Event) -> dict[TopicPartition, int]:
    """The end of every partition of `topics` now: the larger of the listed end and the high watermark of a
    fetch there (with read_committed, like the extractor, so the listed end is the last stable offset)."""
    consumer = KafkaConsumer(
        group_id=None,
        client_id="jobs-elt-extractor-ends",
        enable_auto_commit=False,
        isolation_level="read_committed",
        **settings.kafka_client_config(),
    )
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in sorted(topics)
            for partition in sorted(consumer.partitions_for_topic(topic))
        ]
        if not partitions:
            return {}
        consumer.assign(partitions)
        consumer.seek_to_end()
        listed: dict[TopicPartition, int] = {}
        for tp in partitions:  # in slices, so a stop request is seen while a broker does not answer
            while (offset := consumer.position(tp, timeout_ms=FETCH_POLL_MS)) is None:
                if stop.is_set():
                    return {}  # the run ends before it looks at the ends
            listed[tp] = offset
        deadline = time.monotonic() + FETCH_WAIT_S
        try:
            while any(consumer.highwater(tp) is None for tp in partitions):
                if stop.is_set() or time.monotonic() >= deadline:
                    log.info("no fetch answer for every partition; those without one keep their listed end")
                    break
                consumer.poll(timeout_ms=FETCH_POLL_MS)
        except KafkaError as error:  # say a record it cannot read: only the watermarks matter here
            log.info("fetching at the listed ends: %s; those without a watermark keep their listed end", error)
        return {tp: max(listed[tp], consumer.highwater(tp) or 0) for tp in partitions}
    finally:
        consumer.close(autocommit=False)
