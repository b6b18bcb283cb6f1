"""Consumes Kafka sources as one consumer group and lands every message in its source's raw table.

Postgres, not Kafka, holds the offsets of record: each batch and its offsets commit in one transaction,
and on every (re)assignment the consumer seeks to what Postgres says. Kafka's group offsets are
committed afterwards as a courtesy to lag-monitoring tools only. A batch lands on a writer thread
(batch_writer.py) while the next one is polled; observers (observers.py) hear of it once it committed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import psycopg
from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, OffsetOutOfRangeError

from extract.core import db, kafka_probe
from extract.core.settings import Settings
from extract.core.sources_config import KafkaSource, SourcesConfig
from extract.landing import kafka_records  # noqa: F401 - reads non-UTF-8 header keys, unreadable batches
from extract.landing.batch_writer import BatchWriter, Landed
from extract.landing.observers import ExtractObserver, ExtractStats, notify
from extract.landing.partition_ends import partition_ends
from extract.landing.raw_sink import BatchResult, store_skipped_offsets, stored_offsets, stored_topic_ids, write_batch
from extract.landing.topic_identity import (
    METADATA_MAX_AGE_MS,
    changed_topic_id,
    recreated_error,
    refresh_metadata,
)
from extract.landing.until_end import GroupStalled, UntilEnd

log = logging.getLogger(__name__)

T = TypeVar("T")

# kafka-python (3.0.12) busy-loops inside poll() while a broker holds a request without answering (a
# frozen or partitioned broker): poll caps its wait by the heartbeat deadline, which is then overdue, i.e. 0.
# An empty poll that burnt this share of its wall time in CPU is that loop; the extractor then polls briefly
# and sleeps in between until the broker answers again (a healthy empty poll costs about 1%).
SPIN_CPU_SHARE = 0.2
SPIN_SLICE_MS = 200
SPIN_POLL_MS = 50
SPIN_BACKOFF_S = 1.0


def _transient(error: psycopg.Error) -> bool:
    """Connection trouble, a server shutting down or starting, a deadlock or serialization failure."""
    sqlstate = error.sqlstate or ""
    return sqlstate.startswith(("08", "57P", "40")) or isinstance(error, psycopg.errors.TransactionRollback)


class ExtractError(RuntimeError):
    """The extractor cannot go on; the message says why in one line."""


class _SeekToStoredOffsets(ConsumerRebalanceListener):
    def __init__(self, extractor: KafkaExtractor) -> None:
        self._extractor = extractor

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # The batch in flight commits first, so the partitions' next owner resumes after it.
        self._extractor.writer_wait()
        if revoked:
            log.info("partitions revoked: %s", _describe(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._extractor.on_assigned(assigned)


def _describe(partitions: set[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(partitions))


class KafkaExtractor:
    """One consumer (one member of the group) subscribed to the topics of `sources`."""

    def __init__(
        self,
        settings: Settings,
        sources: Sequence[KafkaSource] | None = None,
        stop: threading.Event | None = None,
        config: SourcesConfig | None = None,
        observers: Sequence[ExtractObserver] = (),
    ) -> None:
        self.settings = settings
        self.observers = list(observers)
        self.config = config or settings.sources()
        self.sources = list(sources) if sources is not None else [self.config.get("jobs")]  # type: ignore[list-item]
        self.tables = {source.topic: source.raw_table for source in self.sources}
        self.stop = stop or threading.Event()
        self.stats = ExtractStats()
        self._conn: psycopg.Connection | None = None
        self._consumer: KafkaConsumer | None = None
        self._topic_ids: dict[str, str | None] = {}
        self._assigned_once = False
        self._stored: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset stored, as known here
        self._until_end: UntilEnd | None = None
        self._spinning = False
        self._writer: BatchWriter | None = None
        self._handed_over = 0
        # Set on kafka-python's IO thread when an assignment brings a topic with a new id; raised by run().
        self._recreated: str | None = None

    # -- database -------------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = db.connect(self.settings)
        return self._conn

    def _with_db_retry(self, what: str, action: Callable[[psycopg.Connection], T]) -> T:
        """Run `action(conn)`; on a lost connection reconnect with backoff until the retry budget is spent.

        A failed transaction rolled back as a whole, so running it again is safe and exact."""
        deadline = time.monotonic() + self.settings.db_retry_budget_s
        delay = 0.5
        while True:
            try:
                return action(self._connection())
            except (psycopg.OperationalError, psycopg.errors.TransactionRollback) as error:
                notify(self.observers, "on_db_error", self, what, error)
                if (refused := db.refusal(error, self.settings)) is not None:
                    raise refused from error  # no such database or role, a refused password: no retry heals it
                lost = self._conn is None or self._conn.closed or self._conn.broken
                if self._conn is not None:
                    self._conn.close()
                if not (lost or _transient(error)):
                    # A deterministic refusal (a limit, a privilege) would fail the same way on every retry.
                    raise ExtractError(f"database refused {what}: {error}".strip()) from error
                if time.monotonic() + delay > deadline:
                    raise ExtractError(f"database unreachable while {what}: {error}".strip()) from error
                log.warning("database error while %s (%s); retrying in %.1fs", what, str(error).strip(), delay)
                if self.stop.wait(delay):
                    raise ExtractError(f"stopped while waiting for the database ({what})") from error
                delay = min(delay * 2, 10.0)

    # -- kafka ----------------------------------------------------------------------------------

    def _make_consumer(self) -> KafkaConsumer:
        try:
            return KafkaConsumer(
                group_id=self.settings.kafka_group_id,
                client_id="jobs-elt-extractor",
                enable_auto_commit=False,
                # Postgres holds the offsets; a position Kafka no longer has is an error, not a silent reset.
                auto_offset_reset="none",
                # Messages of an aborted producer transaction never land, and those of an open one wait for
                # its commit (a partition's end is then its last stable offset, which --until-end drains to).
                isolation_level="read_committed",
                session_timeout_ms=6_000,
                heartbeat_interval_ms=1_000,
                max_poll_interval_ms=max(300_000, int(self.settings.db_retry_budget_s * 1000) + 60_000),
                fetch_max_bytes=64 * 1024 * 1024,
                metadata_max_age_ms=METADATA_MAX_AGE_MS,
                max_partition_fetch_bytes=16 * 1024 * 1024,
                **self.settings.kafka_client_config(),
            )
        except KafkaError as error:
            raise ExtractError(f"cannot reach Kafka at {self.settings.kafka_bootstrap_servers}: {error}") from error

    def _check_topic_ids(self) -> None:
        """Compare each topic's broker id (Kafka 2.8+ and Tansu have one) with the id its offsets were
        stored under: a recreated topic restarts at offset 0, and resuming would skip its messages."""
        try:
            admin = KafkaAdminClient(client_id="jobs-elt-extractor-admin", **self.settings.kafka_client_config())
        except KafkaError as error:
            raise ExtractError(f"cannot reach Kafka at {self.settings.kafka_bootstrap_servers}: {error}") from error
        try:
            described = admin.describe_topics(list(self.tables))
        except KafkaError:
            described = []
        finally:
            admin.close()
        for topic_description in described:
            topic, topic_id = topic_description.get("name"), topic_description.get("topic_id")
            if topic not in self.tables or not topic_id or set(str(topic_id)) <= {"0", "-"}:
                continue
            topic_id = str(topic_id)
            known = self._with_db_retry("reading stored topic ids", lambda conn, t=topic: stored_topic_ids(conn, t))
            if known and topic_id not in known:
                raise ExtractError(
                    recreated_error(
                        topic, f"id {topic_id}, offsets in Postgres stored under {', '.join(sorted(known))}"
                    )
                )
            self._topic_ids[topic] = topic_id

    def _changed_topic_id(self, topics: Iterable[str]) -> str | None:
        assert self._consumer is not None
        return changed_topic_id(self._consumer, self._topic_ids, topics)

    def _check_topic_ids_after_fetch(self) -> None:
        assert self._consumer is not None
        if any(self._topic_ids.values()):  # a broker without topic ids: the offset checks are all there is
            refresh_metadata(self._consumer)
            recreated = self._changed_topic_id(self.tables)
            if recreated:
                raise ExtractError(recreated)

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned_once = True
        # This runs on kafka-python's IO thread, where blocking Kafka calls are not allowed:
        # the drain targets of these partitions are looked up from the main loop instead.
        if self._until_end is not None:
            self._until_end.reassigned()
        if not assigned:
            log.info("no partitions assigned to this member")
            return
        consumer = self._consumer
        assert consumer is not None
        # Stored offsets are read after the batch in flight committed (it also frees the connection).
        self.writer_wait()
        self._recreated = self._recreated or self._changed_topic_id({tp.topic for tp in assigned})
        if self._recreated:
            # Fetch nothing: run() stops at its next check, before any write.
            consumer.pause(*assigned)
            return
        offsets = self._with_db_retry(
            "reading stored offsets", lambda conn: stored_offsets(conn, {tp.topic for tp in assigned})
        )
        self._stored.update({(tp.topic, tp.partition): offsets.get((tp.topic, tp.partition), 0) for tp in assigned})
        for tp in sorted(assigned):
            if (tp.topic, tp.partition) in offsets:
                consumer.seek(tp, offsets[(tp.topic, tp.partition)])
            else:
                consumer.seek_to_beginning(tp)
        log.info(
            "partitions assigned: %s; resuming at %s",
            _describe(assigned),
            {f"{tp.topic}[{tp.partition}]": offsets.get((tp.topic, tp.partition), 0) for tp in sorted(assigned)},
        )

    def _check_not_beyond_end(self, tp: TopicPartition) -> None:
        """A stored offset past the partition's end means the topic was recreated or truncated; reading
        on would silently skip the new messages, so stop loudly instead."""
        consumer = self._consumer
        assert consumer is not None
        highwater = consumer.highwater(tp)
        if highwater is not None and consumer.position(tp) > highwater:
            raise ExtractError(
                recreated_error(
                    tp.topic,
                    f"offset {consumer.position(tp)} stored in Postgres is beyond the end of partition"
                    f" {tp.partition}, {highwater}",
                )
            )

    def _drained(self) -> bool:
        """`--until-end` is done: this member's partitions and the group's others reached their ends."""
        assert self._consumer is not None and self._until_end is not None
        try:
            return self._assigned_once and self._until_end.drained(self._consumer, self._group_offsets)
        except GroupStalled as error:
            raise ExtractError(str(error)) from None

    def _group_offsets(self) -> dict[tuple[str, int], int]:
        self.writer_wait()  # the connection is the writer's while a batch is in flight
        group, topics = self.settings.kafka_group_id, self.tables
        return self._with_db_retry("reading the group's offsets", lambda conn: stored_offsets(conn, topics, group))

    def _store_skipped_offsets(self) -> None:
        """Store the position of each assigned partition whose consumer passed offsets that hold no message
        (transaction markers) since the offset stored last: members waiting for the group compare stored
        offsets with the partitions' ends. Called only when every message polled so far has landed."""
        assert self._consumer is not None
        ahead = {
            (tp.topic, tp.partition): position
            for tp in self._consumer.assignment()
            if (position := self._consumer.position(tp)) > self._stored.get((tp.topic, tp.partition), 0)
        }
        if ahead:
            group, ids = self.settings.kafka_group_id, self._topic_ids
            self._with_db_retry("storing offsets", lambda conn: store_skipped_offsets(conn, group, ahead, ids))
            self._stored.update(ahead)
            self._commit_to_kafka(ahead)

    def _commit_to_kafka(self, next_offsets: Mapping[tuple[str, int], int]) -> None:
        consumer = self._consumer
        assert consumer is not None
        offsets = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in next_offsets.items()
        }
        try:
            consumer.commit_async(offsets)
        except KafkaError as error:
            log.debug("courtesy offset commit to Kafka failed: %s", error)

    def _poll(self) -> dict[TopicPartition, list[ConsumerRecord]]:
        """One poll of up to poll_timeout_ms, in slices short enough to notice quickly when the client
        spins, and then backing off instead of burning a core until the broker answers again."""
        consumer = self._consumer
        assert consumer is not None
        deadline = time.monotonic() + self.settings.poll_timeout_ms / 1000
        while True:
            timeout_ms = SPIN_POLL_MS if self._spinning else SPIN_SLICE_MS
            timeout_ms = max(1, min(timeout_ms, int((deadline - time.monotonic()) * 1000)))
            # this thread's CPU only: the writer thread may be busy landing the previous batch meanwhile
            cpu, wall = time.thread_time(), time.monotonic()
            polled = consumer.poll(timeout_ms=timeout_ms, max_records=self.settings.max_poll_records)
            cpu, wall = time.thread_time() - cpu, time.monotonic() - wall
            spinning = not polled and wall >= 0.04 and cpu > SPIN_CPU_SHARE * wall
            if spinning != self._spinning:
                if spinning:
                    log.warning("the broker does not answer; waiting for it")
                else:
                    log.info("the broker answers again")
                self._spinning = spinning
            if spinning:
                self.stop.wait(SPIN_BACKOFF_S)
                return polled
            if polled or time.monotonic() >= deadline or self.stop.is_set():
                return polled

    def _checked_poll(self) -> dict[TopicPartition, list[ConsumerRecord]]:
        """A poll, and the checks every poll needs: a position past the partition's end, or an assignment or
        a metadata update that brought a topic with a new id, stops the run before anything is written."""
        try:
            polled = self._poll()
        except OffsetOutOfRangeError as error:
            out_of_range = error.args[0] if error.args and isinstance(error.args[0], dict) else self.tables
            topics = sorted({getattr(tp, "topic", tp) for tp in out_of_range})
            raise ExtractError(
                recreated_error(", ".join(topics), "an offset stored in Postgres is beyond its end")
            ) from error
        recreated = self._recreated or self._changed_topic_id(self.tables)
        if recreated:
            raise ExtractError(recreated)
        return polled

    def writer_wait(self) -> None:
        """Block until the batch in flight, if any, has committed or failed (its error waits for run())."""
        if self._writer is not None:
            self._writer.wait()

    def _write(self, messages: Sequence[ConsumerRecord]) -> BatchResult:
        """On the writer thread: one batch and its offsets, in one transaction, retried on a lost connection."""
        group = self.settings.kafka_group_id
        return self._with_db_retry(
            "writing a batch",
            lambda conn: write_batch(conn, group, messages, self.tables, self._topic_ids, in_order=True),
        )

    def _report(self, landed: Sequence[Landed]) -> None:
        for batch in landed:
            self.stats.add(batch.result)
            self._stored.update(batch.result.next_offsets)
            self._commit_to_kafka(batch.result.next_offsets)
            log.debug("batch of %d messages, %d new", batch.result.messages, batch.result.inserted)
            notify(self.observers, "on_batch", self, batch.polled, batch.result, batch.seconds)

    def run(self, *, until_end: bool = False) -> ExtractStats:
        kafka_probe.check_broker(self.settings, self.stop)  # first: a dead broker or wrong protocol in seconds
        self._with_db_retry("creating the raw schema", lambda conn: db.ensure_raw_schema(conn, self.config))
        notify(self.observers, "on_start", self, until_end)
        failure: BaseException | None = None
        writer = self._writer = BatchWriter(self._write)
        try:
            self._check_topic_ids()
            self._consumer = self._make_consumer()
            if until_end:
                ends = partition_ends(self.settings, self.tables, self.stop)
                self._until_end = UntilEnd(ends, self.settings.group_stall_s)
            group = self.settings.kafka_group_id
            self._consumer.subscribe(sorted(self.tables), listener=_SeekToStoredOffsets(self))
            log.info("consuming %s as group %r (until_end=%s)", ", ".join(sorted(self.tables)), group, until_end)
            while not self.stop.is_set():
                polled = self._checked_poll()
                # by partition, each in offset order as polled: the writer need not sort them
                messages = [message for tp in sorted(polled) for message in polled[tp]]
                if messages:
                    self._check_topic_ids_after_fetch()
                    writer.submit(polled, messages)  # lands while the next poll runs
                    self._handed_over += len(messages)
                    self._report(writer.landed())
                else:
                    # Nothing polled: the batch in flight commits first, so no offset is stored past its rows.
                    self._report(writer.landed(wait=True))
                    self._store_skipped_offsets()
                notify(self.observers, "on_poll", self)
                if self._assigned_once:
                    for tp in self._consumer.assignment():
                        self._check_not_beyond_end(tp)
                if until_end and self._drained():
                    self._report(writer.landed(wait=True))
                    self._store_skipped_offsets()  # what the others wait for, before leaving the group
                    break
            self._report(writer.landed(wait=True))
            notify(self.observers, "on_poll", self)  # what they saw last may have had a batch in flight
        except BaseException as error:
            failure = error
            raise
        finally:
            writer.close()
            self._writer = None
            notify(self.observers, "on_end", self, failure)
            self.close()
        log.debug(  # DEBUG: the command prints this summary itself (one line per action)
            "landed %d new of %d messages from %s in %d batches in %.1fs",
            self.stats.inserted,
            self.stats.messages,
            ", ".join(sorted(self.tables)),
            self.stats.batches,
            self.stats.seconds,
        )
        return self.stats

    @property
    def joined(self) -> bool:
        """Whether the group has assigned this member partitions (or none) at least once."""
        return self._assigned_once

    @property
    def in_flight(self) -> int:
        """Messages polled and handed to the writer thread, not yet committed (stats counts those)."""
        return self._handed_over - self.stats.messages

    def partition_positions(self) -> dict[TopicPartition, tuple[int, int | None]]:
        """(next offset to read, high watermark of the last fetch or None) per assigned partition; for
        observers, on the extractor's thread. No network round trip."""
        consumer = self._consumer
        if consumer is None:
            return {}
        return {tp: (consumer.position(tp), consumer.highwater(tp)) for tp in consumer.assignment()}

    def broker_answered_at(self) -> float | None:
        """time.monotonic() of the group coordinator's last answer to this member (the join, then a
        heartbeat every second), or None before it joined: an old value means the broker has gone
        silent, even while poll() keeps returning empty batches on time."""
        heartbeat = getattr(getattr(self._consumer, "_coordinator", None), "heartbeat", None)
        if heartbeat is None or not self._assigned_once:
            return None
        # last_reset moves when the coordinator answers a join; before it, it is the client's creation
        return max(heartbeat.last_receive, heartbeat.last_reset)

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            except KafkaError as error:
                log.debug("closing the consumer: %s", error)
            self._consumer = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def run_kafka_sources(
    settings: Settings,
    sources: Sequence[KafkaSource],
    *,
    until_end: bool,
    stop: threading.Event,
    config: SourcesConfig,
    observers: Sequence[ExtractObserver] = (),
) -> ExtractStats:
    """Land `sources` with one consumer subscribed to all of them, or one consumer thread per topic
    (`kafka.workers` in sources.yml); every consumer is a member of the same group."""
    if config.worker_mode == "one_subscription" or len(sources) == 1:
        return KafkaExtractor(settings, sources, stop, config, observers).run(until_end=until_end)
    extractors = [KafkaExtractor(settings, [source], stop, config, observers) for source in sources]
    errors: list[BaseException] = []

    def work(extractor: KafkaExtractor) -> None:
        try:
            extractor.run(until_end=until_end)
        except BaseException as error:  # reported below; the other workers are stopped too
            errors.append(error)
            stop.set()

    threads = [threading.Thread(target=work, args=(e,), name=f"extract-{e.sources[0].name}") for e in extractors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    total = ExtractStats()
    for extractor in extractors:
        total.merge(extractor.stats)
    return total
