"""Property tests for the EVM adapter (hypothesis): decoding never fails with anything
but a DecodeError, signed transactions round-trip for every type, and address case
never changes what is judged."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_keys.constants import SECPK1_N
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.evm_builders import (
    ALICE,
    SPENDER,
    TOKEN,
    address_of,
    calldata,
    dai_permit,
    fees_1559,
    permit,
    permit2_batch,
    permit2_transfer,
    sign_raw,
)
from walletgate.intents import (
    ContractCall,
    ContractCreation,
    DecodeError,
    Delegation,
    NativeTransfer,
    NetworkFee,
)
from walletgate.proxy.evm.calls import create_address
from walletgate.proxy.evm.decode import decode_call
from walletgate.proxy.evm.fees import CallsFeeQuote
from walletgate.proxy.evm.methods import SIGNING_METHODS, SPENDING_METHODS
from walletgate.proxy.evm.reads import balance_query

#: Gas and fee fields for transaction objects (the gateway fills them when missing).
FEES = {"gas": hex(21_000), "maxFeePerGas": hex(10**9)}
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

keys = st.integers(min_value=1, max_value=SECPK1_N - 1).map(lambda k: k.to_bytes(32, "big"))
address_bytes = st.binary(min_size=20, max_size=20)
addresses = address_bytes.map(lambda b: "0x" + b.hex())
uint256 = st.integers(min_value=0, max_value=2**256 - 1)
nonces = st.integers(min_value=0, max_value=2**64 - 2)
chain_ids = st.integers(min_value=1, max_value=2**64 - 1)
# Calldata that is not an ERC-20 call (those are covered by example tests).
plain_data = st.binary(max_size=80).filter(
    lambda d: d[:4].hex() not in {"a9059cbb", "23b872dd", "095ea7b3", "39509351"}
)


def _decode_or_refuse(method: str, params: Any, chain_id: int | None = 1) -> None:
    try:
        decode_call(method, params, chain_id=chain_id)
    except DecodeError as exc:
        assert exc.message
        assert exc.code in (-32600, -32602)


@PROPERTY
@given(st.binary(max_size=300))
def test_random_bytes_as_a_raw_transaction(raw: bytes) -> None:
    _decode_or_refuse("eth_sendRawTransaction", ["0x" + raw.hex()])


@PROPERTY
@given(st.sampled_from(range(5)), st.data())
def test_corrupted_signed_transactions(tx_type: int, data: st.DataObject) -> None:
    signed = bytearray.fromhex(sign_raw(_example_of_type(tx_type))[2:])
    position = data.draw(st.integers(0, len(signed) - 1))
    action = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
    if action == "flip":
        signed[position] ^= data.draw(st.integers(1, 255))
    elif action == "truncate":
        del signed[position:]
    else:
        signed.insert(position, data.draw(st.integers(0, 255)))
    _decode_or_refuse("eth_sendRawTransaction", ["0x" + signed.hex()])


_vocabulary = st.sampled_from(
    [
        "from",
        "to",
        "value",
        "data",
        "input",
        "nonce",
        "chainId",
        "type",
        "gas",
        "gasPrice",
        "maxFeePerGas",
        "accessList",
        "authorizationList",
        "address",
        "storageKeys",
        "yParity",
        "r",
        "s",
        "types",
        "primaryType",
        "domain",
        "message",
        "name",
        "verifyingContract",
        "owner",
        "spender",
        "details",
        "permitted",
        "token",
        "amount",
        "calls",
        "version",
        "capabilities",
        "Permit",
        "EIP712Domain",
    ]
)
_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.text(max_size=10)
    | addresses
    | uint256.map(hex)
    | st.binary(max_size=40).map(lambda b: "0x" + b.hex())
    | st.sampled_from(["uint256", "address", "bool", "Permit", "0x", "0x0", "0x00"])
)
_json_params = st.recursive(
    _leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_vocabulary, children, max_size=6)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SPENDING_METHODS | SIGNING_METHODS)), _json_params)
def test_random_json_params(method: str, params: Any) -> None:
    _decode_or_refuse(method, params)
    _decode_or_refuse(method, [params])
    _decode_or_refuse(method, [address_of(ALICE), params])


@PROPERTY
@given(_json_params)
def test_balance_query_never_raises(params: Any) -> None:
    for candidate in (params, [params], [address_of(ALICE), params]):
        query = balance_query(candidate)
        assert query is None or query[0] == query[0].lower()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a node of a JSON document (containers included)."""
    children: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    paths = [prefix]
    for key, child in children:
        paths.extend(_paths(child, (*prefix, key)))
    return paths


def _replaced(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy: Any = dict(document) if isinstance(document, dict) else list(document)
    copy[path[0]] = _replaced(document[path[0]], path[1:], new)
    return copy


_VALID_CALLS: list[tuple[str, list[Any]]] = [
    ("eth_signTypedData_v4", [address_of(ALICE), permit(address_of(ALICE), 5)]),
    ("eth_signTypedData_v4", [address_of(ALICE), dai_permit(address_of(ALICE), True)]),
    ("eth_signTypedData_v4", [address_of(ALICE), permit2_batch([(TOKEN, 1), (TOKEN, 2)])]),
    (
        "eth_signTypedData_v4",
        [address_of(ALICE), permit2_transfer([(TOKEN, 1)], batch=True, witness=True)],
    ),
    (
        "eth_sendTransaction",
        [
            {
                "from": address_of(ALICE),
                "to": TOKEN,
                "value": "0x1",
                "nonce": "0x2",
                "chainId": "0x1",
                "data": calldata("approve(address,uint256)", SPENDER, 9),
                "accessList": [],
            }
        ],
    ),
    (
        "wallet_sendCalls",
        [
            {
                "version": "1.0",
                "chainId": "0x1",
                "from": address_of(ALICE),
                "calls": [{"to": TOKEN, "value": "0x1"}, {"data": "0x00"}],
            }
        ],
    ),
    ("personal_sign", ["0x00", address_of(ALICE)]),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_VALID_CALLS), st.data())
def test_valid_requests_with_one_part_replaced(
    call: tuple[str, list[Any]], data: st.DataObject
) -> None:
    method, params = call
    path = data.draw(st.sampled_from(_paths(params)))
    mutated = _replaced(params, path, data.draw(_json_params))
    _decode_or_refuse(method, mutated)
    _decode_or_refuse(method, mutated, chain_id=None)


def _example_of_type(tx_type: int) -> dict[str, Any]:
    if tx_type == 0:
        return {
            "nonce": 1,
            "gasPrice": 1,
            "gas": 21_000,
            "to": "0x" + "11" * 20,
            "value": 1,
            "chainId": 1,
        }
    if tx_type == 1:
        return {**_example_of_type(0), "type": 1, "accessList": []}
    if tx_type == 3:
        return fees_1559(maxFeePerBlobGas=1, blobVersionedHashes=["0x01" + "00" * 31])
    if tx_type == 4:
        authorization = Account.sign_authorization(
            {"chainId": 1, "address": "0x" + "de" * 20, "nonce": 0}, ALICE.key
        )
        return fees_1559(authorizationList=[authorization])
    return fees_1559()


@st.composite
def signed_transactions(draw: st.DrawFn) -> tuple[dict[str, Any], bytes, list[bytes]]:
    """A random transaction of a random type, its signing key and any authority keys."""
    tx_type = draw(st.sampled_from(range(5)))
    creation_allowed = tx_type in (0, 1, 2)
    # eth-account wants bytes (or a checksummed string) for "to"; b"" creates.
    to = draw(st.just(b"") | address_bytes) if creation_allowed else draw(address_bytes)
    tx: dict[str, Any] = {
        "nonce": draw(nonces),
        "gas": draw(st.integers(0, 2**64 - 1)),
        "to": to,
        "value": draw(uint256),
        "data": draw(plain_data),
        "chainId": draw(chain_ids),
    }
    if tx_type in (0, 1):
        tx["gasPrice"] = draw(uint256)
    else:
        tx["maxFeePerGas"] = draw(uint256)
        tx["maxPriorityFeePerGas"] = draw(uint256)
    if tx_type == 0 and draw(st.booleans()):
        del tx["chainId"]  # pre-EIP-155
    if tx_type >= 1:
        tx["type"] = tx_type
        tx["accessList"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "address": address_bytes,
                        "storageKeys": st.lists(
                            st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex()),
                            max_size=2,
                        ),
                    }
                ),
                max_size=2,
            )
        )
    if tx_type == 3:
        tx["maxFeePerBlobGas"] = draw(uint256)
        tx["blobVersionedHashes"] = draw(
            st.lists(
                st.binary(min_size=31, max_size=31).map(lambda b: "0x01" + b.hex()),
                min_size=1,
                max_size=3,
            )
        )
    authority_keys: list[bytes] = []
    if tx_type == 4:
        authority_keys = draw(st.lists(keys, min_size=1, max_size=3))
        tx["authorizationList"] = [
            Account.sign_authorization(
                {
                    "chainId": draw(st.integers(0, 2**256 - 1)),
                    "address": draw(address_bytes),
                    "nonce": draw(nonces),
                },
                key,
            )
            for key in authority_keys
        ]
    return tx, draw(keys), authority_keys


@PROPERTY
@given(signed_transactions())
def test_signed_transactions_round_trip(example: tuple[dict[str, Any], bytes, list[bytes]]) -> None:
    tx, key, authority_keys = example
    signer = Account.from_key(key)
    signed = signer.sign_transaction(tx)
    decoded = decode_call(
        "eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()], chain_id=5
    )
    wallet = address_of(signer)
    chain = tx.get("chainId", 5)
    assert decoded.wallet == wallet
    assert decoded.chain_id == tx.get("chainId")
    assert decoded.nonce == tx["nonce"]
    assert decoded.tx_hash == "0x" + bytes(signed.hash).hex()
    expected: list[Any] = []
    data, value = tx["data"], tx["value"]
    to = "0x" + tx["to"].hex() if tx["to"] else None
    if to is None:
        expected.append(ContractCreation(chain, wallet, len(data)))
        if value:
            expected.append(
                NativeTransfer(chain, wallet, create_address(wallet, tx["nonce"]), value)
            )
    elif not data:
        expected.append(NativeTransfer(chain, wallet, to, value))
    else:
        if value:
            expected.append(NativeTransfer(chain, wallet, to, value))
        selector = "0x" + data[:4].hex() if len(data) >= 4 else None
        expected.append(ContractCall(chain, wallet, to, selector, len(data), bytes(data), value))
    for authorization, authority_key in zip(
        tx.get("authorizationList", []), authority_keys, strict=True
    ):
        expected.append(
            Delegation(
                chain,
                address_of(Account.from_key(authority_key)),
                "0x" + bytes(authorization.address).hex(),
                authorization.chain_id,
            )
        )
    # Last, the most the transaction can cost in fees.
    per_gas = tx["gasPrice"] if "gasPrice" in tx else tx["maxFeePerGas"]
    blob_fee = len(tx.get("blobVersionedHashes", ())) * 131072 * tx.get("maxFeePerBlobGas", 0)
    expected.append(
        NetworkFee(chain, wallet, tx["gas"] * per_gas + blob_fee, tx["gas"], per_gas, blob_fee)
    )
    assert decoded.intents == tuple(expected)


@st.composite
def spellings(draw: st.DrawFn, address: str) -> str:
    """``address`` with each hex letter in a random case."""
    return "0x" + "".join(
        char.upper() if char.isalpha() and draw(st.booleans()) else char for char in address[2:]
    )


@PROPERTY
@given(st.data(), addresses, addresses, addresses, uint256)
def test_address_case_never_changes_intents(
    data: st.DataObject, sender: str, token: str, recipient: str, amount: int
) -> None:
    transfer = calldata("transferFrom(address,address,uint256)", sender, recipient, amount)
    canonical = decode_call(
        "eth_sendTransaction",
        [{"from": sender, "to": token, "value": "0x1", "data": transfer, **FEES}],
        chain_id=1,
    )
    respelled = decode_call(
        "eth_sendTransaction",
        [
            {
                "from": data.draw(spellings(sender)),
                "to": data.draw(spellings(token)),
                "value": "0x1",
                "data": transfer,
                **FEES,
            }
        ],
        chain_id=1,
    )
    assert respelled == canonical
    calls = decode_call(
        "wallet_sendCalls",
        [
            {
                "version": "1.0",
                "chainId": "0x1",
                "from": data.draw(spellings(sender)),
                "calls": [{"to": data.draw(spellings(token)), "data": transfer}],
            }
        ],
        calls_fee_quote=CallsFeeQuote(gas=(21_000,), max_fee_per_gas=10**9),
    )
    # The same call and the same fee, without the value the transaction sends.
    assert calls.intents == canonical.intents[1:]
