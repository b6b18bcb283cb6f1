"""Least-privilege Postgres roles for the pipeline (extract/sql/roles.sql), and optional LOGIN members.

Run as an administrator: `python -m extract roles` (or `make roles`). Idempotent, and safe to run at the
same time against several databases of one cluster, where roles are shared."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Mapping

import psycopg
from psycopg import sql

from extract.core import db
from extract.core.settings import Settings

log = logging.getLogger(__name__)

GROUPS = ("elt_loader", "elt_transformer", "elt_analyst")
# group -> (LOGIN member it gets when the variable holding its password is set, that variable)
LOGIN_USERS = {group: (f"{group}_user", f"{group.upper()}_PASSWORD") for group in GROUPS}

# Errors two sessions creating the same cluster-wide role or membership at once can get; the loser retries.
_RACES = (
    psycopg.errors.DuplicateObject,
    psycopg.errors.UniqueViolation,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.errors.InternalError_,  # "tuple concurrently updated" on pg_authid / pg_db_role_setting
)


def roles_sql() -> str:
    return db.sql_file("roles.sql")


def _login_user(conn: psycopg.Connection, group: str, user: str, password: str) -> None:
    exists = conn.execute("select 1 from pg_roles where rolname = %s", (user,)).fetchone()
    if not exists:
        conn.execute(sql.SQL("create role {} login").format(sql.Identifier(user)))
    # PASSWORD takes no bind parameter; a quoted literal is as safe (the server hashes it: scram-sha-256).
    conn.execute(sql.SQL("alter role {} login password {}").format(sql.Identifier(user), sql.Literal(password)))
    conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(group), sql.Identifier(user)))
    # Every session of the member acts as the group, so what it creates belongs to the group.
    conn.execute(sql.SQL("alter role {} set role = {}").format(sql.Identifier(user), sql.Literal(group)))


def create_roles(settings: Settings, env: Mapping[str, str] | None = None) -> list[str]:
    """Create/refresh the groups, their grants in settings.pg_database, and the LOGIN members whose
    password variable is set. Returns the LOGIN members made or refreshed."""
    env = os.environ if env is None else env
    logins = [(group, *LOGIN_USERS[group]) for group in GROUPS if env.get(LOGIN_USERS[group][1])]
    # (another `extract roles` may create it at the same moment)
    with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
        db.ensure_database(settings)
    with db.connect(settings) as conn:
        # The raw layer (every source of sources.yml) first, created by this administrator: the loader may not
        # run DDL.
        db.ensure_raw_schema(conn, settings.sources())
        for attempt in range(1, 11):
            try:
                with conn.transaction():
                    conn.execute("select pg_advisory_xact_lock(hashtext('jobs_elt.roles'))")
                    conn.execute(roles_sql())
                    for group, user, variable in logins:
                        _login_user(conn, group, user, env[variable])
                break
            except _RACES as error:
                if attempt == 10:
                    raise
                log.info("concurrent role change (%s); retrying", str(error).strip())
                time.sleep(0.1 * attempt)
    made = [user for _, user, _ in logins]
    log.debug("roles %s ready in database %r; login users: %s", ", ".join(GROUPS), settings.pg_database, made)
    return made
