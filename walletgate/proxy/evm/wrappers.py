"""Wrappers: calls that make other calls. Their inner calls are judged one by one.

Recognised by selector on any contract (a wrapper is only as trustworthy as its code,
so walletgate does not care who deployed it):

- Multicall3-style aggregates: ``aggregate((address,bytes)[])``,
  ``tryAggregate(bool,(address,bytes)[])``, ``blockAndAggregate((address,bytes)[])``,
  ``tryBlockAndAggregate(bool,(address,bytes)[])``, ``aggregate3((address,bool,bytes)[])``
  and ``aggregate3Value((address,bool,uint256,bytes)[])`` (whose inner calls carry value);
- self-multicalls (OpenZeppelin ``Multicall``, Uniswap routers and position managers):
  ``multicall(bytes[])``, ``multicall(uint256,bytes[])`` (a deadline) and
  ``multicall(bytes32,bytes[])`` (a previous block hash). Each element is calldata the
  contract delegatecalls to itself: a call to the same contract, from the same sender,
  that sees the whole ``msg.value`` (``InnerCall.delegated``);
- Safe ``multiSend(bytes)``: a packed list of (operation uint8, to address, value uint256,
  data length uint256, data). Operation 1 (delegatecall) runs the target's code *as the
  caller*, with its balance and approvals: what it does cannot be judged from the
  calldata, so it is refused.

:func:`unwrap` returns the inner calls; ``calls.call_intents`` judges each like a
top-level call from the same wallet. Decoding is strict: a payload that is not the
canonical ABI encoding, a truncated or padded multiSend entry, an unknown operation, or
nesting deeper than :data:`MAX_DEPTH` is a :class:`DecodeError` (refused), never skipped.
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils.abi import function_signature_to_4byte_selector

from walletgate.abi import NonCanonicalAbi, decode_canonical
from walletgate.intents import DecodeError

#: How many wrappers deep a call may be nested (a multiSend inside an aggregate3 is 2).
MAX_DEPTH = 4

_CALL = 0
_DELEGATECALL = 1
#: operation (1) + to (20) + value (32) + data length (32)
_MULTISEND_HEADER = 85


@dataclass(frozen=True, slots=True)
class InnerCall:
    """One call a wrapper makes: ``to`` canonical, ``value`` in wei, ``data`` calldata."""

    to: str
    value: int
    data: bytes
    #: A self-multicall element: the contract runs it on itself by delegatecall, so it
    #: sends nothing of its own (``value`` is 0) but sees the wrapper's whole msg.value.
    delegated: bool = False


@dataclass(frozen=True, slots=True)
class _Aggregate:
    """A Multicall-style method: which argument holds the calls, and where in each call
    tuple the target, value (``None``: none) and calldata are."""

    name: str
    types: tuple[str, ...]
    target: int
    value: int | None
    data: int

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.types)})"

    @property
    def calls_arg(self) -> int:
        """The calls are the last argument (a ``bool requireSuccess`` may come first)."""
        return len(self.types) - 1


def _selector(signature: str) -> bytes:
    return function_signature_to_4byte_selector(signature)


_AGGREGATES = {
    _selector(method.signature): method
    for method in (
        _Aggregate("aggregate", ("(address,bytes)[]",), 0, None, 1),
        _Aggregate("blockAndAggregate", ("(address,bytes)[]",), 0, None, 1),
        _Aggregate("tryAggregate", ("bool", "(address,bytes)[]"), 0, None, 1),
        _Aggregate("tryBlockAndAggregate", ("bool", "(address,bytes)[]"), 0, None, 1),
        _Aggregate("aggregate3", ("(address,bool,bytes)[]",), 0, None, 2),
        _Aggregate("aggregate3Value", ("(address,bool,uint256,bytes)[]",), 0, 2, 3),
    )
}
_MULTISEND = _selector("multiSend(bytes)")
#: Self-multicall selector -> its argument types (the calls, ``bytes[]``, come last).
_SELF_MULTICALLS = {
    _selector(f"multicall({','.join(types)})"): types
    for types in (("bytes[]",), ("uint256", "bytes[]"), ("bytes32", "bytes[]"))
}

#: The selectors of every wrapper method, as ``0x`` + 8 hex digits.
WRAPPER_SELECTORS = frozenset(
    "0x" + selector.hex() for selector in (*_AGGREGATES, _MULTISEND, *_SELF_MULTICALLS)
)


def unwrap(data: bytes, where: str, contract: str) -> tuple[InnerCall, ...] | None:
    """The inner calls of wrapper calldata sent to ``contract`` (canonical), or ``None``
    when ``data`` is not a wrapper call.

    Raises :class:`DecodeError` (at ``where``) when it is a wrapper call that does not
    decode, or makes a delegatecall.
    """
    selector = data[:4]
    aggregate = _AGGREGATES.get(selector)
    if aggregate is not None:
        return _aggregate_calls(aggregate, data[4:], where)
    if selector == _MULTISEND:
        (payload,) = _strict_decode(["bytes"], data[4:], "multiSend(bytes)", where)
        return _multisend_calls(payload, where)
    types = _SELF_MULTICALLS.get(selector)
    if types is not None:
        signature = f"multicall({','.join(types)})"
        calls = _strict_decode(list(types), data[4:], signature, where)[-1]
        return tuple(InnerCall(contract, 0, bytes(call), delegated=True) for call in calls)
    return None


def _strict_decode(types: list[str], body: bytes, signature: str, where: str) -> tuple[Any, ...]:
    try:
        return decode_canonical(types, body)
    except NonCanonicalAbi as exc:
        raise DecodeError(
            f"wrapper call does not decode as {signature}: {exc}", where=where
        ) from None


def _aggregate_calls(method: _Aggregate, body: bytes, where: str) -> tuple[InnerCall, ...]:
    arguments = _strict_decode(list(method.types), body, method.signature, where)
    calls = []
    for call in arguments[method.calls_arg]:
        value = 0 if method.value is None else call[method.value]
        calls.append(InnerCall(call[method.target].lower(), value, bytes(call[method.data])))
    return tuple(calls)


def _multisend_calls(payload: bytes, where: str) -> tuple[InnerCall, ...]:
    """Entries of a packed multiSend payload; each must fit exactly, none may delegatecall."""
    calls: list[InnerCall] = []
    offset = 0
    while offset < len(payload):
        at = f"{where}.transactions[{len(calls)}]"
        if offset + _MULTISEND_HEADER > len(payload):
            raise DecodeError("multiSend entry is truncated", where=at)
        operation = payload[offset]
        if operation == _DELEGATECALL:
            raise DecodeError(
                "multiSend entry is a delegatecall: it would run another contract's code "
                "with the wallet's funds and approvals, which cannot be judged",
                where=at,
            )
        if operation != _CALL:
            raise DecodeError(f"multiSend entry has unknown operation {operation}", where=at)
        to = "0x" + payload[offset + 1 : offset + 21].hex()
        value = int.from_bytes(payload[offset + 21 : offset + 53], "big")
        length = int.from_bytes(payload[offset + 53 : offset + 85], "big")
        start = offset + _MULTISEND_HEADER
        if start + length > len(payload):
            raise DecodeError("multiSend entry data runs past the payload", where=at)
        calls.append(InnerCall(to, value, payload[start : start + length]))
        offset = start + length
    if not calls:
        raise DecodeError("multiSend payload has no transactions", where=where)
    return tuple(calls)
