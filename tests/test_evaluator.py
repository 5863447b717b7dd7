"""The policy evaluator, case by case: every rule, every reason, and the explanation."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from tests.support.evm_builders import permit2_transfer, transfer_authorization
from tests.support.policy_world import (
    ALICE,
    BOB,
    CHAIN,
    DELEGATE,
    NOW,
    OTHER_CHAIN,
    OTHER_SELECTOR,
    PAYROLL_MAIN,
    ROUTER,
    SINK,
    STALE_TOKEN,
    STRANGER,
    SWAP_SELECTOR,
    TRADER_FAR,
    TRADER_HOT,
    UNKNOWN_TOKEN,
    UNPRICED_TOKEN,
    WUSD_TOKEN,
    approval,
    call,
    creation,
    delegation,
    eth,
    eth_limit,
    fee,
    native,
    policy,
    sign,
    signature,
    spend,
    transfer,
    unlimited_approval,
    usd_limit,
    world,
    wusd,
    wusd_limit,
)
from walletgate.intents import MAX_UINT256, MethodClass, NativeTransfer
from walletgate.policies.amounts import (
    format_units,
    micro_usd_at_least,
    micro_usd_at_most,
    to_decimal,
)
from walletgate.policies.decision import Decision, Outcome, Reason
from walletgate.policies.evaluator import evaluate, request_rate_claims
from walletgate.policies.model import (
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
    Policy,
    RateLimit,
    Scope,
    SigningAllowlist,
    Tier,
    TimeWindow,
    TypedDataEntry,
    Window,
)
from walletgate.policies.request import SpendRequest
from walletgate.proxy.evm.decode import decode_call

ETH_CAP = PerTxCap("eth-per-tx", eth_limit("1.5"))
WUSD_CAP = PerTxCap("wusd-per-tx", wusd_limit("1000"))
USD_CAP = PerTxCap("usd-per-tx", usd_limit("1000"))
DAILY_ETH = CumulativeCap("eth-daily", eth_limit("5"), Window(seconds=86400), Scope.WALLET)
DAILY_USD = CumulativeCap("usd-daily", usd_limit("20000"), Window(seconds=86400), Scope.OWNER)
CAPS = policy("caps", ETH_CAP, WUSD_CAP)
TYPED_V4 = "eth_signTypedData_v4"
RAW_TX_HASH = "0x" + "ab" * 32
WEEKDAYS = frozenset(range(5))


@dataclass(frozen=True)
class Case:
    name: str
    policies: tuple[Policy, ...]
    request: SpendRequest
    outcome: Outcome
    reason: Reason
    deciding: tuple[str, str] | None = None  # (policy, rule) of the deciding finding


def allow(name: str, policies: tuple[Policy, ...], request: SpendRequest) -> Case:
    return Case(name, policies, request, Outcome.ALLOW, Reason.ALLOWED)


def deny(
    name: str,
    policies: tuple[Policy, ...],
    request: SpendRequest,
    reason: Reason,
    deciding: tuple[str, str] | None = None,
) -> Case:
    return Case(name, policies, request, Outcome.DENY, reason, deciding)


CASES = [
    # -- admission -----------------------------------------------------------------------
    deny(
        "unknown wallet",
        (CAPS,),
        spend(native(ALICE, 1, wallet=STRANGER), wallet=STRANGER),
        Reason.UNKNOWN_WALLET,
    ),
    deny("no wallet at all", (CAPS,), spend(wallet=None), Reason.UNKNOWN_WALLET),
    deny(
        "wallet known only on another chain",
        (CAPS,),
        spend(native(ALICE, 1, wallet=TRADER_FAR), wallet=TRADER_FAR),
        Reason.UNKNOWN_WALLET,
    ),
    deny(
        "wallet of another agent",
        (CAPS,),
        spend(native(ALICE, 1, wallet=PAYROLL_MAIN), wallet=PAYROLL_MAIN),
        Reason.WALLET_NOT_OWNED,
    ),
    deny(
        "an intent acting for another wallet",
        (CAPS,),
        spend(native(ALICE, 1), native(ALICE, 1, wallet=PAYROLL_MAIN)),
        Reason.WALLET_NOT_OWNED,
    ),
    deny(
        "raw transaction signed for another chain",
        (CAPS,),
        spend(native(ALICE, 1), bound_chain=1),
        Reason.CHAIN_MISMATCH,
    ),
    deny(
        "an intent on another chain",
        (CAPS,),
        spend(native(ALICE, 1, chain=OTHER_CHAIN)),
        Reason.CHAIN_MISMATCH,
    ),
    deny(
        "raw transaction signed with no chain id (pre-EIP-155)",
        (CAPS,),
        spend(native(ALICE, 1), method="eth_sendRawTransaction", tx_hash=RAW_TX_HASH),
        Reason.CHAIN_MISMATCH,
    ),
    deny(
        "EIP-7702 authorization for chain 0 (every chain)",
        (policy("delegation", DelegationAllowlist("d", frozenset({DELEGATE}))),),
        spend(delegation(DELEGATE, authorization_chain=0)),
        Reason.CHAIN_MISMATCH,
    ),
    deny(
        "EIP-7702 authorization for another chain",
        (policy("delegation", DelegationAllowlist("d", frozenset({DELEGATE}))),),
        spend(delegation(DELEGATE, authorization_chain=OTHER_CHAIN)),
        Reason.CHAIN_MISMATCH,
    ),
    deny(
        "read method",
        (CAPS,),
        spend(method="eth_call", method_class=MethodClass.READ),
        Reason.METHOD_NOT_ALLOWED,
    ),
    deny(
        "admin method",
        (CAPS,),
        spend(method="personal_unlockAccount", method_class=MethodClass.ADMIN),
        Reason.METHOD_NOT_ALLOWED,
    ),
    deny(
        "non-canonical destination from a buggy decoder",
        (CAPS, policy("deny", DestinationDenylist("sanctioned", frozenset({SINK})))),
        spend(NativeTransfer(CHAIN, TRADER_HOT, "0x000000000000000000000000000000000000dEaD", 1)),
        Reason.MALFORMED,
    ),
    deny(
        "negative amount from a buggy decoder",
        (CAPS,),
        spend(NativeTransfer(CHAIN, TRADER_HOT, ALICE, -1)),
        Reason.MALFORMED,
    ),
    # -- applicability and coverage ------------------------------------------------------
    deny("no policy at all", (), spend(native(ALICE, 1)), Reason.NO_POLICY),
    deny(
        "only a disabled policy",
        (policy("off", ETH_CAP, enabled=False),),
        spend(native(ALICE, 1)),
        Reason.NO_POLICY,
    ),
    deny(
        "only another owner's policy",
        (policy("globex", ETH_CAP, scope=Scope.OWNER, target="globex"),),
        spend(native(ALICE, 1)),
        Reason.NO_POLICY,
    ),
    allow(
        "owner-scope policy applies",
        (policy("acme", ETH_CAP, scope=Scope.OWNER, target="acme"),),
        spend(native(ALICE, 1)),
    ),
    allow(
        "wallet-scope policy applies",
        (policy("hot", ETH_CAP, scope=Scope.WALLET, target="trader-hot"),),
        spend(native(ALICE, 1)),
    ),
    deny(
        "ETH not bounded when only WUSD is capped",
        (policy("wusd", WUSD_CAP),),
        spend(native(ALICE, 1)),
        Reason.NO_POLICY,
    ),
    allow("ETH bounded by a USD cap", (policy("usd", USD_CAP),), spend(native(ALICE, eth("0.1")))),
    allow(
        "ETH bounded by a cumulative cap",
        (policy("daily", DAILY_ETH),),
        spend(native(ALICE, eth("1"))),
    ),
    deny(
        "a chain allowlist alone bounds no amount",
        (policy("chains", ChainAllowlist("chains", frozenset({CHAIN}))),),
        spend(native(ALICE, 1)),
        Reason.NO_POLICY,
    ),
    allow(
        "zero-value transaction with no intents, some policy applies",
        (policy("chains", ChainAllowlist("chains", frozenset({CHAIN}))),),
        spend(),
    ),
    deny("zero-value transaction with no intents, no policy", (), spend(), Reason.NO_POLICY),
    allow(
        "a zero amount needs no bound",
        (policy("chains", ChainAllowlist("chains", frozenset({CHAIN}))),),
        spend(native(ALICE, 0)),
    ),
    deny(
        "unknown token",
        (policy("usd", USD_CAP),),
        spend(transfer(UNKNOWN_TOKEN, ALICE, 1)),
        Reason.UNKNOWN_ASSET,
    ),
    deny(
        "unknown token, zero amount",
        (policy("usd", USD_CAP),),
        spend(transfer(UNKNOWN_TOKEN, ALICE, 0)),
        Reason.UNKNOWN_ASSET,
    ),
    # -- per-transaction caps ------------------------------------------------------------
    allow("ETH within its cap", (CAPS,), spend(native(ALICE, eth("1.5")))),
    deny(
        "ETH over its cap",
        (CAPS,),
        spend(native(ALICE, eth("1.5") + 1)),
        Reason.PER_TX_CAP,
        ("caps", "eth-per-tx"),
    ),
    deny(
        "two transfers together over the cap",
        (CAPS,),
        spend(native(ALICE, eth("1")), native(BOB, eth("1"))),
        Reason.PER_TX_CAP,
    ),
    deny(
        "an approval counts as exposure",
        (CAPS,),
        spend(transfer(WUSD_TOKEN, ALICE, wusd("600")), approval(WUSD_TOKEN, ROUTER, wusd("500"))),
        Reason.PER_TX_CAP,
        ("caps", "wusd-per-tx"),
    ),
    deny(
        "transferFrom counts against the cap",
        (CAPS,),
        spend(transfer(WUSD_TOKEN, ALICE, wusd("1000.000001"), source=STRANGER)),
        Reason.PER_TX_CAP,
    ),
    allow(
        "transferFrom from another account is the wallet's own act",
        (CAPS, policy("dst", DestinationAllowlist("dst", frozenset({ALICE})))),
        spend(transfer(WUSD_TOKEN, ALICE, wusd("10"), source=STRANGER)),
    ),
    allow(
        "USD within the cap",
        (policy("usd", USD_CAP),),
        spend(transfer(WUSD_TOKEN, ALICE, wusd("1000"))),
    ),
    deny(
        "USD over the cap, across assets",
        (policy("usd", USD_CAP),),
        spend(native(ALICE, eth("0.3")), transfer(WUSD_TOKEN, ALICE, wusd("100.01"))),
        Reason.PER_TX_CAP,
    ),
    deny(
        "USD cap with a stale price",
        (policy("usd", USD_CAP),),
        spend(transfer(STALE_TOKEN, ALICE, 1)),
        Reason.PRICE_UNAVAILABLE,
        ("usd", "usd-per-tx"),
    ),
    deny(
        "USD cap with no price",
        (policy("usd", USD_CAP),),
        spend(transfer(UNPRICED_TOKEN, ALICE, 1)),
        Reason.PRICE_UNAVAILABLE,
    ),
    allow(
        "an asset cap needs no price",
        (policy("stale", PerTxCap("cap", Limit("stale", 10))),),
        spend(transfer(STALE_TOKEN, ALICE, 10)),
    ),
    # -- cumulative caps -----------------------------------------------------------------
    allow("within a cumulative cap", (policy("daily", DAILY_ETH),), spend(native(ALICE, eth("5")))),
    deny(
        "one request over the whole cumulative cap",
        (policy("daily", DAILY_ETH),),
        spend(native(ALICE, eth("5") + 1)),
        Reason.CUMULATIVE_CAP,
        ("daily", "eth-daily"),
    ),
    deny(
        "cumulative USD cap with a stale price",
        (policy("daily", DAILY_USD),),
        spend(transfer(STALE_TOKEN, ALICE, 1)),
        Reason.PRICE_UNAVAILABLE,
    ),
    # -- rate limits ---------------------------------------------------------------------
    deny(
        "a transaction rate limit of zero",
        (CAPS, policy("rate", RateLimit("none", "transactions", 0, 60, Scope.AGENT))),
        spend(native(ALICE, 1)),
        Reason.RATE_LIMITED,
    ),
    allow(
        "a request rate limit is the proxy's",
        (CAPS, policy("rate", RateLimit("none", "requests", 0, 60, Scope.AGENT))),
        spend(native(ALICE, 1)),
    ),
    # -- destinations and assets ---------------------------------------------------------
    allow(
        "destination on the allowlist",
        (CAPS, policy("dst", DestinationAllowlist("dst", frozenset({ALICE, BOB})))),
        spend(native(ALICE, 1), transfer(WUSD_TOKEN, BOB, 1)),
    ),
    deny(
        "destination not on the allowlist",
        (CAPS, policy("dst", DestinationAllowlist("dst", frozenset({ALICE})))),
        spend(native(ALICE, 1), transfer(WUSD_TOKEN, BOB, 1)),
        Reason.DESTINATION_NOT_ALLOWED,
        ("dst", "dst"),
    ),
    deny(
        "approval spender not on the allowlist",
        (CAPS, policy("dst", DestinationAllowlist("dst", frozenset({ALICE})))),
        spend(approval(WUSD_TOKEN, ROUTER, 1)),
        Reason.DESTINATION_NOT_ALLOWED,
    ),
    deny(
        "every allowlist must list the destination",
        (
            CAPS,
            policy("a", DestinationAllowlist("dst", frozenset({ALICE}))),
            policy("b", DestinationAllowlist("dst", frozenset({BOB}))),
        ),
        spend(native(ALICE, 1)),
        Reason.DESTINATION_NOT_ALLOWED,
        ("b", "dst"),
    ),
    deny(
        "destination on the denylist",
        (CAPS, policy("deny", DestinationDenylist("sanctioned", frozenset({SINK})))),
        spend(native(SINK.upper().replace("0X", "0x"), 1)),
        Reason.DESTINATION_DENIED,
    ),
    deny(
        "approval spender on the denylist",
        (CAPS, policy("deny", DestinationDenylist("sanctioned", frozenset({SINK})))),
        spend(approval(WUSD_TOKEN, SINK, 1)),
        Reason.DESTINATION_DENIED,
    ),
    allow(
        "a contract call is not judged by destination lists",
        (
            policy("deny", DestinationDenylist("sanctioned", frozenset({ROUTER}))),
            policy("contracts", ContractAllowlist("c", frozenset({(ROUTER, None)}))),
        ),
        spend(call(ROUTER, SWAP_SELECTOR)),
    ),
    deny(
        "asset not on the allowlist",
        (CAPS, policy("assets", AssetAllowlist("known", frozenset({"eth"})))),
        spend(transfer(WUSD_TOKEN, ALICE, 1)),
        Reason.ASSET_NOT_ALLOWED,
    ),
    deny(
        "an approved asset must be on the allowlist",
        (CAPS, policy("assets", AssetAllowlist("known", frozenset({"eth"})))),
        spend(approval(WUSD_TOKEN, ALICE, 1)),
        Reason.ASSET_NOT_ALLOWED,
    ),
    # -- contracts -----------------------------------------------------------------------
    allow(
        "contract method on the allowlist",
        (policy("contracts", ContractAllowlist("c", frozenset({(ROUTER, SWAP_SELECTOR)}))),),
        spend(call(ROUTER, SWAP_SELECTOR)),
    ),
    allow(
        "any method of a listed contract",
        (policy("contracts", ContractAllowlist("c", frozenset({(ROUTER, None)}))),),
        spend(call(ROUTER.upper().replace("0X", "0x"), OTHER_SELECTOR)),
    ),
    deny(
        "contract method not on the allowlist",
        (policy("contracts", ContractAllowlist("c", frozenset({(ROUTER, SWAP_SELECTOR)}))),),
        spend(call(ROUTER, OTHER_SELECTOR)),
        Reason.CONTRACT_NOT_ALLOWED,
        ("contracts", "c"),
    ),
    deny(
        "calldata with no selector needs an any-method entry",
        (policy("contracts", ContractAllowlist("c", frozenset({(ROUTER, SWAP_SELECTOR)}))),),
        spend(call(ROUTER, None)),
        Reason.CONTRACT_NOT_ALLOWED,
    ),
    deny(
        "contract call with no contract allowlist",
        (CAPS,),
        spend(call(ROUTER, SWAP_SELECTOR)),
        Reason.CONTRACT_NOT_ALLOWED,
    ),
    deny(
        "value sent with an allowed call still needs a bound",
        (policy("contracts", ContractAllowlist("c", frozenset({(ROUTER, None)}))),),
        spend(native(ROUTER, eth("1")), call(ROUTER, SWAP_SELECTOR)),
        Reason.NO_POLICY,
    ),
    allow(
        "contract creation allowed",
        (policy("contracts", ContractAllowlist("c", frozenset(), allow_create=True)),),
        spend(creation()),
    ),
    deny(
        "contract creation not allowed",
        (policy("contracts", ContractAllowlist("c", frozenset({(ROUTER, None)}))),),
        spend(creation()),
        Reason.CONTRACT_NOT_ALLOWED,
    ),
    deny(
        "contract creation with no allowlist",
        (CAPS,),
        spend(creation()),
        Reason.CONTRACT_NOT_ALLOWED,
    ),
    # -- chains --------------------------------------------------------------------------
    allow(
        "chain on the allowlist",
        (CAPS, policy("chains", ChainAllowlist("chains", frozenset({CHAIN})))),
        spend(native(ALICE, 1)),
    ),
    deny(
        "chain not on the allowlist",
        (CAPS, policy("chains", ChainAllowlist("chains", frozenset({1})))),
        spend(native(ALICE, 1)),
        Reason.CHAIN_NOT_ALLOWED,
    ),
    # -- approvals -----------------------------------------------------------------------
    allow(
        "approval within its limit, covered by the limit alone",
        (policy("approvals", ApprovalLimit("wusd", wusd_limit("500"))),),
        spend(approval(WUSD_TOKEN, ROUTER, wusd("500"))),
    ),
    deny(
        "approval over its limit",
        (policy("approvals", ApprovalLimit("wusd", wusd_limit("500"))),),
        spend(approval(WUSD_TOKEN, ROUTER, wusd("500.000001"))),
        Reason.APPROVAL_LIMIT,
        ("approvals", "wusd"),
    ),
    deny(
        "permit judged as an approval",
        (policy("approvals", ApprovalLimit("wusd", wusd_limit("500"))),),
        sign(
            approval(WUSD_TOKEN, ROUTER, wusd("501"), via="permit"), method="eth_signTypedData_v4"
        ),
        Reason.APPROVAL_LIMIT,
    ),
    deny(
        "unlimited approval under a limit without allow_unlimited",
        (policy("approvals", ApprovalLimit("wusd", wusd_limit("500"))),),
        spend(unlimited_approval(WUSD_TOKEN, ROUTER)),
        Reason.UNLIMITED_APPROVAL,
        ("approvals", "wusd"),
    ),
    allow(
        "unlimited approval allowed by its limit",
        (policy("approvals", ApprovalLimit("wusd", wusd_limit("500"), allow_unlimited=True)),),
        spend(unlimited_approval(WUSD_TOKEN, ROUTER)),
    ),
    deny(
        "unlimited approval with no approval limit",
        (policy("usd", USD_CAP),),
        spend(unlimited_approval(WUSD_TOKEN, ROUTER)),
        Reason.UNLIMITED_APPROVAL,
    ),
    deny(
        "an allowed unlimited approval is still over a per-transaction cap",
        (
            policy("approvals", ApprovalLimit("wusd", wusd_limit("500"), allow_unlimited=True)),
            CAPS,
        ),
        spend(unlimited_approval(WUSD_TOKEN, ROUTER)),
        Reason.PER_TX_CAP,
    ),
    allow(
        "revoking an approval needs no bound",
        (policy("chains", ChainAllowlist("chains", frozenset({CHAIN}))),),
        spend(approval(WUSD_TOKEN, ROUTER, 0)),
    ),
    # -- tiers ---------------------------------------------------------------------------
    allow(
        "below a tier",
        (CAPS, policy("tiers", Tier("big", eth_limit("1"), "require_approval"))),
        spend(native(ALICE, eth("1"))),
    ),
    allow(
        "a notify tier allows",
        (CAPS, policy("tiers", Tier("big", eth_limit("1"), "notify"))),
        spend(native(ALICE, eth("1.1"))),
    ),
    Case(
        "a require_approval tier holds",
        (CAPS, policy("tiers", Tier("big", usd_limit("3000"), "require_approval"))),
        spend(native(ALICE, eth("1.1"))),
        Outcome.HOLD,
        Reason.APPROVAL_REQUIRED,
        ("tiers", "big"),
    ),
    Case(
        "a delay tier holds",
        (CAPS, policy("tiers", Tier("big", eth_limit("1"), "delay", delay_seconds=600))),
        spend(native(ALICE, eth("1.1"))),
        Outcome.HOLD,
        Reason.APPROVAL_REQUIRED,
    ),
    deny(
        "deny beats hold",
        (CAPS, policy("tiers", Tier("big", eth_limit("1"), "require_approval"))),
        spend(native(ALICE, eth("2"))),
        Reason.PER_TX_CAP,
        ("caps", "eth-per-tx"),
    ),
    deny(
        "a USD tier with no price fails closed",
        (
            policy(
                "unp",
                PerTxCap("cap", Limit("unpriced", 10)),
                Tier("big", usd_limit("100"), "notify"),
            ),
        ),
        spend(transfer(UNPRICED_TOKEN, ALICE, 1)),
        Reason.PRICE_UNAVAILABLE,
    ),
    # -- signing and delegation ----------------------------------------------------------
    allow(
        "signing method on the allowlist",
        (policy("signing", SigningAllowlist("sign", frozenset({"personal_sign"}))),),
        sign(signature("personal_sign")),
    ),
    deny(
        "signing with no allowlist",
        (CAPS,),
        sign(signature("personal_sign")),
        Reason.SIGNING_NOT_ALLOWED,
    ),
    deny(
        "undecodable typed data for a known token, even with the method allowed",
        (CAPS, policy("signing", SigningAllowlist("sign", frozenset({TYPED_V4})))),
        sign(signature(TYPED_V4, verifying_contract=WUSD_TOKEN), method=TYPED_V4),
        Reason.SIGNING_NOT_ALLOWED,
    ),
    deny(
        "typed data is not admitted by its method alone",
        (policy("signing", SigningAllowlist("sign", frozenset({TYPED_V4}))),),
        sign(signature(TYPED_V4, verifying_contract=ROUTER), method=TYPED_V4),
        Reason.SIGNING_NOT_ALLOWED,
        ("signing", "sign"),
    ),
    allow(
        "typed data for a contract that is no known asset, admitted by a typed_data entry",
        (
            policy(
                "signing",
                SigningAllowlist(
                    "sign",
                    frozenset({TYPED_V4}),
                    typed_data=(TypedDataEntry(ROUTER, CHAIN, "Unknown"),),
                ),
            ),
        ),
        sign(signature(TYPED_V4, verifying_contract=ROUTER), method=TYPED_V4),
    ),
    allow(
        "typed data admitted by the unsafe opt-out",
        (
            policy(
                "signing",
                SigningAllowlist("sign", frozenset({TYPED_V4}), allow_any_typed_data_unsafe=True),
            ),
        ),
        sign(signature(TYPED_V4, verifying_contract=ROUTER), method=TYPED_V4),
    ),
    deny(
        "signing method not on the allowlist",
        (policy("signing", SigningAllowlist("sign", frozenset({"personal_sign"}))),),
        sign(signature("eth_sign"), method="eth_sign"),
        Reason.SIGNING_NOT_ALLOWED,
        ("signing", "sign"),
    ),
    allow(
        "delegate on the allowlist",
        (policy("delegation", DelegationAllowlist("d", frozenset({DELEGATE}))),),
        spend(delegation(DELEGATE.upper().replace("0X", "0x"))),
    ),
    deny(
        "delegation with no allowlist",
        (CAPS,),
        spend(delegation(DELEGATE)),
        Reason.DELEGATION_NOT_ALLOWED,
    ),
    deny(
        "delegate not on the allowlist",
        (policy("delegation", DelegationAllowlist("d", frozenset({ROUTER}))),),
        spend(delegation(DELEGATE)),
        Reason.DELEGATION_NOT_ALLOWED,
        ("delegation", "d"),
    ),
    # -- time ----------------------------------------------------------------------------
    allow(
        "inside office hours in Berlin (13:00)",
        (CAPS, policy("hours", TimeWindow("office", "Europe/Berlin", WEEKDAYS, time(9), time(17)))),
        spend(native(ALICE, 1)),
    ),
    deny(
        "outside office hours in New York (07:00)",
        (
            CAPS,
            policy("hours", TimeWindow("office", "America/New_York", WEEKDAYS, time(9), time(17))),
        ),
        spend(native(ALICE, 1)),
        Reason.OUTSIDE_TIME_WINDOW,
    ),
    deny(
        "time window judges requests with no intents",
        (policy("hours", TimeWindow("weekend", "UTC", frozenset({5, 6}), time(0), time(23))),),
        spend(),
        Reason.OUTSIDE_TIME_WINDOW,
    ),
    deny(
        "unknown time zone fails closed",
        (CAPS, policy("hours", TimeWindow("office", "Mars/Olympus", WEEKDAYS, time(0), time(23)))),
        spend(native(ALICE, 1)),
        Reason.OUTSIDE_TIME_WINDOW,
    ),
    # -- fees ----------------------------------------------------------------------------
    deny(
        "a zero-value send with a 21 ETH fee is over a 1.5 ETH per-transaction cap",
        (CAPS,),
        spend(native(ALICE, 0), fee(10**15)),  # 21000 gas x 1,000,000 gwei
        Reason.PER_TX_CAP,
        ("caps", "eth-per-tx"),
    ),
    deny(
        "value and fee count together",
        (CAPS,),
        spend(native(ALICE, eth("1.4")), fee(5 * 10**12)),  # 1.4 + 0.105 ETH
        Reason.PER_TX_CAP,
        ("caps", "eth-per-tx"),
    ),
    allow(
        "value and a small fee within the cap",
        (CAPS,),
        spend(native(ALICE, eth("1.4")), fee(10**9)),
    ),
    deny(
        "a USD cap counts the fee at the native price",
        (policy("usd", USD_CAP),),
        spend(native(ALICE, 0), fee(2 * 10**13)),  # 0.42 ETH = 1260 USD
        Reason.PER_TX_CAP,
    ),
    deny(
        "a fee no rule bounds is not covered (a token-only policy)",
        (policy("tokens", WUSD_CAP),),
        spend(transfer(WUSD_TOKEN, ALICE, wusd("1")), fee(10**9)),
        Reason.NO_POLICY,
    ),
    allow(
        "a fee_cap covers the fee of a token-only policy",
        (policy("tokens", WUSD_CAP, FeeCap("fees", eth_limit("0.01"))),),
        spend(transfer(WUSD_TOKEN, ALICE, wusd("1")), fee(10**9)),
    ),
    deny(
        "a fee_cap refuses fees over its maximum",
        (policy("tokens", WUSD_CAP, FeeCap("fees", eth_limit("0.01"))),),
        spend(transfer(WUSD_TOKEN, ALICE, wusd("1")), fee(10**12)),  # 0.021 ETH
        Reason.FEE_CAP,
        ("tokens", "fees"),
    ),
    deny(
        "a fee_cap refuses a max fee per gas over its ceiling",
        (CAPS, policy("fees", FeeCap("gwei", max_fee_per_gas=50 * 10**9))),
        spend(native(ALICE, 1), fee(51 * 10**9)),
        Reason.FEE_CAP,
        ("fees", "gwei"),
    ),
    allow(
        "a fee per gas at the ceiling passes",
        (CAPS, policy("fees", FeeCap("gwei", max_fee_per_gas=50 * 10**9))),
        spend(native(ALICE, 1), fee(50 * 10**9)),
    ),
    deny(
        "a fee_cap with only a fee per gas does not cover the fee",
        (policy("tokens", WUSD_CAP, FeeCap("gwei", max_fee_per_gas=50 * 10**9)),),
        spend(transfer(WUSD_TOKEN, ALICE, wusd("1")), fee(10**9)),
        Reason.NO_POLICY,
    ),
    deny(
        "a USD fee_cap with no ETH price fails closed",
        (
            policy(
                "geth",
                PerTxCap("cap", Limit("goerli-eth", eth("1"))),
                FeeCap("fees", usd_limit("1")),
            ),
        ),
        spend(
            native(ALICE, 1, wallet=TRADER_FAR, chain=OTHER_CHAIN),
            fee(10**9, wallet=TRADER_FAR, chain=OTHER_CHAIN),
            wallet=TRADER_FAR,
            chain_id=OTHER_CHAIN,
        ),
        Reason.PRICE_UNAVAILABLE,
    ),
    allow(
        "a fee goes to no destination: an allowlist of the recipient passes",
        (CAPS, policy("dst", DestinationAllowlist("dst", frozenset({ALICE})))),
        spend(native(ALICE, 1), fee(10**9)),
    ),
    allow(
        "a WUSD-only asset allowlist does not refuse the ETH fee",
        (
            policy("tokens", WUSD_CAP, FeeCap("fees", eth_limit("0.01"))),
            policy("assets", AssetAllowlist("only-wusd", frozenset({"wusd"}))),
        ),
        spend(transfer(WUSD_TOKEN, ALICE, wusd("1")), fee(10**9)),
    ),
    # -- precedence ----------------------------------------------------------------------
    deny(
        "a list refusal outranks an amount refusal",
        (CAPS, policy("dst", DestinationAllowlist("dst", frozenset({BOB})))),
        spend(native(ALICE, eth("9"))),
        Reason.DESTINATION_NOT_ALLOWED,
        ("dst", "dst"),
    ),
    deny(
        "a coverage gap outranks a rule refusal",
        (CAPS,),
        spend(native(ALICE, eth("9")), call(ROUTER, SWAP_SELECTOR)),
        Reason.CONTRACT_NOT_ALLOWED,
    ),
]


def test_the_table_covers_every_reason_the_evaluator_gives() -> None:
    given_elsewhere = {Reason.FROZEN, Reason.UNAVAILABLE}  # the proxy's, not the evaluator's
    assert {case.reason for case in CASES} == set(Reason) - given_elsewhere


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_decision(case: Case) -> None:
    decision = evaluate(case.request, world(*case.policies), NOW)
    assert (decision.outcome, decision.reason) == (case.outcome, case.reason), decision.message
    if case.deciding is not None:
        assert decision.deciding is not None
        assert (decision.deciding.policy, decision.deciding.rule) == case.deciding
    if decision.outcome is Outcome.DENY:
        assert decision.claims == ()
        assert decision.message.startswith("denied: ")


def test_a_policy_set_that_has_judged_other_requests_decides_the_same() -> None:
    # The judges keep what depends only on a rule with the policy set (texts, the
    # verdicts of list rules and rate limits): no request may see another's.
    for case in CASES:
        warm = world(*case.policies)
        for other in CASES:
            evaluate(other.request, warm, NOW)
        assert evaluate(case.request, warm, NOW) == evaluate(
            case.request, world(*case.policies), NOW
        ), case.name


def test_what_the_judges_keep_is_kept_per_wallet_and_chain() -> None:
    rules = (
        RateLimit("per-wallet", "transactions", 20, 3600, Scope.WALLET),
        ChainAllowlist("chains", frozenset({CHAIN, OTHER_CHAIN})),
        CumulativeCap("eth-daily", eth_limit("5"), Window(seconds=86400), Scope.WALLET),
    )
    shared = world(policy("p", *rules, scope=Scope.OWNER, target="acme"))
    requests = [
        spend(native(ALICE, 1)),
        spend(native(ALICE, 1, wallet=PAYROLL_MAIN), agent="payroll", wallet=PAYROLL_MAIN),
        spend(
            native(ALICE, 1, wallet=TRADER_FAR, chain=OTHER_CHAIN),
            wallet=TRADER_FAR,
            chain_id=OTHER_CHAIN,
        ),
    ]
    for request in requests * 2:
        fresh = world(policy("p", *rules, scope=Scope.OWNER, target="acme"))
        assert evaluate(request, shared, NOW) == evaluate(request, fresh, NOW)


# -- explanations ------------------------------------------------------------------------


def test_a_refusal_names_the_policy_rule_limit_and_amount() -> None:
    decision = evaluate(spend(native(ALICE, eth("2.25"))), world(CAPS), NOW)
    deciding = decision.deciding
    assert deciding is not None
    assert (deciding.limit, deciding.requested) == ("1.5 ETH", "2.25 ETH")
    assert "'caps'" in decision.message and "'eth-per-tx'" in decision.message
    assert "2.25 ETH" in decision.message and "1.5 ETH" in decision.message
    assert decision.to_json()["policy"] == "caps" and decision.to_json()["rule"] == "eth-per-tx"


def test_every_rule_is_reported_passed_or_failed() -> None:
    policies = world(
        CAPS,
        policy("dst", DestinationAllowlist("dst", frozenset({ALICE}))),
        policy("deny", DestinationDenylist("sanctioned", frozenset({SINK}))),
    )
    decision = evaluate(spend(native(ALICE, eth("2"))), policies, NOW)
    verdicts = {(f.policy, f.rule): f.passed for f in decision.findings}
    assert verdicts == {
        ("caps", "eth-per-tx"): False,
        ("caps", "wusd-per-tx"): True,
        ("dst", "dst"): True,
        ("deny", "sanctioned"): True,
    }
    assert decision.findings[0].passed is False  # the deciding finding comes first


def test_a_raw_transaction_must_bind_the_backend_chain() -> None:
    def raw(bound_chain: int | None) -> SpendRequest:
        return spend(
            native(ALICE, 1),
            method="eth_sendRawTransaction",
            bound_chain=bound_chain,
            tx_hash=RAW_TX_HASH,
        )

    unbound = evaluate(raw(None), world(CAPS), NOW)
    assert unbound.reason is Reason.CHAIN_MISMATCH
    assert "without a chain id (pre-EIP-155)" in unbound.message
    assert "replayable on every chain" in unbound.message
    assert evaluate(raw(CHAIN), world(CAPS), NOW).outcome is Outcome.ALLOW
    # A transaction object with no chainId is signed by the backend, for its own chain.
    assert evaluate(spend(native(ALICE, 1)), world(CAPS), NOW).outcome is Outcome.ALLOW


@pytest.mark.parametrize(
    ("authorization_chain", "fragment"),
    [(0, "signed for chain id 0, which is valid on every chain"), (1, "signed for chain 1,")],
)
def test_an_authorization_must_name_the_backend_chain(
    authorization_chain: int, fragment: str
) -> None:
    policies = world(policy("delegation", DelegationAllowlist("d", frozenset({DELEGATE}))))
    request = spend(native(ALICE, 0), delegation(DELEGATE, authorization_chain=authorization_chain))
    decision = evaluate(request, policies, NOW)
    assert decision.reason is Reason.CHAIN_MISMATCH
    assert fragment in decision.message
    assert f"intents[1]: the EIP-7702 authorization delegating {TRADER_HOT} to {DELEGATE}" in (
        decision.message
    )
    assert f"this backend serves chain {CHAIN}" in decision.message


def test_undecodable_typed_data_for_a_known_token_is_refused_whatever_is_allowed() -> None:
    everything = policy(
        "all",
        ETH_CAP,
        WUSD_CAP,
        SigningAllowlist("sign", frozenset({TYPED_V4, "personal_sign"})),
    )
    request = sign(signature(TYPED_V4, verifying_contract=WUSD_TOKEN), method=TYPED_V4)
    decision = evaluate(request, world(everything), NOW)
    assert (decision.outcome, decision.reason) == (Outcome.DENY, Reason.SIGNING_NOT_ALLOWED)
    assert decision.deciding is not None and decision.deciding.rule_type == "coverage"
    assert f"for token contract {WUSD_TOKEN} (WUSD) that walletgate cannot decode" in (
        decision.message
    )


def test_a_transfer_authorization_is_judged_as_a_transfer() -> None:
    # EIP-3009 typed data decodes to a TokenTransfer on a signing request: caps apply.
    signing = SigningAllowlist("sign", frozenset({TYPED_V4}))
    policies = world(policy("caps", WUSD_CAP, signing))
    over = sign(transfer(WUSD_TOKEN, ALICE, wusd("1000.01")), method=TYPED_V4)
    within = sign(transfer(WUSD_TOKEN, ALICE, wusd("1000")), method=TYPED_V4)
    assert evaluate(over, policies, NOW).reason is Reason.PER_TX_CAP
    assert evaluate(within, policies, NOW).outcome is Outcome.ALLOW
    uncapped = evaluate(within, world(policy("sign", signing)), NOW)
    assert uncapped.reason is Reason.NO_POLICY


# -- decoded from real signed bytes -----------------------------------------------------
#
# The reviewer's holes, end to end: real signatures (eth-account) through the decoder
# and the evaluator. TRADER_HOT is the address of private key 1.

TRADER_KEY = "0x" + "00" * 31 + "01"
REAL_WORLD = (
    policy(
        "everything",
        ETH_CAP,
        WUSD_CAP,
        SigningAllowlist("sign", frozenset({TYPED_V4})),
        DelegationAllowlist("d", frozenset({DELEGATE})),
    ),
)


def _decide(method: str, params: list[Any]) -> Decision:
    decoded = decode_call(method, params, chain_id=CHAIN)
    return evaluate(SpendRequest("trader", decoded, CHAIN), world(*REAL_WORLD), NOW)


@pytest.mark.parametrize(("chain", "allowed"), [(None, False), (CHAIN, True)])
def test_real_legacy_raw_transaction_must_carry_a_chain_id(
    chain: int | None, allowed: bool
) -> None:
    to = to_checksum_address(ALICE)
    tx: dict[str, Any] = {"nonce": 0, "gasPrice": 10**9, "gas": 21000, "to": to, "value": 1}
    if chain is not None:
        tx["chainId"] = chain
    raw = "0x" + bytes(Account.sign_transaction(tx, TRADER_KEY).raw_transaction).hex()
    decision = _decide("eth_sendRawTransaction", [raw])
    assert decision.outcome is (Outcome.ALLOW if allowed else Outcome.DENY), decision.message
    if not allowed:
        assert decision.reason is Reason.CHAIN_MISMATCH


@pytest.mark.parametrize(("chain", "allowed"), [(0, False), (1, False), (CHAIN, True)])
def test_real_authorization_must_name_the_backend_chain(chain: int, allowed: bool) -> None:
    signed = Account.sign_authorization(
        {"chainId": chain, "address": DELEGATE, "nonce": 1}, TRADER_KEY
    )
    authorization = {
        "chainId": hex(chain),
        "address": DELEGATE,
        "nonce": "0x1",
        "yParity": hex(signed.y_parity),
        "r": hex(signed.r),
        "s": hex(signed.s),
    }
    tx = {
        "from": TRADER_HOT,
        "to": ALICE,
        "type": "0x4",
        "authorizationList": [authorization],
        "gas": "0x10000",
        "maxFeePerGas": hex(10**9),
    }
    decision = _decide("eth_sendTransaction", [tx])
    assert decision.outcome is (Outcome.ALLOW if allowed else Outcome.DENY), decision.message
    if not allowed:
        assert decision.reason is Reason.CHAIN_MISMATCH


def test_real_transfer_authorization_is_capped_although_signing_is_allowed() -> None:
    document = transfer_authorization(TRADER_HOT, wusd("1000.01"), to=ALICE, token=WUSD_TOKEN)
    assert _decide(TYPED_V4, [TRADER_HOT, document]).reason is Reason.PER_TX_CAP
    document["message"]["value"] = wusd("1000")
    assert _decide(TYPED_V4, [TRADER_HOT, document]).outcome is Outcome.ALLOW


def test_real_permit2_witness_under_another_name_is_capped() -> None:
    tokens = [(WUSD_TOKEN, wusd("1000.01"))]
    document = permit2_transfer(tokens, batch=False, witness=True, witness_field=("order", "Order"))
    assert _decide(TYPED_V4, [TRADER_HOT, document]).reason is Reason.PER_TX_CAP


def test_real_undecodable_typed_data_for_a_known_token_is_refused() -> None:
    document = transfer_authorization(TRADER_HOT, 1, to=ALICE, token=WUSD_TOKEN)
    document["types"]["TransferWithAuthorization"][5]["type"] = "uint256"  # not EIP-3009
    document["message"]["nonce"] = 1
    assert _decide(TYPED_V4, [TRADER_HOT, document]).reason is Reason.SIGNING_NOT_ALLOWED


def test_a_coverage_gap_names_no_policy() -> None:
    decision = evaluate(spend(call(ROUTER, SWAP_SELECTOR)), world(CAPS), NOW)
    assert decision.deciding is not None and decision.deciding.rule_type == "coverage"
    assert decision.to_json()["policy"] is None
    assert ROUTER in decision.message


def test_amounts_and_usd_value_are_exact() -> None:
    one_wei_and_some = spend(
        native(ALICE, 1), transfer(WUSD_TOKEN, BOB, wusd("0.5")), approval(WUSD_TOKEN, ROUTER, 7)
    )
    decision = evaluate(one_wei_and_some, world(policy("usd", USD_CAP)), NOW)
    assert decision.amounts == (("eth", 1), ("wusd", wusd("0.5") + 7))
    # 1 wei at 3000 USD + 0.500007 WUSD at 1 USD, to the last digit
    assert decision.usd_value == Decimal("0.500007000000003")


def test_usd_value_is_exact_beyond_decimal_precision() -> None:
    huge = spend(native(ALICE, 10**30 + 1))  # 31 significant digits of USD: Decimal keeps 28
    decision = evaluate(huge, world(policy("usd", USD_CAP)), NOW)
    assert decision.reason is Reason.PER_TX_CAP
    assert decision.usd_value == Decimal("3000000000000000.000000000000003")


def test_unpriced_request_has_no_usd_value() -> None:
    decision = evaluate(spend(transfer(STALE_TOKEN, ALICE, 1)), world(policy("usd", USD_CAP)), NOW)
    assert decision.usd_value is None


def test_refusals_before_policies_still_report_amounts() -> None:
    request = spend(native(ALICE, eth("1"), wallet=PAYROLL_MAIN), wallet=PAYROLL_MAIN)
    decision = evaluate(request, world(CAPS), NOW)
    assert decision.reason is Reason.WALLET_NOT_OWNED
    assert decision.findings == () and decision.amounts == (("eth", eth("1")),)
    assert decision.to_json()["policy"] is None


def test_a_notify_tier_is_flagged() -> None:
    policies = world(CAPS, policy("tiers", Tier("big", eth_limit("1"), "notify")))
    assert evaluate(spend(native(ALICE, eth("1.1"))), policies, NOW).notify
    assert not evaluate(spend(native(ALICE, eth("1"))), policies, NOW).notify


@pytest.mark.parametrize(
    ("tiers", "delay"),
    [
        ((Tier("t", eth_limit("1"), "delay", delay_seconds=60),), 60),
        (
            (
                Tier("short", eth_limit("1"), "delay", delay_seconds=60),
                Tier("long", eth_limit("1"), "delay", delay_seconds=600),
            ),
            600,
        ),
        (
            (
                Tier("delay", eth_limit("1"), "delay", delay_seconds=60),
                Tier("owner", eth_limit("1"), "require_approval"),
            ),
            None,
        ),
    ],
)
def test_a_hold_waits_for_the_longest_delay_or_the_owner(
    tiers: tuple[Tier, ...], delay: int | None
) -> None:
    decision = evaluate(spend(native(ALICE, eth("1.1"))), world(CAPS, policy("tiers", *tiers)), NOW)
    assert decision.outcome is Outcome.HOLD
    assert decision.hold_delay_seconds == delay
    assert decision.to_json()["hold_delay_seconds"] == delay


def test_a_hold_expires_after_the_shortest_timeout_of_its_tiers() -> None:
    tiers = (
        Tier("slow", eth_limit("1"), "delay", delay_seconds=60, approval_timeout_seconds=900),
        Tier("owner", eth_limit("1"), "require_approval", approval_timeout_seconds=300),
        Tier("later", eth_limit("5"), "require_approval", approval_timeout_seconds=10),
    )
    decision = evaluate(spend(native(ALICE, eth("1.1"))), world(CAPS, policy("t", *tiers)), NOW)
    assert (decision.outcome, decision.hold_timeout_seconds) == (Outcome.HOLD, 300)
    untimed = world(CAPS, policy("t", Tier("owner", eth_limit("1"), "require_approval")))
    assert evaluate(spend(native(ALICE, eth("1.1"))), untimed, NOW).hold_timeout_seconds is None


# -- counter claims ----------------------------------------------------------------------


def claims_of(decision: Decision) -> dict[str, tuple[int, int, str]]:
    return {claim.key: (claim.amount, claim.limit, claim.unit) for claim in decision.claims}


def test_cumulative_caps_claim_per_scope_in_base_units_and_micro_dollars() -> None:
    policies = world(
        policy("daily", DAILY_ETH, DAILY_USD),
        policy(
            "monthly",
            CumulativeCap(
                "wusd-month",
                wusd_limit("40000"),
                Window(calendar="month", timezone="Europe/Berlin"),
                Scope.AGENT,
            ),
            scope=Scope.OWNER,
            target="acme",
        ),
    )
    decision = evaluate(spend(native(ALICE, eth("1.5"))), policies, NOW)
    assert decision.allowed
    assert claims_of(decision) == {
        "wallet:trader-hot:daily:eth-daily:eth": (eth("1.5"), eth("5"), "eth"),
        "owner:acme:daily:usd-daily:micro_usd": (4500 * 10**6, 20000 * 10**6, "micro_usd"),
    }
    monthly = evaluate(spend(transfer(WUSD_TOKEN, ALICE, wusd("12"))), policies, NOW)
    (month_claim,) = [c for c in monthly.claims if c.rule == "wusd-month"]
    assert month_claim.key == "agent:trader:monthly:wusd-month:wusd"
    assert (month_claim.calendar, month_claim.timezone) == ("month", "Europe/Berlin")
    assert month_claim.window_seconds is None


def test_fees_accumulate_into_cumulative_caps() -> None:
    # A zero-value transaction still claims its fee: 21000 gas x 1000 gwei = 0.021 ETH,
    # 63 USD at 3000 USD/ETH.
    policies = world(policy("daily", DAILY_ETH, DAILY_USD))
    decision = evaluate(spend(native(ALICE, 0), fee(1000 * 10**9)), policies, NOW)
    assert decision.allowed
    assert claims_of(decision) == {
        "wallet:trader-hot:daily:eth-daily:eth": (eth("0.021"), eth("5"), "eth"),
        "owner:acme:daily:usd-daily:micro_usd": (63 * 10**6, 20000 * 10**6, "micro_usd"),
    }
    assert dict(decision.amounts) == {"eth": eth("0.021")}
    # A fee larger than the whole window's cap is refused outright.
    huge = evaluate(spend(native(ALICE, 0), fee(10**15)), policies, NOW)
    assert huge.reason is Reason.CUMULATIVE_CAP


def test_usd_claims_round_the_amount_up_and_the_limit_down() -> None:
    cap = CumulativeCap("tiny", usd_limit("10.0000005"), Window(seconds=3600), Scope.WALLET)
    decision = evaluate(spend(native(ALICE, 1)), world(policy("p", cap)), NOW)
    (claim,) = decision.claims
    # 1 wei is 0.000000000000003 USD: one whole micro-dollar; 10.0000005 USD floors.
    assert (claim.amount, claim.limit) == (1, 10_000_000)


def test_rate_limits_claim_one_transaction_per_spending_request() -> None:
    rules = (
        RateLimit("per-agent", "transactions", 30, 60, Scope.AGENT),
        RateLimit("per-wallet", "transactions", 20, 3600, Scope.WALLET),
        RateLimit("requests", "requests", 600, 60, Scope.AGENT),
    )
    policies = world(CAPS, policy("rates", *rules))
    assert claims_of(evaluate(spend(native(ALICE, 1)), policies, NOW)) == {
        "agent:trader:rates:per-agent:transactions": (1, 30, "transactions"),
        "wallet:trader-hot:rates:per-wallet:transactions": (1, 20, "transactions"),
    }


def test_signing_requests_are_not_transactions() -> None:
    policies = world(
        policy(
            "signing",
            SigningAllowlist("sign", frozenset({"personal_sign"})),
            RateLimit("per-agent", "transactions", 30, 60, Scope.AGENT),
        )
    )
    decision = evaluate(sign(signature("personal_sign")), policies, NOW)
    assert decision.allowed and decision.claims == ()


def test_a_zero_amount_claims_nothing() -> None:
    decision = evaluate(
        spend(transfer(WUSD_TOKEN, ALICE, wusd("1"))), world(CAPS, policy("daily", DAILY_ETH)), NOW
    )
    assert decision.allowed and decision.claims == ()


def test_request_rate_claims_cover_reads_and_respect_scopes() -> None:
    rules = (
        RateLimit("agent-requests", "requests", 600, 60, Scope.AGENT),
        RateLimit("wallet-requests", "requests", 100, 60, Scope.WALLET),
        RateLimit("spends", "transactions", 30, 60, Scope.AGENT),
    )
    policies = world(
        policy("rates", *rules),
        policy(
            "hot",
            RateLimit("hot", "requests", 5, 1, Scope.WALLET),
            scope=Scope.WALLET,
            target="trader-hot",
        ),
    )
    read = request_rate_claims("trader", None, policies)
    assert [(c.key, c.amount, c.limit, c.unit, c.window_seconds) for c in read] == [
        ("agent:trader:rates:agent-requests:requests", 1, 600, "requests", 60)
    ]
    hot = policies.wallets["trader-hot"]
    assert [c.key for c in request_rate_claims("trader", hot, policies)] == [
        "agent:trader:rates:agent-requests:requests",
        "wallet:trader-hot:hot:hot:requests",
        "wallet:trader-hot:rates:wallet-requests:requests",
    ]
    # Another agent's wallet does not lend its limits: only the agent's own count.
    payroll = policies.wallets["payroll-main"]
    assert request_rate_claims("trader", payroll, policies) == read
    assert request_rate_claims("nobody", None, policies) == ()


# -- time windows ------------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
OVERNIGHT_FRIDAY = TimeWindow("overnight", "Europe/Berlin", frozenset({4}), time(22), time(6))
EARLY_HOURS = TimeWindow("early", "Europe/Berlin", frozenset(range(7)), time(1, 30), time(2, 30))
OFFICE = TimeWindow("office", "Europe/Berlin", WEEKDAYS, time(9), time(17))
OVERNIGHT_SATURDAY = TimeWindow("sat-night", "Europe/Berlin", frozenset({5}), time(22), time(6))


def berlin(year: int, month: int, day: int, hour: int, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=BERLIN)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "now", "inside"),
    [
        (OFFICE, berlin(2026, 11, 26, 9, 0), True),  # start is inclusive
        (OFFICE, berlin(2026, 11, 26, 16, 59, 59), True),
        (OFFICE, berlin(2026, 11, 26, 17, 0), False),  # end is exclusive
        (OFFICE, berlin(2026, 11, 28, 12, 0), False),  # Saturday
        (OFFICE, utc(2026, 11, 26, 7, 59), False),  # 08:59 in Berlin
        (OFFICE, utc(2026, 7, 2, 7, 0), True),  # 09:00 in Berlin, summer time
        # Across midnight: the hours after midnight belong to the day the window started.
        (OVERNIGHT_FRIDAY, berlin(2026, 11, 27, 23, 0), True),  # Friday night
        (OVERNIGHT_FRIDAY, berlin(2026, 11, 28, 5, 59), True),  # Saturday morning
        (OVERNIGHT_FRIDAY, berlin(2026, 11, 28, 6, 0), False),
        (OVERNIGHT_FRIDAY, berlin(2026, 11, 27, 5, 0), False),  # Friday morning: Thursday's
        (OVERNIGHT_FRIDAY, berlin(2026, 11, 28, 23, 0), False),  # Saturday night
        (OVERNIGHT_FRIDAY, utc(2026, 11, 27, 20, 59), False),  # 21:59 in Berlin
        # Spring forward, 29 March 2026: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
        (EARLY_HOURS, utc(2026, 3, 29, 0, 45), True),  # 01:45 CET
        (EARLY_HOURS, utc(2026, 3, 29, 1, 15), False),  # 03:15 CEST; 02:15 never happened
        # Fall back, 25 October 2026: 03:00 CEST becomes 02:00 CET at 01:00 UTC.
        (EARLY_HOURS, utc(2026, 10, 25, 0, 15), True),  # 02:15 CEST, the first time
        (EARLY_HOURS, utc(2026, 10, 25, 1, 15), True),  # 02:15 CET, the second time
        (EARLY_HOURS, utc(2026, 10, 25, 1, 45), False),  # 02:45 CET
        # A night across the fall-back change: Saturday 22:00 CEST to Sunday 06:00 CET.
        (OVERNIGHT_SATURDAY, utc(2026, 10, 24, 19, 59), False),  # 21:59 CEST
        (OVERNIGHT_SATURDAY, utc(2026, 10, 24, 20, 0), True),  # 22:00 CEST
        (OVERNIGHT_SATURDAY, utc(2026, 10, 25, 4, 59), True),  # 05:59 CET
        (OVERNIGHT_SATURDAY, utc(2026, 10, 25, 5, 0), False),  # 06:00 CET
    ],
)
def test_time_windows(window: TimeWindow, now: datetime, inside: bool) -> None:
    decision = evaluate(spend(native(ALICE, 1)), world(CAPS, policy("hours", window)), now)
    assert decision.allowed is inside, decision.message
    if not inside:
        assert decision.reason is Reason.OUTSIDE_TIME_WINDOW
        assert "Europe/Berlin" in decision.message


def test_an_empty_time_window_admits_nothing() -> None:
    window = TimeWindow("never", "UTC", frozenset(range(7)), time(9), time(9))
    decision = evaluate(spend(native(ALICE, 1)), world(CAPS, policy("hours", window)), NOW)
    assert decision.reason is Reason.OUTSIDE_TIME_WINDOW


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(spend(native(ALICE, 1)), world(CAPS), NOW.replace(tzinfo=None))


def test_prices_age_with_now() -> None:
    policies = world(policy("usd", USD_CAP))
    request = spend(native(ALICE, eth("0.1")))
    assert evaluate(request, policies, NOW).allowed
    later = evaluate(request, policies, NOW + timedelta(hours=1))
    assert later.reason is Reason.PRICE_UNAVAILABLE


# -- amounts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_units", "decimals", "text"),
    [
        (eth("1.5"), 18, "1.5 ETH"),
        (1, 18, "0.000000000000000001 ETH"),
        (0, 18, "0 ETH"),
        (10**24, 18, "1000000 ETH"),
        (MAX_UINT256, 0, f"{MAX_UINT256} ETH"),
        (123, 0, "123 ETH"),
    ],
)
def test_format_units_is_exact(base_units: int, decimals: int, text: str) -> None:
    assert format_units(base_units, decimals, "ETH") == text


def test_to_decimal_is_exact_beyond_the_default_precision() -> None:
    value = Fraction(MAX_UINT256) * Fraction(Decimal("3000.01")) / Fraction(10) ** 18
    assert Fraction(to_decimal(value)) == value
    with pytest.raises(ValueError, match="finite decimal"):
        to_decimal(Fraction(1, 3))


def test_micro_dollar_rounding() -> None:
    assert micro_usd_at_least(Fraction(1, 10**9)) == 1
    assert micro_usd_at_least(Fraction(3)) == 3_000_000
    assert micro_usd_at_most(Decimal("0.0000019")) == 1
    assert micro_usd_at_most(Decimal("20000")) == 20_000_000_000


def test_the_same_request_with_different_spellings_decides_the_same() -> None:
    policies = world(CAPS, policy("dst", DestinationAllowlist("dst", frozenset({ALICE}))))
    lower = evaluate(spend(native(ALICE.lower(), 1)), policies, NOW)
    upper = evaluate(spend(native("0x" + ALICE[2:].upper(), 1)), policies, NOW)
    assert lower == upper and lower.allowed


def test_decisions_are_plain_data() -> None:
    decision = evaluate(spend(native(ALICE, 1)), world(CAPS), NOW)
    assert replace(decision) == decision
    assert decision.to_json()["amounts"] == {"eth": "1"}
