"""The parsing helpers of dbt_project/functions/ are dbt functions: the staging models that call them depend
on them (a build of `+model` creates them first, lineage and docs show them), and PostgreSQL inlines every
one of them into the calling query, which is what keeps staging fast (docs/data-model.md, "Performance"):
EXPLAIN VERBOSE of a call on a column shows the expanded expression, never a call to a helper."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from extract.core import db
from extract.core.settings import Settings
from tests.conftest import run_dbt

pytestmark = pytest.mark.slow

SCHEMA = "staging"


def dbt_names(settings: Settings, tmp_path: Path, *selection: str) -> set[str]:
    listed = run_dbt(settings, tmp_path, "ls", "--quiet", "--resource-type", "function", "--output", "name", *selection)
    return set(listed.stdout.split())


def helpers(pg: psycopg.Connection) -> dict[str, tuple[str, str, str]]:
    """name -> (volatility, parallel safety, language) of every function in the schema."""
    rows = pg.execute(
        "select p.proname, p.provolatile, p.proparallel, l.lanname from pg_proc p"
        " join pg_namespace n on n.oid = p.pronamespace join pg_language l on l.oid = p.prolang"
        " where n.nspname = %s",
        (SCHEMA,),
    ).fetchall()
    return {name: (volatility, parallel, language) for name, volatility, parallel, language in rows}


def explain(pg: psycopg.Connection, name: str) -> str:
    """EXPLAIN VERBOSE of the function called on the columns of a two-row VALUES list (two rows, so the
    planner sees columns, not constants it could fold the call into), one column per argument type."""
    types = pg.execute(
        "select format_type(t.type, null) from pg_proc p join pg_namespace n on n.oid = p.pronamespace,"
        " unnest(p.proargtypes) with ordinality as t(type, position)"
        " where n.nspname = %s and p.proname = %s order by t.position",
        (SCHEMA, name),
    ).fetchall()
    assert types, f"{SCHEMA}.{name} does not exist"
    columns = [sql.Identifier(f"a{i}") for i in range(len(types))]
    row = sql.SQL("({})").format(sql.SQL(", ").join(sql.SQL("null::{}").format(sql.SQL(t)) for (t,) in types))
    query = sql.SQL("explain (verbose, costs off) select {}({}) from (values {}, {}) as t ({})").format(
        sql.Identifier(SCHEMA, name), sql.SQL(", ").join(columns), row, row, sql.SQL(", ").join(columns)
    )
    return "\n".join(line for (line,) in pg.execute(query).fetchall())


def test_every_function_is_a_dag_node_and_is_inlined(
    settings: Settings, pg: psycopg.Connection, tmp_path: Path
) -> None:
    functions = dbt_names(settings, tmp_path)
    assert {"parse_timestamp", "safe_numeric", "safe_bigint", "civil_timestamp", "trim_ws"} <= functions

    # The staging models depend on the helpers they call, and through them on the helpers those call.
    upstream = dbt_names(settings, tmp_path, "--select", "+stg_kafka__job_events")
    assert {"parse_timestamp", "parse_timestamp_trimmed", "civil_timestamp", "trim_ws", "safe_numeric"} <= upstream
    assert "safe_bigint" not in upstream

    # A fresh database (an empty raw layer): a build of a model with its ancestors creates the functions it
    # calls before the model's unit tests and the model itself need them.
    with db.connect(settings) as conn:
        db.ensure_raw_schema(conn, settings.sources())
    assert not helpers(pg)
    # dbt run does not create dbt functions: it stops before any model with one line that says what to run.
    refused = run_dbt(settings, tmp_path, "run", "--select", "stg_kafka__job_events", check=False)
    assert refused.returncode != 0
    assert "are not in the database yet" in refused.stdout and "staging.parse_timestamp," in refused.stdout, (
        refused.stdout[-3000:]
    )
    assert pg.execute("select to_regclass('staging.stg_kafka__job_events')").fetchone()[0] is None
    build = run_dbt(
        settings, tmp_path, "build", "--select", "+stg_kafka__job_events", "--indirect-selection", "cautious"
    )
    assert "PASS stg_kafka__job_events::test_stg_kafka__job_events_timestamps" in build.stdout, build.stdout[-3000:]
    assert upstream <= set(helpers(pg))
    run_dbt(settings, tmp_path, "build", "--select", "resource_type:function")
    run_dbt(settings, tmp_path, "run", "--select", "stg_kafka__job_events")  # with the functions there, it runs
    # immutable ('i') and parallel safe ('s'): macros/function_volatility.sql adds what dbt does not say
    attributes = helpers(pg)
    assert {name: attributes.get(name) for name in functions} == {name: ("i", "s", "sql") for name in functions}

    calls = [f"{name}(" for name in functions]
    for name in sorted(functions):
        plan = explain(pg, name)
        assert "Values Scan" in plan, plan
        assert not [call for call in calls if call in plan], f"{name} is not inlined:\n{plan}"

    # The check sees a call when there is one: try_cast (PL/pgSQL, from the on-run-start hook) is never inlined.
    plan = pg.execute(
        "explain (verbose, costs off) select staging.try_cast(x, null::integer) from (values ('1'), ('2')) as t (x)"
    ).fetchall()
    assert any("staging.try_cast(" in line for (line,) in plan), plan
