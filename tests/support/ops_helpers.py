"""Helpers for the operations tests (status, service, report, progress): a CLI process that runs in the
background, a CLI run under a pseudo-terminal, and a tiny producer."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from kafka import KafkaProducer

from extract.core.settings import Settings
from extract.landing.producer import ensure_topic
from tests.conftest import ROOT, env_for


def send(settings: Settings, count: int, *, partition: int | None = None, start: int = 0) -> None:
    ensure_topic(settings)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    for n in range(start, start + count):
        producer.send(settings.kafka_topic, key=str(n).encode(), value=b'{"n": %d}' % n, partition=partition)
    producer.flush()
    producer.close()


def start_cli(settings: Settings, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "extract", *args],
        env=env_for(settings) | (env or {}),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(condition, seconds: float, what: str, process: subprocess.Popen[str] | None = None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(
                f"the process ended ({process.returncode}) waiting for {what}:\n{process.stderr.read()}"
            )
        try:
            value = condition()
        except (OSError, urllib.error.URLError):
            value = None
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def metric(text: str, name: str) -> float | None:
    """The value of one sample (`name` with its labels, exactly as exposed)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def json_lines(stderr: str) -> list[dict[str, object]]:
    """Every stderr line, parsed as JSON: fails on any line that is not."""
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


def run_in_pty(settings: Settings, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout a pipe); returns (exit code, terminal text)."""
    master, slave = pty.openpty()
    full_env = env_for(settings) | (env or {})
    full_env.pop("CI", None) if "CI" not in (env or {}) else None
    process = subprocess.Popen(
        [sys.executable, "-m", "extract", *args],
        env=full_env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed its side
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
    finally:
        os.close(master)
    return process.wait(120), b"".join(chunks).decode(errors="replace")


def write_key_value_file(path: Path, count: int) -> Path:
    path.write_text("".join(f'{n}|{{"n": {n}}}\n' for n in range(count)))
    return path
