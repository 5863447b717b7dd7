"""The pure parts of the benchmark harness: what it sends, measures and reports.

The harness as a whole is exercised by tests/test_bench_smoke.py; these check that the
pieces it is built from say what they claim: the policy set judges the bench's spends
the way the scenarios expect, CPU and profiles are read correctly, the report keeps
hand-written text.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import httptools
import pytest

from bench import profile, report, report_verdicts, stats
from bench.config import BenchConfig
from bench.loadgen import Load, parse_wrk
from bench.openloop import build_request
from bench.policyset import (
    BENCH_AGENT,
    Fleet,
    bench_wallet,
    policy_document,
    wallet_address,
)
from bench.procstat import parse_stat
from bench.results import CLOSED, OPEN, OWN_RATE, WORKERS, Measurement, Results, TargetInfo
from bench.scenarios import (
    ALLOWED_SPEND,
    BATCH,
    REFUSED_SPEND,
    SCENARIOS,
    SPEND_SCENARIOS,
    Scenario,
)
from bench.stub_backend import FIXED_TX_HASH, fixed_results, respond
from walletgate.config.documents import compile_document
from walletgate.intents import MethodClass
from walletgate.policies.decision import Outcome
from walletgate.policies.evaluator import evaluate
from walletgate.policies.request import SpendRequest
from walletgate.proxy.evm.decode import decode_call
from walletgate.proxy.evm.methods import classify
from walletgate.proxy.jsonrpc import parse_body

CHAIN = 31337
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("wallets", [1, 25, 1000])
def test_policy_document_compiles_with_every_wallet(wallets: int) -> None:
    policies = compile_document(policy_document(wallets, CHAIN), 1)
    fleet = Fleet(wallets)
    assert len(policies.wallets) == wallets
    assert len(policies.agents) == fleet.agents
    assert len(policies.owners) == fleet.owners
    assert len({w.address for w in policies.wallets.values()}) == wallets


def test_policy_document_refuses_an_empty_fleet() -> None:
    with pytest.raises(ValueError, match="at least one wallet"):
        policy_document(0, CHAIN)


@pytest.mark.parametrize("wallets", [1, 1000])
def test_the_bench_spends_are_judged_as_their_scenarios_expect(wallets: int) -> None:
    policies = compile_document(policy_document(wallets, CHAIN), 1)
    assert policies.wallet_by_address(CHAIN, bench_wallet()) is not None

    def judge(body: dict[str, object]) -> tuple[Outcome, str, int]:
        decoded = decode_call(str(body["method"]), body["params"], chain_id=CHAIN)
        decision = evaluate(SpendRequest(BENCH_AGENT, decoded, CHAIN), policies, NOW)
        return decision.outcome, str(decision.reason), len(decision.claims)

    outcome, _, claims = judge(ALLOWED_SPEND.body)
    assert outcome is Outcome.ALLOW
    assert claims >= 3  # wallet and owner caps, the agent's transaction rate: counters run
    outcome, reason, _ = judge(REFUSED_SPEND.body)
    assert (outcome, reason) == (Outcome.DENY, "per_tx_cap_exceeded")


def test_wallet_addresses_are_canonical_and_distinct() -> None:
    addresses = [wallet_address(i) for i in (0, 1, 99_999)]
    assert all(a == a.lower() and len(a) == 42 for a in addresses)
    assert len(set(addresses)) == 3


def test_stub_answers_each_call_of_a_batch_with_its_id() -> None:
    answer = json.loads(respond(json.dumps(BATCH.body).encode(), fixed_results(CHAIN)))
    assert [item["id"] for item in answer] == [call["id"] for call in BATCH.body]
    assert answer[0]["result"] == hex(CHAIN)  # eth_chainId: walletgate checks it at start
    assert BATCH.check_forwarded(answer) is None


def test_stub_answers_spends_with_the_fixed_hash_and_unknown_methods_with_errors() -> None:
    results = fixed_results(CHAIN)
    spend = json.loads(respond(json.dumps(ALLOWED_SPEND.body).encode(), results))
    assert spend["result"] == FIXED_TX_HASH
    unknown = json.loads(respond(b'{"jsonrpc":"2.0","id":7,"method":"x_y","params":[]}', results))
    assert (unknown["id"], unknown["error"]["code"]) == (7, -32601)
    assert json.loads(respond(b"{nope", results))["error"]["code"] == -32700


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_every_scenario_is_well_formed_json_rpc_for_walletgate(scenario: Scenario) -> None:
    parsed = parse_body(json.dumps(scenario.body).encode())
    assert parsed.error is None
    assert parsed.items and all(item.error is None for item in parsed.items)
    expected = MethodClass.SPENDING if scenario in SPEND_SCENARIOS else MethodClass.READ
    assert {classify(item.call.method) for item in parsed.items if item.call} == {expected}


def test_stat_fields_are_counted_after_the_command_name() -> None:
    # A command name with spaces and parentheses must not shift the fields.
    fields = ["S", *map(str, range(4, 14)), "250", "50", "30", "20", *(["0"] * 30)]
    text = "4242 (odd (name) x) " + " ".join(fields)
    own, reaped = parse_stat(text, ticks=100)
    assert (own, reaped) == (3.0, 0.5)


def test_percentiles_use_the_nearest_rank() -> None:
    values = list(range(1, 1001))
    summary = stats.latency_summary(values)
    assert summary == {"p50": 500.0, "p90": 900.0, "p99": 990.0, "p99.9": 999.0}
    assert stats.percentile([], 50) != stats.percentile([], 50)  # NaN when empty
    assert stats.ratio(3.0, 0.0) != stats.ratio(3.0, 0.0)


def test_wrk_summary_line_is_read_in_milliseconds() -> None:
    line = json.dumps(
        {
            "requests": 1000,
            "duration_us": 2_000_000,
            "bytes": 1,
            "errors": {"connect": 0, "read": 1, "write": 0, "status": 2, "timeout": 0},
            "latency_us": {"p50": 1500, "p90": 2000, "p99": 4000, "p99.9": 9000, "mean": 1.0},
        }
    )
    load = parse_wrk("Running 2s test\n" + line + "\n")
    assert (load.requests, load.seconds, load.errors, load.throughput) == (1000, 2.0, 3, 500.0)
    assert load.latency_ms == {"p50": 1.5, "p90": 2.0, "p99": 4.0, "p99.9": 9.0}


def test_open_loop_requests_are_valid_keep_alive_http() -> None:
    raw = build_request("http://127.0.0.1:8545/t/tok", b'{"a":1}', {"X-Test": "1"})
    seen: dict[str, object] = {}

    class Sink:
        def on_url(self, url: bytes) -> None:
            seen["url"] = url

        def on_body(self, body: bytes) -> None:
            seen["body"] = body

    parser = httptools.HttpRequestParser(Sink())
    parser.feed_data(raw)
    assert seen == {"url": b"/t/tok", "body": b'{"a":1}'}
    assert parser.get_method() == b"POST" and parser.should_keep_alive()


def test_profile_charges_socket_writes_to_their_caller() -> None:
    text = (
        "main (walletgate/cli.py:1);_run (asyncio/events.py:80);"
        "reserve (walletgate/storage/counters.py:9);execute_command (redis/asyncio/client.py:3);"
        "write (asyncio/selector_events.py:1057) 7\n"
        "main (walletgate/cli.py:1);evaluate (walletgate/policies/evaluator.py:5) 2\n"
        "main (walletgate/cli.py:1);_run_once (asyncio/base_events.py:1) 1\n"
        "odd frame\nname (x.py:1) 1\n"
    )
    summary = profile.summarize(profile.parse_collapsed(text))
    assert summary.samples == 11
    assert summary.components["Redis round trips (counters, caches)"] == 7
    assert summary.components["policy evaluation"] == 2
    functions = dict(profile.walletgate_functions(summary, 5))
    assert functions["reserve (walletgate/storage/counters.py)"] == 7


def test_a_profile_with_a_frame_name_that_is_not_utf8_is_still_read(tmp_path: Path) -> None:
    """py-spy once wrote a frame sampled mid-change with bytes that are not UTF-8; the
    full bench run then died at its last stage."""
    output = tmp_path / "profile.txt"
    output.write_bytes(
        b"main (walletgate/cli.py:1);evaluate (walletgate/policies/evaluator.py:5) 2\n"
        b"main (walletgate/cli.py:1);\xf1\x9e\x8e\x80\x02\x00\xf6 (\x00:-1054) 1\n"
    )
    summary = profile.summarize(profile.parse_collapsed(profile.read_collapsed(output)))
    assert summary.samples == 3
    assert summary.components["policy evaluation"] == 2


def test_report_keeps_the_text_around_the_generated_part() -> None:
    generated = f"{report.BEGIN}\nnew numbers\n{report.END}\n"
    old = f"{report.BEGIN}\nold numbers\n{report.END}\n"
    existing = f"# Benchmarks\n\nintro\n\n{old}\n## Analysis\n"
    merged = report.merge(existing, generated)
    assert merged == f"# Benchmarks\n\nintro\n\n{generated}\n## Analysis\n"
    assert report.merge("# Title\n", generated) == f"# Title\n\n{generated}"


def _measured(
    section: str,
    scenario: str,
    target: str,
    requests: int,
    cpu: dict[str, float] | None = None,
    *,
    p99: float = 1.0,
    basis: str | None = None,
) -> Measurement:
    latency = {"p50": p99 / 2, "p90": p99, "p99": p99, "p99.9": p99}
    load = Load(requests, 1.0, 0, latency)
    return Measurement(
        section, scenario, target, 0, load, cpu or {}, 100.0 if basis else None, basis
    )


def test_the_targets_table_is_issue_13s_with_this_runs_figures() -> None:
    groups = ("proxy", "backend", "postgres", "redis")
    results = Results(
        config=asdict(BenchConfig()),
        machine={},
        targets={
            "direct": TargetInfo("direct", "stub", ("backend",)),
            "passthrough": TargetInfo("passthrough", "pass-through", ("proxy", "backend")),
            "walletgate": TargetInfo("walletgate", "walletgate", groups),
            "w1000-x2": TargetInfo("w1000-x2", "walletgate, 2 workers", groups),
        },
        scenarios={s.name: s.title for s in SCENARIOS},
    )
    rates = {"reads": 900, "balance": 1400, "batch10": 1000, "spend_allowed": 200}
    for scenario, ours in rates.items():
        results.measurements += [
            _measured(CLOSED, scenario, "passthrough", 1000, {"proxy": 0.2, "backend": 0.05}),
            _measured(
                CLOSED,
                scenario,
                "walletgate",
                ours,
                {"proxy": 0.15, "backend": 0.01, "postgres": 0.02, "redis": 0.02},
            ),
        ]
    for scenario, added in (("reads", 0.5), ("spend_allowed", 3.5)):
        results.measurements += [
            _measured(OPEN, scenario, "direct", 100, p99=1.0, basis=OWN_RATE),
            _measured(OPEN, scenario, "walletgate", 100, p99=1.0 + added, basis=OWN_RATE),
        ]
    results.measurements += [
        _measured(WORKERS, "reads", "walletgate", 1000),
        _measured(WORKERS, "reads", "w1000-x2", 1800),
    ]
    table = {v.measure: (v.target, v.result, v.met) for v in report_verdicts.verdicts(results)}
    assert table["reads ÷ pass-through"] == ("≥ 0.85×", "0.90× (900/s ÷ 1,000/s)", True)
    assert table["cached eth_getBalance ÷ pass-through"][1:] == ("1.40× (1,400/s ÷ 1,000/s)", False)
    assert table["batches of 10 reads ÷ pass-through"][0::2] == ("≥ 1×", True)
    assert table["allowed spends ÷ pass-through"][0::2] == ("≥ 0.3×", False)
    cpu = next(v for k, v in table.items() if k.startswith("CPU per allowed spend"))
    # (0.15 + 0.01 + 0.02 + 0.02) s / 200 = 1,000 µs against 0.25 s / 1,000 = 250 µs.
    assert cpu == ("≤ 4×", "4.00× (1,000 ÷ 250 µs)", True)
    p99 = "p99 added at a quarter of walletgate's own saturation"
    assert table[f"{p99}, reads"] == ("≤ +1 ms", "+0.50 ms", True)
    assert table[f"{p99}, allowed spends"] == ("≤ +3 ms", "+3.50 ms", False)
    assert table["`--workers 2` over one process, reads"] == (
        "≥ 1.7×",
        "1.80× (1,800/s ÷ 1,000/s)",
        True,
    )
    text = report.render(results)
    assert "| reads ÷ pass-through | ≥ 0.85× | 0.90× (900/s ÷ 1,000/s) | yes |" in text
