"""Decisions and their explanations: what the evaluator returns.

A decision is plain data, so it can be logged (``to_json``), returned to an agent in a
JSON-RPC error's ``data``, and compared in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    HOLD = "hold"  # waiting for owner approval (a tier rule)


class Reason(StrEnum):
    """Machine-readable reasons. Stable: agents and dashboards match on these strings."""

    ALLOWED = "allowed"
    NO_POLICY = "no_policy"
    UNKNOWN_WALLET = "unknown_wallet"
    WALLET_NOT_OWNED = "wallet_not_owned"
    CHAIN_MISMATCH = "chain_mismatch"
    PER_TX_CAP = "per_tx_cap_exceeded"
    FEE_CAP = "fee_cap_exceeded"
    CUMULATIVE_CAP = "cumulative_cap_exceeded"
    RATE_LIMITED = "rate_limited"
    DESTINATION_NOT_ALLOWED = "destination_not_allowed"
    DESTINATION_DENIED = "destination_denied"
    ASSET_NOT_ALLOWED = "asset_not_allowed"
    UNKNOWN_ASSET = "unknown_asset"
    CONTRACT_NOT_ALLOWED = "contract_not_allowed"
    CHAIN_NOT_ALLOWED = "chain_not_allowed"
    OUTSIDE_TIME_WINDOW = "outside_time_window"
    APPROVAL_LIMIT = "approval_limit_exceeded"
    UNLIMITED_APPROVAL = "unlimited_approval"
    PRICE_UNAVAILABLE = "price_unavailable"
    SIGNING_NOT_ALLOWED = "signing_not_allowed"
    DELEGATION_NOT_ALLOWED = "delegation_not_allowed"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    APPROVAL_REQUIRED = "approval_required"
    FROZEN = "frozen"
    UNAVAILABLE = "unavailable"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule's verdict on one request: which policy and rule, the limit, and the figures."""

    policy: str
    rule: str
    rule_type: str
    passed: bool
    reason: Reason
    message: str
    limit: str | None = None  # human-readable, e.g. "0.5 ETH" or "1000 USD"
    requested: str | None = None
    already_spent: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "policy": self.policy,
            "rule": self.rule,
            "rule_type": self.rule_type,
            "passed": self.passed,
            "reason": str(self.reason),
            "message": self.message,
        }
        for key in ("limit", "requested", "already_spent"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class CounterClaim:
    """A reservation the counters step must make before forwarding (cumulative caps, rates).

    ``key`` names the counter (scope + id + rule + unit); ``amount`` is what this request
    adds, ``limit`` the cap, both integers (base units, USD in micro-dollars rounded so the
    check is never looser than the policy, or a count). ``window`` carries the policy's
    window so the counters layer can bucket it.
    """

    key: str
    amount: int
    limit: int
    policy: str
    rule: str
    unit: str
    window_seconds: int | None = None
    calendar: str | None = None
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one request, with every finding that led to it."""

    outcome: Outcome
    reason: Reason
    message: str
    findings: tuple[Finding, ...] = ()
    claims: tuple[CounterClaim, ...] = ()
    usd_value: Decimal | None = None
    amounts: tuple[tuple[str, int], ...] = field(default=())  # (asset id, base units)
    # A `notify` tier fired: the owner is told about this request (whatever the outcome).
    notify: bool = False
    # For HOLD: seconds after which a `delay` tier releases the request by itself;
    # None means it waits for the owner's approval.
    hold_delay_seconds: int | None = None
    # For HOLD: seconds the hold waits before it expires (the shortest ``approval_timeout``
    # of the holding tiers); None means walletgate's default.
    hold_timeout_seconds: int | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW

    @property
    def deciding(self) -> Finding | None:
        """The first failing finding: the one that names the policy and rule to the agent."""
        return next((f for f in self.findings if not f.passed), None)

    def to_json(self) -> dict[str, Any]:
        deciding = self.deciding
        out: dict[str, Any] = {
            "decision": str(self.outcome),
            "reason": str(self.reason),
            "message": self.message,
            # A coverage gap has no policy or rule (""): report it as null.
            "policy": (deciding.policy or None) if deciding else None,
            "rule": (deciding.rule or None) if deciding else None,
            "findings": [f.to_json() for f in self.findings],
            "usd_value": str(self.usd_value) if self.usd_value is not None else None,
            "amounts": {asset: str(units) for asset, units in self.amounts},
        }
        if self.notify:
            out["notify"] = True
        if self.outcome is Outcome.HOLD:
            out["hold_delay_seconds"] = self.hold_delay_seconds
        return out
