"""The canonical form of a valid policy document: one spelling for each meaning.

Used for diffing (``plan``), for storage (the JSONB ``rules`` column) and for export.
Entities are sorted by id, addresses are lowercase, decimals and durations have one
spelling (``"1.50"`` -> ``"1.5"``, ``24h`` -> ``1d``), defaults are written out, and
unordered lists (allowlists, days) are sorted. Rule order is kept as written. Amounts stay
in whole asset units, as the operator wrote them; base units are the compiler's business.
The canonical form is itself a valid document, and canonicalising it changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

from walletgate.config.addresses import checked_address
from walletgate.config.amounts import normalize_decimal
from walletgate.config.durations import normalize_duration
from walletgate.config.methods import canonical_entry, entry_order
from walletgate.config.semantics import SCOPE_KEYS, parse_timestamp
from walletgate.config.typed_data import canonical_entries

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ANY_METHOD = "*"

# The order keys are written in; it is also the order a rule reads best in.
_RULE_KEY_ORDER = (
    "id", "type", "counts", "asset", "max", "usd", "max_fee_per_gas_gwei", "above",
    "usd_above", "per", "window",
    "calendar", "timezone", "scope", "addresses", "assets", "contracts", "lists",
    "allow_create", "chains", "days", "from", "to", "allow_unlimited", "action", "delay",
    "approval_timeout",
    "methods", "typed_data", "allow_any_typed_data_unsafe", "delegates",
)  # fmt: skip

_RULE_DEFAULTS: dict[str, dict[str, Any]] = {
    "contract_allowlist": {"allow_create": False},
    "approval_limit": {"allow_unlimited": False},
    "signing_allowlist": {"allow_any_typed_data_unsafe": False},
}


def canonical_timestamp(text: str) -> str:
    """An ISO-8601 time with a zone, in UTC, written with ``Z``."""
    moment = parse_timestamp(text).astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")


def canonical_method(method: str) -> str:
    """A contract method as written, with one spelling: lowercase selectors, no spaces."""
    if method.startswith("0x"):
        return method.lower()
    return method.replace(" ", "")


def _addresses(values: list[str]) -> list[str]:
    return sorted(checked_address(value) for value in values)


def _contracts(values: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    contracts = [
        {
            "address": checked_address(contract["address"]),
            "methods": _methods(contract.get("methods", [ANY_METHOD])),
        }
        for contract in values
    ]
    return sorted(contracts, key=lambda contract: contract["address"])


def _methods(methods: list[str | Mapping[str, Any]]) -> list[str | dict[str, Any]]:
    """Plain methods (strings), then method objects (``config.methods``), each once."""
    canonical = [canonical_method(m) if isinstance(m, str) else canonical_entry(m) for m in methods]
    unique = {entry_order(entry): entry for entry in canonical}
    return [unique[key] for key in sorted(unique)]


def _lists(lists: Mapping[str, list[str]]) -> dict[str, list[str]]:
    return {name: sorted(set(_addresses(items))) for name, items in sorted(lists.items())}


_RULE_VALUES: dict[str, Callable[[Any], Any]] = {
    "max": normalize_decimal,
    "usd": normalize_decimal,
    "max_fee_per_gas_gwei": normalize_decimal,
    "above": normalize_decimal,
    "usd_above": normalize_decimal,
    "window": normalize_duration,
    "per": normalize_duration,
    "delay": normalize_duration,
    "approval_timeout": normalize_duration,
    "addresses": _addresses,
    "delegates": _addresses,
    "assets": sorted,
    "chains": sorted,
    "methods": sorted,
    "contracts": _contracts,
    "lists": _lists,
    "typed_data": canonical_entries,
    "days": lambda days: sorted(days, key=WEEKDAYS.index),
}


def canonical_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """One rule in canonical form (keys in reading order, defaults filled in)."""
    values = {**_RULE_DEFAULTS.get(rule["type"], {}), **rule}
    if rule["type"] == "cumulative_cap" and "calendar" in values:
        values.setdefault("timezone", "UTC")
    out: dict[str, Any] = {}
    for key in _RULE_KEY_ORDER:
        if key in values:
            convert = _RULE_VALUES.get(key)
            # A rate limit's max is a count (an int), not an amount of an asset.
            if convert is None or (key == "max" and rule["type"] == "rate_limit"):
                out[key] = values[key]
            else:
                out[key] = convert(values[key])
    return out


def canonical_policy(policy: Mapping[str, Any]) -> dict[str, Any]:
    """One policy in canonical form."""
    out: dict[str, Any] = {
        "id": policy["id"],
        "description": policy.get("description", ""),
        "enabled": policy.get("enabled", True),
    }
    for scope in SCOPE_KEYS:
        if scope in policy:
            out[scope] = policy[scope]
    out["rules"] = [canonical_rule(rule) for rule in policy["rules"]]
    return out


def _webhook(hook: Mapping[str, Any]) -> dict[str, Any]:
    out = {"id": hook["id"], "url": hook["url"], "secret_env": hook["secret_env"]}
    if "events" in hook:  # absent: every event type
        out["events"] = sorted(set(hook["events"]))
    return out


def _owner(owner: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": owner["id"], "name": owner.get("name", "")}
    # No webhooks, no key: documents without them canonicalise as before.
    if owner.get("webhooks"):
        out["webhooks"] = sorted((_webhook(h) for h in owner["webhooks"]), key=_by_id)
    return out


def _agent(agent: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": agent["id"], "owner": agent["owner"], "description": agent.get("description", "")}


def _wallet(wallet: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": wallet["id"], "owner": wallet["owner"]}
    if wallet.get("agent") is not None:
        out["agent"] = wallet["agent"]
    out["chain"] = wallet["chain"]
    out["address"] = checked_address(wallet["address"])
    out["description"] = wallet.get("description", "")
    return out


def _asset(asset: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": asset["id"], "chain": asset["chain"]}
    out["kind"] = asset.get("kind", "erc20" if "address" in asset else "native")
    if "address" in asset:
        out["address"] = checked_address(asset["address"])
    else:
        out["native"] = True
    out["symbol"] = asset["symbol"]
    # An NFT collection counts whole tokens: the schema allows only 0, or nothing.
    out["decimals"] = asset.get("decimals", 0)
    if "price_usd" in asset:
        out["price_usd"] = normalize_decimal(asset["price_usd"])
        out["price_as_of"] = canonical_timestamp(asset["price_as_of"])
    if "price_max_age" in asset:
        out["price_max_age"] = normalize_duration(asset["price_max_age"])
    return out


_ENTITIES: tuple[tuple[str, Callable[[Mapping[str, Any]], dict[str, Any]]], ...] = (
    ("owners", _owner),
    ("agents", _agent),
    ("wallets", _wallet),
    ("assets", _asset),
    ("policies", canonical_policy),
)


def canonical_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical form of a document that passed validation (see the module docs)."""
    out: dict[str, Any] = {"version": 1}
    for kind, convert in _ENTITIES:
        out[kind] = sorted((convert(entity) for entity in doc.get(kind, [])), key=_by_id)
    return out


def _by_id(entity: Mapping[str, Any]) -> str:
    entity_id: str = entity["id"]
    return entity_id
