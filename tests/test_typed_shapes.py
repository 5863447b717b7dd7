"""The typed-data shapes that move NFTs, run calls or hand over authority are decoded into
intents; an altered type is no such shape (a plain message signature), and malformed
data is a DecodeError. A shape whose domain binds no chain also asks for an entry."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from tests.support.evm_builders import ALICE, RECIPIENT, SPENDER, TOKEN, address_of, calldata
from tests.support.typed_shapes import (
    CHAIN_ID,
    DELEGATION_MANAGER,
    ERC20,
    ERC721,
    ERC721_CRITERIA,
    ERC1155,
    NATIVE,
    SEAPORT,
    delegation,
    item,
    nft_permit,
    order_components,
    permit_for_all,
    safe_tx,
    seaport_bulk_order,
    seaport_order,
)
from walletgate.intents import (
    ANYONE,
    ContractCall,
    DecodeError,
    MessageSignature,
    NativeTransfer,
    NftApproval,
    NftTransfer,
    TokenTransfer,
)
from walletgate.proxy.evm.decode import decode_call
from walletgate.proxy.evm.typed_shapes import SAFE_CALL_OVERHEAD_GAS

WALLET = address_of(ALICE)
COLLECTION = "0x" + "c1" * 20
SAFE = "0x" + "5a" * 20
ROUTER = "0x" + "7e" * 20


def sign(document: Any, chain_id: int | None = CHAIN_ID) -> Any:
    return decode_call("eth_signTypedData_v4", [WALLET, document], chain_id=chain_id)


def refusal(document: Any) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        sign(document)
    return caught.value


def only_signature(document: Any) -> MessageSignature:
    (signature,) = sign(document).intents
    assert isinstance(signature, MessageSignature)
    return signature


ALL_SHAPES = [
    nft_permit(COLLECTION, SPENDER, 7),
    permit_for_all(COLLECTION, SPENDER),
    safe_tx(SAFE, RECIPIENT, value=5),
    seaport_order(WALLET, [item(ERC721, COLLECTION, 1, 1)]),
    seaport_bulk_order(
        [order_components(WALLET, []), order_components(WALLET, [item(ERC20, TOKEN, 0, 5)])]
    ),
    delegation(SPENDER, WALLET),
]


@pytest.mark.parametrize("document", ALL_SHAPES)
def test_documents_are_real_signable_typed_data(document: Any) -> None:
    signed = Account.sign_typed_data(ALICE.key, full_message=document)
    recovered = Account.recover_message(
        encode_typed_data(full_message=document), signature=signed.signature
    )
    assert recovered.lower() == WALLET


def test_erc4494_permit_is_an_approval_of_one_token() -> None:
    decoded = sign(nft_permit(COLLECTION, SPENDER, 7))
    assert decoded.chain_id == CHAIN_ID
    assert decoded.intents == (
        NftApproval(CHAIN_ID, WALLET, COLLECTION, SPENDER, 7, True, "erc721.permit"),
    )


def test_permit_for_all_is_an_unlimited_approval() -> None:
    (approval,) = sign(permit_for_all(COLLECTION, SPENDER)).intents
    assert approval == NftApproval(CHAIN_ID, WALLET, COLLECTION, SPENDER, None, True, "permit")
    assert isinstance(approval, NftApproval) and approval.unlimited


def test_seaport_offer_items_leave_the_wallet_towards_anyone() -> None:
    offer = [
        item(ERC721, COLLECTION, 42, 1),
        item(ERC1155, COLLECTION, 3, 2, end=5),  # the amount moves from 2 to 5
        item(ERC20, TOKEN, 0, 10, end=4),
        item(NATIVE, "0x" + "00" * 20, 0, 9),
        item(ERC721_CRITERIA, COLLECTION, 0, 1),  # any token of the collection
    ]
    # The consideration pays the wallet: walletgate credits nothing against what leaves.
    pay_me = [{**item(NATIVE, "0x" + "00" * 20, 0, 10**18), "recipient": WALLET}]
    decoded = sign(seaport_order(WALLET, offer, pay_me))
    assert decoded.intents == (
        NftTransfer(CHAIN_ID, WALLET, COLLECTION, ANYONE, (42,), (1,), WALLET, "seaport"),
        NftTransfer(CHAIN_ID, WALLET, COLLECTION, ANYONE, (3,), (5,), WALLET, "seaport"),
        TokenTransfer(CHAIN_ID, WALLET, TOKEN, ANYONE, 10, source=WALLET),
        NativeTransfer(CHAIN_ID, WALLET, ANYONE, 9),
        NftApproval(CHAIN_ID, WALLET, COLLECTION, ANYONE, None, True, "seaport criteria"),
    )


def test_every_order_of_a_bulk_order_is_judged() -> None:
    orders = [
        order_components(WALLET, [item(ERC721, COLLECTION, 1, 1)]),
        order_components(WALLET, [item(ERC721, COLLECTION, 2, 1)]),
    ]
    decoded = sign(seaport_bulk_order(orders))
    assert [getattr(intent, "token_ids", None) for intent in decoded.intents] == [(1,), (2,)]


def test_seaport_unknown_item_type_is_refused() -> None:
    error = refusal(seaport_order(WALLET, [item(9, COLLECTION, 1, 1)]))
    assert error.where == "params[1].message.offer[0].itemType"


def test_safe_tx_is_the_inner_call_from_the_wallet() -> None:
    data = calldata("transfer(address,uint256)", RECIPIENT, 50)
    decoded = sign(safe_tx(SAFE, TOKEN, data=data))
    assert decoded.intents == (TokenTransfer(CHAIN_ID, WALLET, TOKEN, RECIPIENT, 50, WALLET),)
    other = sign(safe_tx(SAFE, ROUTER, value=3, data="0xdeadbeef"))
    assert other.intents == (
        NativeTransfer(CHAIN_ID, WALLET, ROUTER, 3),
        ContractCall(CHAIN_ID, WALLET, ROUTER, "0xdeadbeef", 4, bytes.fromhex("deadbeef"), value=3),
    )


def test_safe_delegatecall_is_refused() -> None:
    error = refusal(safe_tx(SAFE, ROUTER, data="0xdeadbeef", operation=1))
    assert error.where == "params[1].message.operation"
    assert "delegatecall" in error.message


def test_safe_gas_refund_is_spending_to_its_receiver() -> None:
    document = safe_tx(
        SAFE, RECIPIENT, safe_tx_gas=100_000, base_gas=20_000, gas_price=7, refund_receiver=SPENDER
    )
    refund = (100_000 + 20_000 + SAFE_CALL_OVERHEAD_GAS) * 7
    assert sign(document).intents == (
        NativeTransfer(CHAIN_ID, WALLET, RECIPIENT, 0),
        NativeTransfer(CHAIN_ID, WALLET, SPENDER, refund),
    )
    # No receiver: the executor, anyone, is paid; in a token, the token moves.
    in_token = safe_tx(SAFE, RECIPIENT, safe_tx_gas=1, gas_price=2, gas_token=TOKEN)
    assert sign(in_token).intents[1] == TokenTransfer(
        CHAIN_ID, WALLET, TOKEN, ANYONE, (1 + SAFE_CALL_OVERHEAD_GAS) * 2, WALLET
    )


def test_delegation_is_a_signature_marked_with_its_standard() -> None:
    signature = only_signature(delegation(SPENDER, WALLET))
    assert signature.standard == "erc7710-delegation"
    assert (signature.verifying_contract, signature.domain_name) == (
        DELEGATION_MANAGER,
        "DelegationManager",
    )
    assert signature.message is not None and signature.message.get("delegate") == SPENDER


@pytest.mark.parametrize("document", ALL_SHAPES)
def test_an_altered_type_is_a_plain_signature(document: Any) -> None:
    # A renamed field changes the typehash: the standard's contract would not verify it.
    altered = copy.deepcopy(document)
    primary = altered["primaryType"]
    field = altered["types"][primary][-1]
    altered["message"][field["name"] + "X"] = altered["message"].pop(field["name"])
    field["name"] += "X"
    signature = only_signature(altered)
    assert signature.standard is None
    assert signature.primary_type == primary


@pytest.mark.parametrize("document", ALL_SHAPES)
def test_a_shape_without_a_chain_id_asks_for_an_entry(document: Any) -> None:
    unbound = copy.deepcopy(document)
    unbound["domain"].pop("chainId")
    unbound["types"]["EIP712Domain"] = [
        f for f in unbound["types"]["EIP712Domain"] if f["name"] != "chainId"
    ]
    decoded = sign(unbound)
    assert decoded.chain_id is None
    signatures = [i for i in decoded.intents if isinstance(i, MessageSignature)]
    assert len(signatures) == 1
    assert signatures[0].standard is not None and signatures[0].chain_id is None


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["message"].update(tokenId="1_000"), "params[1].message.tokenId"),
        (lambda d: d["message"].update(spender="0x12"), "params[1]"),  # eth-account refuses
        (lambda d: d["message"].pop("deadline"), "params[1]"),
    ],
)
def test_malformed_nft_permit_is_refused(change: Any, where: str) -> None:
    document = nft_permit(COLLECTION, SPENDER, 7)
    change(document)
    assert refusal(document).where == where


def test_nft_permit_needs_the_collection() -> None:
    document = nft_permit(COLLECTION, SPENDER, 7)
    document["domain"].pop("verifyingContract")
    document["types"]["EIP712Domain"].pop()
    assert refusal(document).where == "params[1].domain.verifyingContract"


def test_malformed_seaport_and_safe_values_are_refused() -> None:
    order = seaport_order(WALLET, [item(ERC721, COLLECTION, 1, 1)])
    order["message"]["zoneHash"] = "0x00"  # bytes32 needs 32 bytes
    assert refusal(order).where == "params[1].message.zoneHash"
    tx = safe_tx(SAFE, RECIPIENT)
    tx["message"]["operation"] = True
    assert refusal(tx).where in ("params[1]", "params[1].message.operation")


def test_seaport_recognition_does_not_depend_on_the_contract() -> None:
    # The typehash is what Seaport (and every fork of it) verifies, wherever it lives.
    order = seaport_order(WALLET, [item(ERC721, COLLECTION, 1, 1)])
    order["domain"]["verifyingContract"] = "0x" + "99" * 20
    assert isinstance(sign(order).intents[0], NftTransfer)
    assert SEAPORT != "0x" + "99" * 20
