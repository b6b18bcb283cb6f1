"""The declarative sources file: every Kafka topic and every file the pipeline lands, validated on load.

Adding a dataset is an entry here plus a staging model; the extractors have no per-source code."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

DEFAULT_SOURCES_FILE = Path(__file__).resolve().parents[2] / "sources.yml"

KafkaFormat = Literal["json"]
FileFormat = Literal["ndjson", "key_value_lines", "csv"]
KAFKA_FORMATS: tuple[str, ...] = ("json",)
FILE_FORMATS: tuple[str, ...] = ("ndjson", "key_value_lines", "csv")
WORKER_MODES: tuple[str, ...] = ("one_subscription", "worker_per_topic")
# snapshot: every load is the whole entity, so a key missing from a newer load is deleted;
# delta: a load holds only what changed, so a missing key keeps its last known row.
LoadMode = Literal["snapshot", "delta"]
LOAD_MODES: tuple[str, ...] = ("snapshot", "delta")

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_ENV_REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")

# A sources file is a few KB; a bound keeps a wrong path (a log, a dump) from being read whole.
MAX_SOURCES_FILE_BYTES = 1 << 20


class SourcesConfigError(ValueError):
    """The sources file is unusable; the message names the file, the entry and the problem."""


@dataclass(frozen=True)
class Freshness:
    warn_after_hours: int = 24
    error_after_hours: int = 72


@dataclass(frozen=True)
class Retention:
    """How long raw rows stay in Postgres (sources.yml `retention:`); None keeps them forever.
    `python -m extract retention` archives whole day partitions older than that, once staging has read them."""

    raw_days: int | None = None


@dataclass(frozen=True)
class DbtOptions:
    """The per-source dbt specifics `python -m extract sources` cannot derive (sources.yml `dbt:`)."""

    # The per-row staging model that reads the raw table: set once it exists, it adds the
    # raw = staged + quarantined reconciliation test to the generated source table.
    staged_model: str | None = None
    # source_name of the source's rows in staging.quarantined_records; default '<kafka|files>.<table>'.
    quarantine_source_name: str | None = None


@dataclass(frozen=True)
class KafkaSource:
    name: str
    topic: str
    raw_table: str
    key_field: str | None
    format: KafkaFormat = "json"
    partitions: int = 3
    description: str = ""
    freshness: Freshness = field(default_factory=Freshness)
    dbt: DbtOptions = field(default_factory=DbtOptions)
    retention: Retention = field(default_factory=Retention)

    kind: Literal["kafka"] = "kafka"


@dataclass(frozen=True)
class FileSource:
    name: str
    path: str
    raw_table: str
    key_field: str | None
    format: FileFormat = "ndjson"
    load_mode: LoadMode = "delta"
    description: str = ""
    freshness: Freshness = field(default_factory=Freshness)
    dbt: DbtOptions = field(default_factory=DbtOptions)
    retention: Retention = field(default_factory=Retention)

    kind: Literal["file"] = "file"

    def files(self, root: Path) -> list[Path]:
        """The files the path or glob names today, in a stable order."""
        pattern = Path(self.path)
        if not pattern.is_absolute():
            pattern = root / pattern
        if any(char in self.path for char in "*?["):
            return sorted(p for p in pattern.parent.glob(pattern.name) if p.is_file())
        return [pattern]


Source = KafkaSource | FileSource


@dataclass(frozen=True)
class SourcesConfig:
    path: Path
    worker_mode: str
    sources: tuple[Source, ...]

    def kafka_sources(self) -> list[KafkaSource]:
        return [source for source in self.sources if isinstance(source, KafkaSource)]

    def file_sources(self) -> list[FileSource]:
        return [source for source in self.sources if isinstance(source, FileSource)]

    def get(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(source.name for source in self.sources)
        raise SourcesConfigError(f"{self.path}: no source named {name!r} (known: {known})")

    def select(self, names: list[str]) -> list[Source]:
        return [self.get(name) for name in names] if names else list(self.sources)


def _interpolate(value: str, env: Mapping[str, str]) -> str:
    """`${NAME}` and `${NAME:-default}`, so one file serves every environment (and every test)."""

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        resolved = env.get(name) or default
        if resolved is None:
            raise SourcesConfigError(f"environment variable {name} is not set and has no default")
        return resolved

    return _ENV_REFERENCE.sub(replace, value)


class _StrictLoader(yaml.SafeLoader):
    """YAML without anchors, aliases or duplicate keys: an alias bomb expands to gigabytes, and with
    duplicates a second `jobs:` silently replaces the first."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            kind = "alias *" if isinstance(event, yaml.AliasEvent) else "anchor &"
            raise SourcesConfigError(
                f"line {event.start_mark.line + 1}: YAML {kind}{anchor} is not allowed; write the values out"
            )
        return super().compose_node(parent, index)  # type: ignore[misc]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise SourcesConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_document(path: Path) -> object:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SOURCES_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SourcesConfigError(f"sources file not found: {path} (set ELT_SOURCES_FILE)") from None
    except OSError as error:
        raise SourcesConfigError(f"cannot read the sources file {path}: {error.strerror or error}") from None
    if len(data) > MAX_SOURCES_FILE_BYTES:
        raise SourcesConfigError(f"{path}: larger than {MAX_SOURCES_FILE_BYTES} bytes; is it the sources file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise SourcesConfigError(
            f"{path}: line {line} is not UTF-8 (byte {error.start}); save the file as UTF-8"
        ) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader that also refuses aliases
    except SourcesConfigError as error:
        raise SourcesConfigError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        raise SourcesConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None


class _Entry:
    """Typed access to one mapping of the file, with errors that say where."""

    def __init__(self, where: str, data: object, env: Mapping[str, str]) -> None:
        if not isinstance(data, dict):
            raise SourcesConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
        self.where, self.data, self.env = where, dict(data), env

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.data.pop(key, default)
        if value is None:
            if required:
                raise SourcesConfigError(f"{self.where}: '{key}' is required")
            return None
        if not isinstance(value, str | int):
            raise SourcesConfigError(f"{self.where}: '{key}' must be text, got {type(value).__name__}")
        try:
            return _interpolate(str(value), self.env)
        except SourcesConfigError as error:
            raise SourcesConfigError(f"{self.where}: '{key}': {error}") from None

    def integer(self, key: str, default: int, *, minimum: int = 1) -> int:
        value = self.data.pop(key, default)
        if isinstance(value, str):  # e.g. ${KAFKA_TOPIC_PARTITIONS:-3}
            value = _interpolate(value, self.env)
            value = int(value) if value.isdigit() else value
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise SourcesConfigError(f"{self.where}: '{key}' must be a whole number >= {minimum}, got {value!r}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(key, default)
        if value not in choices:
            raise SourcesConfigError(f"{self.where}: '{key}' must be one of {', '.join(choices)}, got {value!r}")
        return value

    def mapping(self, key: str) -> _Entry:
        return _Entry(f"{self.where}.{key}", self.data.pop(key, {}) or {}, self.env)

    def done(self) -> None:
        if self.data:
            raise SourcesConfigError(f"{self.where}: unknown key(s): {', '.join(sorted(map(str, self.data)))}")


def _raw_table(entry: _Entry) -> str:
    table = entry.text("raw_table", required=True)
    assert table is not None
    schema, _, name = table.rpartition(".")
    if schema != "raw" or not _IDENTIFIER.match(name):
        raise SourcesConfigError(f"{entry.where}: 'raw_table' must be raw.<lowercase_identifier>, got {table!r}")
    return table


def _freshness(entry: _Entry) -> Freshness:
    data = entry.mapping("freshness")
    freshness = Freshness(data.integer("warn_after_hours", 24), data.integer("error_after_hours", 72))
    data.done()
    if freshness.error_after_hours < freshness.warn_after_hours:
        raise SourcesConfigError(f"{data.where}: error_after_hours must not be below warn_after_hours")
    return freshness


def _retention(entry: _Entry) -> Retention:
    data = entry.mapping("retention")
    raw_days = data.integer("raw_days", 0, minimum=1) if "raw_days" in data.data else None
    data.done()
    return Retention(raw_days)


def _dbt_options(entry: _Entry) -> DbtOptions:
    data = entry.mapping("dbt")
    options = DbtOptions(data.text("staged_model"), data.text("quarantine_source_name"))
    data.done()
    if options.staged_model is not None and not _IDENTIFIER.match(options.staged_model):
        raise SourcesConfigError(f"{data.where}: 'staged_model' must be a dbt model name, got {options.staged_model!r}")
    label = options.quarantine_source_name
    if label is not None and not re.fullmatch(r"[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*", label):
        raise SourcesConfigError(f"{data.where}: 'quarantine_source_name' must look like kafka.jobs, got {label!r}")
    return options


def _source(name: object, data: object, env: Mapping[str, str], where: str) -> Source:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise SourcesConfigError(f"{where}: source names are lowercase identifiers, got {name!r}")
    entry = _Entry(f"{where}.{name}", data, env)
    kind = entry.choice("kind", ("kafka", "file"), "")
    raw_table = _raw_table(entry)
    key_field = entry.text("key_field")
    description = entry.text("description", "") or ""
    freshness = _freshness(entry)
    dbt = _dbt_options(entry)
    retention = _retention(entry)
    source: Source
    if kind == "kafka":
        topic = entry.text("topic", required=True)
        assert topic is not None
        if not _TOPIC.fullmatch(topic) or topic in {".", ".."}:  # Kafka refuses both; fullmatch: no "x\n"
            raise SourcesConfigError(f"{entry.where}: 'topic' {topic!r} is not a valid Kafka topic name")
        source = KafkaSource(
            name=name,
            topic=topic,
            raw_table=raw_table,
            key_field=key_field,
            format=entry.choice("format", KAFKA_FORMATS, "json"),  # type: ignore[arg-type]
            partitions=entry.integer("partitions", 3),
            description=description,
            freshness=freshness,
            dbt=dbt,
            retention=retention,
        )
    else:
        path = entry.text("path", required=True)
        assert path is not None
        source = FileSource(
            name=name,
            path=path,
            raw_table=raw_table,
            key_field=key_field,
            format=entry.choice("format", FILE_FORMATS, "ndjson"),  # type: ignore[arg-type]
            load_mode=entry.choice("load_mode", LOAD_MODES, "delta"),  # type: ignore[arg-type]
            description=description,
            freshness=freshness,
            dbt=dbt,
            retention=retention,
        )
    entry.done()
    return source


def load_sources(path: Path | None = None, env: Mapping[str, str] | None = None) -> SourcesConfig:
    path = Path(path or os.environ.get("ELT_SOURCES_FILE") or DEFAULT_SOURCES_FILE)
    env = os.environ if env is None else env
    document = _read_document(path)
    root = _Entry(str(path), document, env)
    if root.integer("version", 0, minimum=0) != 1:
        raise SourcesConfigError(f"{path}: 'version: 1' is required")
    kafka = root.mapping("kafka")
    worker_mode = kafka.choice("workers", WORKER_MODES, "one_subscription")
    kafka.done()
    entries = root.data.pop("sources", None)
    if not isinstance(entries, dict) or not entries:
        raise SourcesConfigError(f"{path}: 'sources' must be a non-empty mapping of name -> source")
    root.done()
    sources = tuple(_source(name, data, env, f"{path}: sources") for name, data in entries.items())
    for attribute in ("raw_table", "topic"):
        seen: dict[str, str] = {}
        for source in sources:
            value = getattr(source, attribute, None)
            if value is None:
                continue
            if value in seen:
                raise SourcesConfigError(
                    f"{path}: sources {seen[value]!r} and {source.name!r} share the {attribute} {value!r}"
                )
            seen[value] = source.name
    return SourcesConfig(path, worker_mode, sources)
