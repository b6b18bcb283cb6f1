"""`make docs-examples`: rewrite the example outputs and the screenshot of README.md and docs/ from a real run,
so no example is pasted by hand and none can drift from what the commands print.

Runs the demo (`python -m extract demo`), then `python -m extract status` and `report`, and puts their output
between `<!-- docs-examples:NAME -->` and `<!-- /docs-examples:NAME -->` markers; the report page is
screenshot by headless Chromium (as in tests/e2e/test_report.py) into docs/report.png."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# name -> the page holding its block
BLOCKS = {"demo": ROOT / "README.md", "status": ROOT / "docs" / "operations.md"}
SCREENSHOT = ROOT / "docs" / "report.png"


def block_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- docs-examples:{name} -->\n).*?(\n<!-- /docs-examples:{name} -->)", re.DOTALL)


def replace_block(text: str, name: str, output: str) -> str:
    """`text` with the block `name` holding `output` as a code block; every line right-stripped."""
    body = "\n".join(line.rstrip() for line in output.strip("\n").splitlines())
    pattern = block_pattern(name)
    if not pattern.search(text):
        raise ValueError(f"no <!-- docs-examples:{name} --> block")
    return pattern.sub(lambda match: f"{match.group(1)}```\n{body}\n```{match.group(2)}", text, count=1)


def _extract(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "extract", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"python -m extract {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def screenshot(page: Path, out: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("headless Chromium is needed: `make chromium` installs it")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                "--window-size=1200,1900",
                f"--screenshot={out}",
                page.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )


def main() -> int:
    outputs = {"demo": _extract("demo"), "status": _extract("status")}
    for name, page in BLOCKS.items():
        page.write_text(replace_block(page.read_text(), name, outputs[name]))
        print(f"wrote the {name} example in {page.relative_to(ROOT)}")
    report = ROOT / "reports" / "report.html"
    _extract("report", "--out", str(report))
    screenshot(report, SCREENSHOT)
    print(f"wrote {SCREENSHOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
