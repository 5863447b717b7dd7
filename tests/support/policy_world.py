"""A small compiled policy world for evaluator tests, and builders for requests in it.

Addresses are written in mixed case on purpose and canonicalised by the builders, as a
decoder would: no comparison in the evaluator may depend on how an address was spelled.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from walletgate.intents import (
    MAX_UINT256,
    UNLIMITED_APPROVAL_THRESHOLD,
    ContractCall,
    ContractCreation,
    DecodedRequest,
    Delegation,
    Intent,
    MessageSignature,
    MethodClass,
    NativeTransfer,
    NetworkFee,
    TokenApproval,
    TokenTransfer,
    canonical_address,
)
from walletgate.policies.model import (
    Agent,
    Asset,
    Limit,
    Owner,
    Policy,
    PolicySet,
    Rule,
    Scope,
    Wallet,
)
from walletgate.policies.request import SpendRequest

CHAIN = 1337
OTHER_CHAIN = 5
#: Thursday 26 November 2026, 12:00 UTC (13:00 in Berlin).
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

TRADER_HOT = canonical_address("0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf")
PAYROLL_MAIN = canonical_address("0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF")
TRADER_FAR = canonical_address("0x6813Eb9362372EEF6200f3b1dbC3f819671cBA69")
STRANGER = canonical_address("0x1eFF47bc3a10a45D4B230B5d10E37751FE6AA718")

ALICE = canonical_address("0xE57bFE9F44b819898F47BF37E5AF72a0783e1141")
BOB = canonical_address("0xd41c057fd1c78805AAC12B0A94a405c0461A6FBb")
SINK = canonical_address("0x000000000000000000000000000000000000dEaD")
ROUTER = canonical_address("0xF1F6619B38A98d6De0800F1DefC0a6399eB6d30C")
DELEGATE = canonical_address("0x63FaC9201494f0bd17B9892B9fae4d52fe3BD377")

WUSD_TOKEN = canonical_address("0xF2E246BB76DF876Cef8b38ae84130F4F55De395b")
STALE_TOKEN = canonical_address("0x0B1ba0af832d7C05fD64161E0Db78E85978E8082")
UNPRICED_TOKEN = canonical_address("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23")
UNKNOWN_TOKEN = canonical_address("0xAbCdEf0123456789aBcDeF0123456789AbCdEf01")

SWAP_SELECTOR = "0x38ed1739"
OTHER_SELECTOR = "0xdeadbeef"

ETH = Asset(
    "eth",
    CHAIN,
    None,
    "ETH",
    18,
    price_usd=Decimal("3000.00"),
    price_as_of=NOW - timedelta(minutes=1),
    price_max_age=timedelta(hours=1),
)
WUSD = Asset(
    "wusd",
    CHAIN,
    WUSD_TOKEN,
    "WUSD",
    6,
    price_usd=Decimal("1.00"),
    price_as_of=NOW - timedelta(minutes=1),
    price_max_age=timedelta(hours=1),
)
STALE = Asset(
    "stale",
    CHAIN,
    STALE_TOKEN,
    "STL",
    18,
    price_usd=Decimal("2.50"),
    price_as_of=NOW - timedelta(hours=2),
    price_max_age=timedelta(hours=1),
)
UNPRICED = Asset("unpriced", CHAIN, UNPRICED_TOKEN, "UNP", 0)
GOERLI_ETH = Asset("goerli-eth", OTHER_CHAIN, None, "GETH", 18)
ASSETS = {asset.id: asset for asset in (ETH, WUSD, STALE, UNPRICED, GOERLI_ETH)}

OWNERS = {"acme": Owner("acme"), "globex": Owner("globex")}
AGENTS = {
    "trader": Agent("trader", "acme"),
    "payroll": Agent("payroll", "acme"),
    "spy": Agent("spy", "globex"),
}
WALLETS = {
    "trader-hot": Wallet("trader-hot", "acme", "trader", TRADER_HOT, CHAIN),
    "payroll-main": Wallet("payroll-main", "acme", "payroll", PAYROLL_MAIN, CHAIN),
    "trader-far": Wallet("trader-far", "acme", "trader", TRADER_FAR, OTHER_CHAIN),
}


def units(amount: str, decimals: int) -> int:
    """Whole units written as a decimal string, in base units, exactly."""
    whole, _, fraction = amount.partition(".")
    return int(whole + fraction.ljust(decimals, "0")) if fraction else int(whole) * 10**decimals


def eth(amount: str) -> int:
    return units(amount, 18)


def wusd(amount: str) -> int:
    return units(amount, 6)


def eth_limit(amount: str) -> Limit:
    return Limit(asset="eth", base_units=eth(amount))


def wusd_limit(amount: str) -> Limit:
    return Limit(asset="wusd", base_units=wusd(amount))


def usd_limit(amount: str) -> Limit:
    return Limit(usd=Decimal(amount))


def policy(
    policy_id: str,
    *rules: Rule,
    scope: Scope = Scope.AGENT,
    target: str = "trader",
    enabled: bool = True,
) -> Policy:
    return Policy(policy_id, scope, target, tuple(rules), enabled=enabled)


def world(*policies: Policy, assets: Iterable[Asset] | None = None) -> PolicySet:
    """The world's entities with ``policies``."""
    chosen = ASSETS if assets is None else {asset.id: asset for asset in assets}
    return PolicySet(
        version=1,
        owners=OWNERS,
        agents=AGENTS,
        wallets=WALLETS,
        assets=chosen,
        policies=tuple(policies),
    )


# -- intents, from mixed-case input ----------------------------------------------------


def native(to: str, amount: int, *, wallet: str = TRADER_HOT, chain: int = CHAIN) -> NativeTransfer:
    return NativeTransfer(chain, canonical_address(wallet), canonical_address(to), amount)


def fee(
    per_gas: int, *, gas: int = 21_000, wallet: str = TRADER_HOT, chain: int = CHAIN
) -> NetworkFee:
    """The network fee of a transaction: ``gas`` x ``per_gas`` wei."""
    return NetworkFee(chain, canonical_address(wallet), gas * per_gas, gas, per_gas)


def transfer(
    token: str, to: str, amount: int, *, source: str | None = None, wallet: str = TRADER_HOT
) -> TokenTransfer:
    wallet = canonical_address(wallet)
    return TokenTransfer(
        CHAIN,
        wallet,
        canonical_address(token),
        canonical_address(to),
        amount,
        canonical_address(source) if source else wallet,
    )


def approval(
    token: str, spender: str, amount: int, *, via: str = "approve", wallet: str = TRADER_HOT
) -> TokenApproval:
    return TokenApproval(
        CHAIN,
        canonical_address(wallet),
        canonical_address(token),
        canonical_address(spender),
        amount,
        amount >= UNLIMITED_APPROVAL_THRESHOLD,
        via,
    )


def unlimited_approval(token: str, spender: str) -> TokenApproval:
    return approval(token, spender, MAX_UINT256)


def call(contract: str, selector: str | None, *, wallet: str = TRADER_HOT) -> ContractCall:
    # 68 bytes of calldata: the selector and two zero words, as a decoder would keep them.
    data = (bytes.fromhex(selector[2:]) if selector else b"") + bytes(64)
    return ContractCall(
        CHAIN, canonical_address(wallet), canonical_address(contract), selector, len(data), data
    )


def creation(*, wallet: str = TRADER_HOT) -> ContractCreation:
    return ContractCreation(CHAIN, canonical_address(wallet), 1024)


def delegation(
    delegate: str, *, wallet: str = TRADER_HOT, authorization_chain: int = CHAIN
) -> Delegation:
    return Delegation(
        CHAIN, canonical_address(wallet), canonical_address(delegate), authorization_chain
    )


def signature(
    method: str, *, wallet: str = TRADER_HOT, verifying_contract: str | None = None
) -> MessageSignature:
    """A message signature; with ``verifying_contract``, typed data for that contract."""
    if verifying_contract is None:
        return MessageSignature(canonical_address(wallet), method)
    return MessageSignature(
        canonical_address(wallet), method, "Unknown", canonical_address(verifying_contract), CHAIN
    )


def spend(
    *intents: Intent,
    agent: str = "trader",
    wallet: str | None = TRADER_HOT,
    method: str = "eth_sendTransaction",
    method_class: MethodClass = MethodClass.SPENDING,
    chain_id: int = CHAIN,
    bound_chain: int | None = None,
    tx_hash: str | None = None,
) -> SpendRequest:
    """A request from ``agent`` to a backend on ``chain_id``; ``bound_chain`` is the signed
    one; ``tx_hash`` makes it a signed raw transaction."""
    decoded = DecodedRequest(
        method=method,
        method_class=method_class,
        wallet=canonical_address(wallet) if wallet else None,
        chain_id=bound_chain,
        intents=intents,
        tx_hash=tx_hash,
    )
    return SpendRequest(agent_id=agent, decoded=decoded, chain_id=chain_id)


def sign(*intents: Intent, method: str = "personal_sign") -> SpendRequest:
    return spend(*intents, method=method, method_class=MethodClass.SIGNING)
