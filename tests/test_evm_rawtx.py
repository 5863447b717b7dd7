"""eth_sendRawTransaction: real signed transactions of every type, the recovered signer,
and refusal of every malformed or malleable variant."""

from __future__ import annotations

from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_keys.constants import SECPK1_N
from eth_utils import keccak
from rlp.codec import length_prefix
from rlp.sedes import big_endian_int

from tests.support.evm_builders import (
    ALICE,
    BOB,
    CHAIN_ID,
    RECIPIENT,
    TOKEN,
    address_of,
    calldata,
    fees_1559,
    mutate_rlp,
    sign_raw,
    tx_hash,
)
from walletgate.intents import (
    ContractCreation,
    DecodeError,
    Delegation,
    NativeTransfer,
    NetworkFee,
    TokenTransfer,
)
from walletgate.proxy.evm.decode import decode_call

WALLET = address_of(ALICE)
DELEGATE = "0x" + "de" * 20

LEGACY = {
    "nonce": 5,
    "gasPrice": 10**9,
    "gas": 21_000,
    "to": RECIPIENT,
    "value": 10**18,
    "data": b"",
    "chainId": CHAIN_ID,
}
ACCESS_LIST = {
    **LEGACY,
    "type": 1,
    "accessList": [{"address": TOKEN, "storageKeys": ["0x" + "00" * 31 + "01"]}],
}
DYNAMIC = fees_1559(nonce=5, value=10**18)
BLOB_HASH = "0x01" + "ab" * 31
BLOB = fees_1559(nonce=5, maxFeePerBlobGas=7, blobVersionedHashes=[BLOB_HASH])


def raw(raw_hex: str, *, chain_id: int | None = CHAIN_ID) -> Any:
    return decode_call("eth_sendRawTransaction", [raw_hex], chain_id=chain_id)


def refusal(raw_hex: Any) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        raw(raw_hex)
    assert caught.value.where.startswith("params[0]")
    return caught.value


def fee_of(tx: dict[str, Any], wallet: str = WALLET, *, blobs: int | None = None) -> NetworkFee:
    """The fee a transaction dict offers, worked out from its fields: gas x gasPrice (or
    maxFeePerGas), plus 131072 blob gas per blob x maxFeePerBlobGas."""
    per_gas = tx["gasPrice"] if "gasPrice" in tx else tx["maxFeePerGas"]
    count = len(tx.get("blobVersionedHashes", ())) if blobs is None else blobs
    blob_fee = count * 131072 * tx.get("maxFeePerBlobGas", 0)
    return NetworkFee(
        CHAIN_ID, wallet, tx["gas"] * per_gas + blob_fee, tx["gas"], per_gas, blob_fee
    )


def _int(value: int) -> bytes:
    return bytes(big_endian_int.serialize(value))


def set_code_tx(*authorities: Any, chain_id: int = CHAIN_ID) -> dict[str, Any]:
    authorizations = [
        Account.sign_authorization({"chainId": chain_id, "address": DELEGATE, "nonce": n}, key)
        for n, key in enumerate(authorities)
    ]
    return fees_1559(nonce=2, authorizationList=authorizations)


@pytest.mark.parametrize(
    "tx", [LEGACY, ACCESS_LIST, DYNAMIC, BLOB], ids=["legacy", "2930", "1559", "4844"]
)
def test_each_type_yields_signer_chain_nonce_hash_and_intents(tx: dict[str, Any]) -> None:
    decoded = raw(sign_raw(tx))
    assert decoded.wallet == WALLET
    assert decoded.chain_id == CHAIN_ID
    assert decoded.nonce == 5
    assert decoded.tx_hash == tx_hash(tx)
    assert decoded.intents == (
        NativeTransfer(CHAIN_ID, WALLET, RECIPIENT, tx["value"]),
        fee_of(tx),
    )


def test_signed_chain_wins_over_the_backend_chain() -> None:
    decoded = raw(sign_raw({**DYNAMIC, "chainId": 10}), chain_id=CHAIN_ID)
    assert decoded.chain_id == 10  # the proxy refuses the mismatch
    assert decoded.intents[0] == NativeTransfer(10, WALLET, RECIPIENT, 10**18)


def test_pre_eip155_legacy_binds_no_chain() -> None:
    unbound = {key: value for key, value in LEGACY.items() if key != "chainId"}
    decoded = raw(sign_raw(unbound), chain_id=CHAIN_ID)
    # Reported faithfully: admission refuses it (replayable on every chain), and knows it
    # for a signed transaction by its hash.
    assert decoded.chain_id is None
    assert decoded.tx_hash == tx_hash(unbound)
    assert decoded.wallet == WALLET
    assert decoded.intents == (
        NativeTransfer(CHAIN_ID, WALLET, RECIPIENT, 10**18),
        fee_of(LEGACY),  # 21000 x 1 gwei
    )
    with pytest.raises(DecodeError, match="backend's chain is not known"):
        raw(sign_raw(unbound), chain_id=None)


def test_token_transfer_inside_a_raw_transaction() -> None:
    data = calldata("transfer(address,uint256)", RECIPIENT, 77)
    tx = fees_1559(to=TOKEN, data=data)
    decoded = raw(sign_raw(tx, BOB))
    assert decoded.intents == (
        TokenTransfer(CHAIN_ID, address_of(BOB), TOKEN, RECIPIENT, 77, source=address_of(BOB)),
        fee_of(tx, address_of(BOB)),
    )


def test_contract_creation_with_value_goes_to_the_create_address() -> None:
    tx = fees_1559(to=b"", data=b"\x60\x00", value=3, nonce=0)
    decoded = raw(sign_raw(tx))
    creation, transfer, fee = decoded.intents
    assert fee == fee_of(tx)
    assert creation == ContractCreation(CHAIN_ID, WALLET, 2)
    assert isinstance(transfer, NativeTransfer) and transfer.amount == 3
    expected = "0x" + keccak(rlp.encode([bytes.fromhex(WALLET[2:]), 0]))[12:].hex()
    assert transfer.to == expected


def test_set_code_authorizations_are_delegations_of_their_authorities() -> None:
    tx = set_code_tx(BOB.key, ALICE.key)
    decoded = raw(sign_raw(tx))
    assert decoded.wallet == WALLET
    assert decoded.tx_hash == tx_hash(tx)
    assert decoded.intents[1:] == (
        Delegation(CHAIN_ID, address_of(BOB), DELEGATE, CHAIN_ID),
        Delegation(CHAIN_ID, WALLET, DELEGATE, CHAIN_ID),
        fee_of(tx),
    )


def test_an_any_chain_authorization_keeps_its_signed_chain_id() -> None:
    # Admission refuses it: an authorization must name exactly the backend's chain.
    decoded = raw(sign_raw(set_code_tx(BOB.key, chain_id=0)))
    assert decoded.intents[1] == Delegation(CHAIN_ID, address_of(BOB), DELEGATE, 0)


def test_a_tampered_transaction_recovers_someone_else() -> None:
    tampered = mutate_rlp(sign_raw(DYNAMIC), lambda item: item.__setitem__(6, _int(10**20)))
    decoded = raw(tampered)
    assert decoded.wallet != WALLET
    assert decoded.intents == (
        NativeTransfer(CHAIN_ID, decoded.wallet, RECIPIENT, 10**20),
        fee_of(DYNAMIC, decoded.wallet),
    )


def _wrap_blob(
    body_raw: str, *, cell_proofs: bool, blobs: int = 1, proofs: int | None = None
) -> str:
    body = rlp.decode(bytes.fromhex(body_raw[4:]))
    sidecar = [[b"\x00" * 131072] * blobs, [b"\xc0" + b"\x00" * 47] * blobs]
    per_blob = 128 if cell_proofs else 1
    sidecar.append([b"\x00" * 48] * (blobs * per_blob if proofs is None else proofs))
    wrapper = [body, b"\x01", *sidecar] if cell_proofs else [body, *sidecar]
    return "0x03" + bytes(rlp.encode(wrapper)).hex()


@pytest.mark.parametrize("cell_proofs", [False, True], ids=["eip4844", "eip7594"])
def test_blob_network_form_is_judged_by_its_body(cell_proofs: bool) -> None:
    wrapped = _wrap_blob(sign_raw(BLOB), cell_proofs=cell_proofs)
    decoded = raw(wrapped)
    assert decoded.wallet == WALLET
    # The hash of a blob transaction covers the body, never the sidecar.
    assert decoded.tx_hash == tx_hash(BLOB)
    assert decoded.intents == (
        NativeTransfer(CHAIN_ID, WALLET, RECIPIENT, 0),
        fee_of(BLOB),  # 100000 x 2 gwei + 1 blob x 131072 x 7 wei
    )


def test_blob_network_form_made_by_eth_account() -> None:
    blob_tx = fees_1559(nonce=1, maxFeePerBlobGas=7, value=4)
    signed = ALICE.sign_transaction(blob_tx, blobs=[b"\x00" * 131072])
    decoded = raw("0x" + bytes(signed.raw_transaction).hex())
    assert decoded.wallet == WALLET
    assert decoded.nonce == 1
    assert decoded.intents == (
        NativeTransfer(CHAIN_ID, WALLET, RECIPIENT, 4),
        fee_of(blob_tx, blobs=1),
    )


@pytest.mark.parametrize(
    ("wrapped", "fragment"),
    [
        (lambda: _wrap_blob(sign_raw(BLOB), cell_proofs=False, blobs=2), "sidecar counts"),
        (lambda: _wrap_blob(sign_raw(BLOB), cell_proofs=True, proofs=1), "sidecar counts"),
        (
            lambda: mutate_rlp(
                _wrap_blob(sign_raw(BLOB), cell_proofs=True), lambda i: i.__setitem__(1, b"\x02")
            ),
            "network wrapper",
        ),
        (
            lambda: mutate_rlp(
                _wrap_blob(sign_raw(BLOB), cell_proofs=False),
                lambda i: i[1].__setitem__(0, b"\x00"),
            ),
            "malformed blob sidecar",
        ),
    ],
)
def test_bad_blob_sidecars_are_refused(wrapped: Any, fragment: str) -> None:
    assert fragment in refusal(wrapped()).message


@pytest.mark.parametrize("version", ["0x00", "0x02", "0xff"])
def test_blob_hashes_need_version_byte_one(version: str) -> None:
    # EIP-4844: a versioned hash starts with 0x01; nodes refuse others.
    tx = fees_1559(nonce=5, maxFeePerBlobGas=7, blobVersionedHashes=[version + "ab" * 31])
    error = refusal(sign_raw(tx))
    assert "version byte 0x01" in error.message
    assert error.where == "params[0].blobVersionedHashes[0]"


@pytest.mark.parametrize("tx", [LEGACY, ACCESS_LIST, DYNAMIC], ids=["legacy", "2930", "1559"])
def test_a_huge_fee_is_the_most_the_transaction_can_cost(tx: dict[str, Any]) -> None:
    # The attack: value 0, gas 21000, 1,000,000 gwei per gas is 21 ETH of fees.
    price = "gasPrice" if "gasPrice" in tx else "maxFeePerGas"
    attack = {**tx, "value": 0, "gas": 21_000, price: 10**15}
    if price == "maxFeePerGas":
        attack["maxPriorityFeePerGas"] = 10**15
    (_, fee) = raw(sign_raw(attack)).intents
    assert fee == NetworkFee(CHAIN_ID, WALLET, 21 * 10**18, 21_000, 10**15)


def _high_s(item: list[Any]) -> None:
    s = int.from_bytes(item[-1], "big")
    parity = int.from_bytes(item[-3], "big")
    item[-1] = _int(SECPK1_N - s)
    item[-3] = _int(1 - parity)


def _with_field(index: int, value: bytes | list[Any]) -> Any:
    return lambda item: item.__setitem__(index, value)


def _splice_nonce_encoding(raw_hex: str) -> str:
    """Legacy nonce 5 re-encoded as 0x81 0x05: valid-looking, but not canonical RLP."""
    items = rlp.decode(bytes.fromhex(raw_hex[2:]))
    encoded = [rlp.encode(value) for value in items]
    encoded[0] = b"\x81\x05"
    body = b"".join(encoded)
    return "0x" + (bytes(length_prefix(len(body), 0xC0)) + body).hex()


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: sign_raw(DYNAMIC) + "00", "superfluous"),
        (lambda: sign_raw(LEGACY) + "00", "superfluous"),
        (lambda: sign_raw(DYNAMIC)[:-2], "malformed RLP"),
        (lambda: _splice_nonce_encoding(sign_raw(LEGACY)), "single byte"),
        (lambda: mutate_rlp(sign_raw(DYNAMIC), _with_field(1, b"\x00\x05")), "minimal length"),
        (
            lambda: mutate_rlp(sign_raw(DYNAMIC), _with_field(1, b"\x05" + b"\x00" * 8)),
            "nonce exceeds 64 bits",
        ),
        (lambda: mutate_rlp(sign_raw(DYNAMIC), _with_field(1, b"\xff" * 8)), "EIP-2681"),
        (
            lambda: mutate_rlp(sign_raw(DYNAMIC), _with_field(6, b"\x01" + b"\x00" * 32)),
            "value exceeds 256 bits",
        ),
        (lambda: mutate_rlp(sign_raw(DYNAMIC), _with_field(5, b"\x12" * 19)), "malformed EIP-1559"),
        (
            lambda: mutate_rlp(sign_raw(DYNAMIC), lambda item: item.append(b"")),
            "malformed EIP-1559",
        ),
        (lambda: mutate_rlp(sign_raw(DYNAMIC), lambda item: item.pop()), "malformed EIP-1559"),
        (lambda: mutate_rlp(sign_raw(DYNAMIC), _high_s), "upper half of the curve order"),
        (
            lambda: mutate_rlp(
                sign_raw(LEGACY),
                lambda item: item.__setitem__(-1, _int(SECPK1_N - int.from_bytes(item[-1], "big"))),
            ),
            "upper half",
        ),
        (
            lambda: mutate_rlp(sign_raw(DYNAMIC), _with_field(-3, _int(2))),
            "y-parity must be 0 or 1",
        ),
        (lambda: mutate_rlp(sign_raw(DYNAMIC), _with_field(-2, b"")), "r is out of range"),
        (lambda: mutate_rlp(sign_raw(DYNAMIC), _with_field(-2, _int(5))), "does not recover"),
        (
            lambda: mutate_rlp(sign_raw(LEGACY), _with_field(-3, _int(29))),
            "v must be 27, 28 or 35+",
        ),
        (lambda: mutate_rlp(sign_raw(LEGACY), _with_field(-3, _int(0))), "v must be 27, 28 or 35+"),
        (lambda: "0x05" + sign_raw(DYNAMIC)[4:], "unknown transaction type 0x05"),
        (lambda: "0x7f" + sign_raw(DYNAMIC)[4:], "unknown transaction type 0x7f"),
        (lambda: "0x8180", "expected an RLP list or a typed envelope"),
        (lambda: "0x", "raw transaction is empty"),
        (lambda: "0x02", "malformed RLP"),
        (lambda: "0x02c0", "malformed EIP-1559"),
        (lambda: mutate_rlp(sign_raw(BLOB), _with_field(10, [])), "at least one blob hash"),
        (lambda: mutate_rlp(sign_raw(BLOB), _with_field(5, b"")), "cannot create a contract"),
        (
            lambda: mutate_rlp(sign_raw(set_code_tx(BOB.key)), _with_field(9, [])),
            "at least one authorization",
        ),
        (
            lambda: mutate_rlp(sign_raw(set_code_tx(BOB.key)), _with_field(5, b"")),
            "cannot create a contract",
        ),
        (lambda: "0x0g", "invalid hex"),
        (lambda: 7, "0x-prefixed hex"),
    ],
)
def test_malformed_and_malleable_transactions_are_refused(make: Any, fragment: str) -> None:
    assert fragment in refusal(make()).message


def _authorization_field(index: int, value: bytes) -> Any:
    return lambda item: item[9][0].__setitem__(index, value)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (_authorization_field(5, _int(SECPK1_N - 1)), "upper half"),
        (_authorization_field(3, _int(7)), "y-parity"),
        (_authorization_field(4, _int(5)), "does not recover"),
        (_authorization_field(2, b"\x01" + b"\x00" * 8), "authorization nonce exceeds 64 bits"),
    ],
)
def test_bad_authorizations_are_refused(change: Any, fragment: str) -> None:
    # The outer signature still recovers (to some other account): only the
    # authorization itself is at fault, and the error says which one.
    error = refusal(mutate_rlp(sign_raw(set_code_tx(BOB.key)), change))
    assert error.where == "params[0].authorizationList[0]"
    assert fragment in error.message


@pytest.mark.parametrize("params", [[], ["0x00", "0x00"], "0x00", None])
def test_param_shapes(params: Any) -> None:
    with pytest.raises(DecodeError, match="eth_sendRawTransaction takes"):
        decode_call("eth_sendRawTransaction", params)


def test_authorization_count_is_bounded() -> None:
    # The transfer, 32 delegations and the fee.
    assert len(raw(sign_raw(set_code_tx(*[BOB.key] * 32))).intents) == 34
    error = refusal(sign_raw(set_code_tx(*[BOB.key] * 33)))
    assert error.message == "33 authorizations; the limit is 32"
