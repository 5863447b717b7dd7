"""The intents of one call (to, value, data): shared by transaction objects, raw
transactions and EIP-5792 batched calls, so each shape is judged the same way."""

from __future__ import annotations

import dataclasses

import rlp
from eth_utils import keccak

from walletgate.intents import (
    ContractCall,
    ContractCreation,
    DecodeError,
    Intent,
    NativeTransfer,
)
from walletgate.proxy.evm.erc20 import TokenCallContext, decode_token_call
from walletgate.proxy.evm.nft import NftCallContext, decode_nft_call
from walletgate.proxy.evm.wrappers import MAX_DEPTH, InnerCall, unwrap


def create_address(sender: str, nonce: int) -> str:
    """The address a CREATE from ``sender`` at ``nonce`` deploys to (Yellow Paper §7)."""
    digest = keccak(rlp.encode([bytes.fromhex(sender[2:]), nonce]))
    return "0x" + digest[12:].hex()


def call_intents(
    *,
    chain_id: int,
    wallet: str,
    to: str | None,
    value: int,
    data: bytes,
    nonce: int | None,
    where: str,
    depth: int = 0,
) -> tuple[Intent, ...]:
    """Intents for a call from ``wallet``; ``where`` locates the call in the request
    (``params[0]``, ``params[0].calls[2]``); ``depth`` counts the wrappers around it.

    A wrapper call (``wrappers``: Multicall-style aggregates, Safe multiSend) is the
    :class:`ContractCall` to the wrapper plus the intents of each inner call, judged like
    a top-level call from the same wallet (see :func:`_wrapper_intents`).

    - no ``to``: a :class:`ContractCreation`, plus the value sent to the new contract's
      address (which needs the nonce: without one the recipient is unknown, so refuse);
    - ``to`` and no calldata: a :class:`NativeTransfer`, even of 0, so destination rules
      always see the recipient (a plain send still runs a contract's receive function);
    - ``to`` and calldata: the ERC-20 or NFT intent (``erc20``, ``nft``) or a
      :class:`ContractCall`, plus a
      :class:`NativeTransfer` when value is sent with it.
    """
    if to is None:
        creation = ContractCreation(chain_id, wallet, init_code_length=len(data))
        if value == 0:
            return (creation,)
        if nonce is None:
            raise DecodeError(
                "a contract creation that sends value needs an explicit nonce "
                "(the recipient address depends on it)",
                where=f"{where}.nonce",
            )
        return (creation, NativeTransfer(chain_id, wallet, create_address(wallet, nonce), value))
    if not data:
        return (NativeTransfer(chain_id, wallet, to, value),)
    inner_calls = unwrap(data, f"{where}.data", to)
    if inner_calls is not None:
        wrapper = ContractCall(chain_id, wallet, to, "0x" + data[:4].hex(), len(data), data, value)
        return _wrapper_intents(wrapper, inner_calls, depth=depth, where=f"{where}.data")
    intents: list[Intent] = []
    if value > 0:
        intents.append(NativeTransfer(chain_id, wallet, to, value))
    token_intent: Intent | None = decode_token_call(
        data, TokenCallContext(chain_id, wallet, to), f"{where}.data"
    )
    if token_intent is None:
        token_intent = decode_nft_call(data, NftCallContext(chain_id, wallet, to), f"{where}.data")
    if token_intent is not None:
        intents.append(token_intent)
    else:
        selector = "0x" + data[:4].hex() if len(data) >= 4 else None
        intents.append(ContractCall(chain_id, wallet, to, selector, len(data), data, value))
    return tuple(intents)


def _wrapper_intents(
    wrapper: ContractCall, inner_calls: tuple[InnerCall, ...], *, depth: int, where: str
) -> tuple[Intent, ...]:
    """The call to the wrapper, each inner call's intents, and the native value counted
    once: inner values are transfers to their targets, and whatever of ``msg.value`` they
    do not account for stays with the wrapper (a transfer to it). So the native total
    counted is ``max(msg.value, sum of inner values)``: never less than what can leave
    the wallet, and the same wei is not counted twice."""
    if depth >= MAX_DEPTH:
        raise DecodeError(f"wrappers nested more than {MAX_DEPTH} deep", where=where)
    intents: list[Intent] = []
    remainder = wrapper.value - sum(call.value for call in inner_calls)
    if remainder > 0:
        intents.append(
            NativeTransfer(wrapper.chain_id, wrapper.wallet, wrapper.contract, remainder)
        )
    intents.append(wrapper)
    for number, call in enumerate(inner_calls):
        inner = call_intents(
            chain_id=wrapper.chain_id,
            wallet=wrapper.wallet,
            to=call.to,
            value=call.value,
            data=call.data,
            nonce=None,
            where=f"{where}.calls[{number}]",
            depth=depth + 1,
        )
        if call.delegated and wrapper.value > 0:
            inner = tuple(_seeing_value(intent, wrapper) for intent in inner)
        intents += inner
    return tuple(intents)


def _seeing_value(intent: Intent, wrapper: ContractCall) -> Intent:
    """A self-multicall element's call as its method sees it: with the wrapper's whole
    ``msg.value`` (for ``max_value``), which is counted once, as sent to the wrapper."""
    if isinstance(intent, ContractCall) and intent.contract == wrapper.contract:
        return dataclasses.replace(intent, value=max(intent.value, wrapper.value))
    return intent
