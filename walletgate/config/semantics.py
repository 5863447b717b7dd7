"""Checks the schema cannot express: references, uniqueness, exact amounts, time zones.

Runs on a document that already passed the schema check, so the shapes are known.
Pure: returns :class:`Problem` values at key paths, never raises on bad content.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from walletgate.config.addresses import checked_address
from walletgate.config.amounts import AmountError, normalize_decimal, to_base_units
from walletgate.config.document_errors import KeyPath, Problem, format_path
from walletgate.config.durations import DurationError, parse_duration
from walletgate.config.methods import method_problems
from walletgate.config.typed_data import typed_data_problems
from walletgate.intents import ANYONE, InvalidAddress
from walletgate.policies.fee_rules import GWEI_DECIMALS

ENTITY_KINDS = ("owners", "agents", "wallets", "assets", "policies")
SCOPE_KEYS = ("owner", "agent", "wallet")
_SINGULAR = {"owners": "owner", "agents": "agent", "wallets": "wallet", "assets": "asset"}


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone, or ``None`` if it is one."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/Berlin"
    return None


def parse_timestamp(text: str) -> datetime:
    """An ISO-8601 time that names its zone; raises ``ValueError`` otherwise."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 time such as 2026-11-01T00:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add Z or an offset such as +01:00")
    return moment


@dataclass
class _Index:
    """Ids seen so far, by kind, and the entities they name (first occurrence wins)."""

    by_kind: dict[str, dict[str, Mapping[str, Any]]] = field(default_factory=dict)

    def get(self, kind: str, entity_id: str) -> Mapping[str, Any] | None:
        return self.by_kind.get(kind, {}).get(entity_id)


def semantic_problems(doc: Mapping[str, Any]) -> list[Problem]:
    """Every semantic problem in a schema-valid document."""
    index = _Index()
    problems = list(_duplicate_ids(doc, index))
    problems += _webhook_problems(doc)
    problems += _agent_problems(doc, index)
    problems += _wallet_problems(doc, index)
    problems += _asset_problems(doc)
    for number, policy in enumerate(doc.get("policies", [])):
        problems += _policy_problems(policy, ("policies", number), index)
    return problems


def _duplicate_ids(doc: Mapping[str, Any], index: _Index) -> Iterator[Problem]:
    for kind in ENTITY_KINDS:
        seen: dict[str, int] = {}
        index.by_kind[kind] = {}
        for number, entity in enumerate(doc.get(kind, [])):
            entity_id = entity["id"]
            if entity_id in seen:
                yield Problem(
                    (kind, number, "id"),
                    f"duplicate id {entity_id!r}: already used by {kind}[{seen[entity_id]}]",
                )
                continue
            seen[entity_id] = number
            index.by_kind[kind][entity_id] = entity


def _reference(index: _Index, kind: str, entity_id: str, path: KeyPath) -> Iterator[Problem]:
    if index.get(kind, entity_id) is None:
        known = sorted(index.by_kind.get(kind, {}))
        hint = f" (known: {', '.join(known[:10])})" if known else f" (the document has no {kind})"
        yield Problem(path, f"unknown {_SINGULAR[kind]} {entity_id!r}{hint}")


def _webhook_problems(doc: Mapping[str, Any]) -> Iterator[Problem]:
    """Each owner's webhook ids are unique and each URL names a host and no credentials
    (a password in a URL would be a secret in the document and in every export)."""
    for number, owner in enumerate(doc.get("owners", [])):
        seen: dict[str, int] = {}
        for hook_number, hook in enumerate(owner.get("webhooks", [])):
            path: KeyPath = ("owners", number, "webhooks", hook_number)
            if hook["id"] in seen:
                yield Problem(
                    (*path, "id"),
                    f"duplicate webhook id {hook['id']!r}: already used by "
                    f"webhooks[{seen[hook['id']]}]",
                )
            else:
                seen[hook["id"]] = hook_number
            message = webhook_url_problem(hook["url"])
            if message is not None:
                yield Problem((*path, "url"), message)


def webhook_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook endpoint, or ``None`` if it can."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return (
            "must not carry credentials: the signature (secret_env) authenticates "
            "walletgate to the receiver"
        )
    if any(ch.isspace() for ch in url):
        return "must not contain spaces"
    return None


def _agent_problems(doc: Mapping[str, Any], index: _Index) -> Iterator[Problem]:
    for number, agent in enumerate(doc.get("agents", [])):
        yield from _reference(index, "owners", agent["owner"], ("agents", number, "owner"))


def _wallet_problems(doc: Mapping[str, Any], index: _Index) -> Iterator[Problem]:
    seen: dict[tuple[int, str], int] = {}
    for number, wallet in enumerate(doc.get("wallets", [])):
        path: KeyPath = ("wallets", number)
        yield from _reference(index, "owners", wallet["owner"], (*path, "owner"))
        agent_id = wallet.get("agent")
        if agent_id is not None:
            agent = index.get("agents", agent_id)
            if agent is None:
                yield from _reference(index, "agents", agent_id, (*path, "agent"))
            elif agent["owner"] != wallet["owner"]:
                yield Problem(
                    (*path, "agent"),
                    f"agent {agent_id!r} belongs to owner {agent['owner']!r}, "
                    f"but this wallet belongs to {wallet['owner']!r}",
                )
        try:
            address = checked_address(wallet["address"])
        except InvalidAddress as exc:
            yield Problem((*path, "address"), str(exc))
            continue
        key = (wallet["chain"], address)
        if key in seen:
            yield Problem(
                (*path, "address"),
                f"wallets[{seen[key]}] already has address {address} on chain {key[0]}",
            )
        else:
            seen[key] = number


def _asset_problems(doc: Mapping[str, Any]) -> Iterator[Problem]:
    seen: dict[tuple[int, str | None], int] = {}
    for number, asset in enumerate(doc.get("assets", [])):
        path: KeyPath = ("assets", number)
        address: str | None = None
        if "address" in asset:
            try:
                address = checked_address(asset["address"])
            except InvalidAddress as exc:
                yield Problem((*path, "address"), str(exc))
                continue
        key = (asset["chain"], address)
        if key in seen:
            what = f"address {address}" if address else "the native coin"
            yield Problem(
                (*path, "address" if address else "native"),
                f"assets[{seen[key]}] is already {what} on chain {key[0]}",
            )
        else:
            seen[key] = number
        if "price_usd" in asset:
            yield from _positive(asset["price_usd"], (*path, "price_usd"), "a price")
        if "price_as_of" in asset:
            try:
                parse_timestamp(asset["price_as_of"])
            except ValueError as exc:
                yield Problem((*path, "price_as_of"), str(exc))
        if "price_max_age" in asset:
            yield from _duration(asset["price_max_age"], (*path, "price_max_age"))


def _positive(value: str | int, path: KeyPath, what: str) -> Iterator[Problem]:
    if normalize_decimal(value) == "0":
        yield Problem(path, f"{what} of 0 is not allowed: it must be greater than 0")


def _duration(text: str, path: KeyPath) -> Iterator[Problem]:
    try:
        parse_duration(text)
    except DurationError as exc:
        yield Problem(path, str(exc))


def _timezone(name: str, path: KeyPath) -> Iterator[Problem]:
    message = timezone_problem(name)
    if message is not None:
        yield Problem(path, message)


def _policy_problems(policy: Mapping[str, Any], path: KeyPath, index: _Index) -> Iterator[Problem]:
    for scope in SCOPE_KEYS:
        if scope in policy:
            yield from _reference(index, f"{scope}s", policy[scope], (*path, scope))
    seen: dict[str, int] = {}
    for number, rule in enumerate(policy["rules"]):
        rule_path: KeyPath = (*path, "rules", number)
        if rule["id"] in seen:
            yield Problem(
                (*rule_path, "id"),
                f"duplicate rule id {rule['id']!r}: already used by rules[{seen[rule['id']]}]",
            )
        else:
            seen[rule["id"]] = number
        yield from _rule_problems(rule, rule_path, index)


def _rule_problems(rule: Mapping[str, Any], path: KeyPath, index: _Index) -> Iterator[Problem]:
    kind = rule["type"]
    if "asset" in rule:
        amount_key = "above" if kind == "tier" else "max"
        yield from _asset_amount(rule, path, index, amount_key, positive=kind != "tier")
    if "usd" in rule:
        yield from _positive(rule["usd"], (*path, "usd"), "a cap")
    for duration_key in ("window", "per", "delay", "approval_timeout"):
        if duration_key in rule:
            yield from _duration(rule[duration_key], (*path, duration_key))
    if "timezone" in rule:
        yield from _timezone(rule["timezone"], (*path, "timezone"))
    for list_key in ("addresses", "delegates"):
        if list_key in rule:
            items = rule[list_key]
            yield from _address_list(items, [(*path, list_key, n) for n in range(len(items))])
    if kind == "asset_allowlist":
        for number, asset_id in enumerate(rule["assets"]):
            yield from _reference(index, "assets", asset_id, (*path, "assets", number))
    elif kind == "contract_allowlist":
        yield from _contract_problems(rule["contracts"], (*path, "contracts"))
        for name, items in rule.get("lists", {}).items():
            yield from _address_list(items, [(*path, "lists", name, n) for n in range(len(items))])
        yield from method_problems(rule, path)
    elif kind == "signing_allowlist":
        for name, items in rule.get("lists", {}).items():
            yield from _address_list(items, [(*path, "lists", name, n) for n in range(len(items))])
        yield from typed_data_problems(rule, path)
    if kind == "fee_cap":
        yield from _fee_cap_problems(rule, path, index)
    if kind == "time_window" and rule["from"] == rule["to"]:
        yield Problem(
            (*path, "to"),
            f"from and to are both {rule['from']}: the window would be empty "
            "(to allow the whole day, drop the time_window rule)",
        )


def _fee_cap_problems(rule: Mapping[str, Any], path: KeyPath, index: _Index) -> Iterator[Problem]:
    """A fee cap's asset is a native coin (fees are paid in it), and its fee per gas is a
    positive whole number of wei."""
    asset = index.get("assets", rule["asset"]) if "asset" in rule else None
    if asset is not None and not asset.get("native"):
        yield Problem(
            (*path, "asset"),
            f"fees are paid in the native coin, but {rule['asset']!r} is a token: "
            "name the chain's native asset (or give usd)",
        )
    if "max_fee_per_gas_gwei" in rule:
        where = (*path, "max_fee_per_gas_gwei")
        try:
            to_base_units(rule["max_fee_per_gas_gwei"], GWEI_DECIMALS, symbol="gwei")
        except AmountError as exc:
            yield Problem(where, f"{exc} (1 gwei is 10^9 wei)")
            return
        yield from _positive(rule["max_fee_per_gas_gwei"], where, "a fee per gas")


def _asset_amount(
    rule: Mapping[str, Any], path: KeyPath, index: _Index, amount_key: str, *, positive: bool
) -> Iterator[Problem]:
    asset = index.get("assets", rule["asset"])
    if asset is None:
        yield from _reference(index, "assets", rule["asset"], (*path, "asset"))
        return
    try:
        # An NFT collection may leave decimals out: it counts whole tokens.
        to_base_units(rule[amount_key], asset.get("decimals", 0), symbol=asset["symbol"])
    except AmountError as exc:
        yield Problem((*path, amount_key), str(exc))
        return
    if positive:
        yield from _positive(rule[amount_key], (*path, amount_key), "a limit")


def _address_list(addresses: Sequence[str], paths: Sequence[KeyPath]) -> Iterator[Problem]:
    """Each address is valid and listed once (after canonicalisation: case does not count)."""
    seen: dict[str, KeyPath] = {}
    for text, path in zip(addresses, paths, strict=True):
        try:
            address = checked_address(text)
        except InvalidAddress as exc:
            yield Problem(path, str(exc))
            continue
        if address == ANYONE:
            yield Problem(
                path,
                f"{ANYONE} stands for anyone (whoever fulfils an order or executes a signed "
                "transaction), so it cannot be listed",
            )
            continue
        if address in seen:
            yield Problem(path, f"{address} is listed twice (also at {format_path(seen[address])})")
        else:
            seen[address] = path


def _contract_problems(contracts: Sequence[Mapping[str, Any]], path: KeyPath) -> Iterator[Problem]:
    yield from _address_list(
        [contract["address"] for contract in contracts],
        [(*path, number, "address") for number in range(len(contracts))],
    )
    for number, contract in enumerate(contracts):
        methods = contract.get("methods", [])
        if "*" in methods and len(methods) > 1:
            yield Problem(
                (*path, number, "methods"),
                '"*" allows every method; list it alone or list the methods instead',
            )
