"""One `dbt build` that carries rule changes to old rows: `python -m extract build` (`make build`) and every
build of the service (service.py) run it, holding the database's dbt lock (dbt_runner.py) from its first dbt
command to the saved manifest, so no other build slips in between its steps.

The per-row models judge a raw row once (incremental), so a changed rule would leave the rows staged under
the old one as they were. The manifest of the last successful build is kept in Settings.dbt_state_dir
(DBT_STATE, else $ELT_STATE_DIR/dbt-last-success). Before building, dbt's own state comparison lists the
incremental models that are `state:modified+` against it: a changed model SQL, a macro or a dbt function
(dbt_project/functions/) it calls, its config, a source definition, or a var its rules read
(meta.rule_vars). When there are any, everything else is built as usual, then they and everything downstream
with --full-refresh; otherwise the build is the ordinary one (selector scheduled_build, or the service's
selection of what new rows affect). Only a build whose every step succeeded saves its manifest: after a
failure the next build compares with the same one and rebuilds again."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from extract.core.settings import Settings
from extract.operations.build_trigger import EXCLUDE
from extract.operations.dbt_runner import dbt_environment, dbt_executable, dbt_lock

# The incremental models a rule change leaves judged by the old rule (everything downstream of a change).
STALE = "state:modified+,config.materialized:incremental"
SCHEDULED = ("--selector", "scheduled_build")
# `dbt ls --output name` prints bare node names; anything else on its stdout is not one
MODEL_NAME = re.compile(r"\w+")


def project_dir(env: Mapping[str, str] | None = None) -> Path:
    """The dbt project (and its profiles.yml): DBT_PROJECT_DIR, else dbt_project."""
    env = os.environ if env is None else env
    return Path(env.get("DBT_PROJECT_DIR") or "dbt_project")


@dataclass(frozen=True)
class DbtCall:
    returncode: int
    output: str  # empty unless captured


class Dbt:
    """dbt commands on one project, one child process at a time, which `interrupt()` stops from another thread
    (SIGINT: dbt cancels its queries). Their output is captured, or goes to this process's own."""

    def __init__(
        self, settings: Settings, project: Path, *, capture: bool = True, stop: threading.Event | None = None
    ) -> None:
        self.settings = settings
        self.project = project.resolve()
        self.capture = capture
        self.stop = stop
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def target_dir(self) -> Path:
        """Where dbt writes manifest.json: DBT_TARGET_PATH (relative to the project), else the project's target."""
        target = Path(os.environ.get("DBT_TARGET_PATH") or "target")
        return target if target.is_absolute() else self.project / target

    @property
    def log_dir(self) -> Path:
        logs = Path(os.environ.get("DBT_LOG_PATH") or "logs")
        return logs if logs.is_absolute() else self.project / logs

    def __call__(self, command: str, *args: str, capture: bool | None = None) -> DbtCall:
        capture = self.capture if capture is None else capture
        profiles = os.environ.get("DBT_PROFILES_DIR") or str(self.project)
        argv = [dbt_executable(), command, "--project-dir", str(self.project), "--profiles-dir", profiles, *args]
        env = {**({"DBT_USE_COLORS": "false"} if capture else {}), **dbt_environment(self.settings)}
        output = subprocess.PIPE if capture else None
        # the project as the working directory: relative DBT_TARGET_PATH / DBT_PROFILES_DIR mean the same
        # here as in a shell inside dbt_project/
        try:
            process = subprocess.Popen(
                argv, env=env, cwd=self.project, stdout=output, stderr=subprocess.STDOUT if capture else None
            )
        except OSError as error:  # no such project directory, or no dbt: a failed build, not a crash
            message = f"error: cannot run dbt in {self.project}: {error.strerror or error}\n"
            if not capture:
                sys.stderr.write(message)
            return DbtCall(127, message if capture else "")
        self._process = process
        try:
            if self.stop is not None and self.stop.is_set():  # a shutdown that came while it started
                self.interrupt()
            printed, _ = process.communicate()
        except KeyboardInterrupt:
            # Ctrl-C reached dbt too (same process group): let it cancel its queries before the lock goes
            process.wait()
            raise
        finally:
            self._process = None
        return DbtCall(process.returncode, (printed or b"").decode(errors="replace"))

    def interrupt(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


@dataclass(frozen=True)
class BuildResult:
    ok: bool
    # the exit code of the dbt command that ended the build; None when a shutdown stopped it between steps
    returncode: int | None
    stale: tuple[str, ...] = ()  # the incremental models rebuilt with --full-refresh (a rule changed)
    output: str = ""  # what the dbt commands printed, when captured
    seconds: float = 0.0
    # set when every step succeeded but the manifest could not be saved: the next build compares with the
    # previous one again
    state_error: str | None = None


def parse_vars(text: str) -> dict[str, object]:
    """dbt vars from a YAML (or JSON) mapping, braces optional: the entries EXTRA_VARS adds to make build's vars
    ('max_revenue: 5000, location: LOC_9'). ValueError when it is not a mapping of names."""
    text = text.strip()
    try:
        value = yaml.safe_load(text if text.startswith("{") else "{" + text + "}")
    except yaml.YAMLError as error:
        raise ValueError(f"not a YAML mapping: {' '.join(str(error).split())}") from None
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ValueError(f"not a mapping of var names to values: {text!r}")
    return value


def print_rule_change(stale: Sequence[str]) -> None:
    print(rule_change_message(stale), flush=True)  # before dbt's own output, which goes to the same stdout


def rule_change_message(stale: Sequence[str]) -> str:
    return (
        f"rules changed since the last successful build: rebuilding {' '.join(stale)}"
        " and what depends on them (--full-refresh)"
    )


def steps(stale: Sequence[str], select: Sequence[str], state_dir: Path) -> list[list[str]]:
    """The `dbt build` arguments of each step: the ordinary build (`select`, else selector scheduled_build),
    or, when a rule change left `stale` models, everything else as usual and then what the change touches
    from scratch, both without what scheduled_build leaves out (audit-tagged and unit tests)."""
    if not stale:
        return [list(select) or list(SCHEDULED)]
    state = ["--state", str(state_dir)]
    return [
        [*state, "--exclude", "state:modified+", *EXCLUDE[1:]],
        [*state, "--select", "state:modified+", *EXCLUDE, "--full-refresh"],
    ]


def save_manifest(manifest: Path, state_dir: Path) -> None:
    """Replace the saved manifest in one rename, so a crash leaves the old one or the new one, never half."""
    state_dir.mkdir(parents=True, exist_ok=True)
    partial = state_dir / "manifest.json.partial"
    shutil.copyfile(manifest, partial)
    os.replace(partial, state_dir / "manifest.json")


class Unchanged:
    """What a long-running caller (the service) knows after a successful build: the project's files and the
    vars it built with, and the manifest it saved. While all of them stay as they were, the state comparison
    has nothing to find (the saved manifest is this very project's), so the build skips its `dbt ls`: seconds
    of parsing on each of the frequent builds new rows trigger."""

    def __init__(self) -> None:
        self._known: tuple[object, ...] | None = None

    @staticmethod
    def inputs(dbt: Dbt, variables: Mapping[str, object]) -> tuple[object, ...] | None:
        """(path, mtime, size) of every file of the project but dbt's own output, and the vars; None when a
        file went away while looking (then it counts as changed)."""
        own = {dbt.target_dir.resolve(), dbt.log_dir.resolve()}
        files = []
        try:
            for root, dirs, names in os.walk(dbt.project):
                dirs[:] = [name for name in dirs if (Path(root) / name).resolve() not in own]
                for name in names:
                    stat = (Path(root) / name).stat()
                    files.append((os.path.join(root, name), stat.st_mtime_ns, stat.st_size))
        except OSError:
            return None
        return (tuple(sorted(files)), json.dumps(dict(variables), sort_keys=True))

    @staticmethod
    def _manifest(state_dir: Path) -> tuple[int, int, int] | None:
        try:
            stat = (state_dir / "manifest.json").stat()
        except OSError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def holds(self, inputs: tuple[object, ...] | None, state_dir: Path) -> bool:
        return inputs is not None and self._known == (inputs, self._manifest(state_dir))

    def remember(self, inputs: tuple[object, ...] | None, state_dir: Path) -> None:
        """After a build of `inputs` (taken before dbt parsed them: an edit during the build shows as a
        change) saved its manifest."""
        self._known = None if inputs is None else (inputs, self._manifest(state_dir))


def build_locked(
    dbt: Dbt,
    state_dir: Path,
    variables: Mapping[str, object],
    select: Sequence[str] = (),
    *,
    announce: Callable[[Sequence[str]], None] = print_rule_change,
    unchanged: Unchanged | None = None,
) -> BuildResult:
    """The build, for a caller that holds the dbt lock. `announce` hears the stale models before they are
    rebuilt; `unchanged` lets a caller that builds often skip the comparison while nothing changed."""
    began = time.monotonic()
    state_dir = state_dir.resolve()  # dbt runs in the project directory
    with_vars = ("--vars", json.dumps(dict(variables)))
    printed: list[str] = []
    stale: list[str] = []

    def ended(ok: bool, returncode: int | None, state_error: str | None = None) -> BuildResult:
        return BuildResult(ok, returncode, tuple(stale), "".join(printed), time.monotonic() - began, state_error)

    unchanged = unchanged or Unchanged()  # a new one knows nothing: the comparison runs
    inputs = unchanged.inputs(dbt, variables)  # before dbt parses them
    if (state_dir / "manifest.json").is_file() and not unchanged.holds(inputs, state_dir):
        listed = dbt(
            "ls",
            *("--quiet", "--resource-type", "model", "--output", "name"),
            *("--state", str(state_dir), *with_vars, "--select", STALE),
            capture=True,
        )
        printed.append(listed.output)
        if listed.returncode != 0:
            if not dbt.capture:  # the caller shows dbt's own output: this failure's too
                sys.stdout.write(listed.output)
            return ended(False, listed.returncode)
        stale.extend(line.strip() for line in listed.output.splitlines() if MODEL_NAME.fullmatch(line.strip()))
    if stale:
        announce(stale)
    for step in steps(stale, select, state_dir):
        if dbt.stop is not None and dbt.stop.is_set():
            return ended(False, None)
        call = dbt("build", *with_vars, *step)
        printed.append(call.output)
        if call.returncode != 0:
            return ended(False, call.returncode)
    try:
        save_manifest(dbt.target_dir / "manifest.json", state_dir)
    except OSError as error:
        unchanged.remember(None, state_dir)
        return ended(True, 0, f"could not save the manifest to {state_dir}: {error}")
    unchanged.remember(inputs, state_dir)
    return ended(True, 0)


def build(
    dbt: Dbt,
    state_dir: Path,
    variables: Mapping[str, object],
    select: Sequence[str] = (),
    *,
    announce: Callable[[Sequence[str]], None] = print_rule_change,
) -> BuildResult | None:
    """The build under the dbt lock, waiting while another invocation holds it; None when `dbt.stop` was set
    while waiting."""
    with dbt_lock(dbt.settings, dbt.stop) as held:
        if not held:
            return None
        return build_locked(dbt, state_dir, variables, select, announce=announce)
