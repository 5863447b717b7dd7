"""What the bench sends: one JSON-RPC request body per scenario, and how to check the
answer. Pure: the bodies are plain data, the checks look at one decoded response."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.policyset import ALLOWED_VALUE_WEI, COUNTERPARTY, REFUSED_VALUE_WEI, bench_wallet
from bench.stub_backend import FIXED_BALANCE, FIXED_BLOCK, FIXED_TX_HASH

Check = Callable[[Any], str | None]  # the problem with a response, or None when right


def _call(method: str, params: list[Any], call_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "method": method, "params": params}


def _spend(value: int) -> dict[str, Any]:
    return _call(
        "eth_sendTransaction",
        [
            {
                "from": bench_wallet(),
                "to": COUNTERPARTY,
                "value": hex(value),
                "gas": hex(21000),
                "maxFeePerGas": hex(30 * 10**9),
                "maxPriorityFeePerGas": hex(10**9),
            }
        ],
    )


def _result_is(expected: str) -> Check:
    def check(response: Any) -> str | None:
        if isinstance(response, dict) and response.get("result") == expected:
            return None
        return f"expected result {expected!r}, got {response!r}"

    return check


def _refused_for(reason: str) -> Check:
    def check(response: Any) -> str | None:
        error = response.get("error") if isinstance(response, dict) else None
        data = error.get("data") if isinstance(error, dict) else None
        if isinstance(data, dict) and data.get("reason") == reason:
            return None
        return f"expected a refusal for {reason!r}, got {response!r}"

    return check


#: The ten calls of the batch scenario: the reads an agent makes before it spends.
BATCH_METHODS: tuple[tuple[str, list[Any]], ...] = (
    ("eth_chainId", []),
    ("eth_blockNumber", []),
    ("eth_getBalance", [bench_wallet(), "latest"]),
    ("eth_getTransactionCount", [bench_wallet(), "pending"]),
    ("eth_gasPrice", []),
    ("eth_maxPriorityFeePerGas", []),
    ("eth_estimateGas", [{"from": bench_wallet(), "to": COUNTERPARTY, "value": "0x1"}]),
    ("eth_call", [{"to": COUNTERPARTY, "data": "0x"}, "latest"]),
    ("eth_getCode", [COUNTERPARTY, "latest"]),
    ("eth_blockNumber", []),
)


def _batch_ok(response: Any) -> str | None:
    if not isinstance(response, list) or len(response) != len(BATCH_METHODS):
        return f"expected {len(BATCH_METHODS)} answers, got {response!r}"
    failed = [item for item in response if not isinstance(item, dict) or "result" not in item]
    return f"batch elements failed: {failed!r}" if failed else None


@dataclass(frozen=True)
class Scenario:
    """One kind of request, and the checks a target's answer must pass: walletgate's
    (it may refuse) and a forwarding target's (the stub accepts everything)."""

    name: str
    title: str
    body: Any
    check_walletgate: Check
    check_forwarded: Check


READS = Scenario(
    "reads",
    "reads (eth_blockNumber)",
    _call("eth_blockNumber", []),
    _result_is(FIXED_BLOCK),
    _result_is(FIXED_BLOCK),
)
BALANCE = Scenario(
    "balance",
    "eth_getBalance, cache hits",
    _call("eth_getBalance", [bench_wallet(), "latest"]),
    _result_is(FIXED_BALANCE),
    _result_is(FIXED_BALANCE),
)
ALLOWED_SPEND = Scenario(
    "spend_allowed",
    "allowed spends (eth_sendTransaction)",
    _spend(ALLOWED_VALUE_WEI),
    _result_is(FIXED_TX_HASH),
    _result_is(FIXED_TX_HASH),
)
REFUSED_SPEND = Scenario(
    "spend_refused",
    "refused spends (over the per-transaction cap)",
    _spend(REFUSED_VALUE_WEI),
    _refused_for("per_tx_cap_exceeded"),
    _result_is(FIXED_TX_HASH),
)
BATCH = Scenario(
    "batch10",
    "JSON-RPC batches of 10 reads",
    [_call(method, params, i) for i, (method, params) in enumerate(BATCH_METHODS, 1)],
    _batch_ok,
    _batch_ok,
)

SCENARIOS = (READS, BALANCE, ALLOWED_SPEND, REFUSED_SPEND, BATCH)
SPEND_SCENARIOS = (ALLOWED_SPEND, REFUSED_SPEND)
