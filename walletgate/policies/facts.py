"""What a request moves, resolved once so that every rule judges the same figures.

A :class:`Movement` is an intent that moves or approves value (a native transfer, a
token transfer or ``transferFrom``, an approval), paired with its asset. Approvals are
exposure: they count towards amounts exactly like transfers. NFT transfers and
approvals are movements too: their amount is a count of tokens (an NFT collection's
base unit is one token), and an operator is a destination like a spender. The
:class:`Exposure` of a
request sums its movements per asset and values them in USD, exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import TypeGuard

from walletgate.intents import (
    Intent,
    NativeTransfer,
    NetworkFee,
    NftApproval,
    NftTransfer,
    TokenApproval,
    TokenTransfer,
)
from walletgate.policies.amounts import format_asset_amount, to_decimal, usd_value
from walletgate.policies.model import Asset, Policy, PolicySet, Rule, Wallet
from walletgate.policies.nfts import describe_nft, is_revocation
from walletgate.policies.request import SpendRequest

#: Intents that move or approve value. A :class:`NetworkFee` moves the native coin to
#: nobody on any list: it counts in every amount, but is no destination.
Movable = NativeTransfer | TokenTransfer | TokenApproval | NetworkFee | NftTransfer | NftApproval

#: The USD value of a request that moves nothing priced (Fractions are immutable).
_ZERO_USD = Fraction(0)


@dataclass(frozen=True, slots=True)
class Movement:
    """An intent that moves or approves value, with the asset it is in."""

    intent: Movable
    asset: Asset

    @property
    def amount(self) -> int:
        return self.intent.amount


@dataclass(frozen=True, slots=True)
class Exposure:
    """What a request moves or approves: base units per asset id, and the USD total.

    ``usd`` is ``None`` when an asset with a non-zero amount has no usable price;
    ``unpriced`` names those assets (by id, sorted).
    """

    amounts: tuple[tuple[str, int], ...]
    usd: Fraction | None
    unpriced: tuple[str, ...] = ()
    _usd_decimal: Decimal | None = field(default=None, init=False, repr=False, compare=False)

    def usd_decimal(self) -> Decimal | None:
        """``usd`` as an exact Decimal (``None`` when unknown). Converted once: the
        decision and the texts of USD rules both need it."""
        if self.usd is None:
            return None
        if self._usd_decimal is None:
            object.__setattr__(self, "_usd_decimal", to_decimal(self.usd))
        return self._usd_decimal

    def amount_of(self, asset_id: str) -> int:
        """Base units of ``asset_id`` in the request (0 when it moves none)."""
        # A request moves one or two assets: a scan is cheaper than building a dict.
        for amount_asset, amount in self.amounts:
            if amount_asset == asset_id:
                return amount
        return 0


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """The request, its wallet and its movements, resolved for the rules to judge."""

    request: SpendRequest
    wallet: Wallet
    now: datetime
    assets: Mapping[str, Asset]
    movements: tuple[Movement, ...]
    exposure: Exposure
    #: The judges' memo of the policy set the request is judged under
    #: (:attr:`PolicySet.judged`); a private one when none is given.
    judged: dict[tuple[int, int, tuple[str, ...]], tuple[Policy, Rule, object]] = field(
        default_factory=dict, repr=False, compare=False
    )
    #: Contract-call arguments that applicable ``contract_allowlist`` entries mark as
    #: recipients (``policies.contract_rules.marked_recipients``): destinations too.
    marked_recipients: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    #: Where value goes: transfer recipients, approval spenders and marked recipients.
    #: Derived once here, since both destination lists of every applicable policy ask.
    destinations: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        destinations = frozenset(
            destination_of(intent)
            for intent in self.intents
            # Revoking an NFT operator grants it nothing (revoking a denylisted one is fine).
            if is_movable(intent)
            and not isinstance(intent, NetworkFee)
            and not is_revocation(intent)
        )
        object.__setattr__(self, "destinations", destinations | self.marked_recipients)

    @property
    def intents(self) -> tuple[Intent, ...]:
        return self.request.decoded.intents


def is_movable(intent: Intent) -> TypeGuard[Movable]:
    """True for intents that move or approve value."""
    return isinstance(
        intent,
        NativeTransfer | TokenTransfer | TokenApproval | NetworkFee | NftTransfer | NftApproval,
    )


def destination_of(intent: Movable) -> str:
    """The address value goes to: the recipient, or the spender of an approval (a
    network fee goes to no address walletgate could list: ``"the network"``)."""
    if isinstance(intent, NetworkFee):
        return "the network"
    if isinstance(intent, NftApproval):
        return intent.operator
    return intent.spender if isinstance(intent, TokenApproval) else intent.to


def asset_of(intent: Movable, chain_id: int, policies: PolicySet) -> Asset | None:
    """The asset an intent moves on ``chain_id``, or ``None`` when walletgate does not know it."""
    return policies.asset_by_address(chain_id, contract_of(intent))


def contract_of(intent: Movable) -> str | None:
    """The token or collection contract an intent moves; ``None`` for the native coin."""
    if isinstance(intent, NativeTransfer | NetworkFee):
        return None
    return intent.collection if isinstance(intent, NftTransfer | NftApproval) else intent.token


def resolve_movements(request: SpendRequest, policies: PolicySet) -> tuple[Movement, ...]:
    """The request's value-moving intents whose asset is known, in request order."""
    movements = []
    for intent in request.decoded.intents:
        if is_movable(intent):
            asset = asset_of(intent, request.chain_id, policies)
            if asset is not None:
                movements.append(Movement(intent, asset))
    return tuple(movements)


def measure(movements: Iterable[Movement], now: datetime) -> Exposure:
    """Sum movements per asset and value the sums in USD at ``now``."""
    totals: dict[str, int] = {}
    assets: dict[str, Asset] = {}
    for movement in movements:
        totals[movement.asset.id] = totals.get(movement.asset.id, 0) + movement.amount
        assets[movement.asset.id] = movement.asset
    amounts = tuple(sorted(totals.items()))
    usd: Fraction | None = None  # no priced amount yet
    unpriced = []
    for asset_id, amount in amounts:
        if amount == 0:
            continue  # nothing moves, so no price is needed
        value = usd_value(assets[asset_id], amount, now)
        if value is None:
            unpriced.append(asset_id)
        else:
            # Fractions are exact and canonical: starting from the first value rather
            # than adding it to 0 gives the same value, without a gcd.
            usd = value if usd is None else usd + value
    return Exposure(
        amounts=amounts,
        usd=None if unpriced else (_ZERO_USD if usd is None else usd),
        unpriced=tuple(unpriced),
    )


def describe_movement(movement: Movement, wallet_address: str) -> str:
    """A movement for humans: ``"transfer of 1.5 ETH to 0x…"``."""
    intent, asset = movement.intent, movement.asset
    if isinstance(intent, NftTransfer | NftApproval):
        return describe_nft(intent, asset, wallet_address)
    amount = format_asset_amount(intent.amount, asset)
    if isinstance(intent, NetworkFee):
        return f"network fee of up to {amount}"
    if isinstance(intent, TokenApproval):
        if intent.unlimited:
            return f"unlimited approval of {asset.symbol} to spender {intent.spender}"
        return f"approval of {amount} to spender {intent.spender}"
    if isinstance(intent, TokenTransfer) and intent.source != wallet_address:
        return f"transferFrom of {amount} from {intent.source} to {intent.to}"
    return f"transfer of {amount} to {intent.to}"
