"""The message-signing methods: eth_sign, personal_sign and eth_signTypedData (v1/v3/v4).

personal_sign is ``[message, address]``, but wallets have long accepted the two swapped
(MetaMask detects which one is the address). walletgate accepts either order only when
exactly one parameter is an address: if both are, a backend that swaps could sign with
the account we did not judge, so the request is refused as ambiguous.
"""

from __future__ import annotations

from typing import Any

from walletgate.intents import DecodedRequest, DecodeError, InvalidAddress, MessageSignature
from walletgate.intents import canonical_address as _canonical
from walletgate.proxy.evm.context import CallContext
from walletgate.proxy.evm.hexvalues import read_address, read_data
from walletgate.proxy.evm.typed_data import parse_typed_data, typed_data_intents

_LEGACY_TYPED_VALUE_KEYS = frozenset({"type", "name", "value"})


def _is_address(value: object) -> bool:
    try:
        _canonical(value)  # type: ignore[arg-type]  # checked inside
    except InvalidAddress:
        return False
    return True


def _message_signature(context: CallContext, wallet: str) -> DecodedRequest:
    return context.request(
        wallet=wallet, chain_id=None, intents=(MessageSignature(wallet, context.method),)
    )


def decode_eth_sign(context: CallContext, params: object) -> DecodedRequest:
    """``eth_sign [address, data]``: a signature over arbitrary bytes."""
    address, data = context.positional(params, 2)
    wallet = read_address(address, "params[0]")
    read_data(data, "params[1]")
    return _message_signature(context, wallet)


def decode_personal_sign(context: CallContext, params: object) -> DecodedRequest:
    """``personal_sign [message, address]`` (or swapped, when unambiguous)."""
    first, second = context.positional(params, 2)
    first_is_address, second_is_address = _is_address(first), _is_address(second)
    if first_is_address and second_is_address:
        raise DecodeError(
            "both parameters are addresses, so the signing account is ambiguous",
            where="params",
        )
    if second_is_address:
        message, address, message_where = first, second, "params[0]"
    elif first_is_address:
        message, address, message_where = second, first, "params[1]"
    else:
        raise DecodeError(
            "personal_sign needs [message, address]: no address given", where="params[1]"
        )
    if not isinstance(message, str):
        raise DecodeError("message must be a string", where=message_where)
    return _message_signature(context, _canonical(address))


def _check_legacy_typed_values(values: list[Any], where: str) -> None:
    """eth_signTypedData_v1 data: an array of ``{type, name, value}``."""
    if not values:
        raise DecodeError("typed data array must not be empty", where=where)
    for index, entry in enumerate(values):
        if (
            not isinstance(entry, dict)
            or set(entry) != _LEGACY_TYPED_VALUE_KEYS
            or not isinstance(entry["type"], str)
            or not isinstance(entry["name"], str)
        ):
            raise DecodeError("must be {type, name, value}", where=f"{where}[{index}]")


def _decode_legacy_typed_data(context: CallContext, params: list[Any]) -> DecodedRequest:
    # v1 has no domain, so it cannot be a permit; it is judged as a plain signature.
    data_index = 0 if isinstance(params[0], list) else 1
    address_index = 1 - data_index
    _check_legacy_typed_values(params[data_index], f"params[{data_index}]")
    wallet = read_address(params[address_index], f"params[{address_index}]")
    return _message_signature(context, wallet)


def decode_sign_typed_data(context: CallContext, params: object) -> DecodedRequest:
    """``eth_signTypedData_v3/_v4 [address, typedData]``; ``eth_signTypedData`` is either
    that or the v1 form ``[values, address]``, told apart by the array of values."""
    first, second = context.positional(params, 2)
    legacy_allowed = context.method in ("eth_signTypedData", "eth_signTypedData_v1")
    if legacy_allowed and (isinstance(first, list) or isinstance(second, list)):
        return _decode_legacy_typed_data(context, [first, second])
    if context.method == "eth_signTypedData_v1":
        raise DecodeError("eth_signTypedData_v1 needs [values, address]", where="params")
    signer = read_address(first, "params[0]")
    data = parse_typed_data(second, "params[1]")
    chain_id, intents = typed_data_intents(context, data, signer, "params[1]")
    return context.request(wallet=signer, chain_id=chain_id, intents=intents)
