"""The rule types of the policy model: plain, immutable data, one dataclass per rule,
and what they are made of (scopes, limits, windows). Amounts are integers in base
units, USD is ``Decimal``, addresses are canonical. ``policies.model`` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from decimal import Decimal
from enum import StrEnum

from walletgate.policies.method_rules import MethodRule


class Scope(StrEnum):
    OWNER = "owner"
    AGENT = "agent"
    WALLET = "wallet"


@dataclass(frozen=True, slots=True)
class Limit:
    """An amount limit: either ``base_units`` of ``asset`` or a ``usd`` value."""

    asset: str | None = None
    base_units: int | None = None
    usd: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Window:
    """A counting window: rolling (``seconds``) or calendar (``calendar`` in ``timezone``)."""

    seconds: int | None = None
    calendar: str | None = None  # "day" | "week" | "month"
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class PerTxCap:
    id: str
    limit: Limit
    type: str = "per_tx_cap"


@dataclass(frozen=True, slots=True)
class CumulativeCap:
    id: str
    limit: Limit
    window: Window
    scope: Scope
    type: str = "cumulative_cap"


@dataclass(frozen=True, slots=True)
class RateLimit:
    id: str
    counts: str  # "requests" | "transactions"
    max: int
    per_seconds: int
    scope: Scope  # AGENT or WALLET
    type: str = "rate_limit"


@dataclass(frozen=True, slots=True)
class DestinationAllowlist:
    id: str
    addresses: frozenset[str]
    type: str = "destination_allowlist"


@dataclass(frozen=True, slots=True)
class DestinationDenylist:
    id: str
    addresses: frozenset[str]
    type: str = "destination_denylist"


@dataclass(frozen=True, slots=True)
class AssetAllowlist:
    id: str
    assets: frozenset[str]
    type: str = "asset_allowlist"


@dataclass(frozen=True, slots=True)
class ContractAllowlist:
    """Allowed (contract, selector) pairs. A selector of ``None`` allows every method.

    ``method_rules`` are the methods listed with their signature (and conditions,
    recipients, a ``max_value``): a call they name passes when one of them admits it
    (``policies.contract_rules``).
    """

    id: str
    methods: frozenset[tuple[str, str | None]]
    allow_create: bool = False
    type: str = "contract_allowlist"
    method_rules: tuple[MethodRule, ...] = ()


@dataclass(frozen=True, slots=True)
class ChainAllowlist:
    id: str
    chains: frozenset[int]
    type: str = "chain_allowlist"


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Spends are allowed only on ``days`` (0 = Monday) between ``start`` and ``end``.

    ``end`` before ``start`` means the window crosses midnight.
    """

    id: str
    timezone: str
    days: frozenset[int]
    start: time
    end: time
    type: str = "time_window"


@dataclass(frozen=True, slots=True)
class ApprovalLimit:
    id: str
    limit: Limit
    allow_unlimited: bool = False
    type: str = "approval_limit"


@dataclass(frozen=True, slots=True)
class Tier:
    """Above ``above``, the spend is notified, delayed or held for owner approval."""

    id: str
    above: Limit
    action: str  # "notify" | "delay" | "require_approval"
    delay_seconds: int = 0
    #: How long a hold waits for its owner before it expires (None: the default, 24 h).
    approval_timeout_seconds: int | None = None
    type: str = "tier"


@dataclass(frozen=True, slots=True)
class TypedDataEntry:
    """Typed data a signing allowlist admits: documents whose domain has exactly this
    ``verifying_contract`` and ``chain_id`` (and ``name``, when given) and whose primary
    type is ``primary_type`` (with exactly the EIP-712 type string ``types``, when
    given); with ``conditions`` (a ``policies.conditions`` tree over the message as a
    tuple of its fields) only those whose message passes. ``allow_missing_chain_id``
    also admits documents whose domain has no chainId (valid on every chain)."""

    verifying_contract: str
    chain_id: int
    primary_type: str
    name: str | None = None
    types: str | None = None
    allow_missing_chain_id: bool = False
    conditions: object | None = None  # a policies.conditions.Condition


@dataclass(frozen=True, slots=True)
class SigningAllowlist:
    """Message-signing methods this scope may use (eth_sign, personal_sign, typed data).

    A typed-data method in ``methods`` admits only documents a ``typed_data`` entry
    matches (see ``policies.signing``), unless ``allow_any_typed_data_unsafe`` admits
    every document that decodes to no recognised standard.
    """

    id: str
    methods: frozenset[str]
    typed_data: tuple[TypedDataEntry, ...] = ()
    allow_any_typed_data_unsafe: bool = False
    type: str = "signing_allowlist"


@dataclass(frozen=True, slots=True)
class DelegationAllowlist:
    """EIP-7702 delegates this scope may hand its code to (refused unless listed)."""

    id: str
    delegates: frozenset[str]
    type: str = "delegation_allowlist"


@dataclass(frozen=True, slots=True)
class FeeCap:
    """Bounds the network fees of each transaction: their most (``limit``, native base
    units or USD, summed over the request) and the max fee per gas (``max_fee_per_gas``,
    wei). Either may be ``None``; the compiler requires one."""

    id: str
    limit: Limit | None = None
    max_fee_per_gas: int | None = None
    type: str = "fee_cap"


Rule = (
    PerTxCap
    | FeeCap
    | CumulativeCap
    | RateLimit
    | DestinationAllowlist
    | DestinationDenylist
    | AssetAllowlist
    | ContractAllowlist
    | ChainAllowlist
    | TimeWindow
    | ApprovalLimit
    | Tier
    | SigningAllowlist
    | DelegationAllowlist
)
