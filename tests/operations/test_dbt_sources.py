"""dbt's sources files are generated from sources.yml: the committed ones are in sync, a change to
sources.yml makes `extract sources --check` fail with a diff, `--write` brings them back in step, and
the output is deterministic (and independent of the environment)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from extract.core.sources_config import DEFAULT_SOURCES_FILE, SourcesConfigError, load_sources
from extract.operations import dbt_sources

ROOT = Path(__file__).resolve().parents[2]
GENERATED = (
    "dbt_project/models/staging/kafka/_kafka__sources.yml",
    "dbt_project/models/staging/files/_files__sources.yml",
)

NEW_TOPIC = """
  refunds:
    kind: kafka
    topic: ${KAFKA_REFUNDS_TOPIC:-refunds}
    key_field: REFUNDID
    raw_table: raw.refunds
    description: One row per Kafka message of the refunds topic.
    freshness: {warn_after_hours: 2, error_after_hours: 6}
"""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extract", "sources", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The sources file and the generated files in a scratch tree, so tests never touch the checkout."""
    shutil.copy(DEFAULT_SOURCES_FILE, tmp_path / "sources.yml")
    for relative in GENERATED:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, tmp_path / relative)
    return tmp_path


def test_the_committed_files_are_in_sync() -> None:
    result = cli("--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "in sync" in result.stdout
    assert dbt_sources.drift(dbt_sources.load_for_dbt()) == []


def test_every_source_has_its_table_tests_and_docs() -> None:
    rendered = dbt_sources.render(dbt_sources.load_for_dbt())
    assert sorted(rendered) == sorted(GENERATED)
    documents = {path: yaml.safe_load(text) for path, text in rendered.items()}
    tables = {
        (source["name"], table["name"]): table
        for document in documents.values()
        for source in document["sources"]
        for table in source["tables"]
    }
    assert set(tables) == {
        ("kafka", "jobs"),
        ("kafka", "payments"),
        ("files", "users"),
        ("files", "services"),
        ("files", "file_loads"),
    }
    for (source_name, table_name), table in tables.items():
        assert table["description"]
        assert all(column["description"] for column in table["columns"])
        if table_name == "file_loads":
            continue
        load_seq = next(column for column in table["columns"] if column["name"] == "load_seq")
        # the key tests restate the table's constraints: make audit runs them; make build the reconciliation,
        # on the rows that arrived since it last passed
        audit_only = {"config": {"tags": ["audit"]}}
        assert load_seq["data_tests"] == [{"unique": audit_only}, {"not_null": audit_only}]
        assert table["data_tests"][1]["unique_combination_of_columns"]["config"] == audit_only["config"]
        scoped = table["data_tests"][0]["raw_equals_staged_plus_quarantined"]["config"]["where"]
        assert f"staging.test_range_end('{source_name}.{table_name}')" in scoped
        reconciliation = table["data_tests"][0]["raw_equals_staged_plus_quarantined"]["arguments"]
        assert reconciliation["quarantine_source_name"] == f"{source_name}.{table_name}"
        assert reconciliation["quarantine_model"] == "ref('quarantined_records')"
    assert (
        tables[("kafka", "payments")]["data_tests"][0]["raw_equals_staged_plus_quarantined"]["arguments"][
            "staged_model"
        ]
        == "ref('stg_kafka__payment_events')"
    )
    # A file source's load_mode reaches dbt as meta, where the dedup and history models read it.
    assert tables[("files", "users")]["config"]["meta"] == {"load_mode": "snapshot"}
    assert tables[("files", "services")]["config"]["meta"] == {"load_mode": "delta"}
    assert "config" not in tables[("kafka", "jobs")]
    freshness = documents[GENERATED[0]]["sources"][0]["config"]["freshness"]
    assert freshness == {"warn_after": {"count": 24, "period": "hour"}, "error_after": {"count": 72, "period": "hour"}}


def test_a_new_source_makes_check_fail_until_write(repo_copy: Path) -> None:
    sources = repo_copy / "sources.yml"
    sources.write_text(sources.read_text() + NEW_TOPIC)
    config = dbt_sources.load_for_dbt(sources)

    diffs = dbt_sources.drift(config, repo_copy)
    assert len(diffs) == 1 and "+      - name: refunds" in diffs[0]
    summary = dbt_sources.summarise(diffs)
    assert summary.splitlines()[0].startswith(f"{GENERATED[0]}: out of date (")

    assert dbt_sources.write(config, repo_copy) == [GENERATED[0]]
    assert dbt_sources.drift(config, repo_copy) == []
    assert dbt_sources.write(config, repo_copy) == []  # idempotent
    table = yaml.safe_load((repo_copy / GENERATED[0]).read_text())["sources"][0]["tables"][-1]
    assert table["name"] == "refunds"
    # No staging model yet: no reconciliation test (a ref to a missing model would break dbt), only the key.
    assert [next(iter(test)) for test in table["data_tests"]] == ["unique_combination_of_columns"]
    # Its own freshness, different from the source's default, is set on the table.
    assert table["config"]["freshness"]["warn_after"] == {"count": 2, "period": "hour"}
    key = next(column for column in table["columns"] if column["name"] == "message_key")
    assert "REFUNDID" in key["description"]


def test_cli_check_fails_with_a_diff_summary_then_write_fixes_it(tmp_path: Path) -> None:
    """The command itself, against the checkout's files, via a sources file with one more dataset.

    --write would rewrite the checkout, so it is exercised on a copy through the module API above; here
    --check alone, which only reads."""
    sources = tmp_path / "sources.yml"
    sources.write_text(DEFAULT_SOURCES_FILE.read_text() + NEW_TOPIC)
    env = {**os.environ, "ELT_SOURCES_FILE": str(sources)}
    result = cli("--check", env=env)
    assert result.returncode == 1
    assert f"{GENERATED[0]}: out of date (" in result.stdout
    assert "+      - name: refunds" in result.stdout
    assert "run `python -m extract sources --write`" in result.stderr
    assert "Traceback" not in result.stderr


def test_output_is_deterministic_and_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    first = dbt_sources.render(dbt_sources.load_for_dbt())
    monkeypatch.setenv("KAFKA_TOPIC", "somewhere_else")
    monkeypatch.setenv("KAFKA_PAYMENTS_TOPIC", "elsewhere")
    monkeypatch.setenv("USERS_FILE", "/tmp/other.ndjson")
    assert dbt_sources.render(dbt_sources.load_for_dbt()) == first
    assert dbt_sources.render(dbt_sources.load_for_dbt()) == first
    assert all(text.endswith("\n") and "\t" not in text for text in first.values())


@pytest.mark.parametrize(
    ("dbt_block", "message"),
    [
        ("    dbt: {colour: blue}\n", "sources.jobs.dbt: unknown key(s): colour"),
        ("    dbt: {staged_model: 'Bad Model'}\n", "'staged_model' must be a dbt model name"),
        ("    dbt: {quarantine_source_name: jobs}\n", "'quarantine_source_name' must look like kafka.jobs"),
    ],
)
def test_the_dbt_mapping_is_validated(tmp_path: Path, dbt_block: str, message: str) -> None:
    text = f"""
version: 1
sources:
  jobs:
    kind: kafka
    topic: jobs
    raw_table: raw.jobs
{dbt_block}"""
    path = tmp_path / "sources.yml"
    path.write_text(text)
    with pytest.raises(SourcesConfigError) as error:
        load_sources(path, env={})
    assert message in str(error.value)


def test_a_custom_quarantine_label_is_used(tmp_path: Path) -> None:
    path = tmp_path / "sources.yml"
    path.write_text(
        "version: 1\nsources:\n  jobs:\n    kind: kafka\n    topic: jobs\n    raw_table: raw.jobs\n"
        "    dbt: {staged_model: stg_kafka__job_events, quarantine_source_name: kafka.job_feed}\n"
    )
    text = dbt_sources.render(load_sources(path, env={}))[GENERATED[0]]
    assert "quarantine_source_name: kafka.job_feed" in text
    assert GENERATED[1] not in dbt_sources.render(load_sources(path, env={}))
