"""eth_sendTransaction / eth_signTransaction / wallet_sendCalls: JSON calls become intents,
ERC-20 calldata is decoded strictly, and malformed input names its location."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from tests.support.evm_builders import (
    ALICE,
    BOB,
    CHAIN_ID,
    RECIPIENT,
    SPENDER,
    TOKEN,
    address_of,
    calldata,
)
from walletgate.intents import (
    MAX_UINT256,
    UNLIMITED_APPROVAL_THRESHOLD,
    ContractCall,
    ContractCreation,
    DecodeError,
    Delegation,
    MethodClass,
    NativeTransfer,
    NetworkFee,
    TokenApproval,
    TokenTransfer,
)
from walletgate.proxy.evm.decode import decode_call
from walletgate.proxy.evm.fees import CallsFeeQuote, MissingFeeFields

WALLET = address_of(ALICE)
#: Fee fields every test transaction carries unless it says otherwise (the gateway fills
#: missing ones before decoding; test_value_fees.py covers that).
FEES = {"gas": "0x5208", "maxFeePerGas": hex(10**9)}


def with_fees(tx: dict[str, Any]) -> dict[str, Any]:
    """``tx`` with the default gas and fee per gas, where it names none of its own."""
    defaults = (
        {} if {"gasPrice", "maxFeePerGas"} & set(tx) else {"maxFeePerGas": FEES["maxFeePerGas"]}
    )
    return {"gas": FEES["gas"], **defaults, **tx}


def with_fee(*intents: Any, chain_id: int = CHAIN_ID, wallet: str = WALLET) -> tuple[Any, ...]:
    """``intents`` followed by the NetworkFee of the default fee fields."""
    return (*intents, NetworkFee(chain_id, wallet, 21000 * 10**9, 21000, 10**9))


def send(
    tx: dict[str, Any], *, chain_id: int | None = CHAIN_ID, method: str = "eth_sendTransaction"
) -> Any:
    return decode_call(method, [{"from": WALLET, **with_fees(tx)}], chain_id=chain_id)


def refusal(
    tx: dict[str, Any] | None = None, *, params: Any = None, method: str = "eth_sendTransaction"
) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decode_call(
            method,
            params if params is not None else [{"from": WALLET, **with_fees(tx or {})}],
            chain_id=CHAIN_ID,
        )
    return caught.value


def test_native_transfer() -> None:
    decoded = send({"to": RECIPIENT.upper().replace("0X", "0x"), "value": hex(10**18)})
    assert decoded.method_class is MethodClass.SPENDING
    assert decoded.wallet == WALLET
    assert decoded.chain_id is None  # nothing declared: the proxy's backend chain applies
    assert decoded.intents == with_fee(NativeTransfer(CHAIN_ID, WALLET, RECIPIENT, 10**18))


def test_declared_chain_binds_the_request_and_its_intents() -> None:
    decoded = send(
        {"to": RECIPIENT, "value": "0x1", "chainId": "0x1", "nonce": "0x7"}, chain_id=CHAIN_ID
    )
    assert decoded.chain_id == 1
    assert decoded.nonce == 7
    assert decoded.intents == with_fee(NativeTransfer(1, WALLET, RECIPIENT, 1), chain_id=1)


def test_without_any_chain_the_request_cannot_be_judged() -> None:
    with pytest.raises(DecodeError) as caught:
        send({"to": RECIPIENT, "value": "0x1"}, chain_id=None)
    assert caught.value.where == "params[0].chainId"


def test_a_plain_send_of_zero_still_names_the_recipient() -> None:
    assert send({"to": RECIPIENT}).intents == with_fee(
        NativeTransfer(CHAIN_ID, WALLET, RECIPIENT, 0)
    )


def test_sign_transaction_is_decoded_like_a_send() -> None:
    decoded = send({"to": RECIPIENT, "value": "0x5"}, method="eth_signTransaction")
    assert decoded.method == "eth_signTransaction"
    assert decoded.method_class is MethodClass.SPENDING
    assert decoded.intents == with_fee(NativeTransfer(CHAIN_ID, WALLET, RECIPIENT, 5))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            calldata("transfer(address,uint256)", RECIPIENT, 250),
            TokenTransfer(CHAIN_ID, WALLET, TOKEN, RECIPIENT, 250, source=WALLET),
        ),
        (
            calldata("transferFrom(address,address,uint256)", address_of(BOB), RECIPIENT, 9),
            TokenTransfer(CHAIN_ID, WALLET, TOKEN, RECIPIENT, 9, source=address_of(BOB)),
        ),
        (
            calldata("approve(address,uint256)", SPENDER, 1000),
            TokenApproval(CHAIN_ID, WALLET, TOKEN, SPENDER, 1000, unlimited=False, via="approve"),
        ),
        (
            calldata("approve(address,uint256)", SPENDER, MAX_UINT256),
            TokenApproval(
                CHAIN_ID, WALLET, TOKEN, SPENDER, MAX_UINT256, unlimited=True, via="approve"
            ),
        ),
        (
            calldata("increaseAllowance(address,uint256)", SPENDER, UNLIMITED_APPROVAL_THRESHOLD),
            TokenApproval(
                CHAIN_ID,
                WALLET,
                TOKEN,
                SPENDER,
                UNLIMITED_APPROVAL_THRESHOLD,
                unlimited=True,
                via="increaseAllowance",
            ),
        ),
        (
            calldata(
                "increaseAllowance(address,uint256)", SPENDER, UNLIMITED_APPROVAL_THRESHOLD - 1
            ),
            TokenApproval(
                CHAIN_ID,
                WALLET,
                TOKEN,
                SPENDER,
                UNLIMITED_APPROVAL_THRESHOLD - 1,
                unlimited=False,
                via="increaseAllowance",
            ),
        ),
    ],
)
def test_erc20_calldata(data: str, expected: Any) -> None:
    assert send({"to": TOKEN, "data": data}).intents == with_fee(expected)


def test_value_sent_with_a_token_call_is_a_separate_transfer() -> None:
    data = calldata("transfer(address,uint256)", RECIPIENT, 1)
    assert send({"to": TOKEN, "data": data, "value": "0x2"}).intents == with_fee(
        NativeTransfer(CHAIN_ID, WALLET, TOKEN, 2),
        TokenTransfer(CHAIN_ID, WALLET, TOKEN, RECIPIENT, 1, source=WALLET),
    )


def test_input_is_read_like_data_and_may_repeat_it() -> None:
    data = calldata("approve(address,uint256)", SPENDER, 3)
    by_input = send({"to": TOKEN, "input": data}).intents
    assert by_input == send({"to": TOKEN, "data": data, "input": data}).intents
    assert by_input == send({"to": TOKEN, "data": data}).intents


def test_data_and_input_that_differ_are_refused() -> None:
    error = refusal(
        {"to": TOKEN, "data": "0x", "input": calldata("transfer(address,uint256)", RECIPIENT, 1)}
    )
    assert error.where == "params[0].input"
    assert "differ" in error.message


@pytest.mark.parametrize(
    ("data", "selector"),
    [
        (calldata("deposit(uint256)", 5), "0xb6b55f25"),
        ("0xdeadbeef", "0xdeadbeef"),
        ("0x01", None),
    ],
)
def test_unknown_calldata_is_a_contract_call(data: str, selector: str | None) -> None:
    length = (len(data) - 2) // 2
    assert send({"to": TOKEN, "data": data}).intents == with_fee(
        ContractCall(CHAIN_ID, WALLET, TOKEN, selector, length, bytes.fromhex(data[2:])),
    )


@pytest.mark.parametrize(
    "data",
    [
        calldata("transfer(address,uint256)", RECIPIENT, 1) + "00",  # trailing byte
        calldata("transfer(address,uint256)", RECIPIENT, 1)[:-2],  # short
        calldata("transfer(address,uint256)", RECIPIENT, 1) + "00" * 32,  # an extra word
        "0xa9059cbb" + "ff" * 12 + "12" * 20 + "00" * 31 + "01",  # dirty address padding
        "0xa9059cbb",  # selector only
    ],
)
def test_token_calldata_with_a_bad_encoding_is_refused_not_demoted(data: str) -> None:
    error = refusal({"to": TOKEN, "data": data})
    assert error.where == "params[0].data"
    assert "transfer(address,uint256)" in error.message


def test_contract_creation() -> None:
    assert send({"data": "0x6000"}).intents == with_fee(ContractCreation(CHAIN_ID, WALLET, 2))
    assert send({"to": None, "data": "0x6000"}).intents == with_fee(
        ContractCreation(CHAIN_ID, WALLET, 2)
    )


def test_value_sent_to_a_new_contract_goes_to_its_create_address() -> None:
    # The well-known example: this sender's first contract lands at 0xcd23...cd8d.
    sender = "0x6ac7ea33f8831ea9dcc53393aaa88b25a785dbf0"
    decoded = decode_call(
        "eth_sendTransaction",
        [with_fees({"from": sender, "data": "0x00", "value": "0x9", "nonce": "0x0"})],
        chain_id=CHAIN_ID,
    )
    assert decoded.intents == with_fee(
        ContractCreation(CHAIN_ID, sender, 1),
        NativeTransfer(CHAIN_ID, sender, "0xcd234a471b72ba2f1ccf0a70fcaba648a5eecd8d", 9),
        wallet=sender,
    )


def test_value_sent_to_a_new_contract_without_a_nonce_is_refused() -> None:
    assert refusal({"data": "0x00", "value": "0x1"}).where == "params[0].nonce"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("value", "0x01", "no leading zeros"),
        ("value", "0x", "no leading zeros"),
        ("value", "1", "hex quantity"),
        ("value", 5, "hex quantity"),
        ("value", "0X1", "hex quantity"),
        ("value", "0x1g", "hex quantity"),
        ("value", hex(2**256), "exceeds 256 bits"),
        ("nonce", hex(2**64), "exceeds 64 bits"),
        ("gas", "0x" + "f" * 17, "exceeds 64 bits"),
        ("chainId", None, "hex quantity"),
        ("data", "0x123", "even number"),
        ("data", "1234", "0x-prefixed"),
        ("data", "0xzz", "invalid hex"),
        ("data", "0x12 345", "invalid hex"),
        ("to", "0x1234", "20-byte hex address"),
        ("to", "", "20-byte hex address"),
        ("from", "0x" + "g" * 40, "20-byte hex address"),
        ("type", "0x5", "unknown transaction type 5"),
        ("accessList", [{"address": RECIPIENT}], "{address, storageKeys}"),
        ("blobVersionedHashes", ["0x00"], "must be 32 bytes"),
    ],
)
def test_bad_fields_are_refused_with_their_location(field: str, value: Any, fragment: str) -> None:
    error = refusal({"to": RECIPIENT, field: value})
    assert error.where.startswith(f"params[0].{field}")
    assert fragment in error.message
    assert error.code == -32602


@pytest.mark.parametrize(
    ("tx", "where", "fragment"),
    [
        ({"to": RECIPIENT, "gasLimit": "0x1"}, "params[0]", "unknown transaction field 'gasLimit'"),
        (
            {"to": RECIPIENT, "gasPrice": "0x1", "maxFeePerGas": "0x1"},
            "params[0].gasPrice",
            "cannot be combined",
        ),
        (
            {"to": RECIPIENT, "type": "0x4"},
            "params[0].authorizationList",
            "requires an authorizationList",
        ),
        ({"maxFeePerBlobGas": "0x1"}, "params[0].to", "blob transaction needs a to address"),
    ],
)
def test_inconsistent_transactions_are_refused(
    tx: dict[str, Any], where: str, fragment: str
) -> None:
    error = refusal(tx)
    assert error.where == where
    assert fragment in error.message


def test_missing_from_is_refused() -> None:
    error = refusal(params=[{"to": RECIPIENT}])
    assert (error.where, error.message) == ("params[0].from", "from is required")


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        (None, "takes its parameters as an array"),
        ({"from": WALLET}, "takes its parameters as an array"),
        ([], "takes 1 parameter, got 0"),
        ([{"from": WALLET}, {}], "takes 1 parameter, got 2"),
        (["0x00"], "transaction must be an object"),
    ],
)
def test_param_shapes(params: Any, fragment: str) -> None:
    with pytest.raises(DecodeError, match=fragment):
        decode_call("eth_sendTransaction", params, chain_id=CHAIN_ID)


def _signed_authorization(chain_id: int, delegate: str, nonce: int, key: Any) -> dict[str, Any]:
    signed = Account.sign_authorization(
        {"chainId": chain_id, "address": delegate, "nonce": nonce}, key
    )
    return {
        "chainId": hex(signed.chain_id),
        "address": delegate,
        "nonce": hex(signed.nonce),
        "yParity": hex(signed.y_parity),
        "r": hex(signed.r),
        "s": hex(signed.s),
    }


def test_authorization_list_becomes_delegations_of_the_recovered_authority() -> None:
    delegate = "0x" + "de" * 20
    authorization = _signed_authorization(0, delegate, 4, BOB.key)
    decoded = send({"to": RECIPIENT, "type": "0x4", "authorizationList": [authorization]})
    assert decoded.wallet == WALLET
    assert decoded.intents == with_fee(
        NativeTransfer(CHAIN_ID, WALLET, RECIPIENT, 0),
        Delegation(CHAIN_ID, address_of(BOB), delegate, authorization_chain_id=0),
    )


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda a: a.pop("r"), "missing 'r'"),
        (lambda a: a.update(yParity="0x2"), "y-parity must be 0 or 1"),
        (lambda a: a.update(s=hex(2**255)), "upper half"),
        (lambda a: a.update(extra=1), "unknown authorization field 'extra'"),
    ],
)
def test_bad_authorizations_are_refused(change: Any, fragment: str) -> None:
    authorization = _signed_authorization(CHAIN_ID, "0x" + "de" * 20, 0, BOB.key)
    change(authorization)
    error = refusal({"to": RECIPIENT, "authorizationList": [authorization]})
    assert error.where.startswith("params[0].authorizationList[0]")
    assert fragment in error.message


def test_authorizations_need_a_set_code_transaction_with_a_recipient() -> None:
    authorization = _signed_authorization(CHAIN_ID, "0x" + "de" * 20, 0, BOB.key)
    assert refusal(
        {"to": RECIPIENT, "type": "0x2", "authorizationList": [authorization]}
    ).where == ("params[0].type")
    assert refusal({"authorizationList": [authorization]}).where == "params[0].to"
    assert (
        refusal({"to": RECIPIENT, "authorizationList": []}).where == "params[0].authorizationList"
    )
    too_many = {"to": RECIPIENT, "authorizationList": [authorization] * 33}
    assert refusal(too_many).message == "33 authorizations; the limit is 32"


#: The gateway's estimate for the three calls of the test below (wallet_sendCalls names
#: no fees; the gateway estimates each call's gas and a fee per gas).
CALLS_QUOTE = CallsFeeQuote(gas=(21000, 50000, 60000), max_fee_per_gas=3 * 10**9)


def _send_calls(request: dict[str, Any], quote: CallsFeeQuote | None = CALLS_QUOTE) -> Any:
    return decode_call("wallet_sendCalls", [request], chain_id=None, calls_fee_quote=quote)


def test_send_calls_judges_every_call() -> None:
    transfer = calldata("transfer(address,uint256)", RECIPIENT, 4)
    request: dict[str, Any] = {
        "version": "2.0.0",
        "chainId": "0x539",
        "from": ALICE.address,
        "atomicRequired": True,
        "calls": [
            {"to": RECIPIENT, "value": "0x10"},
            {"to": TOKEN, "data": transfer},
            {"to": TOKEN, "data": "0xdeadbeef", "capabilities": {}},
        ],
        "capabilities": {"paymasterService": {"url": "https://example.invalid"}},
    }
    decoded = _send_calls(request)
    assert decoded.method_class is MethodClass.SPENDING
    assert (decoded.wallet, decoded.chain_id) == (WALLET, CHAIN_ID)
    fees = tuple(
        NetworkFee(CHAIN_ID, WALLET, gas * 3 * 10**9, gas, 3 * 10**9) for gas in CALLS_QUOTE.gas
    )
    assert decoded.intents == (
        NativeTransfer(CHAIN_ID, WALLET, RECIPIENT, 16),
        TokenTransfer(CHAIN_ID, WALLET, TOKEN, RECIPIENT, 4, source=WALLET),
        ContractCall(CHAIN_ID, WALLET, TOKEN, "0xdeadbeef", 4, bytes.fromhex("deadbeef")),
        *fees,
    )
    # Without the gateway's estimate the request cannot be judged.
    with pytest.raises(MissingFeeFields):
        _send_calls({**request, "calls": request["calls"][:1]}, quote=None)
    with pytest.raises(DecodeError, match="covers 3 calls"):
        _send_calls({**request, "calls": request["calls"][:1]})


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda r: r.pop("from"), "params[0].from"),
        (lambda r: r.pop("chainId"), "params[0].chainId"),
        (lambda r: r.pop("version"), "params[0].version"),
        (lambda r: r.update(calls=[]), "params[0].calls"),
        (lambda r: r.update(atomicRequired="yes"), "params[0].atomicRequired"),
        (lambda r: r.update(capabilities=[]), "params[0].capabilities"),
        (lambda r: r.update(sneaky=1), "params[0]"),
        (lambda r: r["calls"][1].update(value="12"), "params[0].calls[1].value"),
        (lambda r: r["calls"][1].update(gas="0x1"), "params[0].calls[1]"),
        (lambda r: r["calls"][1].update(data="0xa9059cbb00"), "params[0].calls[1].data"),
    ],
)
def test_send_calls_errors_name_the_call(change: Any, where: str) -> None:
    request: dict[str, Any] = {
        "version": "1.0",
        "chainId": "0x1",
        "from": WALLET,
        "calls": [{"to": RECIPIENT}, {"to": TOKEN, "value": "0x1"}],
    }
    change(request)
    with pytest.raises(DecodeError) as caught:
        _send_calls(request)
    assert caught.value.where == where
