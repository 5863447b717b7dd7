"""Hypothesis strategies for valid policy documents, with consistent cross-references.

Every generated document passes validation: agents and wallets name existing owners, a
wallet's agent belongs to the wallet's owner, (chain, address) pairs are unique, rules
name existing assets and carry amounts their asset's decimals can represent. Spellings
vary (checksummed or lowercase addresses, ``24h`` or ``1d``, ``"1.50"`` or ``1``), so
canonicalisation is exercised too.
"""

from __future__ import annotations

from typing import Any

from eth_utils import to_checksum_address
from hypothesis import strategies as st

from walletgate.config.amounts import from_base_units

CHAINS = (1, 10, 1337)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SIGNING = ("eth_sign", "personal_sign", "eth_signTypedData", "eth_signTypedData_v3")

ids = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,8}", fullmatch=True)
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=24)
durations = st.builds(
    lambda number, unit: f"{number}{unit}", st.integers(1, 400), st.sampled_from("smhd")
)
zones = st.sampled_from(("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"))


def flip(draw: st.DrawFn) -> bool:
    """A coin toss."""
    return draw(st.booleans())


@st.composite
def addresses(draw: st.DrawFn) -> str:
    """A 20-byte address, spelt lowercase, upper-case or EIP-55 checksummed."""
    raw = "0x" + draw(st.binary(min_size=20, max_size=20)).hex()
    spelling = draw(st.sampled_from(("lower", "upper", "checksum")))
    if spelling == "upper":
        return "0x" + raw[2:].upper()
    if spelling == "checksum":
        return str(to_checksum_address(raw))
    return raw


def address_lists(min_size: int = 1) -> st.SearchStrategy[list[str]]:
    """Addresses that stay distinct after canonicalisation."""
    return st.lists(addresses(), min_size=min_size, max_size=4, unique_by=str.lower)


@st.composite
def amounts(draw: st.DrawFn, decimals: int, *, positive: bool = True) -> str | int:
    """An amount in whole units that ``decimals`` can represent, in a random spelling."""
    base_units = draw(st.integers(1 if positive else 0, 10**30))
    text = from_base_units(base_units, decimals)
    if "." not in text and draw(st.booleans()):
        return int(text)  # a YAML integer is a valid amount too
    if "." in text and draw(st.booleans()):
        text += "0"  # trailing zeros do not change the value
    return text


usd_amounts = st.builds(lambda cents: from_base_units(cents, 2), st.integers(1, 10**12))


@st.composite
def _limit(
    draw: st.DrawFn, assets: list[dict[str, Any]], amount_key: str, usd_key: str
) -> dict[str, Any]:
    if assets and flip(draw):
        asset = draw(st.sampled_from(assets))
        return {"asset": asset["id"], amount_key: draw(amounts(asset["decimals"]))}
    return {usd_key: draw(usd_amounts)}


@st.composite
def rules(draw: st.DrawFn, assets: list[dict[str, Any]]) -> dict[str, Any]:
    """One rule of any type (ids are set by the caller)."""
    kinds = [
        "per_tx_cap", "cumulative_cap", "rate_limit", "destination_allowlist",
        "destination_denylist", "contract_allowlist", "chain_allowlist", "time_window",
        "tier", "signing_allowlist", "delegation_allowlist",
    ]  # fmt: skip
    if assets:
        kinds += ["asset_allowlist", "approval_limit"]
    kind = draw(st.sampled_from(kinds))
    rule: dict[str, Any] = {"type": kind}
    if kind == "per_tx_cap":
        rule |= draw(_limit(assets, "max", "usd"))
    elif kind == "cumulative_cap":
        rule |= draw(_limit(assets, "max", "usd"))
        if draw(st.booleans()):
            rule["window"] = draw(durations)
        else:
            rule["calendar"] = draw(st.sampled_from(("day", "week", "month")))
            if draw(st.booleans()):
                rule["timezone"] = draw(zones)
        rule["scope"] = draw(st.sampled_from(("wallet", "agent", "owner")))
    elif kind == "rate_limit":
        rule["counts"] = draw(st.sampled_from(("requests", "transactions")))
        rule["max"] = draw(st.integers(1, 10_000))
        rule["per"] = draw(durations)
        rule["scope"] = draw(st.sampled_from(("agent", "wallet")))
    elif kind in ("destination_allowlist", "destination_denylist"):
        rule["addresses"] = draw(address_lists())
    elif kind == "delegation_allowlist":
        rule["delegates"] = draw(address_lists())
    elif kind == "asset_allowlist":
        chosen = draw(st.lists(st.sampled_from(assets), min_size=1, unique_by=lambda a: a["id"]))
        rule["assets"] = [asset["id"] for asset in chosen]
    elif kind == "contract_allowlist":
        contracts = []
        for address in draw(address_lists(min_size=0)):
            contract: dict[str, Any] = {"address": address}
            methods = draw(
                st.sampled_from(
                    (None, ["*"], ["0xa9059cbb"], ["transfer(address, uint256)", "0x095EA7B3"])
                )
            )
            if methods is not None:
                contract["methods"] = methods
            contracts.append(contract)
        rule["contracts"] = contracts
        if draw(st.booleans()):
            rule["allow_create"] = draw(st.booleans())
    elif kind == "chain_allowlist":
        rule["chains"] = draw(st.lists(st.sampled_from(CHAINS), min_size=1, unique=True))
    elif kind == "time_window":
        start, end = draw(
            st.lists(st.integers(0, 24 * 60 - 1), min_size=2, max_size=2, unique=True)
        )
        rule["timezone"] = draw(zones)
        rule["days"] = draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, unique=True))
        rule["from"] = f"{start // 60:02d}:{start % 60:02d}"
        rule["to"] = f"{end // 60:02d}:{end % 60:02d}"
    elif kind == "approval_limit":
        asset = draw(st.sampled_from(assets))
        rule |= {"asset": asset["id"], "max": draw(amounts(asset["decimals"]))}
        if draw(st.booleans()):
            rule["allow_unlimited"] = draw(st.booleans())
    elif kind == "tier":
        if assets and flip(draw):
            asset = draw(st.sampled_from(assets))
            rule |= {
                "asset": asset["id"],
                "above": draw(amounts(asset["decimals"], positive=False)),
            }
        else:
            rule["usd_above"] = draw(usd_amounts)
        rule["action"] = draw(st.sampled_from(("notify", "delay", "require_approval")))
        if rule["action"] == "delay":
            rule["delay"] = draw(durations)
    elif kind == "signing_allowlist":
        rule["methods"] = draw(st.lists(st.sampled_from(SIGNING), min_size=1, unique=True))
        if draw(st.booleans()):
            rule["typed_data"] = draw(st.lists(_typed_data_entry(), min_size=1, max_size=3))
        _maybe(draw, rule, "allow_any_typed_data_unsafe", st.booleans())
    return rule


@st.composite
def _typed_data_entry(draw: st.DrawFn) -> dict[str, Any]:
    """A typed_data entry of a signing allowlist, with or without conditions."""
    entry: dict[str, Any] = {
        "verifying_contract": draw(addresses()),
        "chain_id": draw(st.sampled_from((1, 1337))),
        "primary_type": "Mail",
    }
    _maybe(draw, entry, "name", st.sampled_from(("Ether Mail", "")))
    _maybe(draw, entry, "allow_missing_chain_id", st.booleans())
    if draw(st.booleans()):
        entry["types"] = "Mail(address from,uint256 amount)"
        entry["conditions"] = {"amount": {"lte": draw(st.integers(0, 10**30))}}
    return entry


def _maybe(
    draw: st.DrawFn, entity: dict[str, Any], key: str, strategy: st.SearchStrategy[Any]
) -> None:
    if draw(st.booleans()):
        entity[key] = draw(strategy)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid policy document."""
    owners = [
        {"id": owner_id} for owner_id in draw(st.lists(ids, min_size=1, max_size=3, unique=True))
    ]
    for owner in owners:
        _maybe(draw, owner, "name", texts)
    owner_ids = [owner["id"] for owner in owners]

    agents = []
    for agent_id in draw(st.lists(ids, max_size=3, unique=True)):
        agent = {"id": agent_id, "owner": draw(st.sampled_from(owner_ids))}
        _maybe(draw, agent, "description", texts)
        agents.append(agent)

    wallets = []
    wallet_keys = draw(
        st.lists(
            st.tuples(st.sampled_from(CHAINS), addresses()),
            max_size=4,
            unique_by=lambda key: (key[0], key[1].lower()),
        )
    )
    wallet_ids = draw(
        st.lists(ids, min_size=len(wallet_keys), max_size=len(wallet_keys), unique=True)
    )
    for wallet_id, (chain, address) in zip(wallet_ids, wallet_keys, strict=True):
        owner_id = draw(st.sampled_from(owner_ids))
        wallet: dict[str, Any] = {
            "id": wallet_id,
            "owner": owner_id,
            "chain": chain,
            "address": address,
        }
        theirs = [agent["id"] for agent in agents if agent["owner"] == owner_id]
        if theirs and flip(draw):
            wallet["agent"] = draw(st.sampled_from(theirs))
        _maybe(draw, wallet, "description", texts)
        wallets.append(wallet)

    assets = []
    asset_keys = draw(
        st.lists(
            st.tuples(st.sampled_from(CHAINS), st.one_of(st.none(), addresses())),
            max_size=3,
            unique_by=lambda key: (key[0], key[1].lower() if key[1] else None),
        )
    )
    asset_ids = draw(st.lists(ids, min_size=len(asset_keys), max_size=len(asset_keys), unique=True))
    for asset_id, (chain, token) in zip(asset_ids, asset_keys, strict=True):
        asset: dict[str, Any] = {"id": asset_id, "chain": chain}
        if token is None:
            asset["native"] = True
        else:
            asset["address"] = token
        asset["symbol"] = draw(st.from_regex(r"[A-Z]{1,8}", fullmatch=True))
        asset["decimals"] = draw(st.integers(0, 30))
        if token is not None and flip(draw):
            asset["kind"] = draw(st.sampled_from(("erc20", "erc721", "erc1155")))
            if asset["kind"] != "erc20":  # an NFT collection counts whole tokens
                asset["decimals"] = 0
        if draw(st.booleans()):
            asset["price_usd"] = draw(usd_amounts)
            asset["price_as_of"] = draw(
                st.sampled_from(("2026-11-01T00:00:00Z", "2026-11-01T09:30:00+02:00"))
            )
            _maybe(draw, asset, "price_max_age", durations)
        assets.append(asset)

    targets = [("owner", owner_id) for owner_id in owner_ids]
    targets += [("agent", agent["id"]) for agent in agents]
    targets += [("wallet", wallet["id"]) for wallet in wallets]
    policies = []
    for policy_id in draw(st.lists(ids, max_size=3, unique=True)):
        scope, target = draw(st.sampled_from(targets))
        rule_ids = draw(st.lists(ids, min_size=1, max_size=4, unique=True))
        policy: dict[str, Any] = {
            "id": policy_id,
            scope: target,
            "rules": [{"id": rule_id, **draw(rules(assets))} for rule_id in rule_ids],
        }
        _maybe(draw, policy, "description", texts)
        _maybe(draw, policy, "enabled", st.booleans())
        policies.append(policy)

    return {
        "version": 1,
        "owners": owners,
        "agents": agents,
        "wallets": wallets,
        "assets": assets,
        "policies": policies,
    }
