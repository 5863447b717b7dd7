"""contract_allowlist methods with signatures: conditions on decoded arguments, recipients
that the destination lists judge, max_value, strict decoding, and the warnings of
``policies validate`` (walletgate.config.methods, policies.contract_rules)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from walletgate.config.documents import compile_document, normalize_document, validate_document
from walletgate.config.warnings import document_warnings
from walletgate.intents import DecodedRequest, MethodClass
from walletgate.policies.decision import Outcome, Reason
from walletgate.policies.evaluator import evaluate
from walletgate.policies.request import SpendRequest
from walletgate.proxy.evm.calls import call_intents

NOW = datetime(2026, 11, 2, tzinfo=UTC)
CHAIN = 1337
WALLET = "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
ROUTER = "0x" + "cc" * 20
MULTICALL = "0x" + "dd" * 20
FRIEND = "0x" + "aa" * 20
DENIED = "0x" + "de" * 20
STRANGER = "0x" + "bb" * 20
ETH = 10**18


def doc(methods: list[Any], **rule: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "owners": [{"id": "o"}],
        "agents": [{"id": "a", "owner": "o"}],
        "wallets": [{"id": "w", "owner": "o", "agent": "a", "chain": CHAIN, "address": WALLET}],
        "assets": [{"id": "eth", "chain": CHAIN, "native": True, "symbol": "ETH", "decimals": 18}],
        "policies": [
            {
                "id": "p",
                "wallet": "w",
                "rules": [
                    {"id": "cap", "type": "per_tx_cap", "asset": "eth", "max": "10"},
                    {"id": "deny", "type": "destination_denylist", "addresses": [DENIED]},
                    {
                        "id": "calls",
                        "type": "contract_allowlist",
                        "contracts": [
                            {"address": ROUTER, "methods": methods},
                            {
                                "address": MULTICALL,
                                "methods": ["aggregate3Value((address,bool,uint256,bytes)[])"],
                            },
                        ],
                        **rule,
                    },
                ],
            }
        ],
    }


def calldata(signature: str, *args: Any) -> bytes:
    types = signature[signature.index("(") + 1 : -1].split(",")
    return function_signature_to_4byte_selector(signature) + encode(types, list(args))


def decide(document: dict[str, Any], data: bytes, value: int = 0, to: str = ROUTER) -> Any:
    intents = call_intents(
        chain_id=CHAIN, wallet=WALLET, to=to, value=value, data=data, nonce=None, where="p"
    )
    decoded = DecodedRequest("eth_sendTransaction", MethodClass.SPENDING, WALLET, CHAIN, intents)
    return evaluate(SpendRequest("a", decoded, CHAIN), compile_document(document, 1), NOW)


PAY_TO = {"signature": "payTo(address recipient)", "recipients": ["recipient"]}


def test_a_marked_recipient_meets_the_destination_lists() -> None:
    document = doc([PAY_TO])
    allowed = decide(document, calldata("payTo(address)", FRIEND), ETH)
    assert allowed.outcome is Outcome.ALLOW, allowed.message
    denied = decide(document, calldata("payTo(address)", DENIED), ETH)
    assert (denied.outcome, denied.reason) == (Outcome.DENY, Reason.DESTINATION_DENIED)
    assert DENIED in denied.message
    # Not marked: the router alone is judged (this is the gap marking closes).
    unmarked = decide(doc(["payTo(address)"]), calldata("payTo(address)", DENIED), ETH)
    assert unmarked.outcome is Outcome.ALLOW


def test_recipients_inside_arrays_and_tuples() -> None:
    entry = {
        "signature": "payAll((address to,uint256 amount)[] payments,address[] extra)",
        "recipients": ["payments.to", "extra"],
    }
    document = doc([entry])
    signature = "payAll((address,uint256)[],address[])"
    selector = function_signature_to_4byte_selector(signature)
    types = ["(address,uint256)[]", "address[]"]

    def pay_all(payments: list[Any], extra: list[str]) -> bytes:
        return selector + encode(types, [payments, extra])

    assert decide(document, pay_all([(FRIEND, 1)], [FRIEND])).outcome is Outcome.ALLOW
    for data in (pay_all([(FRIEND, 1), (DENIED, 1)], []), pay_all([], [FRIEND, DENIED])):
        assert decide(document, data).reason is Reason.DESTINATION_DENIED


def test_conditions_refuse_with_the_argument_path() -> None:
    entry = {
        "signature": "pay(address,uint256)",
        "args": ["recipient", "amount"],
        "conditions": {"recipient": {"in_list": "payees"}, "amount": {"lte": str(ETH)}},
    }
    document = doc([entry], lists={"payees": [FRIEND]})
    assert decide(document, calldata("pay(address,uint256)", FRIEND, ETH)).outcome is Outcome.ALLOW
    over = decide(document, calldata("pay(address,uint256)", FRIEND, ETH + 1))
    assert over.reason is Reason.CONTRACT_NOT_ALLOWED
    assert f"args.amount: {ETH + 1} is more than {ETH}" in over.message
    stranger = decide(document, calldata("pay(address,uint256)", STRANGER, 1))
    assert f"args.recipient: {STRANGER} is not in list 'payees'" in stranger.message


def test_own_wallet_condition() -> None:
    entry = {"signature": "withdraw(address to)", "conditions": {"to": {"own_wallet": True}}}
    document = doc([entry])
    assert decide(document, calldata("withdraw(address)", WALLET)).outcome is Outcome.ALLOW
    other = decide(document, calldata("withdraw(address)", FRIEND))
    assert "is not the caller's own wallet" in other.message


def test_one_passing_entry_admits_the_call() -> None:
    low = {"signature": "pay(address r,uint256 a)", "conditions": {"a": {"lte": "5"}}}
    high = {"signature": "pay(address r,uint256 a)", "conditions": {"a": {"gte": "100"}}}
    document = doc([low, high])
    for amount, outcome in [(5, Outcome.ALLOW), (100, Outcome.ALLOW), (50, Outcome.DENY)]:
        decision = decide(document, calldata("pay(address,uint256)", FRIEND, amount))
        assert decision.outcome is outcome, decision.message
    # A plain entry for the same method allows any arguments.
    plain = doc([low, "pay(address,uint256)"])
    assert decide(plain, calldata("pay(address,uint256)", FRIEND, 50)).outcome is Outcome.ALLOW


def test_max_value_caps_the_value_sent_with_one_call() -> None:
    document = doc([{**PAY_TO, "max_value": "0.5"}])
    data = calldata("payTo(address)", FRIEND)
    assert decide(document, data, ETH // 2).outcome is Outcome.ALLOW
    over = decide(document, data, ETH // 2 + 1)
    assert over.reason is Reason.CONTRACT_NOT_ALLOWED and "max_value" in over.message
    # Inside a wrapper the inner call's own value is what max_value caps.
    inner = [(ROUTER, False, ETH, data)]
    wrapped = function_signature_to_4byte_selector(
        "aggregate3Value((address,bool,uint256,bytes)[])"
    ) + encode(["(address,bool,uint256,bytes)[]"], [inner])
    assert decide(document, wrapped, ETH, to=MULTICALL).reason is Reason.CONTRACT_NOT_ALLOWED


@pytest.mark.parametrize(
    "data",
    [
        calldata("payTo(address)", FRIEND)[:-1],  # short
        calldata("payTo(address)", FRIEND) + b"\x00",  # trailing bytes
        function_signature_to_4byte_selector("payTo(address)") + b"\x01" * 32,  # dirty padding
    ],
)
def test_calldata_that_does_not_decode_fails_the_entry(data: bytes) -> None:
    decision = decide(doc([PAY_TO]), data)
    assert decision.reason is Reason.CONTRACT_NOT_ALLOWED
    assert "payTo(address)" in decision.message


def test_wrapped_calls_to_marked_recipients_are_judged() -> None:
    inner = [(ROUTER, False, ETH, calldata("payTo(address)", DENIED))]
    data = function_signature_to_4byte_selector(
        "aggregate3Value((address,bool,uint256,bytes)[])"
    ) + encode(["(address,bool,uint256,bytes)[]"], [inner])
    decision = decide(doc([PAY_TO]), data, ETH, to=MULTICALL)
    assert decision.reason is Reason.DESTINATION_DENIED


def test_documents_round_trip_and_reject_bad_entries() -> None:
    entry = {
        "signature": "swap( address to , uint amount )",
        "conditions": {
            "amount": {"gte": 1, "lte": "9"},
            "to": {"equals": FRIEND.upper().replace("0X", "0x")},
        },
        "recipients": ["to"],
        "max_value": "1.50",
    }
    canonical = normalize_document(doc([entry]))
    assert normalize_document(canonical) == canonical
    (method,) = canonical["policies"][0]["rules"][2]["contracts"][0]["methods"]
    assert method["signature"] == "swap(address to,uint256 amount)"
    assert method["max_value"] == "1.5"
    assert method["conditions"]["to"] == {"equals": FRIEND}
    bad = [
        ({"signature": "swap(address to)", "recipients": ["amount"]}, "no argument or field"),
        ({"signature": "swap(uint256 to)", "recipients": ["to"]}, "a recipient is an address"),
        ({"signature": "swap(uint7)"}, "not an ABI type"),
        ({"signature": "swap(address to)", "conditions": {"to": {"lte": "1"}}}, "integers"),
        ({"signature": "swap(address to)", "frob": 1}, "unknown key"),
    ]
    for method, message in bad:
        errors = validate_document(doc([method]))
        assert any(message in error.message for error in errors), (method, errors)
        assert all("methods[0]" in error.path for error in errors)


def test_validate_warns_about_unconstrained_arguments() -> None:
    methods = [
        "transfer(address,uint256)",
        {"signature": "payTo(address recipient)", "recipients": ["recipient"]},
        {"signature": "pay(address r,uint256 amount)", "recipients": ["r"]},
        {"signature": "swap(uint256 a)", "conditions": {"a": {"lte": "5"}}},
        "0xdeadbeef",
        "name()",
    ]
    warnings = document_warnings(normalize_document(doc(methods)))
    texts = [w.message for w in warnings]
    assert len(texts) == 2, texts
    assert any("transfer(address,uint256)" in t and "0, 1" in t for t in texts)
    assert any("pay(address,uint256)" in t and "constrains amount;" in t for t in texts)
