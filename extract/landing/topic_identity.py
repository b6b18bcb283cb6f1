"""Telling a topic from a namesake: a topic deleted and created again restarts at offset 0 under a new id,
and the offsets and rows in Postgres belong to the old one.

kafka-python (3.0.12) fetches by topic name, so a fetch at a stored offset of a recreated topic returns the
new topic's messages. The extractor therefore compares topic ids from metadata that the broker sent after
the fetch (refresh_metadata, one small request per batch), at every assignment, and on every poll (an idle
service refreshes metadata every METADATA_MAX_AGE_MS)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping

from kafka import KafkaConsumer

log = logging.getLogger(__name__)

METADATA_MAX_AGE_MS = 5_000
METADATA_WAIT_S = 10.0

# What resumes: Postgres starts over and the topic keeps its messages (the old topic's rows would collide
# with the new topic's on (topic, partition, offset)).
RESUME_COMMAND = "python -m extract reset --yes --keep-topics"


def recreated_error(topic: str, what: str) -> str:
    """The one-line error: which topic, what gave it away, and the command that resumes."""
    return (
        f"topic {topic!r} was recreated or truncated ({what}); stopped before landing any of its new messages."
        f" Land it from the start with `{RESUME_COMMAND}` and run again"
    )


def changed_topic_id(consumer: KafkaConsumer, known_ids: Mapping[str, str | None], topics: Iterable[str]) -> str | None:
    """The error for the first of `topics` whose id in the consumer's metadata (no round trip) differs from
    the id the run checked at start, else None. Safe on kafka-python's IO thread."""
    cluster = consumer._client.cluster  # kafka-python keeps topic ids there only (metadata v10+)
    for topic in topics:
        known, current = known_ids.get(topic), cluster.topic_id(topic)
        if known is not None and current is not None and str(current) != known:
            return recreated_error(topic, f"id {known} became {current} while running")
    return None


def refresh_metadata(consumer: KafkaConsumer) -> None:
    """Wait for metadata requested now; a refresh already in flight may have been sent before the last
    fetch, so then wait for the one after it. Without an answer the ids known so far stand (logged)."""
    cluster = consumer._client.cluster
    for _ in range(2 if cluster.metadata_refresh_in_progress else 1):
        answered = threading.Event()
        cluster.request_update().add_both(lambda _, event=answered: event.set())
        if not answered.wait(METADATA_WAIT_S):
            log.warning("no metadata answer in %.0fs; landing on the topic ids known so far", METADATA_WAIT_S)
            return
