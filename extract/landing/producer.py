"""Sends a `key|value` file to the topic the way kafka-console-producer does with
`--property parse.key=true --property key.separator='|'`: the key is the text before the first `|`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from extract.core.kafka_probe import check_broker
from extract.core.progress import Bar
from extract.core.settings import Settings

log = logging.getLogger(__name__)

KEY_SEPARATOR = b"|"


class ProduceError(RuntimeError):
    """The file could not be sent; the message says why in one line."""


# The codecs Kafka defines; the consumer reads them all (pyproject pins their libraries).
COMPRESSION_CODECS = ("none", "gzip", "snappy", "lz4", "zstd")

# Kafka's default max.message.bytes, for a broker that does not report the topic's (Tansu reports none).
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
# A one-record batch beyond its key and value: the v2 batch header (61 bytes) and the record's varints.
RECORD_OVERHEAD_BYTES = 100


@dataclass(frozen=True)
class InvalidLine:
    line_number: int
    reason: str


@dataclass(frozen=True)
class ProduceResult:
    sent: int
    blank_lines_skipped: int
    invalid_lines_skipped: list[InvalidLine]


def parse_line(line: bytes) -> tuple[bytes | None, bytes] | None:
    """(key, value) for one line, or None for a blank line.

    Like the console producer (Java's readLine), CRLF and LF both end a line. A line without the
    separator comes back with a null key; check_file refuses it, as the console producer does."""
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


def iter_messages(path: Path) -> Iterator[tuple[int, tuple[bytes | None, bytes] | None]]:
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            yield line_number, parse_line(line)


def check_file(path: Path, max_message_bytes: int) -> list[InvalidLine]:
    """Every line the topic would not take as a key|value message: no separator, or a record larger than
    the topic's max.message.bytes (counted uncompressed, so a line that fits only compressed is refused)."""
    invalid = []
    for line_number, parsed in iter_messages(path):
        if parsed is None:
            continue
        key, value = parsed
        size = len(key or b"") + len(value) + RECORD_OVERHEAD_BYTES
        if key is None:
            invalid.append(InvalidLine(line_number, f"no {KEY_SEPARATOR.decode()!r} between key and value"))
        elif size > max_message_bytes:
            invalid.append(
                InvalidLine(
                    line_number, f"a {size}-byte record, over the topic's max.message.bytes {max_message_bytes}"
                )
            )
    return invalid


def topic_max_message_bytes(settings: Settings, topic: str) -> int:
    """The topic's max.message.bytes as the broker describes it, else Kafka's default."""
    admin = KafkaAdminClient(client_id="jobs-elt-admin", **settings.kafka_client_config())
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    except KafkaError as error:
        log.debug("describe_configs of %s failed: %s", topic, error)
        described = {}
    finally:
        admin.close()
    value = described.get("topic", {}).get(topic, {}).get("max.message.bytes") if isinstance(described, dict) else None
    if isinstance(value, dict):
        value = value.get("value")
    try:
        return int(value) if value is not None else DEFAULT_MAX_MESSAGE_BYTES
    except ValueError:
        return DEFAULT_MAX_MESSAGE_BYTES


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
    settings: Settings,
    path: Path,
    topic: str | None = None,
    partitions: int | None = None,
    *,
    compression: str = "none",
    skip_invalid: bool = False,
) -> ProduceResult:
    """Send every line of `path` to `topic` (default: the jobs topic), or nothing when a line is invalid
    (check_file) unless `skip_invalid`: then every valid line is sent and the invalid ones reported."""
    topic = topic or settings.kafka_topic
    if not path.is_file():
        raise ProduceError(f"file not found: {path}")
    if compression not in COMPRESSION_CODECS:
        raise ProduceError(f"unknown compression {compression!r}; use one of {', '.join(COMPRESSION_CODECS)}")
    check_broker(settings)
    try:
        ensure_topic(settings, topic, partitions)
        max_message_bytes = topic_max_message_bytes(settings, topic)
    except KafkaError as error:
        raise ProduceError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {error}") from error
    invalid = check_file(path, max_message_bytes)
    if invalid and not skip_invalid:
        first = invalid[0]
        raise ProduceError(
            f"{path}:{first.line_number}: {first.reason}; nothing sent ({len(invalid)} invalid lines;"
            " --skip-invalid sends the others)"
        )
    skip = {problem.line_number for problem in invalid}
    try:
        producer = KafkaProducer(
            client_id="jobs-elt-producer",
            acks="all",
            linger_ms=20,
            batch_size=512 * 1024,
            compression_type=None if compression == "none" else compression,
            # The client's own limit, so that what check_file let through is not refused here.
            max_request_size=max(max_message_bytes, 1024 * 1024),
            # One request in flight per broker keeps a job's re-sends in file order even across retries.
            max_in_flight_requests_per_connection=1,
            retries=10,
            **settings.kafka_client_config(),
        )
    except KafkaError as error:
        raise ProduceError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {error}") from error
    failures: list[BaseException] = []
    sent = blank = 0
    try:
        with Bar(path.stat().st_size, f"produce {path.name}", unit="B") as bar:
            for line_number, parsed in iter_messages(path):
                if parsed is None:
                    blank += 1
                    bar.update(1)
                    continue
                key, value = parsed
                bar.update(len(value) + (len(key) + 2 if key is not None else 1))
                if line_number in skip:
                    continue
                producer.send(topic, key=key, value=value).add_errback(failures.append)
                sent += 1
            producer.flush()
    finally:
        producer.close()
    if failures:
        raise ProduceError(f"{len(failures)} of {sent} messages were not acknowledged: {failures[0]}")
    if blank:
        log.warning("%s: skipped %d blank lines (the console producer rejects them)", path, blank)
    for problem in invalid:
        log.warning("%s:%d: skipped: %s", path, problem.line_number, problem.reason)
    log.debug("sent %d messages from %s to %r", sent, path, topic)  # the command prints the summary
    return ProduceResult(sent, blank, invalid)
