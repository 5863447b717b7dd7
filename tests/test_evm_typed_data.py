"""Signing methods: EIP-2612, DAI and Permit2 permits are approvals; other typed data and
plain messages are message signatures; the signer and the data must agree."""

from __future__ import annotations

import json
from typing import Any

import eth_abi
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from tests.support.evm_builders import (
    ALICE,
    BOB,
    CHAIN_ID,
    RECIPIENT,
    SPENDER,
    TOKEN,
    address_of,
    dai_permit,
    mail,
    permit,
    permit2_batch,
    permit2_single,
    permit2_transfer,
    transfer_authorization,
)
from walletgate.intents import (
    MAX_UINT256,
    DecodeError,
    MessageSignature,
    MethodClass,
    TokenApproval,
    TokenTransfer,
    TypedStruct,
)
from walletgate.proxy.evm.decode import decode_call
from walletgate.proxy.evm.typed_data import PERMIT2_ADDRESS

WALLET = address_of(ALICE)
OTHER_TOKEN = "0x" + "71" * 20


def sign_typed(
    data: Any,
    *,
    method: str = "eth_signTypedData_v4",
    signer: str = WALLET,
    chain_id: int | None = CHAIN_ID,
) -> Any:
    return decode_call(method, [signer, data], chain_id=chain_id)


def refusal(data: Any, **kwargs: Any) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        sign_typed(data, **kwargs)
    return caught.value


def domains(intents: Any) -> list[tuple[Any, ...]]:
    """The message signatures among ``intents``, by what their domain says (wallet,
    method, primary type, verifying contract, chain, and the standard they are marked
    with)."""
    return [
        (i.wallet, i.method, i.primary_type, i.verifying_contract, i.chain_id, i.standard)
        for i in intents
        if isinstance(i, MessageSignature)
    ]


def approval(
    amount: int, *, token: str = TOKEN, via: str = "permit", unlimited: bool = False
) -> TokenApproval:
    return TokenApproval(CHAIN_ID, WALLET, token, SPENDER, amount, unlimited=unlimited, via=via)


def test_fixtures_are_real_signable_typed_data() -> None:
    for document in (
        permit(WALLET, 5),
        dai_permit(WALLET, True),
        permit2_single(TOKEN, 5),
        permit2_batch([(TOKEN, 1)]),
        permit2_transfer([(TOKEN, 1)], batch=True, witness=True),
        permit2_transfer([(TOKEN, 1)], batch=False, witness=True, witness_field=("o", "bytes32")),
        transfer_authorization(WALLET, 5),
    ):
        signed = Account.sign_typed_data(ALICE.key, full_message=document)
        recovered = Account.recover_message(
            encode_typed_data(full_message=document), signature=signed.signature
        )
        assert recovered.lower() == WALLET


@pytest.mark.parametrize(
    "method", ["eth_signTypedData", "eth_signTypedData_v3", "eth_signTypedData_v4"]
)
def test_eip2612_permit_is_an_approval(method: str) -> None:
    decoded = sign_typed(permit(WALLET, 500), method=method)
    assert decoded.method_class is MethodClass.SIGNING
    assert (decoded.wallet, decoded.chain_id) == (WALLET, CHAIN_ID)
    assert decoded.intents == (approval(500),)


@pytest.mark.parametrize("value", [500, "500", "0x1f4", "0x01f4"])
def test_permit_value_forms_agree(value: Any) -> None:
    assert sign_typed(permit(WALLET, value)).intents == (approval(500),)


def test_permit_given_as_a_json_string_is_the_same() -> None:
    document = permit(WALLET, MAX_UINT256)
    assert (
        sign_typed(json.dumps(document)).intents
        == sign_typed(document).intents
        == (approval(MAX_UINT256, unlimited=True),)
    )


def test_permit_without_a_domain_chain_binds_the_backend_chain() -> None:
    # The approval is judged on the backend's chain, and a signature marked with the
    # standard asks the signing allowlist for an entry that allows a missing chain id.
    decoded = sign_typed(permit(WALLET, 1, chain_id=None))
    assert decoded.chain_id is None
    assert decoded.intents[0] == approval(1)
    (unbound,) = decoded.intents[1:]
    assert isinstance(unbound, MessageSignature)
    assert (unbound.standard, unbound.chain_id, unbound.primary_type) == (
        "eip2612-permit",
        None,
        "Permit",
    )
    assert (
        refusal(permit(WALLET, 1, chain_id=None), chain_id=None).where == "params[1].domain.chainId"
    )


def test_permit_owner_must_be_the_signer() -> None:
    error = refusal(permit(address_of(BOB), 1))
    assert error.where == "params[1].message.owner"
    assert "is not the signing address" in error.message


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["message"].update(value="1_000"), "params[1].message.value"),
        (lambda d: d["message"].update(value=" 5"), "params[1].message.value"),
        (lambda d: d["message"].update(value=-1), "params[1]"),
        (lambda d: d["message"].update(value=2**256), "params[1]"),
        (lambda d: d["message"].update(spender="0x12"), "params[1]"),
        (
            lambda d: d["domain"].pop("verifyingContract") and d["types"]["EIP712Domain"].pop(),
            "params[1].domain.verifyingContract",
        ),
        (lambda d: d.update(primaryType="Nope"), "params[1].primaryType"),
        (lambda d: d.pop("message"), "params[1]"),
        (lambda d: d.update(extra=1), "params[1]"),
        (lambda d: d["types"]["Permit"].append({"name": "x"}), "params[1].types.Permit[5]"),
        (lambda d: d["types"]["Permit"].append({"name": "x", "type": "Undefined"}), "params[1]"),
        (lambda d: d.update(types=[]), "params[1].types"),
        (lambda d: d.update(domain="x"), "params[1].domain"),
    ],
)
def test_malformed_typed_data_is_refused(change: Any, where: str) -> None:
    document = permit(WALLET, 5)
    change(document)
    assert refusal(document).where == where


def test_typed_data_strings_are_parsed_strictly() -> None:
    text = json.dumps(permit(WALLET, 5)).replace('"value": 5', '"value": 5, "value": 6')
    error = refusal(text)
    assert error.where == "params[1]"
    assert "duplicate object key 'value'" in error.message
    assert "typed data must be" in refusal(7).message
    assert "invalid JSON" in refusal("{not json").message


@pytest.mark.parametrize(
    ("allowed", "amount", "unlimited"), [(True, MAX_UINT256, True), (False, 0, False)]
)
def test_dai_permit(allowed: bool, amount: int, unlimited: bool) -> None:
    assert sign_typed(dai_permit(WALLET, allowed)).intents == (
        approval(amount, unlimited=unlimited),
    )


def test_dai_permit_needs_a_real_boolean_and_the_signer_as_holder() -> None:
    assert refusal(dai_permit(WALLET, "true")).where == "params[1].message.allowed"
    assert refusal(dai_permit(address_of(BOB), True)).where == "params[1].message.holder"


def test_permit2_single() -> None:
    decoded = sign_typed(permit2_single(TOKEN, 2**160 - 1))
    assert decoded.intents == (approval(2**160 - 1, via="permit2", unlimited=True),)


def test_permit2_batch_is_one_approval_per_token() -> None:
    decoded = sign_typed(permit2_batch([(TOKEN, 10), (OTHER_TOKEN, 20)]))
    assert decoded.intents == (
        approval(10, via="permit2"),
        approval(20, token=OTHER_TOKEN, via="permit2"),
    )


@pytest.mark.parametrize("witness", [False, True])
@pytest.mark.parametrize("batch", [False, True])
def test_permit2_signature_transfers(batch: bool, witness: bool) -> None:
    tokens = [(TOKEN, 3), (OTHER_TOKEN, 4)] if batch else [(TOKEN, 3)]
    decoded = sign_typed(permit2_transfer(tokens, batch=batch, witness=witness))
    expected = [approval(3, via="permit2"), approval(4, token=OTHER_TOKEN, via="permit2")]
    assert decoded.intents == tuple(expected[: len(tokens)])


WITNESS_FIELDS = [
    ("witness", "Order"),
    ("order", "Order"),
    ("exampleTrade", "Order"),
    ("witness", "bytes32"),
    ("hash", "uint256"),
]


@pytest.mark.parametrize("witness_field", WITNESS_FIELDS, ids=lambda f: f"{f[1]} {f[0]}")
@pytest.mark.parametrize("batch", [False, True])
def test_permit2_witness_of_any_name_and_type_is_an_approval(
    batch: bool, witness_field: tuple[str, str]
) -> None:
    tokens = [(TOKEN, 3), (OTHER_TOKEN, 4)] if batch else [(TOKEN, 3)]
    document = permit2_transfer(tokens, batch=batch, witness=True, witness_field=witness_field)
    expected = [approval(3, via="permit2"), approval(4, token=OTHER_TOKEN, via="permit2")]
    assert sign_typed(document).intents == tuple(expected[: len(tokens)])


def test_permit2_verifies_a_witness_under_any_name() -> None:
    # What Permit2's PermitHash.hashWithWitness computes on chain: a fixed stub, then the
    # caller's witness type string, and one witness word. A document whose witness is
    # called "order" hashes the same, so its signature moves tokens: it must be judged.
    document = permit2_transfer(
        [(TOKEN, 3)], batch=False, witness=True, witness_field=WITNESS_FIELDS[1]
    )
    stub = (
        "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,"
        "uint256 nonce,uint256 deadline,"
    )
    witness_type_string = (
        "Order order)Order(uint256 minOut)TokenPermissions(address token,uint256 amount)"
    )
    permissions = keccak(
        eth_abi.encode(
            ["bytes32", "address", "uint256"],
            [keccak(text="TokenPermissions(address token,uint256 amount)"), TOKEN, 3],
        )
    )
    witness = keccak(
        eth_abi.encode(["bytes32", "uint256"], [keccak(text="Order(uint256 minOut)"), 5])
    )
    on_chain = keccak(
        eth_abi.encode(
            ["bytes32", "bytes32", "address", "uint256", "uint256", "bytes32"],
            [keccak(text=stub + witness_type_string), permissions, SPENDER, 7, 2**40, witness],
        )
    )
    assert encode_typed_data(full_message=document).body == on_chain
    assert sign_typed(document).intents == (approval(3, via="permit2"),)


def _permit2_variants() -> list[tuple[str, dict[str, Any], str]]:
    """(name, document for the Permit2 contract, where the refusal points)."""
    two_witnesses = permit2_transfer([(TOKEN, 1)], batch=False, witness=True)
    two_witnesses["types"]["PermitWitnessTransferFrom"].append({"name": "x", "type": "uint256"})
    two_witnesses["message"]["x"] = 1
    no_witness = permit2_transfer([(TOKEN, 1)], batch=False)
    no_witness["primaryType"] = "PermitWitnessTransferFrom"
    no_witness["types"]["PermitWitnessTransferFrom"] = no_witness["types"].pop("PermitTransferFrom")
    extra_field = permit2_transfer([(TOKEN, 1)], batch=False, witness=True)
    extra_field["primaryType"] = "PermitTransferFrom"
    extra_field["types"]["PermitTransferFrom"] = extra_field["types"].pop(
        "PermitWitnessTransferFrom"
    )
    reordered = permit2_single(TOKEN, 1)
    fields = reordered["types"]["PermitSingle"]
    fields[1], fields[2] = fields[2], fields[1]
    other_struct = permit2_transfer([(TOKEN, 1)], batch=True, witness=True)
    other_struct["types"]["TokenPermissions"] = [
        {"name": "token", "type": "address"},
        {"name": "amount", "type": "uint160"},
    ]
    unknown_type = mail(contract=PERMIT2_ADDRESS)
    return [
        ("two witness fields", two_witnesses, "params[1].types.PermitWitnessTransferFrom"),
        ("witness variant without one", no_witness, "params[1].types.PermitWitnessTransferFrom"),
        ("extra field without witness", extra_field, "params[1].types.PermitTransferFrom"),
        ("fields reordered", reordered, "params[1].types.PermitSingle"),
        ("other TokenPermissions", other_struct, "params[1].types.TokenPermissions"),
        ("not a Permit2 type", unknown_type, "params[1].primaryType"),
    ]


@pytest.mark.parametrize(
    ("document", "where"),
    [variant[1:] for variant in _permit2_variants()],
    ids=[variant[0] for variant in _permit2_variants()],
)
def test_unrecognised_typed_data_for_permit2_is_refused(document: Any, where: str) -> None:
    # Before, these were plain message signatures, which a signing allowlist (methods
    # only) would let through although Permit2 might move tokens on them.
    error = refusal(document)
    assert error.where == where
    assert "Permit2" in error.message


@pytest.mark.parametrize("primary", ["TransferWithAuthorization", "ReceiveWithAuthorization"])
def test_eip3009_authorization_is_a_token_transfer(primary: str) -> None:
    decoded = sign_typed(transfer_authorization(WALLET, "250", primary=primary))
    assert (decoded.wallet, decoded.chain_id) == (WALLET, CHAIN_ID)
    assert decoded.intents == (
        TokenTransfer(CHAIN_ID, WALLET, TOKEN, RECIPIENT, 250, source=WALLET),
    )


def test_eip3009_authorization_refusals_name_the_field() -> None:
    error = refusal(transfer_authorization(address_of(BOB), 1))
    assert error.where == "params[1].message.from"
    assert "is not the signing address" in error.message
    assert refusal(transfer_authorization(WALLET, "1_000")).where == "params[1].message.value"
    no_token = transfer_authorization(WALLET, 1)
    del no_token["domain"]["verifyingContract"]
    no_token["types"]["EIP712Domain"].pop()
    error = refusal(no_token)
    assert error.where == "params[1].domain.verifyingContract"
    assert "EIP-3009 TransferWithAuthorization needs" in error.message


def test_other_eip3009_shapes_stay_message_signatures() -> None:
    # Judged as signatures here; the evaluator refuses them when the verifying contract
    # is a known asset (tests/test_evaluator.py), since they might still move it.
    odd = transfer_authorization(WALLET, 1)
    odd["types"]["TransferWithAuthorization"][5]["type"] = "uint256"
    odd["message"]["nonce"] = 1
    cancel = transfer_authorization(WALLET, 1)
    cancel["primaryType"] = "CancelAuthorization"
    cancel["types"] = {
        "EIP712Domain": cancel["types"]["EIP712Domain"],
        "CancelAuthorization": [
            {"name": "authorizer", "type": "address"},
            {"name": "nonce", "type": "bytes32"},
        ],
    }
    cancel["message"] = {"authorizer": WALLET, "nonce": "0x" + "11" * 32}
    for document in (odd, cancel):
        assert domains(sign_typed(document).intents) == [
            (WALLET, "eth_signTypedData_v4", document["primaryType"], TOKEN, CHAIN_ID, None)
        ]


def test_permit2_amount_must_fit_uint160() -> None:
    document = permit2_single(TOKEN, 1)
    document["message"]["details"]["amount"] = 2**160
    assert refusal(document).where == "params[1]"  # eth-account already refuses to encode it


def test_permit2_errors_name_the_entry() -> None:
    # eth-account would read "1_000" as 1000; walletgate refuses to guess.
    document = permit2_batch([(TOKEN, 1), (OTHER_TOKEN, 2)])
    document["message"]["details"][1]["amount"] = "1_000"
    assert refusal(document).where == "params[1].message.details[1].amount"


def test_permit2_layouts_elsewhere_are_plain_signatures() -> None:
    other = "0x" + "99" * 20
    decoded = sign_typed(permit2_single(TOKEN, 5, contract=other))
    assert domains(decoded.intents) == [
        (WALLET, "eth_signTypedData_v4", "PermitSingle", other, CHAIN_ID, None)
    ]


def test_non_canonical_permit_layouts_are_plain_signatures() -> None:
    document = permit(WALLET, 5)
    document["types"]["Permit"][2]["name"] = "amount"
    document["message"]["amount"] = document["message"].pop("value")
    decoded = sign_typed(document)
    assert domains(decoded.intents) == [
        (WALLET, "eth_signTypedData_v4", "Permit", TOKEN, CHAIN_ID, None)
    ]


def test_other_typed_data_is_a_message_signature() -> None:
    decoded = sign_typed(mail(), method="eth_signTypedData_v3")
    assert decoded.chain_id == CHAIN_ID
    assert domains(decoded.intents) == [
        (WALLET, "eth_signTypedData_v3", "Mail", "0x" + "cc" * 20, CHAIN_ID, None)
    ]
    (signature,) = decoded.intents
    assert isinstance(signature, MessageSignature)
    # What a typed_data entry matches on: the domain's name, the exact types, the message.
    assert signature.domain_name == "Ether Mail"
    assert signature.encoded_type == "Mail(address from,string contents)"
    assert signature.message == TypedStruct(
        "Mail", (("from", "address", RECIPIENT), ("contents", "string", "Hello, Bob!"))
    )


@pytest.mark.parametrize(
    "spelling",
    [str(ALICE.address), WALLET, "0x" + WALLET[2:].upper()],
    ids=["checksum", "lower", "upper"],
)
def test_address_case_does_not_change_intents(spelling: str) -> None:
    decoded = decode_call(
        "eth_signTypedData_v4", [spelling, permit(spelling, 5)], chain_id=CHAIN_ID
    )
    assert decoded.wallet == WALLET
    assert decoded.intents == (approval(5),)


def test_typed_data_param_shapes() -> None:
    with pytest.raises(DecodeError, match="takes 2 parameters"):
        decode_call("eth_signTypedData_v4", [WALLET])
    with pytest.raises(DecodeError) as caught:
        decode_call("eth_signTypedData_v4", [permit(WALLET, 1), WALLET])
    assert caught.value.where == "params[0]"


def test_legacy_typed_data_is_a_message_signature() -> None:
    values = [{"type": "string", "name": "greeting", "value": "hi"}]
    for method, params in (
        ("eth_signTypedData_v1", [values, ALICE.address]),
        ("eth_signTypedData", [values, WALLET]),
        ("eth_signTypedData", [WALLET, values]),
    ):
        decoded = decode_call(method, params)
        assert decoded.intents == (MessageSignature(WALLET, method),)
    with pytest.raises(DecodeError, match="needs \\[values, address\\]"):
        decode_call("eth_signTypedData_v1", [WALLET, permit(WALLET, 1)])
    with pytest.raises(DecodeError) as caught:
        decode_call("eth_signTypedData_v1", [[{"type": "string", "name": "x"}], WALLET])
    assert caught.value.where == "params[0][0]"


def test_eth_sign() -> None:
    decoded = decode_call("eth_sign", [ALICE.address, "0xdeadbeef"])
    assert decoded.method_class is MethodClass.SIGNING
    assert decoded.intents == (MessageSignature(WALLET, "eth_sign"),)
    with pytest.raises(DecodeError) as caught:
        decode_call("eth_sign", [WALLET, "hello"])
    assert caught.value.where == "params[1]"


@pytest.mark.parametrize(
    "params",
    [
        ["0x68656c6c6f", WALLET],
        ["hello", ALICE.address],
        [WALLET, "hello"],
        [ALICE.address.upper(), "0x00"],
    ],
)
def test_personal_sign_in_either_unambiguous_order(params: list[str]) -> None:
    decoded = decode_call("personal_sign", [p.replace("0X", "0x") for p in params])
    assert decoded.wallet == WALLET
    assert decoded.intents == (MessageSignature(WALLET, "personal_sign"),)


@pytest.mark.parametrize(
    ("params", "where", "fragment"),
    [
        ([RECIPIENT, WALLET], "params", "ambiguous"),
        (["hello", "world"], "params[1]", "no address"),
        ([5, WALLET], "params[0]", "message must be a string"),
        ([WALLET], "params", "takes 2 parameters"),
    ],
)
def test_personal_sign_refusals(params: list[Any], where: str, fragment: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_call("personal_sign", params)
    assert caught.value.where == where
    assert fragment in caught.value.message


def test_typed_data_size_is_bounded() -> None:
    many_types = permit(WALLET, 5)
    unused = [{"name": "a", "type": "uint256"}]
    many_types["types"].update({f"Unused{n}": unused for n in range(64)})
    error = refusal(many_types)
    assert (error.where, error.message) == (
        "params[1].types",
        "typed data declares 66 types; the limit is 64",
    )
    big_batch = permit2_batch([(TOKEN, n) for n in range(512)])
    error = refusal(big_batch)
    assert error.where == "params[1].message"
    assert "513 objects; the limit is 512" in error.message
    assert len(sign_typed(permit2_batch([(TOKEN, n) for n in range(511)])).intents) == 511
