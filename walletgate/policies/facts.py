"""What a request moves, resolved once so that every rule judges the same figures.

A :class:`Movement` is an intent that moves or approves value (a native transfer, a
token transfer or ``transferFrom``, an approval), paired with its asset. Approvals are
exposure: they count towards amounts exactly like transfers. The :class:`Exposure` of a
request sums its movements per asset and values them in USD, exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import TypeGuard

from walletgate.intents import Intent, NativeTransfer, TokenApproval, TokenTransfer
from walletgate.policies.amounts import format_asset_amount, to_decimal, usd_value
from walletgate.policies.model import Asset, Policy, PolicySet, Rule, Wallet
from walletgate.policies.request import SpendRequest

#: Intents that move or approve value.
Movable = NativeTransfer | TokenTransfer | TokenApproval

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
    #: Where value goes: transfer recipients and approval spenders. Derived once here,
    #: since both destination lists of every applicable policy ask for it.
    destinations: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        destinations = frozenset(
            destination_of(intent) for intent in self.intents if is_movable(intent)
        )
        object.__setattr__(self, "destinations", destinations)

    @property
    def intents(self) -> tuple[Intent, ...]:
        return self.request.decoded.intents


def is_movable(intent: Intent) -> TypeGuard[Movable]:
    """True for intents that move or approve value."""
    return isinstance(intent, NativeTransfer | TokenTransfer | TokenApproval)


def destination_of(intent: Movable) -> str:
    """The address value goes to: the recipient, or the spender of an approval."""
    return intent.spender if isinstance(intent, TokenApproval) else intent.to


def asset_of(intent: Movable, chain_id: int, policies: PolicySet) -> Asset | None:
    """The asset an intent moves on ``chain_id``, or ``None`` when walletgate does not know it."""
    token = None if isinstance(intent, NativeTransfer) else intent.token
    return policies.asset_by_address(chain_id, token)


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
    amount = format_asset_amount(intent.amount, asset)
    if isinstance(intent, TokenApproval):
        if intent.unlimited:
            return f"unlimited approval of {asset.symbol} to spender {intent.spender}"
        return f"approval of {amount} to spender {intent.spender}"
    if isinstance(intent, TokenTransfer) and intent.source != wallet_address:
        return f"transferFrom of {amount} from {intent.source} to {intent.to}"
    return f"transfer of {amount} to {intent.to}"
