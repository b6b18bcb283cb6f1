"""The one settings object: every knob comes from the environment (libpq and Kafka names)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from extract.core.sources_config import SourcesConfig, load_sources

STATE_FILE_NAME = "services.env"


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
    sources_file: Path | None = None
    # Where `python -m extract retention` writes raw partitions past retention (one gzip file each, manifest.json).
    archive_dir: Path = Path(".state/archive")

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

        return cls(
            pg_host=text("PGHOST", cls.pg_host),
            pg_port=int(text("PGPORT", str(cls.pg_port))),
            pg_user=text("PGUSER", cls.pg_user),
            pg_password=text("PGPASSWORD", cls.pg_password),
            pg_database=text("PGDATABASE", cls.pg_database),
            kafka_bootstrap_servers=text("KAFKA_BOOTSTRAP_SERVERS", cls.kafka_bootstrap_servers),
            kafka_topic=text("KAFKA_TOPIC", cls.kafka_topic),
            kafka_group_id=text("KAFKA_GROUP_ID", cls.kafka_group_id),
            kafka_topic_partitions=int(text("KAFKA_TOPIC_PARTITIONS", str(cls.kafka_topic_partitions))),
            kafka_security_protocol=text("KAFKA_SECURITY_PROTOCOL", cls.kafka_security_protocol),
            kafka_sasl_mechanism=optional("KAFKA_SASL_MECHANISM"),
            kafka_sasl_username=optional("KAFKA_SASL_USERNAME"),
            kafka_sasl_password=optional("KAFKA_SASL_PASSWORD"),
            kafka_ssl_cafile=optional("KAFKA_SSL_CAFILE"),
            max_poll_records=int(text("EXTRACT_MAX_POLL_RECORDS", str(cls.max_poll_records))),
            poll_timeout_ms=int(text("EXTRACT_POLL_TIMEOUT_MS", str(cls.poll_timeout_ms))),
            db_retry_budget_s=float(text("EXTRACT_DB_RETRY_BUDGET_S", str(cls.db_retry_budget_s))),
            sources_file=Path(source["ELT_SOURCES_FILE"]) if source.get("ELT_SOURCES_FILE") else None,
            archive_dir=Path(text("ELT_ARCHIVE_DIR", str(state_dir() / "archive"))),
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
