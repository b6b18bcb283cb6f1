"""Postgres connections (SQLAlchemy engine over psycopg 3) and the raw schema."""

from __future__ import annotations

import logging
import re
from importlib import resources

import psycopg
from psycopg import sql
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL

from extract.core.settings import Settings
from extract.core.sources_config import SourcesConfig

log = logging.getLogger(__name__)


class DatabaseRefused(RuntimeError):
    """The server answered and said no in a way no retry can heal (no such database or role, password
    refused, permission denied); the message says so in one line, with what to change."""


# Connection-time refusals carry no SQLSTATE in libpq, only the server's FATAL text.
_CONNECT_REFUSALS = (
    (re.compile(r'database "(?P<name>[^"]*)" does not exist'), "no_database"),
    (re.compile(r'role "(?P<name>[^"]*)" does not exist'), "no_role"),
    (re.compile(r"password authentication failed|no password supplied|authentication failed"), "password"),
    (re.compile(r"no pg_hba\.conf entry"), "hba"),
    (re.compile(r"permission denied"), "permission"),
)
_SQLSTATE_REFUSALS = {"3D000": "no_database", "28000": "hba", "28P01": "password", "42501": "permission"}


def refusal(error: BaseException, settings: Settings) -> DatabaseRefused | None:
    """The one-line DatabaseRefused for `error` (psycopg's or SQLAlchemy's wrapper), or None when the error
    may heal (connection lost, server down or restarting, deadlock, serialization failure)."""
    error = getattr(error, "orig", None) or error
    if not isinstance(error, psycopg.Error):
        return None
    text = " ".join(str(error).split())
    kind = _SQLSTATE_REFUSALS.get(error.sqlstate or "")
    if kind is None:
        kind = next((kind for pattern, kind in _CONNECT_REFUSALS if pattern.search(text)), None)
    if kind is None:
        return None
    server = f"{settings.pg_host}:{settings.pg_port}"
    messages = {
        "no_database": f"database {settings.pg_database!r} does not exist on {server}; create it"
        " (`make up` does for the embedded default) or set PGDATABASE",
        "no_role": f"login refused at {server}: role {settings.pg_user!r} does not exist; set PGUSER",
        "password": f"login refused at {server} for user {settings.pg_user!r}: wrong or missing password;"
        " check PGPASSWORD",
        "hba": f"login refused at {server} for user {settings.pg_user!r}: the server's pg_hba.conf does not"
        " allow this connection",
        "permission": f"permission denied for user {settings.pg_user!r} on {server}"
        f" (database {settings.pg_database!r}): {_server_message(text)}; grant it or use a role that has it"
        " (`python -m extract roles`)",
    }
    return DatabaseRefused(messages[kind])


def _server_message(text: str) -> str:
    """The server's own sentence without libpq's 'connection failed: ... FATAL:' preamble."""
    return text.rpartition("FATAL:")[2].strip() or text


def database_url(settings: Settings, database: str | None = None) -> URL:
    return URL.create(
        "postgresql+psycopg",
        username=settings.pg_user,
        password=settings.pg_password or None,
        host=settings.pg_host,
        port=settings.pg_port,
        database=database or settings.pg_database,
    )


def make_engine(settings: Settings, database: str | None = None) -> Engine:
    return create_engine(
        database_url(settings, database),
        pool_pre_ping=True,
        connect_args={"connect_timeout": 10, "application_name": "jobs-elt"},
    )


def connect(settings: Settings, database: str | None = None, *, autocommit: bool = False) -> psycopg.Connection:
    """A plain driver connection, for COPY and for work that spans one explicit transaction."""
    return psycopg.connect(
        host=settings.pg_host,
        port=settings.pg_port,
        user=settings.pg_user,
        password=settings.pg_password or None,
        dbname=database or settings.pg_database,
        connect_timeout=10,
        application_name="jobs-elt",
        autocommit=autocommit,
    )


def sql_file(name: str) -> str:
    """A DDL file of extract/sql/, the one folder of SQL the Python side runs."""
    return resources.files("extract").joinpath("sql", name).read_text()


def table_identifier(qualified_name: str) -> sql.Identifier:
    schema, _, table = qualified_name.rpartition(".")
    return sql.Identifier(schema, table)


# What a ::jsonb cast raises for text that is not JSON to Postgres: malformed or \\u0000 (DataError), a number
# beyond numeric's range (DataError), nesting deeper than the server's stack allows (StatementTooComplex,
# ProgramLimitExceeded).
JSONB_REFUSED = (psycopg.DataError, psycopg.errors.StatementTooComplex, psycopg.errors.ProgramLimitExceeded)


def jsonb_takes_any(cur: psycopg.Cursor, texts: list[str]) -> bool:
    """Whether jsonb accepts any of `texts` (the server's verdict on what Python's parser refused)."""
    cur.execute("select exists (select from unnest(%s::text[]) as t (v) where raw.try_jsonb(v) is not null)", (texts,))
    row = cur.fetchone()
    return bool(row and row[0])


_RAW_LAYER_PRESENT = (
    "select to_regprocedure('raw.try_jsonb(text)') is not null"
    " and to_regprocedure('raw.ensure_day_partitions(text)') is not null"
    " and (select bool_and(to_regclass(name) is not null) from unnest(%s::text[]) as name)"
    # a Kafka table from before its latest column (raw_kafka_table.sql adds it)
    " and not exists (select from unnest(%s::text[]) as name where not exists (select from pg_attribute"
    " where attrelid = to_regclass(name) and attname = 'kafka_read_error' and not attisdropped))"
)


def ensure_raw_schema(conn: psycopg.Connection, config: SourcesConfig) -> None:
    """Create the raw layer and a table for every declared source if missing; serialised so that
    concurrent extractors do not race on DDL."""
    shapes = {"kafka": sql_file("raw_kafka_table.sql"), "file": sql_file("raw_file_table.sql")}
    tables = ["raw.kafka_offsets", "raw.file_loads", "raw.extract_runs", "raw.file_load_attempts"]
    tables += ["raw.archived_partitions", *(source.raw_table for source in config.sources)]
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('jobs_elt.raw_schema'))")
        kafka_tables = [source.raw_table for source in config.sources if source.kind == "kafka"]
        if not conn.execute(_RAW_LAYER_PRESENT, (tables, kafka_tables)).fetchone()[0]:
            # Only when something is missing: a least-privilege loader (extract/sql/roles.sql), which may not
            # run DDL, works once `python -m extract roles` has created the raw layer for it.
            conn.execute(sql_file("schema.sql"))
            for source in config.sources:
                conn.execute(sql.SQL(shapes[source.kind]).format(table=table_identifier(source.raw_table)))
        for source in config.sources:
            ensure_partitions(conn, source.raw_table)
        plain = conn.execute(_PLAIN_TABLES, ([source.raw_table for source in config.sources],)).fetchall()
    for (table,) in plain:
        if table not in _warned_plain:
            _warned_plain.add(table)
            log.warning(
                "%s is a plain table (created before raw partitioning): landing works, retention skips it;"
                " `python -m extract reset --yes` recreates it partitioned",
                table,
            )


# A raw table made before partitioning is used as it is (the writers and dbt read it the same way); it is
# never migrated in place, which would rewrite all of history under a lock. Warned once per process.
_PLAIN_TABLES = (
    "select name from unnest(%s::text[]) as name join pg_class as c on c.oid = to_regclass(name) where c.relkind = 'r'"
)
_warned_plain: set[str] = set()


def is_partitioned(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute("select relkind = 'p' from pg_class where oid = to_regclass(%s)", (table,)).fetchone()
    return bool(row and row[0])


def ensure_partitions(conn: psycopg.Connection | psycopg.Cursor, table: str) -> None:
    """Today's and tomorrow's partition of a raw table exist (no-op for a plain table). Writers call it in
    the transaction of each write: loaded_at defaults to the transaction's start, so the day it lands in
    is always there; raw.ensure_day_partitions takes the table's writer lock itself."""
    conn.execute("select raw.ensure_day_partitions(%s)", (table,))


def ensure_database(settings: Settings) -> None:
    """Create PGDATABASE when the server does not have it yet."""
    with connect(settings, "postgres", autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (settings.pg_database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(settings.pg_database)))


_AUDIT_TABLES_PRESENT = (
    "select to_regclass('raw.extract_runs') is not null and to_regclass('raw.file_load_attempts') is not null"
)


def ensure_audit_tables(conn: psycopg.Connection) -> None:
    """The audit tables live in schema.sql with the rest of the raw DDL; run it when they are missing
    (a database created before the audit existed)."""
    if not conn.execute(_AUDIT_TABLES_PRESENT).fetchone()[0]:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext('jobs_elt.raw_schema'))")
            conn.execute(sql_file("schema.sql"))  # the one DDL file of the raw layer
