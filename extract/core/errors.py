"""What a person sees when a command fails: one line with the next step, and the exit code.

Exit 2: the configuration is wrong (a setting, sources.yml, or what the server says of them: no such database
or role, password refused, permission denied); no retry helps. Exit 1: anything else that failed."""

from __future__ import annotations

import psycopg
from kafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError

from extract.core import db
from extract.core.settings import Settings, SettingsError
from extract.core.sources_config import SourcesConfigError

EXIT_CONFIG = 2


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _database_error(error: psycopg.Error, settings: Settings | None) -> str:
    """One line for a driver error: never SQLAlchemy's dump with [SQL: ...] and a link."""
    text = _one_line(str(error)).removeprefix("connection failed: ")
    if isinstance(
        error, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction | psycopg.errors.InvalidSchemaName
    ):
        database = f" in database {settings.pg_database!r}" if settings else ""
        if "marts." in text or 'schema "marts"' in text:
            return f"the marts are not built yet{database}: run `make build` first"
        if "raw." in text or 'schema "raw"' in text:
            return f"nothing has landed yet{database}: run `make demo` or `python -m extract run --until-end` first"
    if settings and isinstance(error, psycopg.OperationalError) and "connection to server" in text:
        reason = text.rpartition("failed: ")[2].partition(" Is the server")[0]
        return (
            f"cannot connect to PostgreSQL at {settings.pg_host}:{settings.pg_port} ({reason});"
            " is it running (`make up`)? check PGHOST/PGPORT"
        )
    return f"database error: {text}"


def describe_error(error: BaseException, settings: Settings | None) -> tuple[str, int]:
    """(the one line for stderr, the exit code) of an expected error."""
    if isinstance(error, DBAPIError) and isinstance(error.orig, psycopg.Error):
        error = error.orig
    refused = db.refusal(error, settings) if settings and isinstance(error, psycopg.Error) else None
    if refused is not None:
        error = refused
    if isinstance(error, SettingsError | SourcesConfigError | db.DatabaseRefused):
        return _one_line(str(error)), EXIT_CONFIG
    if isinstance(error, psycopg.Error):
        return _database_error(error, settings), 1
    if isinstance(error, KafkaError) and settings:
        return f"Kafka at {settings.kafka_bootstrap_servers}: {_one_line(str(error)) or type(error).__name__}", 1
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.strerror}: {error.filename}", 1
    return _one_line(str(error)) or type(error).__name__, 1
