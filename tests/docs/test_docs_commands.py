"""The docs are a promise: every `make` target and every `python -m extract` command line shown in README.md
and docs/*.md exists and parses its flags, every make target with `##` help is documented, nothing links
outside the repository, and the example blocks `make docs-examples` rewrites are in place."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from extract.cli import build_parser
from extract.core.settings import Settings
from tests.conftest import env_for
from tests.support.docs_examples import BLOCKS, block_pattern, replace_block

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MAKEFILE = (ROOT / "Makefile").read_text()
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")
SHELL_END = re.compile(r"\s(?:\||;|&&|>|2>|#)\s.*$|\s\\\|\s.*$")


def snippets(text: str) -> list[str]:
    """Every line of a fenced block and every inline code span: where the docs show commands."""
    lines = [line for block in FENCE.findall(text) for line in block.splitlines()]
    return lines + INLINE.findall(FENCE.sub("", text))


def make_targets() -> set[str]:
    return set(re.findall(r"(?m)^([a-z][a-z-]*):(?!=)", MAKEFILE))


def help_targets() -> set[str]:
    return set(re.findall(r"(?m)^([a-z][a-z-]*):.*## ", MAKEFILE))


def make_invocations() -> list[tuple[str, str]]:
    """(page, the `make ...` command) for every make command shown."""
    found = []
    for page in PAGES:
        for snippet in snippets(page.read_text()):
            for match in re.finditer(r"(?:^|[\s(])make ((?:[A-Za-z0-9_-]+(?:=\S*)?\s*)+)", snippet):
                found.append((page.name, "make " + SHELL_END.sub("", match.group(1)).strip()))
    return found


def extract_invocations() -> list[tuple[str, str]]:
    """(page, the arguments after `python -m extract`) for every command line shown, and the rows of the
    CLI tables (`| command | does |`), whose first column is a command without the prefix."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for snippet in snippets(text):
            for match in re.finditer(r"python -m extract((?:\s+[^\s|;&>#`)\"─]+)*)", snippet):
                found.append((page.name, SHELL_END.sub("", match.group(1)).strip()))
        for table in re.findall(r"(?ms)^\| command \| does \|\n\|[-|]+\|\n(.*?)(?:\n\n|\Z)", text):
            for row in table.splitlines():
                first = row.split(" | ")[0].lstrip("| ")
                found += [(page.name, command) for command in INLINE.findall(first)]
    return found


def as_argv(command: str) -> list[str]:
    """A documented command line as arguments: optional brackets dropped, `a|b` alternatives reduced to the
    first, UPPER-CASE placeholders (FILE, N, SOURCE...) given a value."""
    command = command.replace("\\|", "|")
    command = re.sub(r"\[([^\[\]|]*)\|[^\[\]]*\]", r"\1", command)  # [--write | --check]: the first
    command = command.replace("[", " ").replace("]", " ")
    argv = []
    for token in shlex.split(command):
        word = token.split("|")[0] if "|" in token and not token.startswith("-") else token
        argv.append("1" if re.fullmatch(r"[A-Z][A-Z_]*(\.\.\.)?|[A-Z]+\.[a-z]+", word) else word)
    return argv


def test_the_docs_show_commands_at_all() -> None:
    # Guards the parsers below: a regex that finds nothing would make every other test pass vacuously.
    assert len(make_invocations()) > 30
    assert len(extract_invocations()) > 15


@pytest.mark.parametrize(("page", "command"), sorted(set(make_invocations())))
def test_every_make_command_shown_exists(page: str, command: str) -> None:
    targets = make_targets()
    words = command.split()[1:]
    for word in words:
        if "=" in word:
            variable = word.split("=", 1)[0]
            known = re.search(rf"\b{variable}\b", MAKEFILE) or any(
                variable in path.read_text() for path in (ROOT / "bench").rglob("*.py")
            )
            assert known, f"{page}: `{command}` sets {variable}, which neither the Makefile nor bench reads"
        else:
            assert word in targets, f"{page}: `{command}`: no make target {word!r}"


@pytest.mark.parametrize(("page", "command"), sorted(set(extract_invocations())))
def test_every_extract_command_shown_parses(page: str, command: str) -> None:
    argv = as_argv(command)
    try:
        build_parser().parse_args(argv)
    except SystemExit as stop:
        assert stop.code == 0, f"{page}: `python -m extract {command}` does not parse (argv {argv})"


def test_every_make_target_with_help_is_documented() -> None:
    shown = {word for _, command in make_invocations() for word in command.split()[1:] if "=" not in word}
    missing = sorted(help_targets() - shown)
    assert not missing, f"make targets with ## help that README.md and docs/ never show: {missing}"


def test_every_cli_command_is_documented() -> None:
    shown = {as_argv(command)[0] for _, command in extract_invocations() if as_argv(command)}
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # argparse has no public API for it
    assert not commands - shown, f"CLI commands README.md and docs/ never show: {sorted(commands - shown)}"


def test_nothing_links_outside_the_repository() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)]+)\)", page.read_text()):
            if target.startswith(("#", "http://", "https://")):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.is_relative_to(ROOT), f"{page.name} links outside the repository: {target}"
            assert path.exists(), f"{page.name} links to a missing file: {target}"
        assert "../shared" not in page.read_text(), f"{page.name} points outside the repository"


def test_the_readme_is_a_front_page() -> None:
    assert (ROOT / "README.md").stat().st_size < 12_000


def test_example_blocks_are_in_place_and_rewritable() -> None:
    for name, page in BLOCKS.items():
        text = page.read_text()
        assert block_pattern(name).search(text), f"{page.name} lost its docs-examples:{name} block"
        rewritten = replace_block(text, name, "line one   \nline two")
        assert "```\nline one\nline two\n```" in rewritten
        assert rewritten.count("docs-examples:") == text.count("docs-examples:")


def test_make_status_json_pipes_into_a_json_parser(settings: Settings) -> None:
    """`make status STATUS_ARGS=--json | jq`: stdout must be the JSON alone, no echo of the command before it."""
    venv = Path(sys.prefix)
    if not (venv / ".installed").exists():
        pytest.skip("make's targets need the virtualenv `make setup` made; this one was not")
    env = env_for(settings) | {"MAKEFLAGS": "", "PATH": os.environ["PATH"]}
    result = subprocess.run(
        ["make", "--no-print-directory", "status", "STATUS_ARGS=--json", f"VENV={venv}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), dict)
