"""NFTs as assets, without a devnet: asset kinds in documents, strict decoding of ERC-721 /
ERC-1155 calldata, and the evaluator judging NFT transfers and approvals (counts, USD,
destinations, operators, kind conflicts). End to end: tests/test_value_nfts.py."""

from __future__ import annotations

import copy
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from tests.support.policy_world import (
    ALICE,
    ASSETS,
    BOB,
    CHAIN,
    NOW,
    SINK,
    STRANGER,
    TRADER_HOT,
    UNKNOWN_TOKEN,
    WUSD_TOKEN,
    approval,
    policy,
    spend,
    transfer,
    usd_limit,
    world,
)
from walletgate.config.documents import DocumentInvalid, compile_document, normalize_document
from walletgate.intents import (
    DecodeError,
    Intent,
    NftApproval,
    NftTransfer,
    TokenApproval,
    TokenTransfer,
    canonical_address,
)
from walletgate.policies.decision import Decision, Outcome, Reason
from walletgate.policies.evaluator import evaluate
from walletgate.policies.model import (
    ApprovalLimit,
    Asset,
    AssetAllowlist,
    AssetKind,
    CumulativeCap,
    DestinationAllowlist,
    DestinationDenylist,
    Limit,
    PerTxCap,
    Policy,
    Scope,
    Window,
)
from walletgate.proxy.evm.calls import call_intents
from walletgate.proxy.evm.nft import NFT_SELECTORS

PUNKS_ADDRESS = canonical_address("0x5Af0D9827E0c53E4799BB226655A1de152A425a5")
ITEMS_ADDRESS = canonical_address("0x76BE3b62873462d2142405439777e971754E8E77")
BIG_ID = 2**200 + 7  # over the "unlimited" ERC-20 threshold: must not be read as an amount

PUNKS = Asset(
    "punks",
    CHAIN,
    PUNKS_ADDRESS,
    "PUNKS",
    0,
    price_usd=Decimal("100"),
    price_as_of=NOW - timedelta(minutes=1),
    price_max_age=timedelta(hours=1),
    kind=AssetKind.ERC721,
)
ITEMS = Asset("items", CHAIN, ITEMS_ADDRESS, "ITEMS", 0, kind=AssetKind.ERC1155)
NFT_ASSETS = (*ASSETS.values(), PUNKS, ITEMS)

PUNKS_CAP = PerTxCap("punks-per-tx", Limit(asset="punks", base_units=2))
ITEMS_CAP = PerTxCap("items-per-tx", Limit(asset="items", base_units=5))
FRIENDS = DestinationAllowlist("friends", frozenset({ALICE, BOB}))
DENIED = DestinationDenylist("sanctioned", frozenset({SINK}))


def nft_world(*policies: Policy) -> Any:
    return world(*policies, assets=NFT_ASSETS)


def judged(*intents: Intent, rules: tuple[Any, ...]) -> Decision:
    return evaluate(spend(*intents), nft_world(policy("nfts", *rules)), NOW)


def calldata(signature: str, *args: Any) -> bytes:
    types = signature[signature.index("(") + 1 : -1]
    # split on top-level commas (no tuples here)
    return bytes(function_signature_to_4byte_selector(signature)) + encode(
        types.split(",") if types else [], list(args)
    )


def intents_of(to: str, data: bytes) -> tuple[Intent, ...]:
    return call_intents(
        chain_id=CHAIN, wallet=TRADER_HOT, to=to, value=0, data=data, nonce=None, where="params[0]"
    )


def erc721_transfer(to: str, token_id: int, *, collection: str = PUNKS_ADDRESS) -> NftTransfer:
    (intent,) = intents_of(
        collection,
        calldata("safeTransferFrom(address,address,uint256)", TRADER_HOT, to, token_id),
    )
    assert isinstance(intent, NftTransfer)
    return intent


def operator_approval(operator: str, approved: bool, *, collection: str = PUNKS_ADDRESS) -> Any:
    (intent,) = intents_of(
        collection, calldata("setApprovalForAll(address,bool)", operator, approved)
    )
    assert isinstance(intent, NftApproval)
    return intent


def batch(to: str, ids: list[int], amounts: list[int]) -> NftTransfer:
    signature = "safeBatchTransferFrom(address,address,uint256[],uint256[],bytes)"
    (intent,) = intents_of(ITEMS_ADDRESS, calldata(signature, TRADER_HOT, to, ids, amounts, b""))
    assert isinstance(intent, NftTransfer)
    return intent


# -- decoding --------------------------------------------------------------------------


def test_the_five_nft_selectors_are_decoded() -> None:
    assert {"0x42842e0e", "0xb88d4fde", "0xf242432a", "0x2eb2c2d6", "0xa22cb465"} == NFT_SELECTORS


def test_erc721_safe_transfers_both_forms() -> None:
    assert erc721_transfer(ALICE, BIG_ID) == NftTransfer(
        CHAIN, TRADER_HOT, PUNKS_ADDRESS, ALICE, (BIG_ID,), (1,), TRADER_HOT,
        "erc721.safeTransferFrom",
    )  # fmt: skip
    data = calldata("safeTransferFrom(address,address,uint256,bytes)", STRANGER, ALICE, 5, b"hello")
    (intent,) = intents_of(PUNKS_ADDRESS, data)
    assert isinstance(intent, NftTransfer)
    assert (intent.source, intent.to, intent.token_ids, intent.amount) == (STRANGER, ALICE, (5,), 1)


def test_erc1155_single_and_batch_transfers() -> None:
    signature = "safeTransferFrom(address,address,uint256,uint256,bytes)"
    (single,) = intents_of(ITEMS_ADDRESS, calldata(signature, TRADER_HOT, BOB, 3, 40, b""))
    assert isinstance(single, NftTransfer)
    assert (single.token_ids, single.amounts, single.amount) == ((3,), (40,), 40)
    assert single.via == "erc1155.safeTransferFrom"
    many = batch(ALICE, [1, 2, 1], [3, 4, 5])
    assert (many.token_ids, many.amounts, many.amount) == ((1, 2, 1), (3, 4, 5), 12)


def test_set_approval_for_all_and_its_revocation() -> None:
    granted = operator_approval(BOB, True)
    assert (granted.operator, granted.token_id, granted.unlimited) == (BOB, None, True)
    revoked = operator_approval(BOB, False)
    assert (revoked.unlimited, revoked.amount) == (False, 0)


def test_value_sent_with_an_nft_call_is_a_native_transfer_too() -> None:
    intents = call_intents(
        chain_id=CHAIN,
        wallet=TRADER_HOT,
        to=PUNKS_ADDRESS,
        value=7,
        data=calldata("setApprovalForAll(address,bool)", BOB, True),
        nonce=None,
        where="params[0]",
    )
    assert [type(intent).__name__ for intent in intents] == ["NativeTransfer", "NftApproval"]


def _bad_calldata() -> dict[str, bytes]:
    transfer_data = calldata("safeTransferFrom(address,address,uint256)", TRADER_HOT, ALICE, 5)
    approval_data = calldata("setApprovalForAll(address,bool)", BOB, True)
    batch_signature = "safeBatchTransferFrom(address,address,uint256[],uint256[],bytes)"
    batch_data = calldata(batch_signature, TRADER_HOT, ALICE, [1, 2], [3, 4], b"xy")
    dirty_address = bytearray(transfer_data)
    dirty_address[4 + 32 + 2] = 0x01  # a high byte of the `to` word
    offsets = bytearray(batch_data)
    # Point the amounts array at the ids array: decodable, but not canonical.
    offsets[4 + 32 * 3 : 4 + 32 * 4] = offsets[4 + 32 * 2 : 4 + 32 * 3]
    return {
        "short": transfer_data[:-1],
        "trailing byte": transfer_data + b"\x00",
        "trailing word": batch_data + bytes(32),
        "dirty address padding": bytes(dirty_address),
        "bool of 2": approval_data[:-1] + b"\x02",
        "overlapping arrays": bytes(offsets),
        "dirty bytes padding": batch_data[:-1] + b"\x01",
        "ids and amounts differ": calldata(batch_signature, TRADER_HOT, ALICE, [1, 2], [3], b""),
        "selector only": approval_data[:4],
    }


@pytest.mark.parametrize("case", sorted(_bad_calldata()))
def test_a_matching_selector_with_bad_calldata_is_a_decode_error(case: str) -> None:
    with pytest.raises(DecodeError) as raised:
        intents_of(PUNKS_ADDRESS, _bad_calldata()[case])
    assert raised.value.where == "params[0].data"


def test_erc721_transfer_from_and_approve_decode_as_erc20_until_the_evaluator_knows() -> None:
    signature = "transferFrom(address,address,uint256)"
    (intent,) = intents_of(PUNKS_ADDRESS, calldata(signature, TRADER_HOT, ALICE, BIG_ID))
    assert isinstance(intent, TokenTransfer) and intent.amount == BIG_ID
    (shared,) = intents_of(PUNKS_ADDRESS, calldata("approve(address,uint256)", ALICE, BIG_ID))
    assert isinstance(shared, TokenApproval) and shared.unlimited  # as an ERC-20 amount


# -- the evaluator -----------------------------------------------------------------------


def test_a_capped_transfer_to_a_listed_address_is_allowed_and_described() -> None:
    decision = judged(erc721_transfer(ALICE, 5), rules=(PUNKS_CAP, FRIENDS, DENIED))
    assert decision.outcome is Outcome.ALLOW, decision.message
    assert decision.amounts == (("punks", 1),)
    assert decision.usd_value == Decimal(100)
    texts = " ".join(finding.message for finding in decision.findings)
    assert "1 PUNKS requested" in texts


def test_a_transfer_to_a_denylisted_address_is_refused() -> None:
    decision = judged(erc721_transfer(SINK, 5), rules=(PUNKS_CAP, DENIED))
    assert decision.reason is Reason.DESTINATION_DENIED, decision.message


def test_an_nft_transfer_needs_a_bound_like_a_token_transfer() -> None:
    decision = judged(erc721_transfer(ALICE, 5), rules=(FRIENDS,))
    assert decision.reason is Reason.NO_POLICY
    assert "transfer of token #5 of PUNKS to " + ALICE in decision.message


def test_an_operator_for_the_whole_collection_is_an_unlimited_approval() -> None:
    for rules in [
        (PUNKS_CAP, FRIENDS),
        (PUNKS_CAP, FRIENDS, ApprovalLimit("punk-approvals", Limit("punks", 1))),
        # A USD approval limit names no collection: it cannot allow an operator.
        (PUNKS_CAP, FRIENDS, ApprovalLimit("usd", usd_limit("1000"), allow_unlimited=True)),
    ]:
        decision = judged(operator_approval(ALICE, True), rules=rules)
        assert decision.reason is Reason.UNLIMITED_APPROVAL, decision.message
    assert "approval of every PUNKS token (setApprovalForAll)" in decision.message


def test_an_allowed_operator_must_still_be_a_listed_destination() -> None:
    allowed = ApprovalLimit("operators", Limit("punks", 1), allow_unlimited=True)
    listed = judged(operator_approval(ALICE, True), rules=(allowed, FRIENDS))
    assert listed.outcome is Outcome.ALLOW, listed.message
    unlisted = judged(operator_approval(STRANGER, True), rules=(allowed, FRIENDS))
    assert unlisted.reason is Reason.DESTINATION_NOT_ALLOWED
    # Like an unlimited ERC-20 approval, it is over any count cap on the collection.
    capped = judged(operator_approval(ALICE, True), rules=(allowed, FRIENDS, PUNKS_CAP))
    assert capped.reason is Reason.PER_TX_CAP


def test_revoking_an_operator_moves_nothing_even_for_a_denylisted_one() -> None:
    decision = judged(operator_approval(SINK, False), rules=(DENIED, FRIENDS))
    assert decision.outcome is Outcome.ALLOW, decision.message


def test_count_caps_per_transaction_and_per_window() -> None:
    over = judged(batch(ALICE, [1, 2], [3, 3]), rules=(ITEMS_CAP, FRIENDS))
    assert over.reason is Reason.PER_TX_CAP
    assert "6 ITEMS requested, over the per-transaction cap of 5 ITEMS" in over.message
    window = CumulativeCap("items-daily", Limit("items", 10), Window(seconds=86400), Scope.WALLET)
    within = judged(batch(ALICE, [1, 2], [2, 2]), rules=(ITEMS_CAP, window))
    assert within.outcome is Outcome.ALLOW
    (claim,) = within.claims
    assert (claim.amount, claim.limit) == (4, 10)


def test_a_priced_collection_counts_in_usd_caps_and_fails_closed_when_stale() -> None:
    two = (erc721_transfer(ALICE, 1), erc721_transfer(ALICE, 2))
    usd_cap = PerTxCap("usd", usd_limit("150"))
    assert judged(*two, rules=(usd_cap,)).reason is Reason.PER_TX_CAP
    assert judged(two[0], rules=(usd_cap,)).outcome is Outcome.ALLOW
    stale = PUNKS.__class__(**{**_fields(PUNKS), "price_as_of": NOW - timedelta(hours=2)})
    stale_world = world(policy("nfts", usd_cap), assets=(*ASSETS.values(), stale))
    decision = evaluate(spend(two[0]), stale_world, NOW)
    assert decision.reason is Reason.PRICE_UNAVAILABLE
    # An unpriced collection under a USD cap fails closed too.
    unpriced = judged(batch(ALICE, [1], [1]), rules=(usd_cap,))
    assert unpriced.reason is Reason.PRICE_UNAVAILABLE


def _fields(asset: Asset) -> dict[str, Any]:
    return {name: getattr(asset, name) for name in Asset.__dataclass_fields__}


def test_the_asset_allowlist_lists_collections() -> None:
    only_wusd = AssetAllowlist("known", frozenset({"wusd"}))
    decision = judged(erc721_transfer(ALICE, 5), rules=(PUNKS_CAP, only_wusd))
    assert decision.reason is Reason.ASSET_NOT_ALLOWED
    both = AssetAllowlist("known", frozenset({"wusd", "punks"}))
    assert judged(erc721_transfer(ALICE, 5), rules=(PUNKS_CAP, both)).outcome is Outcome.ALLOW


def test_an_unknown_collection_is_refused() -> None:
    decision = judged(erc721_transfer(ALICE, 5, collection=UNKNOWN_TOKEN), rules=(PUNKS_CAP,))
    assert decision.reason is Reason.UNKNOWN_ASSET
    revoke = judged(operator_approval(ALICE, False, collection=UNKNOWN_TOKEN), rules=(PUNKS_CAP,))
    assert revoke.reason is Reason.UNKNOWN_ASSET


def test_erc721_transfer_from_with_a_large_id_is_one_token() -> None:
    shared = transfer(PUNKS_ADDRESS, ALICE, BIG_ID)
    decision = judged(shared, rules=(PUNKS_CAP, FRIENDS))
    assert decision.outcome is Outcome.ALLOW, decision.message
    assert decision.amounts == (("punks", 1),)
    refused = judged(transfer(PUNKS_ADDRESS, SINK, BIG_ID), rules=(PUNKS_CAP, DENIED))
    assert refused.reason is Reason.DESTINATION_DENIED
    unbounded = judged(transfer(PUNKS_ADDRESS, ALICE, BIG_ID), rules=(FRIENDS,))
    assert f"transfer of token #{BIG_ID} of PUNKS to {ALICE}" in unbounded.message


def test_erc721_approve_is_one_token_not_an_unlimited_approval() -> None:
    single = ApprovalLimit("one-at-a-time", Limit("punks", 1))
    decision = judged(approval(PUNKS_ADDRESS, ALICE, BIG_ID), rules=(single, FRIENDS))
    assert decision.outcome is Outcome.ALLOW, decision.message
    assert decision.amounts == (("punks", 1),)
    to_stranger = judged(approval(PUNKS_ADDRESS, STRANGER, BIG_ID), rules=(single, FRIENDS))
    assert to_stranger.reason is Reason.DESTINATION_NOT_ALLOWED
    # approve(0x0, id) clears the token's approval: nothing to bound, no destination.
    cleared = judged(approval(PUNKS_ADDRESS, "0x" + "00" * 20, 5), rules=(FRIENDS,))
    assert cleared.outcome is Outcome.ALLOW, cleared.message


@pytest.mark.parametrize(
    "case",
    [
        "erc1155 batch on an erc721 collection",
        "erc721 safeTransferFrom on an erc1155 collection",
        "setApprovalForAll on an erc20 token",
        "nft transfer on an erc20 token",
        "erc20 transfer on an erc1155 collection",
        "permit on an erc721 collection",
        "increaseAllowance on an erc721 collection",
    ],
)
def test_a_standard_that_does_not_fit_the_asset_kind_is_refused(case: str) -> None:
    intent: Intent
    if case == "erc1155 batch on an erc721 collection":
        intent = batch(ALICE, [1], [1])
        intent = NftTransfer(**{**_intent_fields(intent), "collection": PUNKS_ADDRESS})
    elif case == "erc721 safeTransferFrom on an erc1155 collection":
        intent = erc721_transfer(ALICE, 1, collection=ITEMS_ADDRESS)
    elif case == "setApprovalForAll on an erc20 token":
        intent = operator_approval(ALICE, True, collection=WUSD_TOKEN)
    elif case == "nft transfer on an erc20 token":
        intent = erc721_transfer(ALICE, 1, collection=WUSD_TOKEN)
    elif case == "erc20 transfer on an erc1155 collection":
        intent = transfer(ITEMS_ADDRESS, ALICE, 1)
    elif case == "permit on an erc721 collection":
        intent = approval(PUNKS_ADDRESS, ALICE, 1, via="permit")
    else:
        intent = approval(PUNKS_ADDRESS, ALICE, 1, via="increaseAllowance")
    every_bound = (
        PUNKS_CAP,
        ITEMS_CAP,
        PerTxCap("usd", usd_limit("1000000")),
        ApprovalLimit("all", Limit("punks", 5), allow_unlimited=True),
        ApprovalLimit("wusd", Limit("wusd", 10**9), allow_unlimited=True),
    )
    decision = judged(intent, rules=every_bound)
    assert decision.reason is Reason.UNKNOWN_ASSET, decision.message


def _intent_fields(intent: NftTransfer) -> dict[str, Any]:
    return {name: getattr(intent, name) for name in NftTransfer.__dataclass_fields__}


def test_a_malformed_nft_intent_is_refused() -> None:
    bad = NftTransfer(CHAIN, TRADER_HOT, PUNKS_ADDRESS, ALICE, (1, 2), (1,), TRADER_HOT, "x")
    assert judged(bad, rules=(PUNKS_CAP,)).reason is Reason.MALFORMED
    negative = NftTransfer(CHAIN, TRADER_HOT, PUNKS_ADDRESS, ALICE, (1,), (-1,), TRADER_HOT, "x")
    assert judged(negative, rules=(PUNKS_CAP,)).reason is Reason.MALFORMED


# -- documents ---------------------------------------------------------------------------


def _document(**collection: Any) -> dict[str, Any]:
    asset = {"id": "punks", "chain": 1337, "address": PUNKS_ADDRESS, "symbol": "PUNKS"}
    asset.update(collection)
    return {
        "version": 1,
        "owners": [{"id": "acme"}],
        "agents": [{"id": "bot", "owner": "acme"}],
        "wallets": [
            {"id": "hot", "owner": "acme", "agent": "bot", "chain": 1337, "address": TRADER_HOT}
        ],
        "assets": [
            {"id": "eth", "chain": 1337, "native": True, "symbol": "ETH", "decimals": 18},
            {"id": "wusd", "chain": 1337, "address": WUSD_TOKEN, "symbol": "W", "decimals": 6},
            asset,
        ],
        "policies": [
            {
                "id": "p",
                "agent": "bot",
                "rules": [{"id": "cap", "type": "per_tx_cap", "asset": "punks", "max": "3"}],
            }
        ],
    }


def test_kinds_default_and_nft_decimals_are_zero() -> None:
    canonical = normalize_document(_document(kind="erc721"))
    kinds = {asset["id"]: (asset["kind"], asset["decimals"]) for asset in canonical["assets"]}
    assert kinds == {"eth": ("native", 18), "wusd": ("erc20", 6), "punks": ("erc721", 0)}
    assert normalize_document(canonical) == canonical
    policies = compile_document(_document(kind="erc1155", decimals=0, price_usd="5",
                                          price_as_of="2026-11-01T00:00:00Z"), 1)  # fmt: skip
    assert policies.assets["punks"].kind is AssetKind.ERC1155 and policies.assets["punks"].nft
    assert policies.assets["eth"].kind is AssetKind.NATIVE
    assert policies.assets["wusd"].kind is AssetKind.ERC20
    rule = policies.policies[0].rules[0]
    assert isinstance(rule, PerTxCap) and rule.limit == Limit(asset="punks", base_units=3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "erc721", "decimals": 2}, "an NFT collection counts whole tokens"),
        ({"kind": "native"}, "not native"),
        ({"kind": "erc20"}, "missing key 'decimals'"),
        ({"kind": "erc4626", "decimals": 0}, "is not one of"),
    ],
)
def test_bad_kinds_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(DocumentInvalid) as raised:
        normalize_document(_document(**change))
    assert any(message in str(error) for error in raised.value.errors), raised.value.errors


def test_native_with_another_kind_and_fractional_counts_are_refused() -> None:
    doc = _document(kind="erc721")
    native_nft = copy.deepcopy(doc)
    native_nft["assets"][0]["kind"] = "erc721"
    with pytest.raises(DocumentInvalid) as raised:
        normalize_document(native_nft)
    assert any("its kind is native" in str(error) for error in raised.value.errors)
    fractional = copy.deepcopy(doc)
    fractional["policies"][0]["rules"][0]["max"] = "1.5"
    with pytest.raises(DocumentInvalid):
        normalize_document(fractional)
