"""A deeper red-team corpus: attacks on a policy an operator would write with the value
model's keys (NFT collections with count caps and an approval limit, contract methods
with conditions, recipients and max_value, typed-data entries with conditions), judged
by the pure core (``decode_call`` then ``evaluate``; a DecodeError is a refusal too).
Each attack has an allowed twin, so a refusal cannot come from a broken fixture.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.support.typed_shapes import ERC721, item, order_components
from tests.support.typed_shapes import document as typed_document
from tests.test_red_team_value import CHAIN, NOW, WALLET, calldata, send
from walletgate.config.document_errors import DocumentInvalid
from walletgate.config.documents import (
    compile_document,
    export_document,
    normalize_document,
    parse_document,
)
from walletgate.intents import DecodeError
from walletgate.policies.decision import Outcome
from walletgate.policies.evaluator import evaluate
from walletgate.policies.model import PolicySet
from walletgate.policies.request import SpendRequest
from walletgate.proxy.evm.decode import decode_call
from walletgate.proxy.evm.seaport import ORDER_TYPE_1_0

ETH = 10**18
D1 = "0x" + "d1" * 20
D2 = "0x" + "d2" * 20
BAD = "0x" + "bad0" * 10
STRANGER = "0x" + "57" * 20
PUNKS = "0x" + "4f" * 20
ITEMS = "0x" + "4e" * 20
ROUTER = "0x" + "88" * 20
TOKEN = "0x" + "70" * 20
SEAPORT_1_0 = "0x00000000006c3852cbef3e08e8df289169ede581"
PRICE = {"price_usd": "3000", "price_as_of": "2026-12-01T00:00:00Z", "price_max_age": "30d"}
ROUTER_METHODS: list[Any] = [
    {"signature": "payTo(address recipient)", "recipients": ["recipient"], "max_value": "0.05"},
    {"signature": "sweep(address to)", "conditions": {"to": {"own_wallet": True}}},
]
DOCUMENT: dict[str, Any] = {
    "version": 1,
    "owners": [{"id": "acme"}],
    "agents": [{"id": "bot", "owner": "acme"}],
    "wallets": [{"id": "hot", "owner": "acme", "agent": "bot", "chain": CHAIN, "address": WALLET}],
    "assets": [
        {"id": "eth", "chain": CHAIN, "native": True, "symbol": "ETH", "decimals": 18, **PRICE},
        {"id": "wusd", "chain": CHAIN, "address": TOKEN, "symbol": "WUSD", "decimals": 6},
        {"id": "punks", "chain": CHAIN, "kind": "erc721", "address": PUNKS, "symbol": "PUNKS"},
        {"id": "items", "chain": CHAIN, "kind": "erc1155", "address": ITEMS, "symbol": "ITEMS"},
    ],
    "policies": [
        {
            "id": "owner-wide",
            "owner": "acme",
            "rules": [{"id": "sanctioned", "type": "destination_denylist", "addresses": [BAD]}],
        },
        {
            "id": "bot-limits",
            "agent": "bot",
            "rules": [
                {"id": "eth-per-tx", "type": "per_tx_cap", "asset": "eth", "max": "1"},
                {"id": "wusd-per-tx", "type": "per_tx_cap", "asset": "wusd", "max": "1000"},
                {"id": "punks-per-tx", "type": "per_tx_cap", "asset": "punks", "max": "1"},
                {"id": "items-per-tx", "type": "per_tx_cap", "asset": "items", "max": "5"},
                {"id": "punks-approvals", "type": "approval_limit", "asset": "punks", "max": "1"},
                {
                    "id": "where",
                    "type": "destination_allowlist",
                    "addresses": [D1, D2, BAD, ROUTER],
                },
                {
                    "id": "contracts",
                    "type": "contract_allowlist",
                    "contracts": [{"address": ROUTER, "methods": ROUTER_METHODS}],
                },
                {
                    "id": "signing",
                    "type": "signing_allowlist",
                    "methods": ["eth_signTypedData_v4"],
                },
            ],
        },
    ],
}


def policies_with(*router_methods: Any) -> PolicySet:
    """The document with more methods on the router's contract_allowlist entry."""
    document = copy.deepcopy(DOCUMENT)
    rules = document["policies"][1]["rules"]
    contracts = next(rule for rule in rules if rule["id"] == "contracts")["contracts"]
    contracts[0]["methods"] += list(router_methods)
    return compile_document(document, version=1)


POLICIES = policies_with()


def outcome(method: str, params: Any, policies: PolicySet = POLICIES) -> Outcome | str:
    """What walletgate's core does with the call: its decision, or "malformed"."""
    try:
        decoded = decode_call(method, params, chain_id=CHAIN)
    except DecodeError:
        return "malformed"
    return evaluate(SpendRequest("bot", decoded, CHAIN), policies, NOW).outcome


ALLOWED = Outcome.ALLOW


# -- self-multicalls: multicall(bytes[]) delegatecalls the contract's own methods -------

MULTICALLS = {
    "multicall(bytes[])": (),
    "multicall(uint256,bytes[])": (2**40,),
    "multicall(bytes32,bytes[])": (b"\x11" * 32,),
}


@pytest.mark.parametrize("signature", MULTICALLS)
def test_a_self_multicall_is_judged_call_by_call(signature: str) -> None:
    # The operator lists the router's multicall plainly (it takes no address or amount,
    # so validate did not even warn): its elements are the router's own methods, run
    # with the wallet as sender, and must meet their own entries.
    policies = policies_with(signature)
    head = MULTICALLS[signature]

    def multicall(*inner: bytes, value: int = 0) -> list[Any]:
        return send(ROUTER, value=value, data=calldata(signature, *head, list(inner)))

    pay_bad = calldata("payTo(address)", BAD)  # a marked recipient, denylisted
    sweep_away = calldata("sweep(address)", STRANGER)  # must be the wallet's own
    pay_d1 = calldata("payTo(address)", D1)
    assert outcome("eth_sendTransaction", multicall(pay_bad), policies) is not ALLOWED
    assert outcome("eth_sendTransaction", multicall(sweep_away), policies) is not ALLOWED
    assert outcome("eth_sendTransaction", multicall(calldata("drain()")), policies) is not ALLOWED
    # payTo sees the whole msg.value (delegatecall): 0.5 ETH is over its max_value 0.05.
    over = multicall(pay_d1, value=ETH // 2)
    assert outcome("eth_sendTransaction", over, policies) is not ALLOWED
    ok = multicall(pay_d1, calldata("sweep(address)", WALLET), value=ETH // 100)
    assert outcome("eth_sendTransaction", ok, policies) is ALLOWED


def test_a_self_multicall_on_an_nft_collection_moves_its_tokens() -> None:
    # Position managers and many collections have multicall: the elements are transfers
    # by the wallet itself. The collection's multicall is listed, the transfer is not free.
    document = copy.deepcopy(DOCUMENT)
    rules = document["policies"][1]["rules"]
    contracts = next(rule for rule in rules if rule["id"] == "contracts")["contracts"]
    contracts.append({"address": PUNKS, "methods": ["multicall(bytes[])"]})
    policies = compile_document(document, version=1)
    move = "safeTransferFrom(address,address,uint256)"

    def multicall(*inner: bytes) -> list[Any]:
        return send(PUNKS, data=calldata("multicall(bytes[])", list(inner)))

    assert outcome("eth_sendTransaction", multicall(calldata(move, WALLET, BAD, 1)), policies) != (
        ALLOWED
    )
    two = multicall(calldata(move, WALLET, D1, 1), calldata(move, WALLET, D1, 2))
    assert outcome("eth_sendTransaction", two, policies) is not ALLOWED  # 2 > per-tx cap of 1
    one = multicall(calldata(move, WALLET, D1, 1))
    assert outcome("eth_sendTransaction", one, policies) is ALLOWED


# -- method entries on token and NFT methods: checks that would never run ----------------


@pytest.mark.parametrize(
    ("contract", "entry"),
    [
        (
            PUNKS,
            {
                "signature": "safeTransferFrom(address from,address to,uint256 id)",
                "conditions": {"id": {"lte": "100"}},
            },
        ),
        (
            TOKEN,
            {
                "signature": "transfer(address to,uint256 amount)",
                "conditions": {"amount": {"lte": "5"}},
            },
        ),
        (TOKEN, {"signature": "approve(address spender,uint256)", "recipients": ["spender"]}),
        (PUNKS, {"signature": "setApprovalForAll(address,bool)", "max_value": "0"}),
    ],
)
def test_a_method_entry_on_a_token_or_nft_method_is_refused(
    contract: str, entry: dict[str, Any]
) -> None:
    # Such calls are token or NFT intents, judged by the asset rules; the entry's checks
    # would never see them, so "safeTransferFrom only for ids <= 100" would let id 5000
    # through. The document is refused instead of silently ignoring the operator.
    document = copy.deepcopy(DOCUMENT)
    rules = document["policies"][1]["rules"]
    contracts = next(rule for rule in rules if rule["id"] == "contracts")["contracts"]
    contracts.append({"address": contract, "methods": [entry]})
    with pytest.raises(DocumentInvalid, match="asset rules judge"):
        compile_document(document, version=1)
    plain = {"address": contract, "methods": [entry["signature"]]}
    contracts[-1] = plain  # listed plainly (any arguments) it is accepted
    compile_document(document, version=1)


# -- typed data: an ERC-4494 permit is an ERC-721 approval -------------------------------

ERC4494 = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Permit": [
        {"name": "spender", "type": "address"},
        {"name": "tokenId", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}


def nft_permit(collection: str) -> list[Any]:
    document = {
        "types": ERC4494,
        "primaryType": "Permit",
        "domain": {"name": "C", "chainId": CHAIN, "verifyingContract": collection},
        "message": {"spender": D1, "tokenId": 1, "nonce": 0, "deadline": 2**40},
    }
    return [WALLET, json.dumps(document)]


def test_an_erc4494_permit_on_an_erc1155_collection_is_refused() -> None:
    # On an ERC-1155 contract "token #1" is any number of tokens: the permit's count of 1
    # would understate what the spender may take.
    assert outcome("eth_signTypedData_v4", nft_permit(ITEMS)) is not ALLOWED
    assert outcome("eth_signTypedData_v4", nft_permit(PUNKS)) is ALLOWED


# -- typed data: a Seaport 1.0 order (counter named nonce) is still an order -------------


def seaport_1_0_order(offer: list[dict[str, Any]]) -> list[Any]:
    message = order_components(WALLET, offer)
    message["nonce"] = message.pop("counter")
    order = typed_document(
        ORDER_TYPE_1_0, "OrderComponents", message, contract=SEAPORT_1_0, name="Seaport"
    )
    return [WALLET, json.dumps(order)]


def test_a_seaport_1_0_order_is_judged_by_what_it_offers() -> None:
    # Under the loud opt-out every undecoded document may be signed: a Seaport 1.0 order
    # (its contract still fills orders) must not be "undecoded".
    document = copy.deepcopy(DOCUMENT)
    signing = next(r for r in document["policies"][1]["rules"] if r["id"] == "signing")
    signing["allow_any_typed_data_unsafe"] = True
    policies = compile_document(document, version=1)
    punk = item(ERC721, PUNKS, 1, 1)
    assert outcome("eth_signTypedData_v4", seaport_1_0_order([punk]), policies) is not ALLOWED
    assert outcome("eth_signTypedData_v4", seaport_1_0_order([]), policies) is ALLOWED


def test_an_exported_typed_data_entry_keeps_an_empty_domain_name() -> None:
    # name: "" admits only documents whose domain name is empty; an export that dropped
    # it would, once applied again, admit every name.
    document = copy.deepcopy(DOCUMENT)
    signing = next(r for r in document["policies"][1]["rules"] if r["id"] == "signing")
    entry = {"verifying_contract": ROUTER, "chain_id": CHAIN, "primary_type": "Mail", "name": ""}
    signing["typed_data"] = [entry]
    canonical = normalize_document(document)
    reread = normalize_document(parse_document(export_document(canonical), "export.yaml"))
    assert reread == canonical
