"""wallet_sendCalls (EIP-5792): a batch of calls from one wallet; every call is judged.

``from`` is optional in EIP-5792 (the wallet may pick the account), but walletgate
requires it: a spend must name the wallet it is judged against. ``capabilities`` are
passed through unjudged, so only objects are accepted.
"""

from __future__ import annotations

from typing import Any

from walletgate.intents import DecodedRequest, DecodeError, Intent
from walletgate.proxy.evm.calls import call_intents
from walletgate.proxy.evm.context import CallContext
from walletgate.proxy.evm.fees import calls_fees
from walletgate.proxy.evm.hexvalues import read_address, read_data, read_quantity

_REQUEST_KEYS = frozenset(
    {"version", "id", "from", "chainId", "atomicRequired", "calls", "capabilities"}
)
_CALL_KEYS = frozenset({"to", "data", "value", "capabilities"})


def _check_keys(value: object, allowed: frozenset[str], what: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError(f"{what} must be an object", where=where)
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise DecodeError(f"unknown {what} field {unknown[0]!r}", where=where)
    if "capabilities" in value and not isinstance(value["capabilities"], dict):
        raise DecodeError("capabilities must be an object", where=f"{where}.capabilities")
    return value


def decode_send_calls(context: CallContext, params: object) -> DecodedRequest:
    """Decode ``[{version, chainId, from, calls: [{to, value, data}], ...}]``.

    Each call also costs a :class:`NetworkFee`, estimated by the gateway (the request
    names no fees): without ``context.calls_fee_quote`` the request raises
    :class:`~walletgate.proxy.evm.fees.MissingFeeFields` once everything else is checked.
    """
    (request,) = context.positional(params, 1)
    where = "params[0]"
    request = _check_keys(request, _REQUEST_KEYS, "wallet_sendCalls", where)
    if not isinstance(request.get("version"), str):
        raise DecodeError("version must be a string", where=f"{where}.version")
    if "atomicRequired" in request and not isinstance(request["atomicRequired"], bool):
        raise DecodeError("atomicRequired must be true or false", where=f"{where}.atomicRequired")
    if "id" in request and not isinstance(request["id"], str):
        raise DecodeError("id must be a string", where=f"{where}.id")
    if "from" not in request:
        raise DecodeError("from is required", where=f"{where}.from")
    wallet = read_address(request["from"], f"{where}.from")
    if "chainId" not in request:
        raise DecodeError("chainId is required", where=f"{where}.chainId")
    chain_id = read_quantity(request["chainId"], f"{where}.chainId")
    calls = request.get("calls")
    if not isinstance(calls, list) or not calls:
        raise DecodeError("calls must be a non-empty array", where=f"{where}.calls")
    intents: list[Intent] = []
    for index, raw_call in enumerate(calls):
        at = f"{where}.calls[{index}]"
        call = _check_keys(raw_call, _CALL_KEYS, "call", at)
        intents.extend(
            call_intents(
                chain_id=chain_id,
                wallet=wallet,
                to=None if call.get("to") is None else read_address(call["to"], f"{at}.to"),
                value=read_quantity(call["value"], f"{at}.value") if "value" in call else 0,
                data=read_data(call["data"], f"{at}.data") if "data" in call else b"",
                nonce=None,
                where=at,
            )
        )
    intents.extend(calls_fees(chain_id, wallet, context.calls_fee_quote, len(calls), where))
    return context.request(wallet=wallet, chain_id=chain_id, intents=tuple(intents))
