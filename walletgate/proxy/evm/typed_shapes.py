"""Typed-data shapes that move NFTs, run calls or hand over authority, decoded into intents.

Each shape is recognised by its exact EIP-712 type string (what the verifying contract
hashes into its typehash): a document with a renamed, retyped or reordered field would
not verify against that contract, so it is no such shape and is judged as a plain
message signature (which needs a typed-data entry of its own).

- ERC-4494 ``Permit(spender, tokenId, nonce, deadline)``: the collection
  (``domain.verifyingContract``) approves ``spender`` for token ``tokenId``;
- ``PermitForAll(operator, approved, nonce, deadline)`` (Uniswap v4 positions and
  others): an approval of the whole collection, unlimited;
- Safe ``SafeTx``: the Safe runs ``to.call{value}(data)``. The call is judged as a call
  from the signing wallet (its policies decide what its Safe may do); a ``delegatecall``
  (operation 1) runs foreign code as the Safe and is refused; a refund (``gasPrice`` >
  0) pays up to ``(safeTxGas + baseGas + overhead) x gasPrice`` of ``gasToken`` to the
  refund receiver (the executor, anyone, when that is the zero address);
- ERC-7710 ``Delegation`` (MetaMask delegation framework): it hands the delegator's
  authority to ``delegate``, under caveats walletgate cannot judge, so it is a message
  signature marked ``erc7710-delegation`` that only an explicit typed-data entry admits;
- Seaport orders: see :mod:`walletgate.proxy.evm.seaport`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from walletgate.intents import (
    ANYONE,
    DecodeError,
    Intent,
    NativeTransfer,
    NftApproval,
    TokenTransfer,
    TypedStruct,
)
from walletgate.proxy.evm.calls import call_intents
from walletgate.proxy.evm.seaport import (
    BULK_ORDER_RE,
    ORDER_TYPE,
    ORDER_TYPE_1_0,
    seaport_intents,
)
from walletgate.proxy.evm.typed_values import type_string

Field = tuple[str, str]

ERC4494_PERMIT = "Permit(address spender,uint256 tokenId,uint256 nonce,uint256 deadline)"
PERMIT_FOR_ALL = "PermitForAll(address operator,bool approved,uint256 nonce,uint256 deadline)"
_SAFE_TX_FIELDS = (
    "address to,uint256 value,bytes data,uint8 operation,uint256 safeTxGas,uint256 {},"
    "uint256 gasPrice,address gasToken,address refundReceiver,uint256 nonce"
)
#: Safe >= 1.0 names the fixed part of the refund ``baseGas``; 0.1 named it ``dataGas``.
SAFE_TX = f"SafeTx({_SAFE_TX_FIELDS.format('baseGas')})"
SAFE_TX_DATA_GAS = f"SafeTx({_SAFE_TX_FIELDS.format('dataGas')})"
DELEGATION = (
    "Delegation(address delegate,address delegator,bytes32 authority,Caveat[] caveats,"
    "uint256 salt)Caveat(address enforcer,bytes terms)"
)
ERC7710_DELEGATION = "erc7710-delegation"
#: Gas a Safe spends around the inner call and counts into the refunded gas (the CALL
#: itself: cold account, value transfer, account creation, memory), rounded up well.
SAFE_CALL_OVERHEAD_GAS = 50_000
_SAFE_DELEGATECALL = 1
_NATIVE = "0x" + "00" * 20


@dataclass(frozen=True, slots=True)
class ShapeContext:
    """What a shape decoder needs beyond the message: the chain the intents execute on,
    the signing wallet, the verifying contract (``None`` when the domain has none) and
    where the document is in the request."""

    chain_id: int
    wallet: str
    verifying_contract: str | None
    where: str

    def contract(self, what: str) -> str:
        """The verifying contract, which ``what`` needs (the collection, say)."""
        if self.verifying_contract is None:
            raise DecodeError(
                f"{what} needs domain.verifyingContract",
                where=f"{self.where}.domain.verifyingContract",
            )
        return self.verifying_contract


def _uint(message: TypedStruct, name: str) -> int:
    value = message.get(name)
    assert isinstance(value, int) and not isinstance(value, bool)  # read by its type
    return value


def _address(message: TypedStruct, name: str) -> str:
    value = message.get(name)
    assert isinstance(value, str)  # read by its type: a canonical address
    return value


def _nft_permit(context: ShapeContext, message: TypedStruct) -> tuple[Intent, ...]:
    collection = context.contract("an ERC-4494 permit")
    spender, token_id = _address(message, "spender"), _uint(message, "tokenId")
    # ERC-4494 is an ERC-721 extension: the standard in ``via`` lets the evaluator refuse
    # it on an ERC-1155 collection, where "one token id" may be any number of tokens.
    approval = NftApproval(
        context.chain_id, context.wallet, collection, spender, token_id, True, "erc721.permit"
    )
    return (approval,)


def _nft_permit_for_all(context: ShapeContext, message: TypedStruct) -> tuple[Intent, ...]:
    collection = context.contract("a PermitForAll")
    approved = message.get("approved")
    assert isinstance(approved, bool)
    operator = _address(message, "operator")
    approval = NftApproval(
        context.chain_id, context.wallet, collection, operator, None, approved, "permit"
    )
    return (approval,)


def _safe_tx(context: ShapeContext, message: TypedStruct, base_gas: str) -> tuple[Intent, ...]:
    at = f"{context.where}.message"
    if _uint(message, "operation") == _SAFE_DELEGATECALL:
        raise DecodeError(
            "a Safe transaction with operation 1 (delegatecall) runs the target's code as "
            "the Safe, with all its assets; walletgate refuses it",
            where=f"{at}.operation",
        )
    if _uint(message, "operation") != 0:
        raise DecodeError(
            "a Safe operation is 0 (call) or 1 (delegatecall)", where=f"{at}.operation"
        )
    data = message.get("data")
    assert isinstance(data, bytes)
    intents = list(
        call_intents(
            chain_id=context.chain_id,
            wallet=context.wallet,
            to=_address(message, "to"),
            value=_uint(message, "value"),
            data=data,
            nonce=None,
            where=at,
        )
    )
    gas_price = _uint(message, "gasPrice")
    if gas_price > 0:
        # With a gas price the Safe gives the call exactly safeTxGas, then refunds the gas
        # used plus baseGas at gasPrice (at most: native refunds take min(gasPrice, the
        # transaction's)). Nobody chooses the receiver when it is zero: the executor is paid.
        gas = _uint(message, "safeTxGas") + _uint(message, base_gas) + SAFE_CALL_OVERHEAD_GAS
        refund = gas * gas_price
        receiver = _address(message, "refundReceiver")
        receiver = ANYONE if receiver == _NATIVE else receiver
        token = _address(message, "gasToken")
        if token == _NATIVE:
            intents.append(NativeTransfer(context.chain_id, context.wallet, receiver, refund))
        else:
            intents.append(
                TokenTransfer(
                    context.chain_id, context.wallet, token, receiver, refund, context.wallet
                )
            )
    return tuple(intents)


def _seaport(context: ShapeContext, message: TypedStruct) -> tuple[Intent, ...]:
    return seaport_intents(context.chain_id, context.wallet, message, context.where)


Decoder = Callable[[ShapeContext, TypedStruct], tuple[Intent, ...]]

#: Exact type string -> (the standard's name, its decoder). A delegation has no decoder:
#: it is a message signature that needs an explicit entry.
_SHAPES: dict[str, tuple[str, Decoder | None]] = {
    ERC4494_PERMIT: ("erc4494-permit", _nft_permit),
    PERMIT_FOR_ALL: ("nft-permit-for-all", _nft_permit_for_all),
    SAFE_TX: ("safe-tx", lambda context, message: _safe_tx(context, message, "baseGas")),
    SAFE_TX_DATA_GAS: ("safe-tx", lambda context, message: _safe_tx(context, message, "dataGas")),
    ORDER_TYPE: ("seaport-order", _seaport),
    ORDER_TYPE_1_0: ("seaport-order", _seaport),
    DELEGATION: (ERC7710_DELEGATION, None),
}


def recognise(
    types: dict[str, tuple[Field, ...]], primary: str
) -> tuple[str, Decoder | None] | None:
    """(standard, decoder) of a document whose primary type is exactly a known shape."""
    encoded = type_string(types, primary)
    shape = _SHAPES.get(encoded)
    if shape is not None:
        return shape
    if primary == "BulkOrder" and BULK_ORDER_RE.fullmatch(encoded):
        return "seaport-order", _seaport
    return None
