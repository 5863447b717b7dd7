"""The benchmark harness keeps working: ``python -m bench --smoke`` end to end.

A few seconds per scenario against this session's PostgreSQL and Redis. It asserts
only that every scenario produced numbers on every target, never what they are: the
numbers belong in docs/benchmarks.md, not in pass/fail.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from bench.results import CLOSED, OPEN, OWN_RATE, SCALE, WORKERS, Results, load
from bench.scenarios import SCENARIOS, SPEND_SCENARIOS
from bench.stores import DATABASE_URL_ENV, REDIS_URL_ENV

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke(
    tmp_path_factory: pytest.TempPathFactory, postgres_server_url: str, redis_server_url: str
) -> tuple[Results, str]:
    """One smoke run of the bench; its results and its report."""
    out = tmp_path_factory.mktemp("bench")
    env = {
        **os.environ,
        DATABASE_URL_ENV: postgres_server_url,
        REDIS_URL_ENV: redis_server_url,
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--output",
            str(out / "benchmarks.md"),
            "--json",
            str(out / "results.json"),
            "--workdir",
            str(out / "work"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return load(out / "results.json"), (out / "benchmarks.md").read_text()


def _has_numbers(results: Results, section: str, scenario: str, target: str) -> None:
    cell = results.select(section, scenario, target)
    assert cell, f"no {section} measurement of {scenario} on {target}"
    for measurement in cell:
        assert measurement.load.requests > 0, (section, scenario, target)
        assert all(not math.isnan(v) for v in measurement.load.latency_ms.values())
        assert set(measurement.load.latency_ms) == {"p50", "p90", "p99", "p99.9"}
        assert "proxy" in measurement.cpu_seconds or target == "direct"


def test_every_scenario_ran_closed_loop_on_every_target(smoke: tuple[Results, str]) -> None:
    results, _ = smoke
    assert {"direct", "passthrough", "walletgate"} <= set(results.targets)
    for scenario in SCENARIOS:
        for target in ("direct", "nginx", "passthrough", "walletgate"):
            if target in results.targets:
                _has_numbers(results, CLOSED, scenario.name, target)


def test_every_scenario_ran_open_loop(smoke: tuple[Results, str]) -> None:
    results, _ = smoke
    for scenario in SCENARIOS:
        _has_numbers(results, OPEN, scenario.name, "passthrough")
        own = results.select(OPEN, scenario.name, "walletgate", OWN_RATE)
        assert own and own[0].load.requests > 0, scenario.name


def test_scale_deployments_and_workers_produced_numbers(smoke: tuple[Results, str]) -> None:
    results, _ = smoke
    deployments = {m.target for m in results.measurements if m.section == SCALE}
    assert len(deployments) == 3  # two wallet counts, and one with a filled audit table
    for scenario in SPEND_SCENARIOS:
        for target in deployments:
            _has_numbers(results, SCALE, scenario.name, target)
    workers = {m.target for m in results.measurements if m.section == WORKERS}
    assert len(workers) == 2
    assert set(results.decisions) == {"1", "100"}  # the smoke run's wallet counts
    for costs in results.decisions.values():
        assert set(costs) == {s.name for s in SPEND_SCENARIOS}


def test_trips_to_the_stores_were_counted(smoke: tuple[Results, str]) -> None:
    results, _ = smoke
    assert set(results.anatomy) == {s.name for s in SCENARIOS}
    for counts in results.anatomy.values():
        assert set(counts) >= {"redis_round_trips", "postgres_transactions"}


def test_the_profile_and_the_report_were_written(smoke: tuple[Results, str]) -> None:
    results, text = smoke
    assert results.profile["samples"] > 0
    assert results.profile["components"]
    assert results.read_profile["samples"] > 0
    assert text.startswith(report.BEGIN) and text.rstrip().endswith(report.END)
    for heading in ("### Targets", "### Throughput", "### Latency at a fixed rate", "### CPU"):
        assert heading in text
    assert results.machine["cores"] and results.machine["postgresql"]
