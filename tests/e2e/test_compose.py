"""The compose stack, proven without a Docker engine.

The image is rebuilt from the Dockerfile as a directory: exactly what its COPY lines copy (minus what
.dockerignore drops) lands under <tmp>/image/<WORKDIR>, and its `pip install .` runs into a fresh venv with
the Dockerfile's ENV. Then every service of docker-compose.yml runs its own command with the environment
compose gives it (the YAML parsed, ${VAR:-default} resolved against a test .env), in dependency order,
waiting for each `depends_on` condition the way compose does (healthchecks are run). What differs from a
container, and why:
  - postgres and kafka (other images) are stood in for by the local PostgreSQL and a Tansu broker, which
    the .env points PGHOST/KAFKA_BOOTSTRAP_SERVERS at, as it would at a managed server;
  - a container path (/app, /data, ...) is <tmp>/image/<path>; volumes are symlinks there;
  - containers have their own network namespace: each service's container port gets a free host port;
  - prometheus is not run here: tests/operations/test_prometheus.py runs the real one on the same config.
The answer printed by the `answer` service must equal the reference computed from the files."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

from extract.core.db import table_identifier
from extract.core.settings import Settings
from extract.core.sources_config import load_sources
from extract.local import embedded
from tests.conftest import ROOT
from tests.support import reference

USERS, JOBS, SEED = 400, 4000, 7
STAND_INS = {"postgres": "the local PostgreSQL", "kafka": "a Tansu broker"}
NOT_RUN = {"prometheus": "tests/operations/test_prometheus.py runs the real Prometheus on its config"}
OUR_IMAGE_BUILD = "."


# -- the compose file ----------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's substitution: ${VAR}, ${VAR:-default} / ${VAR-default}, ${VAR:?error} / ${VAR?error}, $$."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.groups()
        value = env.get(name)
        missing = value is None or (operator is not None and operator.startswith(":") and value == "")
        if operator and operator.endswith("?") and missing:
            raise AssertionError(f"compose would stop: {name}: {argument}")
        if operator and operator.endswith("-") and missing:
            return argument
        return value or ""

    return _VARIABLE.sub(replace, text)


def resolve(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolve(item, env) for item in node]
    if isinstance(node, dict):
        return {key: resolve(value, env) for key, value in node.items()}
    return node


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    value = service.get("depends_on") or {}
    if isinstance(value, list):
        return dict.fromkeys(value, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in value.items()}


def dependency_order(services: Mapping[str, Any], names: list[str]) -> list[str]:
    ordered: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"depends_on cycle: {' -> '.join((*path, name))}"
        if name in ordered:
            return
        for dependency in depends_on(services[name]):
            visit(dependency, (*path, name))
        ordered.append(name)

    for name in names:
        visit(name, ())
    return ordered


# -- the Dockerfile -------------------------------------------------------------------------------------------


@dataclass
class Image:
    base: str = ""
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    copies: list[tuple[list[str], str]] = field(default_factory=list)  # (sources, destination)
    runs: list[str] = field(default_factory=list)


def parse_dockerfile(text: str) -> Image:
    image, current = Image(), ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        instruction, _, rest = (current + line).partition(" ")
        current = ""
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "FROM":
            image.base = rest
        elif instruction == "ENV":
            image.env.update(token.split("=", 1) for token in shlex.split(rest))  # type: ignore[arg-type]
        elif instruction == "WORKDIR":
            image.workdir = rest
        elif instruction == "COPY":
            tokens = [token for token in shlex.split(rest) if not token.startswith("--")]
            image.copies.append((tokens[:-1], tokens[-1]))
        elif instruction == "RUN":
            image.runs.append(rest)
    return image


def dockerignore_patterns() -> list[str]:
    path = ROOT / ".dockerignore"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
    return False


def copy_into_image(image: Image, root: Path) -> list[str]:
    """Docker's COPY: a file into the destination (a directory when it ends in /), a directory's contents
    into the destination directory; .dockerignore'd paths are not in the build context at all."""
    patterns, copied = dockerignore_patterns(), []
    for sources, destination in image.copies:
        target = root / (destination if destination.startswith("/") else f"{image.workdir}/{destination}").lstrip("/")
        for source in sources:
            assert not ignored(source, patterns), f"COPY {source}: .dockerignore keeps it out of the build context"
            origin = ROOT / source
            assert origin.exists(), f"COPY {source}: no such file in the build context"
            files = [origin] if origin.is_file() else sorted(p for p in origin.rglob("*") if p.is_file())
            for path in files:
                relative = path.relative_to(ROOT).as_posix()
                if ignored(relative, patterns):
                    continue
                if origin.is_file():
                    into = target / path.name if destination.endswith("/") or target.is_dir() else target
                else:
                    into = target / path.relative_to(origin)
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, into)
                copied.append(relative)
    return copied


# -- running the services ------------------------------------------------------------------------------------


@dataclass
class Stack:
    image_root: Path
    venv: Path
    image: Image
    services: dict[str, Any]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)  # service -> started | healthy | completed
    ports: dict[str, dict[str, str]] = field(default_factory=dict)  # service -> container port -> host port

    def container_path(self, value: str) -> str:
        return str(self.image_root) + value if value.startswith("/") else value

    def port(self, name: str, value: str) -> str:
        for container, host in self.ports.get(name, {}).items():
            value = value.replace(f":{container}/", f":{host}/")
            if value == container:
                value = host
        return value

    def translate(self, name: str, value: str) -> str:
        return self.port(name, self.container_path(value))

    def environment(self, name: str) -> dict[str, str]:
        env = {
            "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": self.container_path(self.image.workdir),
            "LANG": "C.UTF-8",
        }
        env.update({key: self.translate(name, value) for key, value in self.image.env.items()})
        declared = self.services[name].get("environment") or {}
        env.update({key: self.translate(name, "" if value is None else str(value)) for key, value in declared.items()})
        return env

    def argv(self, name: str, command: list[str] | str) -> list[str]:
        words = shlex.split(command) if isinstance(command, str) else command
        return [self.translate(name, str(word)) for word in words]

    def check_dependencies(self, name: str) -> None:
        wanted = {"service_started": {"started", "healthy"}, "service_healthy": {"healthy"}}
        for dependency, condition in depends_on(self.services[name]).items():
            have = self.state.get(dependency)
            ok = have == "completed" if condition == "service_completed_successfully" else have in wanted[condition]
            assert ok, f"{name} needs {dependency} {condition}, but it is {have or 'not started'}"

    def run_once(self, name: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.check_dependencies(name)
        service = self.services[name]
        result = subprocess.run(
            self.argv(name, service["command"]),
            env=self.environment(name),
            cwd=self.container_path(self.image.workdir),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"{name} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            self.state[name] = "completed"
        return result

    def start(self, name: str) -> None:
        self.check_dependencies(name)
        service = self.services[name]
        for mapping in service.get("ports") or []:
            container = str(mapping).rsplit(":", 1)[1]
            self.ports.setdefault(name, {})[container] = str(embedded.free_port())
        log = (self.logs / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            self.argv(name, service["command"]),
            env=self.environment(name),
            cwd=self.container_path(self.image.workdir),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.state[name] = "started"
        if "healthcheck" in service:
            self.wait_healthy(name)

    def wait_healthy(self, name: str) -> None:
        check = self.services[name]["healthcheck"]
        test = check["test"]
        argv = ["sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:] if test[0] == "CMD" else ["sh", "-c", test]
        seconds = lambda text: float(str(text).rstrip("s"))  # noqa: E731 - "15s" -> 15.0
        deadline = (
            time.monotonic()
            + seconds(check.get("start_period", "0s"))
            + seconds(check.get("interval", "30s")) * int(check.get("retries", 3))
        )
        while time.monotonic() < deadline:
            process = self.processes[name]
            assert process.poll() is None, f"{name} exited ({process.returncode}):\n{self.log_tail(name)}"
            probe = subprocess.run(
                self.argv(name, argv),
                env=self.environment(name),
                cwd=self.container_path(self.image.workdir),
                capture_output=True,
                timeout=seconds(check.get("timeout", "30s")),
                check=False,
            )
            if probe.returncode == 0:
                self.state[name] = "healthy"
                return
            time.sleep(1)
        raise AssertionError(f"{name} never turned healthy:\n{self.log_tail(name)}")

    def stop(self, name: str) -> int:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)  # what `docker compose stop` sends
        grace = float(str(self.services[name].get("stop_grace_period", "10s")).rstrip("s"))
        try:
            return process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"{name} ignored SIGTERM for {grace:.0f}s:\n{self.log_tail(name)}") from None

    def up(self, names: list[str]) -> None:
        for name in dependency_order(self.services, names):
            service = self.services[name]
            if name in STAND_INS:
                self.state[name] = "healthy"
                say(f"{name}: stood in by {STAND_INS[name]}")
            elif name in NOT_RUN:
                say(f"{name}: not run here ({NOT_RUN[name]})")
            elif service.get("restart", "no") == "no":
                result = self.run_once(name)
                say(f"{name}: {' '.join(map(str, service['command']))} -> exit 0: {result.stdout.strip()}")
            else:
                self.start(name)
                ports = self.ports.get(name, {})
                say(f"{name}: {' '.join(map(str, service['command']))} -> {self.state[name]} (ports {ports})")

    def wait_for_answer(self, correct: Callable[[str], bool], seconds: float) -> str:
        """Run the `answer` one-shot until it prints the right table, while every service keeps running."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                assert process.poll() is None, f"{name} exited ({process.returncode}):\n{self.log_tail(name)}"
            result = self.run_once("answer", check=False)
            if result.returncode == 0 and correct(result.stdout):
                self.state["answer"] = "completed"
                return result.stdout
            time.sleep(3)
        raise AssertionError(f"no right answer within {seconds:.0f}s:\n{self.log_tail('scheduler')}")

    def log_tail(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]


def say(text: str) -> None:
    print(f"[compose] {text}", flush=True)


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    image = parse_dockerfile((ROOT / "Dockerfile").read_text())
    image_root = tmp_path / "image"
    copied = copy_into_image(image, image_root)
    say(f"image {image.base}: COPY put {len(copied)} files under {image.workdir}")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip_installs = [step.strip() for run in image.runs for step in run.split("&&") if step.strip().startswith("pip ")]
    assert pip_installs == ["pip install ."], image.runs
    # The Dockerfile's ENV, except that here pip may use the local cache; the machine's pip settings stay.
    pip_env = {k: v for k, v in os.environ.items() if k.startswith("PIP_") or k in ("PATH", "HOME")}
    pip_env.update({k: v for k, v in image.env.items() if k != "PIP_NO_CACHE_DIR"})
    began = time.monotonic()
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "."],
        cwd=image_root / image.workdir.lstrip("/"),
        env=pip_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    say(f"pip install . into a fresh venv: {time.monotonic() - began:.0f}s")

    # The compose project directory: ./data holds the files (as `make generate` writes them), ./docker is ours.
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "docker").symlink_to(ROOT / "docker")
    dotenv = {
        "PGHOST": settings.pg_host,
        "PGPORT": str(settings.pg_port),
        "PGUSER": settings.pg_user,
        "PGPASSWORD": settings.pg_password or "administrator-secret",
        "PGDATABASE": settings.pg_database,
        "ELT_LOADER_PASSWORD": "loader-secret",
        "ELT_TRANSFORMER_PASSWORD": "transformer-secret",
        "ELT_ANALYST_PASSWORD": "analyst-secret",
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC": settings.kafka_topic,
        "KAFKA_PAYMENTS_TOPIC": f"{settings.kafka_topic}_payments",
        "KAFKA_GROUP_ID": settings.kafka_group_id,
        "DBT_BUILD_INTERVAL_S": "5",
    }
    compose = resolve(yaml.safe_load((ROOT / "docker-compose.yml").read_text()), dotenv)
    services = dict(compose["services"])
    for service in services.values():
        for volume in service.get("volumes") or []:
            host, container = str(volume).split(":")[:2]
            if host.startswith("."):
                link = image_root / container.lstrip("/")
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    link.symlink_to((project / host).resolve())
    logs = tmp_path / "logs"
    logs.mkdir()
    running = Stack(image_root, venv, image, services, logs)
    try:
        yield running
    finally:
        for name in list(running.processes):
            with_error = running.processes[name]
            with_error.kill()
            with_error.wait()


def our_services(services: Mapping[str, Any]) -> list[str]:
    return [name for name, service in services.items() if service.get("build") in (OUR_IMAGE_BUILD, {"context": "."})]


def answer_rows(output: str) -> list[tuple[str, Decimal]]:
    rows = []
    for line in output.splitlines()[3:]:
        cells = [cell.strip() for cell in line.split("|")]
        rows.append((cells[1], Decimal(cells[3])))
    return rows


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))  # type: ignore[misc]


def referenced_variables(node: Any) -> set[str]:
    if isinstance(node, str):
        return set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", node))
    values = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    return set().union(*(referenced_variables(value) for value in values))


def test_images_are_pinned_and_every_service_gets_what_sources_yml_reads() -> None:
    compose = resolve(yaml.safe_load((ROOT / "docker-compose.yml").read_text()), env_example())
    services, image = compose["services"], parse_dockerfile((ROOT / "Dockerfile").read_text())
    ours = our_services(services)
    assert set(services) == set(ours) | set(STAND_INS) | set(NOT_RUN), "a service nobody runs here"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, service in services.items():
        tag = service["image"].rpartition(":")[2]
        assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?", tag), f"{name}: {service['image']} is not pinned"
        if name in ours:
            assert service["image"] == f"jobs-elt:{version}"
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+", image.base), image.base
    assert (["sources.yml"], "./") in image.copies and image.env["ELT_SOURCES_FILE"] == "/app/sources.yml"

    # The builds' state (the manifest a rule change is measured against) outlives the container and the image.
    for name in ("scheduler", "dbt"):
        assert f"dbt-state:{image.env['ELT_STATE_DIR']}" in services[name]["volumes"], name

    wanted = referenced_variables(yaml.safe_load((ROOT / "sources.yml").read_text()))
    assert {"KAFKA_TOPIC", "KAFKA_PAYMENTS_TOPIC", "USERS_FILE"} <= wanted
    for name in ours:
        missing = wanted - set(services[name].get("environment") or {}) - set(image.env)
        assert not missing, f"{name} does not get {sorted(missing)} (sources.yml reads them)"


@pytest.mark.slow
def test_every_compose_service_runs_from_the_image_and_the_answer_comes_out(
    stack: Stack, pg: psycopg.Connection
) -> None:
    running = stack
    services = running.services
    ours = our_services(services)
    assert set(services) == set(ours) | set(STAND_INS) | set(NOT_RUN), "a service nobody runs here"

    # What the operator does first: the files in ./data (make generate), with the image's own CLI.
    data = running.image_root / "data"
    generated = subprocess.run(
        [str(running.venv / "bin" / "python"), "-m", "extract", "generate", "--users", str(USERS), "--jobs",
         str(JOBS), "--seed", str(SEED), "--out", str(data)],
        capture_output=True, text=True, check=True, cwd=running.image_root / "app",
        env=running.environment("files-loader"),
    )  # fmt: skip
    say(generated.stdout.strip())

    # `docker compose up`: every service without a profile, dependencies first.
    running.up([name for name, service in services.items() if not service.get("profiles")])

    # The one-shots an operator runs next, in dependency order: the producers.
    oneshots = [name for name, service in services.items() if service.get("profiles")]
    ordered = [name for name in dependency_order(services, oneshots) if name in oneshots]
    producers = [name for name in ordered if "produce" in services[name]["command"]]
    config = load_sources(running.image_root / "app" / "sources.yml", running.environment("producer"))
    produced = {services[name]["command"][services[name]["command"].index("--source") + 1] for name in producers}
    assert produced == {source.name for source in config.kafka_sources()}, "a topic without its producer"
    for name in producers:
        say(f"{name}: {running.run_once(name).stdout.strip()}")

    # The scheduled build makes the marts; the analyst reads the answer.
    expected = reference.top_revenue(
        reference.load_jobs(data / "jobs.kafka"), reference.load_users(data / "users.ndjson")
    )
    assert len(expected) == 5

    output = running.wait_for_answer(lambda text: answer_rows(text) == expected, 300)
    say("answer (after the scheduler's build):\n" + output)

    # Every source of sources.yml landed: files by files-loader, topics by the extractor.
    for source in config.sources:
        count = pg.execute(sql.SQL("select count(*) from {}").format(table_identifier(source.raw_table))).fetchone()[0]
        assert count > 0, f"{source.name}: nothing in {source.raw_table}"
        say(f"{source.raw_table}: {count} rows")

    # `docker compose stop`: every service ends cleanly on SIGTERM within its grace period.
    for name in reversed(list(running.processes)):
        assert running.stop(name) == 0, running.log_tail(name)
        say(f"{name}: stopped cleanly")

    # The other one-shots, as in `docker compose run --rm <name>` (dbt: the on-demand build), then the answer again.
    for name in ordered:
        if name not in running.state:
            result = running.run_once(name)
            say(f"{name}: {(result.stdout.strip().splitlines() or ['(no output)'])[-1]}")
    assert answer_rows(running.run_once("answer").stdout) == expected
    assert not set(services) - set(running.state) - set(NOT_RUN), "a service that never ran"
