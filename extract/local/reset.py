"""Start over: drop every layer in Postgres and delete the topics (the demo does this to be repeatable).

Only in a database the project created itself: `up` marks the databases it creates with a comment, and
`reset` refuses any other database unless told to adopt it, so a demo never empties someone's warehouse."""

from __future__ import annotations

import logging

import psycopg
from kafka import KafkaAdminClient
from kafka.errors import UnknownTopicOrPartitionError
from psycopg import sql

from extract.core import db
from extract.core.kafka_probe import check_broker
from extract.core.settings import Settings

log = logging.getLogger(__name__)

OWNED_MARKER = "jobs-elt: created by `python -m extract up`; `python -m extract reset` may drop its schemas"
ADOPT_FLAG = "--adopt"


class NotOwnedError(RuntimeError):
    """The database was not created by this project; the message names it and the flag that overrides."""


def is_owned(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "select shobj_description(oid, 'pg_database') from pg_database where datname = current_database()"
    ).fetchone()
    return bool(row and row[0] == OWNED_MARKER)


def mark_owned(conn: psycopg.Connection) -> None:
    name = conn.execute("select current_database()").fetchone()[0]
    conn.execute(sql.SQL("comment on database {} is {}").format(sql.Identifier(name), sql.Literal(OWNED_MARKER)))


def check_owned(settings: Settings, *, adopt: bool = False) -> None:
    """Raise NotOwnedError unless the database carries the project's marker; `adopt` marks it first."""
    with db.connect(settings, autocommit=True) as conn:
        if is_owned(conn):
            return
        if adopt:
            mark_owned(conn)
            log.info("adopted database %r: marked as this project's own", settings.pg_database)
            return
    raise NotOwnedError(
        f"database {settings.pg_database!r} at {settings.pg_host}:{settings.pg_port} was not created by this"
        f" project, so reset will not drop its schemas; pass {ADOPT_FLAG} (make ... ADOPT=1) to make it the"
        " project's own, or choose another PGDATABASE"
    )


def reset_everything(settings: Settings, *, adopt: bool = False, keep_topics: bool = False) -> None:
    """keep_topics: start Postgres over but keep what the topics hold (after a topic was recreated, its
    new messages land from offset 0 on the next run)."""
    check_owned(settings, adopt=adopt)
    check_broker(settings)  # before dropping anything: a dead broker must not leave a half reset
    with db.connect(settings, autocommit=True) as conn:
        for schema in ("marts", "snapshots", "staging", "raw"):
            conn.execute(f"drop schema if exists {schema} cascade")  # fixed names, no input reaches here
    if keep_topics:
        log.info("dropped schemas raw, staging, marts; the topics are kept")
        return
    topics = [source.topic for source in settings.sources().kafka_sources()]
    admin = KafkaAdminClient(client_id="jobs-elt-admin", **settings.kafka_client_config())
    try:
        existing = [topic for topic in topics if topic in set(admin.list_topics())]
        if existing:
            admin.delete_topics(existing)
    except UnknownTopicOrPartitionError:
        pass
    finally:
        admin.close()
    log.info("dropped schemas raw, staging, marts and topics %s", ", ".join(topics))
