"""dbt's `sources:` files, generated from sources.yml: `python -m extract sources --write` writes them,
`--check` fails (exit 1, with a diff) when the committed files drift from what sources.yml says.

Every Kafka source has the raw.jobs shape and every file source the raw.users shape
(extract/sql/raw_kafka_table.sql, raw_file_table.sql), so a source table's dbt entry - columns, column docs,
freshness, the key tests and the raw = staged + quarantined reconciliation - follows from its kind. What
cannot be derived (the per-row staging model, the quarantine label) comes from the source's `dbt:` mapping.

The output depends only on sources.yml (never on the environment: ${VAR} references resolve to their
defaults) and is byte-for-byte deterministic: sources in file order, keys in a fixed order.
"""

from __future__ import annotations

import difflib
import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import yaml

from extract.core.sources_config import (
    DEFAULT_SOURCES_FILE,
    FileSource,
    Freshness,
    KafkaSource,
    Source,
    SourcesConfig,
    SourcesConfigError,
    load_sources,
)

ROOT = Path(__file__).resolve().parents[2]
WIDTH = 120  # the project's line length (ruff, SQLFluff); folded descriptions wrap a little earlier


@dataclass(frozen=True)
class _Kind:
    dbt_source: str  # the dbt source name: source('<dbt_source>', '<table>')
    path: str  # the generated file, relative to the repository root
    description: str
    unique_columns: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]


_HEADER = (
    "# Generated from sources.yml by `python -m extract sources --write`: edit sources.yml, not this file.\n"
    "# `make sources-check` (part of `make lint`) fails when the two drift.\n"
)

_KINDS: dict[str, _Kind] = {
    "kafka": _Kind(
        dbt_source="kafka",
        path="dbt_project/models/staging/kafka/_kafka__sources.yml",
        description=(
            "Raw Kafka messages landed by the extractor (extract/), exactly as they arrived: one row per"
            " message, payload kept as text / bytes / jsonb. Every table has the same shape"
            " (extract/sql/raw_kafka_table.sql) and is read only by its per-row staging model."
        ),
        unique_columns=("kafka_topic", "kafka_partition", "kafka_offset"),
        columns=(
            ("load_seq", "Monotonic arrival sequence (identity); the pointer incremental models filter on."),
            ("kafka_topic", "Topic the message was read from."),
            ("kafka_partition", "Partition of the message."),
            ("kafka_offset", "Offset of the message within its partition."),
            ("kafka_timestamp", "Kafka record timestamp (create or log-append time, see kafka_timestamp_type)."),
            ("kafka_timestamp_type", "Kafka timestamp type (0 = create time, 1 = log-append time)."),
            ("message_key", "Message key as UTF-8 text ({key}); null when absent or not valid text."),
            ("message_key_bytes", "Key bytes, set only when the key is not valid UTF-8 text or holds NUL."),
            ("message_value", "Message value as UTF-8 text; null for tombstones and non-text values."),
            ("message_value_bytes", "Value bytes, set only when the value is not valid UTF-8 text or holds NUL."),
            ("message_value_json", "The value parsed as jsonb when Postgres accepts it (any JSON type), else null."),
            ("message_headers", "Kafka record headers as jsonb."),
            (
                "kafka_read_error",
                "Set only on a placeholder row: why the Kafka client could not read the record at this offset"
                " (key, value and headers are then null; staging quarantines it as unreadable_record).",
            ),
            ("loaded_at", "When the extractor wrote the row (freshness column)."),
        ),
    ),
    "file": _Kind(
        dbt_source="files",
        path="dbt_project/models/staging/files/_files__sources.yml",
        description=(
            "Raw lines of the files landed by the extractor (extract/), one row per line, blank and broken"
            " lines included. Every line table has the same shape (extract/sql/raw_file_table.sql) and is read"
            " only by its per-row staging model; raw.file_loads is not read by any model (load_id on each line"
            " is enough to order loads)."
        ),
        unique_columns=("load_id", "line_number"),
        columns=(
            ("load_seq", "Monotonic arrival sequence (identity)."),
            (
                "load_id",
                "The file load (raw.file_loads) the line belongs to; increases with every new file content.",
            ),
            ("file_name", "Name of the loaded file."),
            ("file_sha256", "SHA-256 of the whole file content."),
            ("line_number", "1-based line number within the file."),
            (
                "line_text",
                "The line as UTF-8 text (BOM and trailing carriage return kept); null when not valid text.",
            ),
            ("line_bytes", "Line bytes, set only when the line is not valid UTF-8 text or holds NUL."),
            ("line_json", "{line_json}"),
            ("loaded_at", "When the extractor wrote the row (freshness column)."),
        ),
    ),
}

_LINE_JSON = {
    "ndjson": "The raw line parsed as jsonb when Postgres accepts it, else null.",
    "key_value_lines": "The value after the first '|' parsed as jsonb when Postgres accepts it, else null.",
    "csv": (
        "The CSV row as a jsonb object keyed by the header line; null for the header itself and for rows"
        " that do not parse or have another number of fields."
    ),
}

_FILE_LOADS = """\
      - name: file_loads
        description: One row per distinct file content (sha256) of each file source; the same content twice is one load.
        columns:
          - name: load_id
            description: Load identifier (identity), referenced by the line tables' load_id.
            data_tests:
              - unique:
                  config: {tags: [audit]}
              - not_null:
                  config: {tags: [audit]}
          - name: source_name
            description: Logical name of the file source (sources.yml).
          - name: file_name
            description: Name of the loaded file.
          - name: file_sha256
            description: SHA-256 of the file content (unique per source_name).
          - name: file_bytes
            description: File size in bytes.
          - name: line_count
            description: Number of lines in the file.
          - name: loaded_at
            description: When the load was recorded (freshness column).
"""


def _scalar(key: str, text: str, indent: int) -> str:
    """`key: text` as YAML: plain when that reads back as the same string and fits, else folded."""
    text = " ".join(text.split())
    pad = " " * indent
    line = f"{pad}{key}: {text}"
    if len(line) <= WIDTH and _reads_back(text):
        return line + "\n"
    if len(line) <= WIDTH:
        return f"{pad}{key}: {json.dumps(text, ensure_ascii=False)}\n"
    body = textwrap.fill(text, width=WIDTH - 10 - indent - 2, break_long_words=False, break_on_hyphens=False)
    return f"{pad}{key}: >\n" + textwrap.indent(body, pad + "  ") + "\n"


def _reads_back(text: str) -> bool:
    try:
        return yaml.safe_load(f"k: {text}") == {"k": text}
    except yaml.YAMLError:
        return False


def _freshness(freshness: Freshness, indent: int, *, header: bool = True) -> str:
    pad = " " * indent
    return (
        (f"{pad}config:\n" if header else "") + f"{pad}  loaded_at_field: loaded_at\n"
        f"{pad}  freshness:\n"
        f"{pad}    warn_after: {{count: {freshness.warn_after_hours}, period: hour}}\n"
        f"{pad}    error_after: {{count: {freshness.error_after_hours}, period: hour}}\n"
    )


def _table_config(source: Source, default_freshness: Freshness, indent: int) -> str:
    """The table's config: its freshness when not the default, and for a file source its load_mode
    (meta), which the dedup and history models read to decide whether a missing key is deleted."""
    pad = " " * indent
    out = ""
    if isinstance(source, FileSource):
        out += f"{pad}  meta:\n{pad}    load_mode: {source.load_mode}\n"
    if source.freshness != default_freshness:
        out += _freshness(source.freshness, indent, header=False)
    return f"{pad}config:\n{out}" if out else ""


def table_name(source: Source) -> str:
    return source.raw_table.rpartition(".")[2]


def quarantine_source_name(source: Source) -> str:
    return source.dbt.quarantine_source_name or f"{_KINDS[source.kind].dbt_source}.{table_name(source)}"


def _table(source: Source, kind: _Kind, default_freshness: Freshness) -> str:
    out = f"      - name: {table_name(source)}\n"
    out += _scalar("description", source.description or f"Raw rows of the {source.name} source.", 8)
    out += _table_config(source, default_freshness, 8)
    # make build checks only the rows that arrived since the reconciliation last passed, make audit every
    # row (dbt_project/macros/tests/test_scope.sql); the key tests restate the table's primary key and unique
    # constraint, which hold on every write, so they run in make audit only
    scope = f"{kind.dbt_source}.{table_name(source)}"
    new_rows = (
        f"(staging.test_range_is_all('{scope}')"
        f" or load_seq between staging.test_range_start('{scope}') and staging.test_range_end('{scope}'))"
    )
    out += "        data_tests:\n"
    if source.dbt.staged_model:
        out += (
            "          - raw_equals_staged_plus_quarantined:\n"
            "              arguments:\n"
            f"                staged_model: ref('{source.dbt.staged_model}')\n"
            "                quarantine_model: ref('quarantined_records')\n"
            f"                quarantine_source_name: {quarantine_source_name(source)}\n"
            f'              config: {{where: "{new_rows}"}}\n'
        )
    out += (
        "          - unique_combination_of_columns:\n"
        "              arguments:\n"
        f"                combination_of_columns: [{', '.join(kind.unique_columns)}]\n"
        "              config: {tags: [audit]}\n"
        "        columns:\n"
    )
    key = f"the {source.key_field}" if source.key_field else "the message key"
    line_json = _LINE_JSON[source.format] if isinstance(source, FileSource) else ""
    for name, description in kind.columns:
        out += f"          - name: {name}\n"
        out += _scalar("description", description.format(key=key, line_json=line_json), 12)
        if name == "load_seq":
            out += "            data_tests:\n"
            for test in ("unique", "not_null"):
                out += f"              - {test}:\n                  config: {{tags: [audit]}}\n"
    return out


def render(config: SourcesConfig) -> dict[str, str]:
    """Repository-relative path -> the text of each generated dbt sources file."""
    files: dict[str, str] = {}
    default = Freshness()
    for kind_name, kind in _KINDS.items():
        sources = [
            source
            for source in config.sources
            if (kind_name == "kafka" and isinstance(source, KafkaSource))
            or (kind_name == "file" and isinstance(source, FileSource))
        ]
        if not sources:
            continue
        text = _HEADER + "sources:\n" + f"  - name: {kind.dbt_source}\n"
        text += _scalar("description", kind.description, 4)
        text += "    schema: raw\n" + _freshness(default, 4) + "    tables:\n"
        text += "".join(_table(source, kind, default) for source in sources)
        if kind_name == "file":
            text += _FILE_LOADS
        yaml.safe_load(text)  # never write YAML that does not parse
        files[kind.path] = text
    return files


def load_for_dbt(path: Path | None = None) -> SourcesConfig:
    """sources.yml with every ${VAR} at its default, so the output never depends on the environment."""
    path = path or DEFAULT_SOURCES_FILE
    try:
        return load_sources(path, env={})
    except SourcesConfigError as error:
        if "is not set and has no default" not in str(error):
            raise
        return load_sources(path)  # a reference without a default: the environment has to say


def drift(config: SourcesConfig, root: Path = ROOT) -> list[str]:
    """One unified diff per generated file that differs from what is on disk (empty: in sync)."""
    diffs = []
    for relative, wanted in render(config).items():
        path = root / relative
        current = path.read_text() if path.exists() else ""
        if current != wanted:
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                wanted.splitlines(keepends=True),
                f"{relative} (committed)",
                f"{relative} (from sources.yml)",
            )
            diffs.append("".join(diff))
    return diffs


def write(config: SourcesConfig, root: Path = ROOT) -> list[str]:
    """Write the generated files that changed; returns their paths."""
    written = []
    for relative, wanted in render(config).items():
        path = root / relative
        if not path.exists() or path.read_text() != wanted:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(wanted)
            written.append(relative)
    return written


def summarise(diffs: list[str], limit: int = 60) -> str:
    """The drift as a short report: each file with its added/removed line counts, then the diff itself."""
    lines = []
    for diff in diffs:
        rows = diff.splitlines()
        added = sum(1 for row in rows if row.startswith("+") and not row.startswith("+++"))
        removed = sum(1 for row in rows if row.startswith("-") and not row.startswith("---"))
        name = rows[0].removeprefix("--- ").removesuffix(" (committed)")
        lines.append(f"{name}: out of date ({added} line(s) to add, {removed} to remove)")
    for diff in diffs:
        rows = diff.splitlines()
        lines += rows[:limit] + ([f"... ({len(rows) - limit} more diff lines)"] if len(rows) > limit else [])
    return "\n".join(lines)
