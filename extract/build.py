"""`python -m extract build` (`make build`): the dbt build that carries rule changes to old rows
(extract/operations/dbt_build.py), with dbt's output on this terminal. Part of the CLI room, in a module of
its own like the demo."""

from __future__ import annotations

import argparse
import sys

from extract.core.settings import Settings
from extract.operations import dbt_build


def run_build(args: argparse.Namespace, settings: Settings) -> int:
    variables = {**({"location": args.location} if args.location else {}), "test_scope": args.test_scope, **args.vars}
    dbt = dbt_build.Dbt(settings, dbt_build.project_dir(), capture=False)
    result = dbt_build.build(dbt, settings.dbt_state_dir, variables)
    assert result is not None, "without a stop event it waits for the lock"
    if result.state_error:
        print(f"error: the build succeeded but {result.state_error}", file=sys.stderr)
        return 1
    return 0 if result.ok else result.returncode or 1


def _vars(text: str) -> dict[str, object]:
    try:
        return dbt_build.parse_vars(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_parser(commands: argparse._SubParsersAction) -> None:
    build = commands.add_parser(
        "build",
        help="dbt build under the database's dbt lock (make build): every model, the data tests of the new rows;"
        " after a rule change (a model, a macro, a var its rules read) the incremental models it touches and"
        " what depends on them are rebuilt with --full-refresh",
        description="dbt build of DBT_PROJECT_DIR (default dbt_project) under the database's dbt lock, as make"
        " build and the service run it. dbt's state comparison against the manifest of the last successful"
        " build (DBT_STATE, default $ELT_STATE_DIR/dbt-last-success) names the incremental models a rule change"
        " touches: one line says which, the rest is built as usual, then they and everything downstream with"
        " --full-refresh. A successful build saves its manifest there; a failed one leaves the last.",
    )
    build.add_argument(
        "--test-scope",
        choices=["recent", "all"],
        default="recent",
        help="recent: the data tests check the rows that arrived since they last passed; all: every row"
        " (the tests tagged audit and the unit tests are make audit's either way)",
    )
    build.add_argument("--location", help="var location: where the answer is for (default: dbt_project.yml's)")
    build.add_argument(
        "--vars",
        type=_vars,
        default={},
        metavar="YAML",
        help="more dbt vars, a YAML or JSON mapping, braces optional: --vars 'max_revenue: 5000' (a var a rule"
        " reads is a rule change like any other)",
    )
    build.set_defaults(handler=run_build)
