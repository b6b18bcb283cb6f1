"""When `--until-end` is done: when the GROUP has landed every partition of the member's topics up to the end
it had when the member started, Postgres being the record, not when the member's own partitions are drained.

A member knows the partitions assigned to it by their position; the others by the next offset stored in
raw.kafka_offsets, which moves in the transaction that lands the rows (and past transaction markers, which
hold no message, once the consumer passed them). It stays in the group, polling (cheap),
until every partition has reached its end, so no member leaves while another still works: a member leaving
makes the group rebalance, and Tansu was seen to take the partition of the member still at work and never hand
it back. A member that gets no partition (a group leader that lacks metadata for its topic first assigns it
none) waits for the group in the same way instead of guessing that it is done.

Waiting is bounded: when the member has nothing of its own left to land and no offset the group stores moves
for `stall_s` (those of its topics, and those of the group's other topics: a member may wait for its topic
while another member of the group drains another one), it gives up naming the partitions no member landed;
a rerun resumes at their stored offsets."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Set

from kafka import KafkaConsumer, TopicPartition

# While its own partitions are drained, a member reads the stored offsets at most this often (one small query).
CHECK_INTERVAL_S = 0.5

# (topic, partition) -> next offset stored in raw.kafka_offsets, for the member's topics and its group's others
GroupOffsets = Callable[[], Mapping[tuple[str, int], int]]


class GroupStalled(Exception):
    """The group landed nothing the member waits for in `stall_s`; the message names what is missing."""


class UntilEnd:
    """The decision for one member, on its extractor's thread (the consumer is not thread-safe)."""

    def __init__(
        self, ends: Mapping[TopicPartition, int], stall_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ends = dict(ends)  # every partition of the member's topics when it started (partition_ends.py)
        self.stall_s = stall_s
        self._clock = clock
        self._targets: dict[TopicPartition, int] = {}
        self._confirmed: set[TopicPartition] = set()
        self._next_check = 0.0
        self._waiting_since: float | None = None
        self._last_seen: tuple[frozenset[TopicPartition], dict[tuple[str, int], int]] | None = None

    def reassigned(self) -> None:
        """A new assignment: the ends of the assigned partitions are looked up again. Safe on kafka-python's IO
        thread (no Kafka call)."""
        self._targets = {}
        self._confirmed = set()

    def drained(self, consumer: KafkaConsumer, stored: GroupOffsets) -> bool:
        """True when the assigned partitions and, by their stored offsets, all the others have reached their
        ends; GroupStalled when the member waited for the others for `stall_s` and no offset moved."""
        assignment = consumer.assignment()
        if not self._own_drained(consumer, assignment):
            self._waiting_since = None
            return False
        return self._group_done(assignment, stored)

    def _own_drained(self, consumer: KafkaConsumer, assignment: Set[TopicPartition]) -> bool:
        """Every assigned partition has reached the end it had when first seen in this assignment.

        That end is the larger of the listed end offset and the first high watermark a fetch reports:
        some Kafka-compatible brokers (Tansu) list a stale end offset, while fetch responses carry the
        real one. Later watermarks do not move it, so a busy topic still lets `--until-end` finish."""
        unlisted = [tp for tp in assignment if tp not in self._targets]
        if unlisted:
            self._targets.update(consumer.end_offsets(unlisted))
        for tp in assignment:
            if tp not in self._confirmed:
                highwater = consumer.highwater(tp)
                if highwater is None:
                    return False
                self._targets[tp] = max(self._targets.get(tp, 0), highwater)
                self._confirmed.add(tp)
            if consumer.position(tp) < self._targets[tp]:
                return False
        return True

    def _group_done(self, own: Set[TopicPartition], stored: GroupOffsets) -> bool:
        now = self._clock()
        if now < self._next_check:
            return False
        self._next_check = now + CHECK_INTERVAL_S
        others = [tp for tp in self.ends if tp not in own]
        if not others:
            return True
        offsets = dict(stored())
        at = {tp: offsets.get((tp.topic, tp.partition), 0) for tp in others}
        missing = {tp: offset for tp, offset in at.items() if offset < self.ends[tp]}
        if not missing:
            return True
        seen = (frozenset(own), offsets)
        if self._waiting_since is None or seen != self._last_seen:
            self._waiting_since = now  # an offset moved or the assignment changed: the group is at work
        self._last_seen = seen
        if now - self._waiting_since < self.stall_s:
            return False
        listed = ", ".join(f"{tp.topic}[{tp.partition}] at {n} of {self.ends[tp]}" for tp, n in sorted(missing.items()))
        raise GroupStalled(
            f"no member of the group landed {listed}, nor anything else, in {self.stall_s:g}s"
            " (EXTRACT_GROUP_STALL_S) while this member had nothing left to land; what landed is kept, and a rerun"
            " resumes at the stored offsets"
        )
