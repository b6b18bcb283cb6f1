"""dbt, one invocation per database at a time: `make build`, `make audit` and the service's scheduler all run
dbt through `dbt_lock`, a PostgreSQL session advisory lock held on its own connection for as long as dbt runs.

Two overlapping builds would each record how far their scoped tests got (dbt_project/macros/tests/
test_scope.sql) and could move that bound past rows the other built but never tested; serialised, each build
tests exactly the range it recorded at its start. The lock lives in the database, so a `make build` on a
laptop and the service in a container wait for each other, and it goes away with the session if the holder
dies."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from extract.core import db
from extract.core.settings import Settings

log = logging.getLogger(__name__)

# pg_advisory_lock's key: per database (advisory locks are), the same for every dbt command of this project
LOCK_KEY = "hashtext('jobs_elt.dbt')"


@contextmanager
def dbt_lock(settings: Settings, stop: threading.Event | None = None, poll_s: float = 1.0) -> Iterator[bool]:
    """Hold the database's dbt lock for the block, waiting while another invocation holds it. Yields False
    (without the lock) only when `stop` is set while waiting."""
    with db.connect(settings, autocommit=True) as conn:
        waited = time.monotonic()
        announced = False
        while not conn.execute(f"select pg_try_advisory_lock({LOCK_KEY})").fetchone()[0]:
            if not announced:
                log.info("another dbt invocation is running on %s: waiting for it to finish", settings.pg_database)
                announced = True
            if stop is not None and stop.wait(poll_s):
                yield False
                return
            if stop is None:
                time.sleep(poll_s)
        if announced:
            log.info("dbt lock acquired after %.1fs", time.monotonic() - waited)
        try:
            yield True
        finally:
            if not conn.closed:
                conn.execute(f"select pg_advisory_unlock({LOCK_KEY})")


def dbt_environment(settings: Settings) -> dict[str, str]:
    """The environment of a dbt child: this process's, with the settings' connection. Without DBT_STATE, which
    names this project's saved manifest but which dbt would read as --state on every command: the builds that
    compare with it pass --state themselves (dbt_build.py)."""
    env = {**os.environ, **settings.dbt_env()}
    env.pop("DBT_STATE", None)
    return env


def dbt_executable() -> str:
    dbt = Path(sys.executable).parent / "dbt"
    return str(dbt) if dbt.exists() else "dbt"


def run_locked(settings: Settings, args: Sequence[str]) -> int:
    """`dbt <args>` in the current directory under the lock; dbt's exit code."""
    with dbt_lock(settings):
        child = subprocess.Popen([dbt_executable(), *args], env=dbt_environment(settings))
        try:
            return child.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached dbt too (same process group): let it cancel its queries before the lock goes
            return child.wait()
