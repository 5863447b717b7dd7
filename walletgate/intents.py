"""What a request would do with money: the plain data between the decoders and the evaluator.

Protocol adapters (``walletgate.proxy.evm``) turn request bytes into these values; the
policy evaluator (``walletgate.policies.evaluator``) judges them. Neither side does I/O.

Conventions, so that no comparison can be fooled by spelling:
- addresses are canonical: lowercase ``0x`` + 40 hex digits (see :func:`canonical_address`);
- amounts are ``int`` in base units (wei, token units); never floats;
- ``chain_id`` is the chain the intent executes on, or ``None`` where the request does not
  bind one (an off-chain signature).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")

#: 2**256 - 1: the conventional "unlimited" ERC-20 allowance.
MAX_UINT256 = (1 << 256) - 1
#: Approvals at or above this are treated as unlimited (many wallets use 2**255 or so).
UNLIMITED_APPROVAL_THRESHOLD = 1 << 128
#: The recipient of value that whoever acts first may take: the fulfiller of an open
#: Seaport order, the executor refunded by a Safe transaction with no refund receiver.
#: Anyone includes every address on a denylist, and the policy loader refuses it in any
#: address list, so no allowlist can contain it (``policies.signing``).
ANYONE = "0x" + "ff" * 20


class InvalidAddress(ValueError):
    """Raised when a string is not a 20-byte hex address."""


def canonical_address(value: str) -> str:
    """Return the one canonical form of an address: lowercase, ``0x``-prefixed.

    Raises :class:`InvalidAddress` for anything that is not exactly 20 bytes of hex.
    Checksum case is not verified here: a list lookup must not depend on case at all.
    """
    # fullmatch, not match: "$" also matches before a trailing newline.
    if not isinstance(value, str) or not _ADDRESS_RE.fullmatch(value):
        raise InvalidAddress(f"not a 20-byte hex address: {value!r}")
    return value.lower()


class MethodClass(StrEnum):
    """How a JSON-RPC method is treated (SPEC §3)."""

    SPENDING = "spending"
    SIGNING = "signing"
    READ = "read"
    ADMIN = "admin"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class NativeTransfer:
    """Native coin (ETH) leaves ``wallet`` towards ``to`` (a contract call with value too)."""

    chain_id: int
    wallet: str
    to: str
    amount: int


@dataclass(frozen=True, slots=True)
class TokenTransfer:
    """ERC-20 ``transfer`` / ``transferFrom``. ``source`` is the account debited.

    For ``transfer`` the source is the wallet; for ``transferFrom`` it is the ``from``
    argument, and the wallet acts on an allowance it was given. An EIP-3009 transfer
    authorization (signed typed data) is a transfer too, its source the signing wallet.
    """

    chain_id: int
    wallet: str
    token: str
    to: str
    amount: int
    source: str


@dataclass(frozen=True, slots=True)
class TokenApproval:
    """The wallet lets ``spender`` move up to ``amount`` of ``token``: exposure, so it counts.

    ``via`` is one of ``approve``, ``increaseAllowance``, ``permit`` (EIP-2612) or
    ``permit2``. ``unlimited`` is true for amounts at or above
    :data:`UNLIMITED_APPROVAL_THRESHOLD`.
    """

    chain_id: int
    wallet: str
    token: str
    spender: str
    amount: int
    unlimited: bool
    via: str


@dataclass(frozen=True, slots=True)
class NetworkFee:
    """The most a transaction can cost in fees, in the native coin: ``gas`` x the max fee
    per gas (or the legacy gas price), plus blob gas x the max fee per blob gas. Nobody
    on a list receives it (it is burnt or paid to the block producer), but it leaves the
    wallet: it counts with ``value`` in every native and USD cap."""

    chain_id: int
    wallet: str
    amount: int
    gas: int
    max_fee_per_gas: int
    blob_fee: int = 0


@dataclass(frozen=True, slots=True)
class NftTransfer:
    """ERC-721 / ERC-1155 tokens of ``collection`` leave ``source`` towards ``to``.

    ``token_ids`` and ``amounts`` are parallel (an ERC-721 token counts 1); ``source`` is
    the wallet, or the ``from`` argument where the wallet acts as an operator.
    """

    chain_id: int
    wallet: str
    collection: str
    to: str
    token_ids: tuple[int, ...]
    amounts: tuple[int, ...]
    source: str
    via: str

    @property
    def amount(self) -> int:
        """How many tokens move (what NFT count caps count)."""
        return sum(self.amounts)


@dataclass(frozen=True, slots=True)
class NftApproval:
    """The wallet lets ``operator`` move its tokens of ``collection``: one token
    (``token_id``) or, with ``token_id`` ``None`` (``setApprovalForAll``), all of them."""

    chain_id: int
    wallet: str
    collection: str
    operator: str
    token_id: int | None
    approved: bool
    via: str

    @property
    def unlimited(self) -> bool:
        """An approval for the whole collection is unlimited."""
        return self.token_id is None and self.approved

    @property
    def amount(self) -> int:
        """What the approval exposes, in tokens: 1 for one token, 0 for a revocation, and
        for the whole collection :data:`MAX_UINT256` (counted like an unlimited ERC-20
        approval: no cap admits it)."""
        if not self.approved:
            return 0
        return 1 if self.token_id is not None else MAX_UINT256


@dataclass(frozen=True, slots=True)
class ContractCall:
    """A call whose calldata is not a recognised token operation.

    ``selector`` is the 4-byte method id as ``0x`` + 8 lowercase hex digits, or ``None``
    when the calldata is shorter than 4 bytes. ``data`` is the whole calldata, so rules
    can judge the call's arguments. Value sent with the call is a separate
    :class:`NativeTransfer` (what is counted); ``value`` repeats it here so that a
    method entry can cap the value sent to that method (``max_value``).
    """

    chain_id: int
    wallet: str
    contract: str
    selector: str | None
    data_length: int
    data: bytes = b""
    value: int = 0


@dataclass(frozen=True, slots=True)
class ContractCreation:
    """A transaction with no ``to``: it deploys code. Value sent is a separate transfer."""

    chain_id: int
    wallet: str
    init_code_length: int


@dataclass(frozen=True, slots=True)
class Delegation:
    """An EIP-7702 authorization: the account's code is handed to ``delegate``."""

    chain_id: int
    wallet: str
    delegate: str
    authorization_chain_id: int


#: A typed-data value as it is signed: an integer (``uintN`` / ``intN``), a bool, a str
#: (a ``string``, or an ``address`` in canonical form), bytes (``bytes`` / ``bytesN``), a
#: struct, or a tuple of values (an array).
TypedValue: TypeAlias = "int | bool | str | bytes | TypedStruct | tuple[TypedValue, ...]"


@dataclass(frozen=True, slots=True)
class TypedStruct:
    """An EIP-712 struct value, immutable and hashable: its type name and its fields in
    declaration order, each ``(name, EIP-712 type, value)``."""

    type_name: str
    fields: tuple[tuple[str, str, TypedValue], ...]

    def get(self, name: str) -> TypedValue:
        """The value of field ``name``; ``KeyError`` when the struct has no such field."""
        for field_name, _, value in self.fields:
            if field_name == name:
                return value
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class MessageSignature:
    """An off-chain signature that is not (only) a recognised approval or transfer.

    ``method`` is the JSON-RPC method (``eth_sign``, ``personal_sign``,
    ``eth_signTypedData_v4``, ...). For typed data, ``primary_type``,
    ``verifying_contract``, ``chain_id`` and ``domain_name`` describe its domain and
    ``message`` is what is signed, for signing-allowlist entries to match.

    ``standard`` names a recognised shape that needs an explicit typed-data entry whatever
    else the policy allows: ``"erc7710-delegation"`` (it hands authority over the account
    to a delegate), or a permit or order whose domain binds no chain (``chain_id`` is
    ``None``: the signature replays on every chain), whose value moves are separate
    intents.
    """

    wallet: str
    method: str
    primary_type: str | None = None
    verifying_contract: str | None = None
    chain_id: int | None = None
    domain_name: str | None = None
    message: TypedStruct | None = None
    standard: str | None = None
    #: The EIP-712 type string of the primary type (``encodeType``: what the typehash
    #: hashes), e.g. ``Mail(Person from,string contents)Person(string name,address wallet)``.
    encoded_type: str | None = None


Intent = (
    NativeTransfer
    | NetworkFee
    | TokenTransfer
    | TokenApproval
    | NftTransfer
    | NftApproval
    | ContractCall
    | ContractCreation
    | Delegation
    | MessageSignature
)


@dataclass(frozen=True, slots=True)
class DecodedRequest:
    """One JSON-RPC call after decoding.

    ``wallet`` is the account that would act: the ``from`` of eth_sendTransaction, the
    recovered signer of a raw transaction, the address that would sign a message.
    ``chain_id`` is the chain the request binds (a raw transaction's signed chain id,
    or the declared ``chainId``), or ``None`` where nothing binds one; the proxy checks
    it against the wallet's chain. ``tx_hash`` is set for signed raw transactions (and
    only for them: admission refuses one whose ``chain_id`` is ``None``, pre-EIP-155).
    """

    method: str
    method_class: MethodClass
    wallet: str | None
    chain_id: int | None
    intents: tuple[Intent, ...]
    tx_hash: str | None = None
    nonce: int | None = None


class DecodeError(ValueError):
    """A request could not be decoded. ``code`` is a JSON-RPC error code (-32602 / -32600).

    ``where`` names the part of the request that was wrong (``params[0].value``).
    """

    def __init__(self, message: str, *, where: str = "", code: int = -32602) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.code = code

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message
