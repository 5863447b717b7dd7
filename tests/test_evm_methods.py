"""Method classes (SPEC §3): safe defaults, and overrides that cannot weaken the decoders."""

from __future__ import annotations

import pytest

from walletgate.intents import DecodedRequest, MethodClass
from walletgate.proxy.evm.decode import decode_call
from walletgate.proxy.evm.methods import MethodOverrideError, classify, method_classifier


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("eth_sendTransaction", MethodClass.SPENDING),
        ("eth_sendRawTransaction", MethodClass.SPENDING),
        ("eth_signTransaction", MethodClass.SPENDING),
        ("wallet_sendCalls", MethodClass.SPENDING),
        ("eth_sign", MethodClass.SIGNING),
        ("personal_sign", MethodClass.SIGNING),
        ("eth_signTypedData", MethodClass.SIGNING),
        ("eth_signTypedData_v1", MethodClass.SIGNING),
        ("eth_signTypedData_v3", MethodClass.SIGNING),
        ("eth_signTypedData_v4", MethodClass.SIGNING),
        ("eth_call", MethodClass.READ),
        ("eth_getBalance", MethodClass.READ),
        ("eth_blockNumber", MethodClass.READ),
        ("eth_chainId", MethodClass.READ),
        ("eth_getTransactionReceipt", MethodClass.READ),
        ("eth_estimateGas", MethodClass.READ),
        ("eth_gasPrice", MethodClass.READ),
        ("eth_feeHistory", MethodClass.READ),
        ("eth_getLogs", MethodClass.READ),
        ("net_version", MethodClass.READ),
        ("web3_clientVersion", MethodClass.READ),
        ("eth_accounts", MethodClass.ADMIN),
        ("eth_requestAccounts", MethodClass.ADMIN),
        ("eth_coinbase", MethodClass.ADMIN),
        ("personal_unlockAccount", MethodClass.ADMIN),
        ("personal_sendTransaction", MethodClass.ADMIN),
        ("admin_addPeer", MethodClass.ADMIN),
        ("debug_traceTransaction", MethodClass.ADMIN),
        ("miner_start", MethodClass.ADMIN),
        ("txpool_content", MethodClass.ADMIN),
        ("eth_sendUserOperation", MethodClass.UNKNOWN),
        ("eth_subscribe", MethodClass.UNKNOWN),
        ("ETH_SENDTRANSACTION", MethodClass.UNKNOWN),
        ("rpc.discover", MethodClass.UNKNOWN),
    ],
)
def test_default_classes(method: str, expected: MethodClass) -> None:
    assert classify(method) is expected


def test_overrides_move_methods_between_read_admin_and_unknown() -> None:
    classifier = method_classifier(
        {"eth_accounts": "read", "eth_call": MethodClass.ADMIN, "eth_subscribe": "read"}
    )
    assert classifier.classify("eth_accounts") is MethodClass.READ
    assert classifier.classify("eth_call") is MethodClass.ADMIN
    assert classifier.classify("eth_subscribe") is MethodClass.READ
    assert classifier.classify("eth_getBalance") is MethodClass.READ  # untouched default


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"eth_sendTransaction": "read"}, "cannot change class from spending to read"),
        ({"personal_sign": "admin"}, "cannot change class from signing to admin"),
        ({"eth_sendUserOperation": "spending"}, "cannot change class from unknown to spending"),
        ({"eth_call": "signing"}, "cannot change class from read to signing"),
        ({"eth_call": "public"}, "unknown class 'public'"),
    ],
)
def test_overrides_that_would_weaken_decoding_are_refused(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(MethodOverrideError, match=message):
        method_classifier(overrides)


def test_restating_a_default_is_allowed() -> None:
    assert (
        method_classifier({"eth_sendTransaction": "spending"}).classify("eth_sendTransaction")
        is MethodClass.SPENDING
    )


def test_non_spending_methods_decode_to_no_intents() -> None:
    classifier = method_classifier({"eth_accounts": "read"})
    assert decode_call("eth_accounts", [], classifier=classifier) == DecodedRequest(
        "eth_accounts", MethodClass.READ, wallet=None, chain_id=None, intents=()
    )
    assert decode_call("debug_traceCall", None).method_class is MethodClass.ADMIN
    assert decode_call("nope", {"a": 1}).method_class is MethodClass.UNKNOWN
