"""Sends a `key|value` file to the topic the way kafka-console-producer does with
`--property parse.key=true --property key.separator='|'`: the key is the text before the first `|`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from extract.core.progress import Bar
from extract.core.settings import Settings

log = logging.getLogger(__name__)

KEY_SEPARATOR = b"|"


class ProduceError(RuntimeError):
    """The file could not be sent; the message says why in one line."""


@dataclass(frozen=True)
class ProduceResult:
    sent: int
    blank_lines_skipped: int
    lines_without_key: int


def parse_line(line: bytes) -> tuple[bytes | None, bytes] | None:
    """(key, value) for one line, or None for a blank line.

    Like the console producer (Java's readLine), CRLF and LF both end a line. A line without the
    separator is sent with a null key rather than dropped: staging decides what it is worth."""
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line.strip():
        return None
    key, separator, value = line.partition(KEY_SEPARATOR)
    if not separator:
        return None, line
    return key, value


def iter_messages(path: Path) -> Iterator[tuple[bytes | None, bytes] | None]:
    with path.open("rb") as handle:
        for line in handle:
            yield parse_line(line)


def ensure_topic(settings: Settings, topic: str | None = None, partitions: int | None = None) -> None:
    """Create the topic (default: the jobs topic) when the broker does not have it yet."""
    topic = topic or settings.kafka_topic
    partitions = partitions or settings.kafka_topic_partitions
    admin = KafkaAdminClient(client_id="jobs-elt-admin", **settings.kafka_client_config())
    try:
        if topic in admin.list_topics():
            return
        admin.create_topics([NewTopic(topic, partitions, 1)])
        log.info("created topic %r with %d partitions", topic, partitions)
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def produce_file(
    settings: Settings, path: Path, topic: str | None = None, partitions: int | None = None
) -> ProduceResult:
    """Send every line of `path` to `topic` (default: the jobs topic)."""
    topic = topic or settings.kafka_topic
    if not path.is_file():
        raise ProduceError(f"file not found: {path}")
    try:
        ensure_topic(settings, topic, partitions)
        producer = KafkaProducer(
            client_id="jobs-elt-producer",
            acks="all",
            linger_ms=20,
            batch_size=512 * 1024,
            # One request in flight per broker keeps a job's re-sends in file order even across retries.
            max_in_flight_requests_per_connection=1,
            retries=10,
            **settings.kafka_client_config(),
        )
    except KafkaError as error:
        raise ProduceError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {error}") from error
    failures: list[BaseException] = []
    sent = blank = keyless = 0
    try:
        with Bar(path.stat().st_size, f"produce {path.name}", unit="B") as bar:
            for parsed in iter_messages(path):
                if parsed is None:
                    blank += 1
                    bar.update(1)
                    continue
                key, value = parsed
                keyless += key is None
                producer.send(topic, key=key, value=value).add_errback(failures.append)
                sent += 1
                bar.update(len(value) + (len(key) + 2 if key is not None else 1))
            producer.flush()
    finally:
        producer.close()
    if failures:
        raise ProduceError(f"{len(failures)} of {sent} messages were not acknowledged: {failures[0]}")
    if blank:
        log.warning("%s: skipped %d blank lines (the console producer rejects them)", path, blank)
    if keyless:
        log.warning("%s: %d lines had no %r separator and were sent with a null key", path, keyless, "|")
    log.info("sent %d messages from %s to %r", sent, path, topic)
    return ProduceResult(sent, blank, keyless)
