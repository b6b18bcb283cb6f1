"""The one settings object: every knob comes from the environment (libpq and Kafka names)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from extract.core.sources_config import SourcesConfig, load_sources

STATE_FILE_NAME = "services.env"

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# The mechanisms kafka-python drives with a user name and password alone (GSSAPI and OAUTHBEARER need more).
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class SettingsError(ValueError):
    """A setting is unusable; the message names the variable and what it allows, in one line."""


def env_int(source: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    """A whole number in [minimum, maximum], or SettingsError naming the variable."""
    raw = source.get(name) or ""
    if not raw.strip():
        return default
    allowed = f"a whole number from {minimum}" + (f" to {maximum}" if maximum is not None else " up")
    try:
        value = int(raw.strip(), 10)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not {allowed}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise SettingsError(f"{name}={raw!r} is out of range: {allowed}")
    return value


def env_float(source: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    """A finite number >= minimum (no nan, no inf), or SettingsError naming the variable."""
    raw = source.get(name) or ""
    if not raw.strip():
        return default
    allowed = f"a finite number of seconds >= {minimum:g}"
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not {allowed}") from None
    if not math.isfinite(value) or value < minimum:
        raise SettingsError(f"{name}={raw!r} is out of range: {allowed}")
    return value


def _bootstrap_servers(raw: str) -> str:
    """host:port[,host:port...] with real port numbers, so a typo fails here and not as a hang."""
    servers = [server.strip() for server in raw.split(",")]
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise SettingsError(
                f"KAFKA_BOOTSTRAP_SERVERS={raw!r}: {server!r} is not host:port (port 1-65535);"
                " use host:port[,host:port]"
            )
    return ",".join(servers)


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    """Case-insensitive: `sasl_ssl` means SASL_SSL (kafka-python would treat it as PLAINTEXT)."""
    value = raw.strip().upper()
    if value not in choices:
        raise SettingsError(f"{name}={raw!r} is not one of {', '.join(choices)}")
    return value


def state_dir() -> Path:
    return Path(os.environ.get("ELT_STATE_DIR", ".state")).resolve()


def read_state_env(path: Path | None = None) -> dict[str, str]:
    """Variables `make up` remembered (ports of the services it started); the environment still wins."""
    path = path or state_dir() / STATE_FILE_NAME
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.removeprefix("export ").partition("=")
        if sep and not line.startswith("#"):
            values[name.strip()] = value.strip()
    return values


@dataclass(frozen=True)
class Settings:
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "postgres"
    pg_password: str = field(default="", repr=False)
    pg_database: str = "jobs_elt"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic: str = "jobs"
    kafka_group_id: str = "jobs-elt"
    kafka_topic_partitions: int = 3
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = field(default=None, repr=False)
    kafka_ssl_cafile: str | None = None
    max_poll_records: int = 50_000
    poll_timeout_ms: int = 1_000
    db_retry_budget_s: float = 120.0
    # How long an `--until-end` member with nothing of its own left to land waits for the group to land the
    # rest (extract/landing/group_drain.py) while no stored offset moves: five session timeouts (6 s each),
    # room for a dead member's session to expire, the rebalance and the new owner's first batch.
    group_stall_s: float = 30.0
    kafka_connect_timeout_s: float = 2.0
    sources_file: Path | None = None
    # Where `python -m extract retention` writes raw partitions past retention (one gzip file each, manifest.json).
    archive_dir: Path = Path(".state/archive")
    # The manifest of the last successful build (extract/operations/dbt_build.py): what dbt's state
    # comparison measures a rule change against.
    dbt_state_dir: Path = Path(".state/dbt-last-success")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, use_state: bool = True) -> Settings:
        """The environment, over what `make up` remembered, over the defaults. One exception: when `up` found
        no server at the configured PGHOST:PGPORT and started an embedded one, that one is the database."""
        state = read_state_env() if use_state else {}
        source = {**state, **(os.environ if env is None else env)}
        if state.get("EMBEDDED_PGPORT"):
            source.update({name: state[name] for name in ("PGHOST", "PGPORT", "PGUSER") if name in state})
            source.pop("PGPASSWORD", None)

        def text(name: str, default: str) -> str:
            return source.get(name) or default

        def optional(name: str) -> str | None:
            return source.get(name) or None

        settings = cls(
            pg_host=text("PGHOST", cls.pg_host),
            pg_port=env_int(source, "PGPORT", cls.pg_port, minimum=1, maximum=65535),
            pg_user=text("PGUSER", cls.pg_user),
            pg_password=text("PGPASSWORD", cls.pg_password),
            pg_database=text("PGDATABASE", cls.pg_database),
            kafka_bootstrap_servers=_bootstrap_servers(text("KAFKA_BOOTSTRAP_SERVERS", cls.kafka_bootstrap_servers)),
            kafka_topic=text("KAFKA_TOPIC", cls.kafka_topic),
            kafka_group_id=text("KAFKA_GROUP_ID", cls.kafka_group_id),
            kafka_topic_partitions=env_int(source, "KAFKA_TOPIC_PARTITIONS", cls.kafka_topic_partitions, minimum=1),
            kafka_security_protocol=_choice(
                "KAFKA_SECURITY_PROTOCOL", text("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"), SECURITY_PROTOCOLS
            ),
            kafka_sasl_mechanism=(
                _choice("KAFKA_SASL_MECHANISM", mechanism, SASL_MECHANISMS)
                if (mechanism := optional("KAFKA_SASL_MECHANISM"))
                else None
            ),
            kafka_sasl_username=optional("KAFKA_SASL_USERNAME"),
            kafka_sasl_password=optional("KAFKA_SASL_PASSWORD"),
            kafka_ssl_cafile=optional("KAFKA_SSL_CAFILE"),
            max_poll_records=env_int(source, "EXTRACT_MAX_POLL_RECORDS", cls.max_poll_records, minimum=1),
            poll_timeout_ms=env_int(source, "EXTRACT_POLL_TIMEOUT_MS", cls.poll_timeout_ms, minimum=1),
            db_retry_budget_s=env_float(source, "EXTRACT_DB_RETRY_BUDGET_S", cls.db_retry_budget_s),
            group_stall_s=env_float(source, "EXTRACT_GROUP_STALL_S", cls.group_stall_s, minimum=1.0),
            kafka_connect_timeout_s=env_float(
                source, "KAFKA_CONNECT_TIMEOUT_S", cls.kafka_connect_timeout_s, minimum=0.1
            ),
            sources_file=Path(source["ELT_SOURCES_FILE"]) if source.get("ELT_SOURCES_FILE") else None,
            archive_dir=Path(text("ELT_ARCHIVE_DIR", str(state_dir() / "archive"))),
            dbt_state_dir=Path(text("DBT_STATE", str(state_dir() / "dbt-last-success"))),
        )
        settings.check_kafka_security()
        return settings

    def check_kafka_security(self) -> None:
        """SASL needs a mechanism and both credentials; credentials without SASL would be silently unused."""
        sasl = self.kafka_security_protocol.startswith("SASL_")
        given = {
            "KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "KAFKA_SASL_PASSWORD": self.kafka_sasl_password,
        }
        if sasl:
            missing = [name for name, value in given.items() if not value]
            if missing:
                raise SettingsError(
                    f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs {', '.join(missing)}"
                    f" (mechanism one of {', '.join(SASL_MECHANISMS)})"
                )
        elif any(given.values()):
            names = ", ".join(name for name, value in given.items() if value)
            raise SettingsError(
                f"{names} set but KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} does not use SASL;"
                " use SASL_SSL or SASL_PLAINTEXT, or unset them"
            )

    def sources(self) -> SourcesConfig:
        """The declarative sources file, with ${VAR} references resolved against these settings first."""
        env = {
            **read_state_env(),
            **os.environ,
            "KAFKA_TOPIC": self.kafka_topic,
            "KAFKA_TOPIC_PARTITIONS": str(self.kafka_topic_partitions),
        }
        return load_sources(self.sources_file, env)

    def kafka_client_config(self) -> dict[str, object]:
        """Connection and security settings shared by every kafka-python client."""
        config: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap_servers.split(","),
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            config["sasl_mechanism"] = self.kafka_sasl_mechanism
            config["sasl_plain_username"] = self.kafka_sasl_username
            config["sasl_plain_password"] = self.kafka_sasl_password
        if self.kafka_ssl_cafile:
            config["ssl_cafile"] = self.kafka_ssl_cafile
        return config

    def dbt_env(self) -> dict[str, str]:
        """The libpq variables dbt's profiles.yml reads, so dbt sees what Python sees."""
        return {
            "PGHOST": self.pg_host,
            "PGPORT": str(self.pg_port),
            "PGUSER": self.pg_user,
            "PGPASSWORD": self.pg_password,
            "PGDATABASE": self.pg_database,
        }
