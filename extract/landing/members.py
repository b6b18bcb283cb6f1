"""`run --processes N`: the Kafka sources landed by N extractor processes, members of one consumer group.

kafka-python decodes records in Python, under one interpreter lock, so one extractor process uses about one
core however many it has; N processes share the partitions the group assigns them (more processes than
partitions leaves the extra ones idle, ready to take over). Each member is the ordinary `run --kind kafka`
in a child process, with the same exactly-once landing (the offsets commit with the rows, one transaction
per batch, under each raw table's lock), so a member that dies, restarts or loses its partitions in a
rebalance neither loses nor doubles a message.

This process only supervises them. SIGTERM or SIGINT reaches every member (each commits its batch and leaves
the group); if this process is killed, the kernel sends them SIGTERM (Linux's parent-death signal). As a
service (no --until-end) a member that exits on its own is started again after a pause that doubles up to a
minute. With --until-end the members end together once the group has landed every partition (until_end.py);
one that fails is not restarted (the others take its partitions) and makes the exit code non-zero."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_PROCESSES = 64
RESTART_PAUSE_S = 1.0
RESTART_PAUSE_MAX_S = 60.0
# A member that ran this long before it exited is restarted after the shortest pause again.
STEADY_S = 60.0
WATCH_EVERY_S = 0.2
_LANDED = re.compile(r"landed (\d+) new of (\d+) messages from ")
_PR_SET_PDEATHSIG = 1


def landed_line(inserted: int, messages: int, topics: str) -> str:
    """What `run` and `jobs` print at the end; members print it too, and the supervisor adds theirs up."""
    return f"landed {inserted} new of {messages} messages from {topics}"


@dataclass
class MembersResult:
    inserted: int = 0
    messages: int = 0
    failures: list[str] = field(default_factory=list)
    restarts: int = 0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux only (elsewhere members outlive a killed supervisor): SIGTERM when the supervisor dies. Members
    are started from the supervisor's main thread, which lives as long as it does (the signal follows the
    thread that forked)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Member:
    def __init__(self, number: int, command: Sequence[str], env: dict[str, str]) -> None:
        self.number = number
        self.command = list(command)
        self.env = env
        self.process: subprocess.Popen[str] | None = None
        self.started_at = 0.0
        self.pause = RESTART_PAUSE_S
        self.restart_at: float | None = None
        self._output: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509 - no threads fork here
        )
        self.started_at = time.monotonic()
        self.restart_at = None
        # its stdout is one summary line; read as it comes so the pipe can never fill and block the member
        self._reader = threading.Thread(target=self._output.extend, args=(self.process.stdout,), daemon=True)
        self._reader.start()
        log.info("member %d started (pid %d)", self.number, self.process.pid)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exited(self) -> int | None:
        """The exit code of a member that has just ended (once), else None."""
        if self.process is None or self.process.poll() is None:
            return None
        code = self.process.returncode
        if self._reader is not None:
            self._reader.join()
        self.process = None
        return code

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def take_output(self) -> list[str]:
        lines, self._output = self._output, []
        return lines


def _describe(code: int) -> str:
    if code >= 0:
        return f"exited with {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def run_members(count: int, member_args: Sequence[str], *, until_end: bool, stop: threading.Event) -> MembersResult:
    """Run `count` members (`python -m extract <member_args>`) until they end (until_end) or `stop` is set."""
    env = {**os.environ, "EXTRACT_PROGRESS": "0"}  # one progress bar per member would garble the terminal
    command = [sys.executable, "-m", "extract", *member_args]
    members = [_Member(number, command, env) for number in range(1, count + 1)]
    result = MembersResult()
    for member in members:
        member.start()
    stopping = False
    while True:
        if stop.is_set() and not stopping:
            stopping = True
            for member in members:
                member.signal(signal.SIGTERM)
        now = time.monotonic()
        for member in members:
            code = member.exited()
            if code is not None:
                _count_output(member, result)
                _after_exit(member, code, now, result, restart=not (until_end or stop.is_set()))
            elif member.restart_at is not None and now >= member.restart_at and not stopping:
                result.restarts += 1
                member.start()
        if not any(member.running for member in members) and (until_end or stopping):
            return result
        stop.wait(WATCH_EVERY_S)


def _count_output(member: _Member, result: MembersResult) -> None:
    for line in member.take_output():
        match = _LANDED.match(line)
        if match:
            result.inserted += int(match.group(1))
            result.messages += int(match.group(2))
        else:
            print(line, end="", flush=True)


def _after_exit(member: _Member, code: int, now: float, result: MembersResult, *, restart: bool) -> None:
    if restart:
        if now - member.started_at >= STEADY_S:
            member.pause = RESTART_PAUSE_S
        log.warning("member %d %s; starting it again in %.0fs", member.number, _describe(code), member.pause)
        member.restart_at = now + member.pause
        member.pause = min(member.pause * 2, RESTART_PAUSE_MAX_S)
    elif code != 0:
        result.failures.append(f"member {member.number} {_describe(code)}")
        log.error("member %d %s", member.number, _describe(code))
