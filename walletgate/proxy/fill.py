"""Filling what a spend leaves to the backend, before it is judged (SPEC §3).

A transaction object without ``gas`` or without a fee per gas lets the backend choose
what it costs, after walletgate judged it: the decoders refuse such an object
(:class:`~walletgate.proxy.evm.fees.MissingFeeFields`). Here, in the shell, walletgate
asks the backend for the same figures a wallet would use and fills them in itself:

- ``gas``: ``eth_estimateGas`` with the request's own fields (its fee fields left out:
  the estimate does not depend on them, and some nodes refuse them there);
- EIP-1559 fees (the chain's latest block has a ``baseFeePerGas``):
  ``maxPriorityFeePerGas`` = the request's, else ``eth_maxPriorityFeePerGas``, and
  ``maxFeePerGas`` = 2 x base fee + priority fee (the usual wallet default: room for
  the base fee to double);
- a legacy ``gasPrice`` (``eth_gasPrice``) when the request is of type 0x0 / 0x1 or the
  chain has no base fee.

A fee per gas is never filled above the lowest ``max_fee_per_gas`` of the wallet's fee
caps. The filled object is what is judged, stored in the audit row and forwarded. The
nonce is left to the backend (see docs/policies.md). ``wallet_sendCalls`` carries no fee
fields at all (the wallet picks them): each call's gas is estimated and counted at the
fee per gas filled as above, an estimate that is judged but not forwarded. When the
backend cannot answer, the spend is refused as unavailable, never forwarded unfilled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from walletgate.intents import DecodedRequest
from walletgate.policies.fee_rules import fee_per_gas_ceiling
from walletgate.policies.model import PolicySet
from walletgate.proxy.backend import BackendClient, Outcome
from walletgate.proxy.evm.decode import decode_call
from walletgate.proxy.evm.fees import FEE_PER_GAS_FIELDS, CallsFeeQuote, MissingFeeFields

#: Fields left out of an ``eth_estimateGas`` request: the fees (see the module docstring).
_NOT_ESTIMATED = frozenset({"gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas"})
_LEGACY_TYPES = frozenset({"0x0", "0x1"})


class FillUnavailable(Exception):
    """The backend could not quote gas or fees: the spend is refused, not forwarded."""


@dataclass(frozen=True, slots=True)
class FeeQuote:
    """The backend's fee figures: the latest base fee (``None`` on a chain without
    EIP-1559), its suggested priority fee and its legacy gas price, all in wei."""

    base_fee: int | None
    priority_fee: int
    gas_price: int


@dataclass(frozen=True, slots=True)
class Filled:
    """A decoded spend and the params it was decoded from (filled where needed)."""

    params: Any
    decoded: DecodedRequest


def default_fee_per_gas(quote: FeeQuote, ceiling: int | None, *, tip: int | None = None) -> int:
    """The fee per gas walletgate fills: 2 x base fee + priority fee on an EIP-1559 chain,
    else the gas price; never above ``ceiling``."""
    if quote.base_fee is None:
        fee = quote.gas_price
    else:
        fee = 2 * quote.base_fee + (quote.priority_fee if tip is None else tip)
    return fee if ceiling is None else min(fee, ceiling)


def filled_transaction(
    tx: Mapping[str, Any], *, gas: int | None, quote: FeeQuote, ceiling: int | None
) -> dict[str, Any]:
    """``tx`` with ``gas`` (when it had none) and its fees filled in from ``quote``.

    Pure. Fields the request gave are kept as they are (the judge decides on them).
    """
    out = dict(tx)
    if "gas" not in tx and gas is not None:
        out["gas"] = hex(gas)
    if any(field in tx for field in FEE_PER_GAS_FIELDS):
        return out
    legacy = tx.get("type") in _LEGACY_TYPES or (
        quote.base_fee is None and "maxPriorityFeePerGas" not in tx
    )
    if legacy:
        out["gasPrice"] = hex(default_fee_per_gas(FeeQuote(None, 0, quote.gas_price), ceiling))
        return out
    given_tip = tx.get("maxPriorityFeePerGas")
    tip = int(given_tip, 16) if isinstance(given_tip, str) else None
    # No base fee but a priority fee given: the gas price is the best guess of the base.
    base = quote.base_fee if quote.base_fee is not None else quote.gas_price
    max_fee = default_fee_per_gas(FeeQuote(base, quote.priority_fee, 0), ceiling, tip=tip)
    out["maxFeePerGas"] = hex(max_fee)
    if tip is None:
        out["maxPriorityFeePerGas"] = hex(min(quote.priority_fee, max_fee))
    return out


async def decode_with_fill(
    backend: BackendClient, policies: PolicySet, method: str, params: Any
) -> Filled:
    """Decode a spend, filling first what it leaves to the backend (module docstring).

    Raises ``DecodeError`` for a malformed request (before any backend call) and
    :class:`FillUnavailable` when the backend cannot quote.
    """
    chain_id = backend.backend.chain_id
    try:
        return Filled(params, decode_call(method, params, chain_id=chain_id))
    except MissingFeeFields as missing:
        ceiling = _ceiling(policies, chain_id, missing.wallet)
        if method == "wallet_sendCalls":
            request = params[0]
            calls = [_call_estimate(request, call) for call in request["calls"]]
            estimates, quote = await _quote(backend, calls)
            fee_quote = CallsFeeQuote(tuple(estimates), default_fee_per_gas(quote, ceiling))
            decoded = decode_call(method, params, chain_id=chain_id, calls_fee_quote=fee_quote)
            return Filled(params, decoded)
        tx = params[0]
        wanted = [] if "gas" in tx else [_estimate_of(tx)]
        estimates, quote = await _quote(backend, wanted)
        filled = [
            filled_transaction(
                tx, gas=estimates[0] if estimates else None, quote=quote, ceiling=ceiling
            )
        ]
        # Decoded again: the filled object is judged like any other (and must be complete).
        return Filled(filled, decode_call(method, filled, chain_id=chain_id))


def _ceiling(policies: PolicySet, chain_id: int, address: str) -> int | None:
    wallet = policies.wallet_by_address(chain_id, address)
    if wallet is None:
        return None  # refused by the evaluator anyway
    return fee_per_gas_ceiling([rule for p in policies.policies_for(wallet) for rule in p.rules])


def _estimate_of(tx: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in tx.items() if key not in _NOT_ESTIMATED}


def _call_estimate(request: Mapping[str, Any], call: Mapping[str, Any]) -> dict[str, Any]:
    estimate = {"from": request["from"]}
    estimate.update({key: call[key] for key in ("to", "value", "data") if key in call})
    return estimate


async def _quote(
    backend: BackendClient, estimates: Sequence[Mapping[str, Any]]
) -> tuple[list[int], FeeQuote]:
    """Gas estimates for ``estimates`` and the fee figures, in one batch when the backend
    answers batches."""
    calls: list[tuple[str, list[Any]]] = [("eth_estimateGas", [dict(tx)]) for tx in estimates]
    calls += [
        ("eth_getBlockByNumber", ["latest", False]),
        ("eth_gasPrice", []),
        ("eth_maxPriorityFeePerGas", []),
    ]
    answers = await _ask(backend, calls)
    count = len(estimates)
    gas = [_quantity(answer, "eth_estimateGas") for answer in answers[:count]]
    block = answers[count].get("result")
    if not isinstance(block, dict):
        raise FillUnavailable(f"eth_getBlockByNumber answered {answers[count]!r}")
    base_fee = block.get("baseFeePerGas")
    gas_price = _quantity(answers[count + 1], "eth_gasPrice")
    base = None if base_fee is None else _parse(base_fee, "baseFeePerGas")
    priority = answers[count + 2]
    if "result" in priority:
        tip = _quantity(priority, "eth_maxPriorityFeePerGas")
    else:  # a node without the method: what the gas price offers above the base fee
        tip = max(gas_price - (base or 0), 0)
    return gas, FeeQuote(base, tip, gas_price)


async def _ask(backend: BackendClient, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
    """The answers to ``calls`` (dicts with ``result`` or ``error``), in order."""
    payload = [
        {"jsonrpc": "2.0", "id": index, "method": method, "params": params}
        for index, (method, params) in enumerate(calls)
    ]
    reply = await backend.post(payload)
    if isinstance(reply.body, list):
        by_id = {answer.get("id"): answer for answer in reply.body if isinstance(answer, dict)}
        if all(index in by_id for index in range(len(calls))):
            return [by_id[index] for index in range(len(calls))]
    answers = []
    for item in payload:  # a backend without batches: one at a time
        single = await backend.post(item)
        if single.outcome is Outcome.UNKNOWN or not isinstance(single.body, dict):
            raise FillUnavailable(f"{item['method']}: {single.detail or 'no answer'}")
        answers.append(single.body)
    return answers


def _quantity(answer: Any, method: str) -> int:
    if not isinstance(answer, dict) or "result" not in answer:
        error = answer.get("error") if isinstance(answer, dict) else answer
        message = error.get("message") if isinstance(error, dict) else error
        raise FillUnavailable(f"{method} failed: {message}")
    return _parse(answer["result"], method)


def _parse(value: Any, what: str) -> int:
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise FillUnavailable(f"{what} is not a hex quantity: {value!r}")
