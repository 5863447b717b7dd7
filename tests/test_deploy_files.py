"""The monitoring files in deploy/ load, and name only what walletgate really exports.

Every PromQL expression of the Grafana dashboard and of the alert rules is read for
metric names (``walletgate_…``) and label matchers: each metric must be one of the
series walletgate/proxy/metrics.py exports (a counter's ``_total``, a histogram's
``_bucket``/``_sum``/``_count``, a gauge's name), each label one it has, and each
``reason`` value a real refusal reason. Also: the README links only inside the
repository, and every file it links exists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from walletgate.policies.decision import Reason
from walletgate.proxy.metrics import new_metrics

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "walletgate-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "walletgate-alerts.yml"
SCRAPE = ROOT / "deploy" / "prometheus" / "prometheus.yml"

_METRIC = re.compile(r"\b(walletgate_[a-z_]+)\b(\{[^}]*\})?")
_MATCHER = re.compile(r'([a-z_]+)\s*(?:=~|!~|!=|=)\s*"([^"]*)"')
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported() -> dict[str, set[str]]:
    """Every series name walletgate exports, with its label names."""
    out: dict[str, set[str]] = {}
    metrics = new_metrics()
    for family in metrics.registry.collect():
        collector = metrics.registry._names_to_collectors[family.name]  # the labels
        labels = set(collector._labelnames)
        for suffix in _SUFFIXES[family.type]:
            out[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return out


def dashboard_expressions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from dashboard_expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_expressions(item)


def alert_expressions() -> list[str]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]


def check(expr: str, known: dict[str, set[str]]) -> int:
    """Raise AssertionError for a metric, label or reason walletgate does not have;
    return how many walletgate metrics ``expr`` names."""
    found = 0
    for name, matchers in _METRIC.findall(expr):
        assert name in known, f"{name} is not a metric walletgate exports (in {expr!r})"
        found += 1
        for label, value in _MATCHER.findall(matchers or ""):
            assert label in known[name], f"{name} has no label {label!r} (in {expr!r})"
            if label == "reason":
                assert value in {str(r) for r in Reason}, f"no refusal reason {value!r}"
    return found


def test_the_dashboard_loads_and_every_expression_names_real_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["panels"]
    expressions = list(dashboard_expressions(dashboard))
    assert len(expressions) >= len(dashboard["panels"])
    known = exported()
    for expr in expressions:
        assert check(expr, known) >= 1, f"no walletgate metric in {expr!r}"
    used = {name for expr in expressions for name, _ in _METRIC.findall(expr)}
    assert len(used) >= 8  # the dashboard covers most of what is exported


def test_the_alert_rules_cover_what_the_issue_asks_for_with_real_metrics() -> None:
    known = exported()
    expressions = alert_expressions()
    for expr in expressions:
        check(expr, known)
    text = "\n".join(expressions)
    assert 'reason="unavailable"' in text  # store errors
    assert 'kind="unknown"' in text  # unknown outcomes
    assert "walletgate_audit_backlog" in text  # audit-writer lag
    assert "sum by (reason)" in text  # refusals by reason


def test_the_scrape_config_loads_the_alert_rules() -> None:
    config = yaml.safe_load(SCRAPE.read_text())
    assert ALERTS.name in config["rule_files"]
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"


@pytest.mark.parametrize("expr", ["walletgate_nope_total", 'walletgate_calls_total{reason="x"}'])
def test_the_check_catches_a_wrong_name_or_label(expr: str) -> None:
    with pytest.raises(AssertionError):
        check(expr, exported())


def test_readme_links_stay_inside_the_repository() -> None:
    for page in (ROOT / "README.md", ROOT / "docs" / "production.md"):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"^[a-z]+://", target):
                continue
            resolved = (page.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), f"{page.name} links outside: {target}"
            assert resolved.exists(), f"{page.name} links a missing file: {target}"
