"""The intents of one call (to, value, data): shared by transaction objects, raw
transactions and EIP-5792 batched calls, so each shape is judged the same way."""

from __future__ import annotations

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
) -> tuple[Intent, ...]:
    """Intents for a call from ``wallet``; ``where`` locates the call in the request
    (``params[0]``, ``params[0].calls[2]``).

    - no ``to``: a :class:`ContractCreation`, plus the value sent to the new contract's
      address (which needs the nonce: without one the recipient is unknown, so refuse);
    - ``to`` and no calldata: a :class:`NativeTransfer`, even of 0, so destination rules
      always see the recipient (a plain send still runs a contract's receive function);
    - ``to`` and calldata: the ERC-20 intent or a :class:`ContractCall`, plus a
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
    intents: list[Intent] = []
    if value > 0:
        intents.append(NativeTransfer(chain_id, wallet, to, value))
    token_intent = decode_token_call(data, TokenCallContext(chain_id, wallet, to), f"{where}.data")
    if token_intent is not None:
        intents.append(token_intent)
    else:
        selector = "0x" + data[:4].hex() if len(data) >= 4 else None
        intents.append(ContractCall(chain_id, wallet, to, selector, len(data), data))
    return tuple(intents)
