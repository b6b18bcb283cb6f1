"""When the service builds and what: as soon as new rows have landed in a raw table, only the dbt nodes
downstream of that table's source (`--select source:kafka.jobs+`, audit-tagged and unit tests aside),
instead of everything on a fixed interval. The fixed interval (DBT_BUILD_INTERVAL_S) stays as the slow
cadence of a full build. Every build, triggered or not, runs under the database's dbt lock (dbt_runner.py).

New rows are seen through each raw table's load_seq (an identity column, so max() is one index probe):
the watermark read just before a build starts is what that build covers, so rows that land while it runs
trigger the next one."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import psycopg
from psycopg import sql

from extract.core import db
from extract.core.settings import Settings
from extract.core.sources_config import FileSource, KafkaSource, SourcesConfig

log = logging.getLogger(__name__)

Source = KafkaSource | FileSource

# scheduled_build's exclusions, for a selection by source
EXCLUDE = ("--exclude", "tag:audit", "resource_type:unit_test")


def dbt_source(source: Source) -> str:
    """The dbt source of a raw table, as `python -m extract sources --write` names it: kafka.jobs, files.users."""
    group = "kafka" if isinstance(source, KafkaSource) else "files"
    return f"{group}.{source.raw_table.split('.', 1)[1]}"


def selection(changed: Iterable[Source]) -> list[str]:
    """dbt arguments that build and test what new rows in `changed` affect, and nothing else. What the
    `scheduled_build` selector (dbt_project/selectors.yml) leaves out stays out: the tests tagged `audit`,
    which read whole tables and run on the audit's cadence, and unit tests, which test the models' logic
    (new rows do not change it)."""
    selectors = sorted({f"source:{dbt_source(source)}+" for source in changed})
    return ["--select", *selectors, *EXCLUDE] if selectors else []


class NewRows:
    """The load_seq watermark of every raw table, and which tables moved past the last built one."""

    def __init__(self, settings: Settings, config: SourcesConfig) -> None:
        self.settings = settings
        self.sources: list[Source] = list(config.sources)
        self.built: dict[str, int] = {}

    def read(self) -> dict[str, int]:
        """raw table -> max(load_seq) now (0 for an empty table; absent while the table does not exist)."""
        marks: dict[str, int] = {}
        try:
            with db.connect(self.settings, autocommit=True) as conn:
                for source in self.sources:
                    if not conn.execute("select to_regclass(%s) is not null", (source.raw_table,)).fetchone()[0]:
                        continue
                    query = sql.SQL("select coalesce(max(load_seq), 0) from {}").format(
                        db.table_identifier(source.raw_table)
                    )
                    marks[source.raw_table] = conn.execute(query).fetchone()[0]
        except psycopg.Error as error:
            log.warning("could not read the raw watermarks: %s", " ".join(str(error).split()))
        return marks

    def changed(self, marks: Mapping[str, int]) -> list[Source]:
        """The sources whose raw table holds rows past what the last successful build covered."""
        return [s for s in self.sources if marks.get(s.raw_table, 0) > self.built.get(s.raw_table, 0)]

    def mark_built(self, marks: Mapping[str, int]) -> None:
        self.built.update(marks)
