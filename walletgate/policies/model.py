"""The compiled policy model: plain, immutable data the evaluator reads.

The YAML document (``walletgate.config.documents``) is validated and compiled into a
:class:`PolicySet`. Amounts here are already integers in base units; USD is ``Decimal``;
addresses are canonical (lowercase). Nothing in this module does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from walletgate.policies.rule_types import (
    ApprovalLimit,
    AssetAllowlist,
    ChainAllowlist,
    ContractAllowlist,
    CumulativeCap,
    DelegationAllowlist,
    DestinationAllowlist,
    DestinationDenylist,
    FeeCap,
    Limit,
    PerTxCap,
    RateLimit,
    Rule,
    Scope,
    SigningAllowlist,
    Tier,
    TimeWindow,
    TypedDataEntry,
    Window,
)

__all__ = [
    "NFT_KINDS",
    "Agent",
    "ApprovalLimit",
    "Asset",
    "AssetAllowlist",
    "AssetKind",
    "ChainAllowlist",
    "ContractAllowlist",
    "CumulativeCap",
    "DelegationAllowlist",
    "DestinationAllowlist",
    "DestinationDenylist",
    "FeeCap",
    "Freeze",
    "Limit",
    "Owner",
    "PerTxCap",
    "Policy",
    "PolicySet",
    "RateLimit",
    "Rule",
    "Scope",
    "SigningAllowlist",
    "Tier",
    "TimeWindow",
    "TypedDataEntry",
    "Wallet",
    "Webhook",
    "Window",
    "describe_frozen",
]


@dataclass(frozen=True, slots=True)
class Webhook:
    """An owner's webhook endpoint: the secret is read from ``secret_env`` when sending;
    ``events`` empty means every event type."""

    id: str
    url: str
    secret_env: str
    events: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Owner:
    id: str
    name: str = ""
    webhooks: tuple[Webhook, ...] = ()


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    owner: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Wallet:
    id: str
    owner: str
    agent: str | None
    address: str
    chain_id: int
    description: str = ""


class AssetKind(StrEnum):
    """What an asset is: the native coin, a fungible token or an NFT collection."""

    NATIVE = "native"
    ERC20 = "erc20"
    ERC721 = "erc721"
    ERC1155 = "erc1155"


#: NFT collections: their base unit is one token (decimals 0), caps on them count tokens.
NFT_KINDS = frozenset({AssetKind.ERC721, AssetKind.ERC1155})


@dataclass(frozen=True, slots=True)
class Asset:
    """A coin, token or NFT collection on one chain. ``address`` is ``None`` for the
    chain's native coin. ``kind`` defaults to native without an address, else erc20.
    An NFT collection's price is per token."""

    id: str
    chain_id: int
    address: str | None
    symbol: str
    decimals: int
    price_usd: Decimal | None = None
    price_as_of: datetime | None = None
    price_max_age: timedelta | None = None
    kind: AssetKind = AssetKind.ERC20

    def __post_init__(self) -> None:
        if self.address is None and self.kind is AssetKind.ERC20:  # the default's meaning
            object.__setattr__(self, "kind", AssetKind.NATIVE)
        if (self.address is None) != (self.kind is AssetKind.NATIVE):
            raise ValueError(f"asset {self.id!r}: kind {self.kind} does not fit its address")
        if self.kind in NFT_KINDS and self.decimals != 0:
            raise ValueError(f"asset {self.id!r}: an NFT collection has decimals 0")

    @property
    def native(self) -> bool:
        return self.address is None

    @property
    def nft(self) -> bool:
        """True for an ERC-721 or ERC-1155 collection."""
        return self.kind in NFT_KINDS

    def price_at(self, now: datetime) -> Decimal | None:
        """The USD price of one whole unit at ``now``, or ``None`` when missing or stale."""
        if self.price_usd is None or self.price_as_of is None:
            return None
        if self.price_max_age is not None and now - self.price_as_of > self.price_max_age:
            return None
        return self.price_usd

    def usd_value(self, base_units: int, now: datetime) -> Decimal | None:
        """USD value of ``base_units``, or ``None`` when the price is missing or stale."""
        price = self.price_at(now)
        if price is None:
            return None
        return Decimal(base_units) * price / (Decimal(10) ** self.decimals)


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    scope: Scope
    target: str  # the id of the owner, agent or wallet it is attached to
    rules: tuple[Rule, ...]
    enabled: bool = True
    description: str = ""
    version: int = 1


@dataclass(frozen=True, slots=True)
class Freeze:
    """The kill switch, pulled for one agent, one wallet or (``scope`` "all") everyone."""

    scope: str  # "all" | "agent" | "wallet"
    target: str | None  # the agent or wallet id; None for "all"
    reason: str
    frozen_by: str
    frozen_at: datetime

    def describe(self) -> str:
        """What is frozen, for humans (see :func:`describe_frozen`)."""
        return describe_frozen(self.scope, self.target)


def describe_frozen(scope: str, target: str | None) -> str:
    """``"agent 'trader'"``, ``"wallet 'hot'"`` or ``"every agent and wallet"``."""
    return "every agent and wallet" if target is None else f"{scope} {target!r}"


@dataclass(frozen=True)
class PolicySet:
    """Everything the evaluator needs, as one immutable snapshot with a version stamp.

    Lookups by address and by scope are indexed once at construction, so a decision
    costs the same with one wallet or a hundred thousand.
    """

    version: int
    owners: Mapping[str, Owner] = field(default_factory=dict)
    agents: Mapping[str, Agent] = field(default_factory=dict)
    wallets: Mapping[str, Wallet] = field(default_factory=dict)
    assets: Mapping[str, Asset] = field(default_factory=dict)
    policies: tuple[Policy, ...] = ()
    #: Active freezes: a frozen agent or wallet (or everyone) may not spend or sign.
    frozen: tuple[Freeze, ...] = ()
    _wallet_index: dict[tuple[int, str], Wallet] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _asset_index: dict[tuple[int, str | None], Asset] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _scope_index: dict[tuple[Scope, str], tuple[Policy, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    #: ``policies_for`` per (wallet id, agent, owner), filled on first use: every spend
    #: of a wallet needs it, and the three scope lookups (Enum hashing) add up.
    _applicable_memo: dict[tuple[str, str | None, str], tuple[Policy, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    #: ``claims.request_rate_claims`` per (agent, wallet id, wallet agent, wallet owner):
    #: every call of an agent needs them, reads included.
    _request_claims: dict[tuple[str, str | None, str | None, str | None], tuple[Any, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    #: The addresses of each agent's wallets per chain, in document order.
    _agent_wallets: dict[tuple[str, int], tuple[str, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    #: What the evaluator's judges derived from one rule of this set and one fact of a
    #: request (``policies.rules``), kept with the set so that it is dropped with it.
    _judged: dict[tuple[int, int, tuple[str, ...]], tuple[Policy, Rule, object]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        for wallet in self.wallets.values():
            self._wallet_index[(wallet.chain_id, wallet.address)] = wallet
            if wallet.agent is not None:
                key = (wallet.agent, wallet.chain_id)
                self._agent_wallets[key] = (*self._agent_wallets.get(key, ()), wallet.address)
        for asset in self.assets.values():
            self._asset_index[(asset.chain_id, asset.address)] = asset
        grouped: dict[tuple[Scope, str], list[Policy]] = {}
        for policy in self.policies:
            if policy.enabled:
                grouped.setdefault((policy.scope, policy.target), []).append(policy)
        self._scope_index.update({key: tuple(value) for key, value in grouped.items()})

    def freeze_for(self, agent_id: str, wallet_id: str | None = None) -> Freeze | None:
        """The freeze that stops ``agent_id`` (acting for ``wallet_id``), if any: one on
        everyone first, then on the agent, then on the wallet."""
        if not self.frozen:  # the common case: nothing to rank
            return None
        rank = {("all", None): 0, ("agent", agent_id): 1}
        if wallet_id is not None:
            rank[("wallet", wallet_id)] = 2
        applying = [f for f in self.frozen if (f.scope, f.target) in rank]
        return min(applying, key=lambda f: rank[(f.scope, f.target)], default=None)

    @property
    def judged(self) -> dict[tuple[int, int, tuple[str, ...]], tuple[Policy, Rule, object]]:
        """The judges' memo (see ``policies.rules``): (id(policy), id(rule), what) ->
        (policy, rule, derived value). The objects are kept to check identity: an id is
        only unique while its object lives."""
        return self._judged

    @property
    def request_claims_memo(
        self,
    ) -> dict[tuple[str, str | None, str | None, str | None], tuple[Any, ...]]:
        """``claims.request_rate_claims``'s memo, kept with the set (dropped with it)."""
        return self._request_claims

    def wallet_by_address(self, chain_id: int, address: str) -> Wallet | None:
        """The wallet with this canonical address on this chain, if walletgate knows it."""
        return self._wallet_index.get((chain_id, address))

    def agent_addresses(self, agent_id: str, chain_id: int) -> tuple[str, ...]:
        """The canonical addresses of ``agent_id``'s wallets on ``chain_id``."""
        return self._agent_wallets.get((agent_id, chain_id), ())

    def asset_by_address(self, chain_id: int, address: str | None) -> Asset | None:
        """The asset at ``address`` on ``chain_id`` (``None`` for the native coin)."""
        return self._asset_index.get((chain_id, address))

    def policies_for_agent(self, agent: Agent) -> tuple[Policy, ...]:
        """Enabled policies attached to the agent or its owner (requests with no wallet)."""
        return self._scope_index.get((Scope.AGENT, agent.id), ()) + self._scope_index.get(
            (Scope.OWNER, agent.owner), ()
        )

    def policies_for(self, wallet: Wallet) -> tuple[Policy, ...]:
        """Enabled policies attached to the wallet, its agent or its owner."""
        # Keyed on everything the answer depends on, not only the id: a caller may pass
        # a Wallet that is not this set's own.
        key = (wallet.id, wallet.agent, wallet.owner)
        found = self._applicable_memo.get(key)
        if found is None:
            found = self._applicable_memo[key] = self._policies_for(wallet)
        return found

    def _policies_for(self, wallet: Wallet) -> tuple[Policy, ...]:
        found = self._scope_index.get((Scope.WALLET, wallet.id), ())
        if wallet.agent is not None:
            found += self._scope_index.get((Scope.AGENT, wallet.agent), ())
        return found + self._scope_index.get((Scope.OWNER, wallet.owner), ())
