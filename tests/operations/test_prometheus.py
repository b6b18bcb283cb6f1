"""Prometheus for real: the shipped alert rules pass their promtool unit tests, the scrape config is valid,
and a real Prometheus scrapes a running `extract serve` and stores its series."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import urllib.parse
from pathlib import Path

import pytest
import yaml

from extract.core.settings import Settings
from extract.local import embedded
from tests.conftest import ROOT
from tests.support.ops_helpers import http_get, send, start_cli, wait_for

PROMETHEUS_DIR = ROOT / "docker" / "prometheus"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:  # `make test` installs it (the prometheus target); elsewhere: apt-get install prometheus
        pytest.skip(f"{name} is not installed and could not be: apt-get install prometheus")
    return path


def test_alert_rules_pass_their_unit_tests_and_the_config_is_valid() -> None:
    promtool = tool("promtool")
    checked = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"], cwd=PROMETHEUS_DIR, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"], cwd=PROMETHEUS_DIR, capture_output=True, text=True, check=False
    )
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    # Every alert the rules define is exercised by the unit tests.
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    defined = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    exercised = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"]}
    assert defined == exercised


def query(base: str, promql: str) -> list[dict[str, object]]:
    code, body = http_get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    assert code == 200, body
    return json.loads(body)["data"]["result"]


@pytest.mark.slow
def test_a_real_prometheus_scrapes_serve(settings: Settings, tmp_path: Path) -> None:
    prometheus = tool("prometheus")
    service_port, prometheus_port = embedded.free_port(), embedded.free_port()
    send(settings, 30)
    service = start_cli(settings, "serve", "--dbt-interval", "0", env={"EXTRACT_METRICS_PORT": str(service_port)})
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    # The shipped config, with the running service in place of the compose hostnames and a fast scrape.
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    config["scrape_configs"] = [
        {**config["scrape_configs"][0], "static_configs": [{"targets": [f"127.0.0.1:{service_port}"]}]}
    ]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    server = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
        text=True,
    )
    base = f"http://127.0.0.1:{prometheus_port}"
    try:
        topic = settings.kafka_topic
        consumed = f'extract_messages_consumed_total{{topic="{topic}"}}'

        def stored_value() -> float | None:
            result = query(base, consumed)
            return float(result[0]["value"][1]) if result else None

        wait_for(lambda: stored_value() == 30, 90, "Prometheus to store 30 consumed messages", service)
        up = query(base, 'up{job="jobs-elt-extractor"}')
        assert [float(sample["value"][1]) for sample in up] == [1.0]
        assert query(base, 'extract_health_check_ok{check="broker"}')[0]["value"][1] == "1"
        assert query(base, "process_start_time_seconds")
        code, body = http_get(f"{base}/api/v1/rules")
        groups = json.loads(body)["data"]["groups"]
        assert code == 200 and len(groups[0]["rules"]) == 7
        assert all(rule["health"] == "ok" for rule in groups[0]["rules"]), groups
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        service.send_signal(signal.SIGTERM)
        service.wait(30)
    assert service.returncode == 0
