"""A red-team corpus for the value model: each request is something an agent could send
to make a wallet lose, or let someone else take, more than walletgate judged. Every one
must be refused under the issue's policy (1 ETH per transaction, 2 ETH per 24 h,
destinations {D1, D2}, an owner-wide denylist), by the pure core the gateway runs:
``decode_call`` then ``evaluate`` (a DecodeError is a refusal too). Each attack has an
allowed twin where a twin makes sense, so a refusal cannot come from a broken fixture.

Only long-standing policy keys are used: the attacks must fail under the document an
operator wrote before the value model grew, not only under new rules.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import eth_abi
import pytest
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from tests.support.evm_builders import ALICE, address_of, sign_raw
from walletgate.config.documents import compile_document
from walletgate.intents import DecodeError
from walletgate.policies.decision import Outcome
from walletgate.policies.evaluator import evaluate
from walletgate.policies.request import SpendRequest
from walletgate.proxy.evm.decode import decode_call

CHAIN = 1337
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
GWEI = 10**9
ETH = 10**18
WALLET = address_of(ALICE)
D1 = "0x" + "d1" * 20
D2 = "0x" + "d2" * 20
BAD = "0x" + "bad0" * 10
STRANGER = "0x" + "57" * 20
TOKEN = "0x" + "70" * 20
NFT = "0x" + "4f" * 20
MULTICALL = "0xca11bde05977b3631167028862be2a173976ca11"
MULTISEND = "0x" + "35" * 20
ROUTER = "0x" + "88" * 20
SAFE = "0x" + "5a" * 20
SEAPORT = "0x0000000000000068f116a894984e2db1123eb395"

DOCUMENT: dict[str, Any] = {
    "version": 1,
    "owners": [{"id": "acme"}],
    "agents": [{"id": "bot", "owner": "acme"}],
    "wallets": [{"id": "hot", "owner": "acme", "agent": "bot", "chain": CHAIN, "address": WALLET}],
    "assets": [
        {
            "id": "eth",
            "chain": CHAIN,
            "native": True,
            "symbol": "ETH",
            "decimals": 18,
            "price_usd": "3000",
            "price_as_of": "2026-12-01T00:00:00Z",
            "price_max_age": "30d",
        },
        {"id": "wusd", "chain": CHAIN, "address": TOKEN, "symbol": "WUSD", "decimals": 6},
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
                {
                    "id": "eth-daily",
                    "type": "cumulative_cap",
                    "asset": "eth",
                    "max": "2",
                    "window": "24h",
                    "scope": "wallet",
                },
                {"id": "wusd-per-tx", "type": "per_tx_cap", "asset": "wusd", "max": "1000"},
                {"id": "approvals", "type": "approval_limit", "asset": "wusd", "max": "100"},
                {"id": "where", "type": "destination_allowlist", "addresses": [D1, D2, BAD]},
                {
                    "id": "contracts",
                    "type": "contract_allowlist",
                    "contracts": [
                        {"address": address, "methods": ["*"]}
                        for address in (NFT, MULTICALL, MULTISEND, ROUTER, SAFE, SEAPORT)
                    ],
                },
                {
                    "id": "signing",
                    "type": "signing_allowlist",
                    "methods": ["personal_sign", "eth_signTypedData_v4"],
                },
            ],
        },
    ],
}
POLICIES = compile_document(DOCUMENT, version=1)


def outcome(method: str, params: Any) -> Outcome | str:
    """What walletgate's core does with the call: its decision, or "malformed"."""
    try:
        decoded = decode_call(method, params, chain_id=CHAIN)
    except DecodeError:
        return "malformed"
    return evaluate(SpendRequest("bot", decoded, CHAIN), POLICIES, NOW).outcome


def calldata(signature: str, *args: Any) -> bytes:
    types = signature[signature.index("(") + 1 : -1]
    return function_signature_to_4byte_selector(signature) + eth_abi.encode(
        _split(types), list(args)
    )


def _split(types: str) -> list[str]:
    """Top-level comma split of an ABI type list (tuples keep their commas)."""
    out, depth, current = [], 0, ""
    for char in types:
        if char == "," and depth == 0:
            out.append(current)
            current = ""
            continue
        depth += char == "("
        depth -= char == ")"
        current += char
    return [*out, current] if current else out


def send(to: str | None, *, value: int = 0, data: bytes = b"", **fees: Any) -> list[Any]:
    fields = {"gas": 100_000, "maxFeePerGas": 2 * GWEI, "maxPriorityFeePerGas": GWEI} | fees
    tx: dict[str, Any] = {"from": WALLET, "value": hex(value), "chainId": hex(CHAIN)}
    if to is not None:
        tx["to"] = to
    if data:
        tx["data"] = "0x" + data.hex()
    tx.update({name: hex(amount) for name, amount in fields.items()})
    if "gasPrice" in fees:
        tx.pop("maxFeePerGas")
        tx.pop("maxPriorityFeePerGas")
    return [tx]


def raw(tx: dict[str, Any]) -> list[str]:
    base: dict[str, Any] = {"chainId": CHAIN, "nonce": 0, "gas": 21_000, "value": 0}
    signed = base | {"data": b"", "to": D1} | tx
    signed["to"] = to_checksum_address(str(signed["to"]))
    return [sign_raw(signed)]


ALLOWED = Outcome.ALLOW


# -- fees are spending -----------------------------------------------------------------


def test_the_issue_fee_drain_is_refused_and_its_twin_allowed() -> None:
    drain = send(D1, gas=21_000, maxFeePerGas=10**6 * GWEI, maxPriorityFeePerGas=10**6 * GWEI)
    assert outcome("eth_sendTransaction", drain) is not ALLOWED
    assert outcome("eth_signTransaction", drain) is not ALLOWED
    assert outcome("eth_sendTransaction", send(D1, gas=21_000)) is ALLOWED


@pytest.mark.parametrize(
    "fees",
    [
        {"gas": 21_000, "gasPrice": 10**6 * GWEI},  # legacy: 21 ETH
        {"gas": 30_000_000, "maxFeePerGas": 100 * GWEI, "maxPriorityFeePerGas": GWEI},  # 3 ETH
        {"gas": 21_000, "maxFeePerGas": 50_000 * GWEI, "maxPriorityFeePerGas": 0},  # 1.05 ETH
    ],
)
def test_fees_over_the_cap_are_refused_whatever_their_shape(fees: dict[str, Any]) -> None:
    assert outcome("eth_sendTransaction", send(D1, **fees)) is not ALLOWED


def test_value_and_fee_together_over_the_cap_are_refused() -> None:
    # 0.99 ETH + 0.021 ETH of fees: each alone is within 1 ETH, together they are not.
    fees: dict[str, Any] = {
        "gas": 21_000,
        "maxFeePerGas": 10**6 * GWEI // 1000,
        "maxPriorityFeePerGas": 1,
    }
    assert outcome("eth_sendTransaction", send(D1, value=99 * ETH // 100, **fees)) is not ALLOWED
    assert outcome("eth_sendTransaction", send(D1, value=9 * ETH // 10, **fees)) is ALLOWED


@pytest.mark.parametrize(
    "tx",
    [
        {"gasPrice": 10**6 * GWEI},  # type 0
        {"gasPrice": 10**6 * GWEI, "accessList": []},  # type 1
        {"maxFeePerGas": 10**6 * GWEI, "maxPriorityFeePerGas": 10**6 * GWEI},  # type 2
        {"gas": 10**7, "gasPrice": 10**5 * GWEI, "to": STRANGER, "data": b""},  # and a stranger
    ],
)
def test_raw_transactions_with_huge_fees_are_refused(tx: dict[str, Any]) -> None:
    assert outcome("eth_sendRawTransaction", raw(tx)) is not ALLOWED


def test_a_raw_transaction_with_a_modest_fee_is_allowed() -> None:
    assert outcome("eth_sendRawTransaction", raw({"gasPrice": GWEI, "value": ETH // 10})) is ALLOWED


def test_a_contract_creation_pays_its_fee_too() -> None:
    create = send(None, data=b"\x60\x00", gas=10**6, maxFeePerGas=10**4 * GWEI)
    assert outcome("eth_sendTransaction", create) is not ALLOWED


# -- NFTs ------------------------------------------------------------------------------

NFT_ATTACKS = {
    "721 safeTransferFrom to the denylist": calldata(
        "safeTransferFrom(address,address,uint256)", WALLET, BAD, 1
    ),
    "721 safeTransferFrom with data to a stranger": calldata(
        "safeTransferFrom(address,address,uint256,bytes)", WALLET, STRANGER, 1, b""
    ),
    "721 transferFrom (the ERC-20 selector) to the denylist": calldata(
        "transferFrom(address,address,uint256)", WALLET, BAD, 7
    ),
    "setApprovalForAll to a stranger": calldata("setApprovalForAll(address,bool)", STRANGER, True),
    "setApprovalForAll to a listed address": calldata("setApprovalForAll(address,bool)", D1, True),
    "721 approve of one token to the denylist": calldata("approve(address,uint256)", BAD, 7),
    "1155 safeTransferFrom to the denylist": calldata(
        "safeTransferFrom(address,address,uint256,uint256,bytes)", WALLET, BAD, 1, 5, b""
    ),
    "1155 batch to a stranger": calldata(
        "safeBatchTransferFrom(address,address,uint256[],uint256[],bytes)",
        WALLET,
        STRANGER,
        [1, 2],
        [3, 4],
        b"",
    ),
}


@pytest.mark.parametrize("data", NFT_ATTACKS.values(), ids=NFT_ATTACKS.keys())
def test_nft_moves_and_approvals_on_an_allowlisted_contract_are_judged(data: bytes) -> None:
    assert outcome("eth_sendTransaction", send(NFT, data=data)) is not ALLOWED


# -- wrapped calls ---------------------------------------------------------------------

TRANSFER_TO_BAD = calldata("transfer(address,uint256)", BAD, 10**6)
TRANSFER_TO_D1 = calldata("transfer(address,uint256)", D1, 10**6)
OVER_CAP_TO_D1 = calldata("transfer(address,uint256)", D1, 5000 * 10**6)


def aggregate3(*calls: tuple[str, bytes]) -> bytes:
    return calldata("aggregate3((address,bool,bytes)[])", [(t, False, d) for t, d in calls])


def multisend(*calls: tuple[int, str, int, bytes]) -> bytes:
    packed = b"".join(
        op.to_bytes(1, "big")
        + bytes.fromhex(to[2:])
        + value.to_bytes(32, "big")
        + len(data).to_bytes(32, "big")
        + data
        for op, to, value, data in calls
    )
    return calldata("multiSend(bytes)", packed)


WRAPPED_ATTACKS = {
    "aggregate: token transfer to the denylist": calldata(
        "aggregate((address,bytes)[])", [(TOKEN, TRANSFER_TO_BAD)]
    ),
    "tryAggregate: over-cap token transfer": calldata(
        "tryAggregate(bool,(address,bytes)[])", False, [(TOKEN, OVER_CAP_TO_D1)]
    ),
    "aggregate3: token transfer to the denylist": aggregate3((TOKEN, TRANSFER_TO_BAD)),
    "aggregate3: an unlisted contract": aggregate3((STRANGER, b"\x12\x34\x56\x78")),
    "aggregate3: nested aggregate3 with a bad transfer": aggregate3(
        (MULTICALL, aggregate3((TOKEN, TRANSFER_TO_BAD)))
    ),
    "aggregate3: an unlimited approval": aggregate3(
        (TOKEN, calldata("approve(address,uint256)", D1, 2**256 - 1))
    ),
    "aggregate3Value: ETH to the denylist": calldata(
        "aggregate3Value((address,bool,uint256,bytes)[])", [(BAD, False, 10**15, b"")]
    ),
    "aggregate3Value: 5 ETH to D1": calldata(
        "aggregate3Value((address,bool,uint256,bytes)[])", [(D1, False, 5 * ETH, b"")]
    ),
    "multiSend: ETH to the denylist": multisend((0, BAD, 10**15, b"")),
    "multiSend: token transfer to the denylist": multisend((0, TOKEN, 0, TRANSFER_TO_BAD)),
    "multiSend: delegatecall": multisend((1, STRANGER, 0, b"\x12\x34\x56\x78")),
    "multiSend: truncated payload": calldata("multiSend(bytes)", b"\x00" + b"\x11" * 30),
    "aggregate3: malformed inner token call": aggregate3((TOKEN, TRANSFER_TO_D1[:-3])),
}


@pytest.mark.parametrize("data", WRAPPED_ATTACKS.values(), ids=WRAPPED_ATTACKS.keys())
def test_wrapped_calls_are_judged_call_by_call(data: bytes) -> None:
    # Recognised by what the calldata is, wherever it is sent.
    for wrapper in (MULTICALL, MULTISEND, ROUTER):
        assert outcome("eth_sendTransaction", send(wrapper, data=data)) is not ALLOWED, wrapper


def test_a_wrapped_transfer_to_a_listed_address_is_allowed() -> None:
    data = aggregate3((TOKEN, TRANSFER_TO_D1))
    assert outcome("eth_sendTransaction", send(MULTICALL, data=data)) is ALLOWED


def test_value_sent_through_aggregate3value_counts_against_the_cap() -> None:
    data = calldata(
        "aggregate3Value((address,bool,uint256,bytes)[])",
        [(D1, False, ETH, b""), (D2, False, ETH, b"")],
    )
    assert outcome("eth_sendTransaction", send(MULTICALL, value=2 * ETH, data=data)) is not ALLOWED


# -- typed data ------------------------------------------------------------------------

DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def members(declaration: str) -> list[dict[str, str]]:
    return [
        {"name": name, "type": kind}
        for kind, name in (item.split() for item in declaration.split(", "))
    ]


def typed(
    name: str, contract: str, primary: str, message: dict[str, Any], **types: str
) -> list[Any]:
    document = {
        "types": {"EIP712Domain": DOMAIN_TYPE} | {k: members(v) for k, v in types.items()},
        "primaryType": primary,
        "domain": {"name": name, "version": "1", "chainId": CHAIN, "verifyingContract": contract},
        "message": message,
    }
    return [WALLET, json.dumps(document)]


SEAPORT_GIVEAWAY = typed(
    "Seaport",
    SEAPORT,
    "OrderComponents",
    {
        "offerer": WALLET,
        "zone": "0x" + "00" * 20,
        "offer": [
            {
                "itemType": 2,
                "token": NFT,
                "identifierOrCriteria": 1,
                "startAmount": 1,
                "endAmount": 1,
            }
        ],
        "consideration": [],
        "orderType": 0,
        "startTime": 0,
        "endTime": 2**40,
        "zoneHash": "0x" + "00" * 32,
        "salt": 1,
        "conduitKey": "0x" + "00" * 32,
        "counter": 0,
    },
    OrderComponents="address offerer, address zone, OfferItem[] offer, "
    "ConsiderationItem[] consideration, uint8 orderType, uint256 startTime, "
    "uint256 endTime, bytes32 zoneHash, uint256 salt, bytes32 conduitKey, uint256 counter",
    OfferItem="uint8 itemType, address token, uint256 identifierOrCriteria, "
    "uint256 startAmount, uint256 endAmount",
    ConsiderationItem="uint8 itemType, address token, uint256 identifierOrCriteria, "
    "uint256 startAmount, uint256 endAmount, address recipient",
)
NFT_PERMIT = typed(
    "Kitties",
    NFT,
    "Permit",
    {"spender": STRANGER, "tokenId": 1, "nonce": 0, "deadline": 2**40},
    Permit="address spender, uint256 tokenId, uint256 nonce, uint256 deadline",
)
SAFE_TX = typed(
    "Safe",
    SAFE,
    "SafeTx",
    {
        "to": BAD,
        "value": ETH // 2,
        "data": "0x",
        "operation": 0,
        "safeTxGas": 0,
        "baseGas": 0,
        "gasPrice": 0,
        "gasToken": "0x" + "00" * 20,
        "refundReceiver": "0x" + "00" * 20,
        "nonce": 0,
    },
    SafeTx="address to, uint256 value, bytes data, uint8 operation, uint256 safeTxGas, "
    "uint256 baseGas, uint256 gasPrice, address gasToken, address refundReceiver, "
    "uint256 nonce",
)
DELEGATION = typed(
    "DelegationManager",
    "0x" + "de" * 20,
    "Delegation",
    {
        "delegate": STRANGER,
        "delegator": WALLET,
        "authority": "0x" + "ff" * 32,
        "caveats": [],
        "salt": 1,
    },
    Delegation="address delegate, address delegator, bytes32 authority, Caveat[] caveats, "
    "uint256 salt",
    Caveat="address enforcer, bytes terms",
)
PERMIT_WITHOUT_CHAIN = [
    WALLET,
    json.dumps(
        {
            "types": {
                "EIP712Domain": [DOMAIN_TYPE[0], DOMAIN_TYPE[1], DOMAIN_TYPE[3]],
                "Permit": members(
                    "address owner, address spender, uint256 value, uint256 nonce, uint256 deadline"
                ),
            },
            "primaryType": "Permit",
            "domain": {"name": "WUSD", "version": "1", "verifyingContract": TOKEN},
            "message": {
                "owner": WALLET,
                "spender": D1,
                "value": 10,
                "nonce": 0,
                "deadline": 2**40,
            },
        }
    ),
]


@pytest.mark.parametrize(
    "params",
    [SEAPORT_GIVEAWAY, NFT_PERMIT, SAFE_TX, DELEGATION, PERMIT_WITHOUT_CHAIN],
    ids=["seaport", "erc4494", "safetx", "erc7710", "permit-without-chainid"],
)
def test_typed_data_is_judged_by_what_it_signs(params: list[Any]) -> None:
    assert outcome("eth_signTypedData_v4", params) is not ALLOWED


def test_plain_messages_stay_allowed_by_the_signing_allowlist() -> None:
    assert outcome("personal_sign", ["0x68656c6c6f", WALLET]) is ALLOWED


# -- smaller items -----------------------------------------------------------------------


def test_an_address_with_a_trailing_newline_is_malformed() -> None:
    tx = send(D1)
    tx[0]["to"] = D1 + "\n"
    assert outcome("eth_sendTransaction", tx) == "malformed"


def test_a_blob_hash_with_the_wrong_version_byte_is_malformed() -> None:
    tx = send(D1, maxFeePerBlobGas=GWEI)
    tx[0]["blobVersionedHashes"] = ["0x02" + "00" * 31]
    assert outcome("eth_sendTransaction", tx) == "malformed"
