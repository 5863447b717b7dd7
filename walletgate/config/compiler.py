"""Compile a canonical policy document into the evaluator's :class:`PolicySet`.

Pure: whole-unit amounts become exact integer base units (string arithmetic, never
float), durations become seconds, method signatures become 4-byte selectors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import time, timedelta
from decimal import Decimal
from typing import Any

from eth_utils.abi import function_signature_to_4byte_selector

from walletgate.config.amounts import to_base_units
from walletgate.config.durations import parse_duration
from walletgate.config.methods import compile_lists, compile_method
from walletgate.config.normalize import ANY_METHOD, WEEKDAYS
from walletgate.config.semantics import SCOPE_KEYS, parse_timestamp
from walletgate.config.typed_data import compile_entry
from walletgate.policies.fee_rules import GWEI_DECIMALS
from walletgate.policies.method_rules import MethodRule
from walletgate.policies.model import (
    Agent,
    ApprovalLimit,
    Asset,
    AssetAllowlist,
    AssetKind,
    ChainAllowlist,
    ContractAllowlist,
    CumulativeCap,
    DelegationAllowlist,
    DestinationAllowlist,
    DestinationDenylist,
    FeeCap,
    Limit,
    Owner,
    PerTxCap,
    Policy,
    PolicySet,
    RateLimit,
    Rule,
    Scope,
    SigningAllowlist,
    Tier,
    TimeWindow,
    Wallet,
    Webhook,
    Window,
)


def selector_of(method: str) -> str | None:
    """The 4-byte selector of a canonical contract method; ``None`` for ``"*"`` (any)."""
    if method == ANY_METHOD:
        return None
    if method.startswith("0x"):
        return method
    return "0x" + function_signature_to_4byte_selector(method).hex()


class _RuleCompiler:
    """Turns canonical rule mappings into rule dataclasses, resolving asset decimals."""

    def __init__(self, assets: Mapping[str, Asset]) -> None:
        self._assets = assets
        self._by_type: dict[str, Callable[[Mapping[str, Any]], Rule]] = {
            "per_tx_cap": lambda r: PerTxCap(r["id"], self._limit(r, "max", "usd")),
            "cumulative_cap": lambda r: CumulativeCap(
                r["id"], self._limit(r, "max", "usd"), _window(r), Scope(r["scope"])
            ),
            "rate_limit": lambda r: RateLimit(
                r["id"], r["counts"], r["max"], parse_duration(r["per"]), Scope(r["scope"])
            ),
            "destination_allowlist": lambda r: DestinationAllowlist(
                r["id"], frozenset(r["addresses"])
            ),
            "destination_denylist": lambda r: DestinationDenylist(
                r["id"], frozenset(r["addresses"])
            ),
            "asset_allowlist": lambda r: AssetAllowlist(r["id"], frozenset(r["assets"])),
            "contract_allowlist": lambda r: ContractAllowlist(
                r["id"],
                frozenset(
                    (contract["address"], selector_of(method))
                    for contract in r["contracts"]
                    for method in contract["methods"]
                    if isinstance(method, str)
                ),
                r["allow_create"],
                method_rules=_method_rules(r),
            ),
            "chain_allowlist": lambda r: ChainAllowlist(r["id"], frozenset(r["chains"])),
            "time_window": lambda r: TimeWindow(
                r["id"],
                r["timezone"],
                frozenset(WEEKDAYS.index(day) for day in r["days"]),
                time.fromisoformat(r["from"]),
                time.fromisoformat(r["to"]),
            ),
            "approval_limit": lambda r: ApprovalLimit(
                r["id"], self._limit(r, "max", "usd"), r["allow_unlimited"]
            ),
            "tier": lambda r: Tier(
                r["id"],
                self._limit(r, "above", "usd_above"),
                r["action"],
                parse_duration(r["delay"]) if "delay" in r else 0,
                parse_duration(r["approval_timeout"]) if "approval_timeout" in r else None,
            ),
            "signing_allowlist": lambda r: SigningAllowlist(
                r["id"],
                frozenset(r["methods"]),
                typed_data=tuple(
                    compile_entry(entry, compile_lists(r.get("lists")))
                    for entry in r.get("typed_data", [])
                ),
                allow_any_typed_data_unsafe=r.get("allow_any_typed_data_unsafe", False),
            ),
            "delegation_allowlist": lambda r: DelegationAllowlist(
                r["id"], frozenset(r["delegates"])
            ),
            "fee_cap": lambda r: FeeCap(
                r["id"],
                self._limit(r, "max", "usd") if "asset" in r or "usd" in r else None,
                to_base_units(r["max_fee_per_gas_gwei"], GWEI_DECIMALS)
                if "max_fee_per_gas_gwei" in r
                else None,
            ),
        }

    def compile(self, rule: Mapping[str, Any]) -> Rule:
        return self._by_type[rule["type"]](rule)

    def _limit(self, rule: Mapping[str, Any], amount_key: str, usd_key: str) -> Limit:
        if usd_key in rule:
            return Limit(usd=Decimal(rule[usd_key]))
        asset = self._assets[rule["asset"]]
        base_units = to_base_units(rule[amount_key], asset.decimals, symbol=asset.symbol)
        return Limit(asset=asset.id, base_units=base_units)


def _method_rules(rule: Mapping[str, Any]) -> tuple[MethodRule, ...]:
    """The methods a ``contract_allowlist`` lists as objects (``config.methods``)."""
    lists = compile_lists(rule.get("lists"))
    return tuple(
        compile_method(contract["address"], method, lists)
        for contract in rule["contracts"]
        for method in contract["methods"]
        if not isinstance(method, str)
    )


def _window(rule: Mapping[str, Any]) -> Window:
    if "window" in rule:
        return Window(seconds=parse_duration(rule["window"]))
    return Window(calendar=rule["calendar"], timezone=rule["timezone"])


def _asset(asset: Mapping[str, Any]) -> Asset:
    max_age = asset.get("price_max_age")
    return Asset(
        id=asset["id"],
        chain_id=asset["chain"],
        address=asset.get("address"),
        symbol=asset["symbol"],
        decimals=asset["decimals"],
        price_usd=Decimal(asset["price_usd"]) if "price_usd" in asset else None,
        price_as_of=parse_timestamp(asset["price_as_of"]) if "price_as_of" in asset else None,
        price_max_age=timedelta(seconds=parse_duration(max_age)) if max_age else None,
        kind=AssetKind(asset["kind"]),
    )


def _owner(owner: Mapping[str, Any]) -> Owner:
    webhooks = tuple(
        Webhook(h["id"], h["url"], h["secret_env"], frozenset(h.get("events", ())))
        for h in owner.get("webhooks", ())
    )
    return Owner(owner["id"], owner["name"], webhooks)


def compile_canonical(
    doc: Mapping[str, Any], version: int, policy_versions: Mapping[str, int] | None = None
) -> PolicySet:
    """Build the :class:`PolicySet` for a canonical document (see ``normalize``)."""
    assets = {asset["id"]: _asset(asset) for asset in doc["assets"]}
    rules = _RuleCompiler(assets)
    versions = policy_versions or {}
    policies = []
    for policy in doc["policies"]:
        scope = next(Scope(key) for key in SCOPE_KEYS if key in policy)
        policies.append(
            Policy(
                id=policy["id"],
                scope=scope,
                target=policy[str(scope)],
                rules=tuple(rules.compile(rule) for rule in policy["rules"]),
                enabled=policy["enabled"],
                description=policy["description"],
                version=versions.get(policy["id"], 1),
            )
        )
    return PolicySet(
        version=version,
        owners={o["id"]: _owner(o) for o in doc["owners"]},
        agents={a["id"]: Agent(a["id"], a["owner"], a["description"]) for a in doc["agents"]},
        wallets={
            w["id"]: Wallet(
                w["id"], w["owner"], w.get("agent"), w["address"], w["chain"], w["description"]
            )
            for w in doc["wallets"]
        },
        assets=assets,
        policies=tuple(policies),
    )
