"""Checks before any policy is consulted: is this a request policies can judge at all?

In order: the decoded request is well formed (canonical addresses, non-negative integer
amounts: a decoder bug must refuse, not slip past a denylist); it is a spending or
signing request; its wallet is known on the backend's chain and belongs to the agent
(an agent may use only its own wallets); it is bound to no other chain; and every
intent acts for that one wallet on that one chain. ``transferFrom``'s ``source`` is
exempt: it is the account whose allowance the wallet spends.

Two bindings are stricter than "no other chain", because the signature is what a third
party would replay and walletgate cannot stop it being sent elsewhere (SPEC §3: a raw
transaction's chainId must match the wallet's chain):

- a signed raw transaction must bind a chain id: a pre-EIP-155 legacy transaction
  (``v`` 27/28) is valid on every chain;
- an EIP-7702 authorization must name exactly the backend's chain: chain id 0 is valid
  on every chain.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from walletgate.intents import (
    ContractCall,
    ContractCreation,
    DecodedRequest,
    Delegation,
    InvalidAddress,
    MessageSignature,
    MethodClass,
    NativeTransfer,
    NetworkFee,
    NftApproval,
    NftTransfer,
    TokenApproval,
    TokenTransfer,
    canonical_address,
)
from walletgate.policies.decision import Reason
from walletgate.policies.model import PolicySet, Wallet
from walletgate.policies.request import SpendRequest

_ADDRESS_FIELDS = frozenset(
    {"wallet", "to", "token", "source", "spender", "contract", "delegate", "verifying_contract"}
    | {"collection", "operator"}  # NFT intents
)
_AMOUNT_FIELDS = frozenset({"amount", "token_ids", "amounts", "token_id"} | {"value"})
_INTENT_TYPES = (
    NativeTransfer,
    NetworkFee,
    TokenTransfer,
    TokenApproval,
    NftTransfer,
    NftApproval,
    ContractCall,
    ContractCreation,
    Delegation,
    MessageSignature,
)
_JUDGED_CLASSES = frozenset({MethodClass.SPENDING, MethodClass.SIGNING})


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request refused before any policy: the reason and what was wrong."""

    reason: Reason
    message: str


def malformation(decoded: DecodedRequest) -> str | None:
    """What is wrong with a decoded request's shape, naming the field; ``None`` if nothing."""
    if decoded.wallet is not None and not _is_canonical(decoded.wallet):
        return f"wallet: {decoded.wallet!r} is not a canonical address"
    for index, intent in enumerate(decoded.intents):
        where = f"intents[{index}]"
        if not isinstance(intent, _INTENT_TYPES):
            return f"{where}: {type(intent).__name__} is not an intent"
        checks = _CHECKED_FIELDS.get(type(intent))
        if checks is None:  # a subclass of an intent type
            checks = _checked_fields(type(intent))
        for name, is_address in checks:
            value = getattr(intent, name)
            if is_address:
                if value is not None and not _is_canonical(value):
                    return f"{where}.{name}: {value!r} is not a canonical address"
            elif not _is_amounts(name, value):
                return f"{where}.{name}: {value!r} is not a non-negative integer"
        if isinstance(intent, NftTransfer) and len(intent.token_ids) != len(intent.amounts):
            return f"{where}: {len(intent.token_ids)} token ids but {len(intent.amounts)} amounts"
    return None


def _is_amounts(name: str, value: object) -> bool:
    """An amount, or a tuple of them (an NFT transfer's token ids and counts); an NFT
    approval's ``token_id`` is ``None`` for every token of the collection."""
    if isinstance(value, tuple):
        return all(_is_base_units(item) for item in value)
    if value is None:
        return name == "token_id"
    return _is_base_units(value)


def _checked_fields(intent_type: type) -> tuple[tuple[str, bool], ...]:
    """The fields of an intent type that ``malformation`` checks, in declaration order,
    each with whether it is an address (else an amount)."""
    return tuple(
        (field.name, field.name in _ADDRESS_FIELDS)
        for field in fields(intent_type)
        if field.name in _ADDRESS_FIELDS or field.name in _AMOUNT_FIELDS
    )


#: ``_checked_fields`` of every intent type, worked out once rather than through
#: ``dataclasses.fields`` on every request.
_CHECKED_FIELDS: dict[type, tuple[tuple[str, bool], ...]] = {
    intent_type: _checked_fields(intent_type) for intent_type in _INTENT_TYPES
}


def admit(request: SpendRequest, policies: PolicySet) -> Wallet | Refusal:
    """The request's wallet, or why policies cannot judge this request."""
    decoded = request.decoded
    if decoded.method_class not in _JUDGED_CLASSES:
        return Refusal(
            Reason.METHOD_NOT_ALLOWED,
            f"{decoded.method} is a {decoded.method_class} method; "
            "policies judge only spending and signing",
        )
    if decoded.wallet is None:
        return Refusal(Reason.UNKNOWN_WALLET, f"{decoded.method} names no wallet to act for")
    wallet = policies.wallet_by_address(request.chain_id, decoded.wallet)
    if wallet is None:
        return Refusal(
            Reason.UNKNOWN_WALLET,
            f"wallet {decoded.wallet} is not known on chain {request.chain_id}",
        )
    if wallet.agent != request.agent_id:
        return Refusal(
            Reason.WALLET_NOT_OWNED,
            f"wallet {decoded.wallet} is not a wallet of agent {request.agent_id!r}",
        )
    if decoded.tx_hash is not None and decoded.chain_id is None:
        # tx_hash is set exactly when the request carries signed transaction bytes.
        return Refusal(
            Reason.CHAIN_MISMATCH,
            "the raw transaction is signed without a chain id (pre-EIP-155), so it is "
            f"replayable on every chain; this backend serves chain {request.chain_id}",
        )
    if decoded.chain_id is not None and decoded.chain_id != request.chain_id:
        return Refusal(
            Reason.CHAIN_MISMATCH, _chain_mismatch("the request", decoded.chain_id, request)
        )
    for index, intent in enumerate(decoded.intents):
        if intent.wallet != wallet.address:
            return Refusal(
                Reason.WALLET_NOT_OWNED,
                f"intents[{index}] acts for {intent.wallet}, not for the request's wallet "
                f"{wallet.address}",
            )
        if intent.chain_id is not None and intent.chain_id != request.chain_id:
            where = f"intents[{index}]"
            return Refusal(Reason.CHAIN_MISMATCH, _chain_mismatch(where, intent.chain_id, request))
        if isinstance(intent, Delegation) and intent.authorization_chain_id != request.chain_id:
            return Refusal(Reason.CHAIN_MISMATCH, _authorization_mismatch(index, intent, request))
    return wallet


def _authorization_mismatch(index: int, delegation: Delegation, request: SpendRequest) -> str:
    bound = delegation.authorization_chain_id
    chain = "chain id 0, which is valid on every chain" if bound == 0 else f"chain {bound}"
    return (
        f"intents[{index}]: the EIP-7702 authorization delegating {delegation.wallet} to "
        f"{delegation.delegate} is signed for {chain}, but this backend serves chain "
        f"{request.chain_id}; an authorization must name exactly that chain"
    )


def _chain_mismatch(what: str, bound: int, request: SpendRequest) -> str:
    return f"{what} is bound to chain {bound}, but this backend serves chain {request.chain_id}"


def _is_canonical(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return canonical_address(value) == value
    except InvalidAddress:
        return False


def _is_base_units(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
