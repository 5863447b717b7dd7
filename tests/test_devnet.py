"""``walletgate devnet``: a real EVM chain over JSON-RPC that web3.py and eth-account can use.

Everything but the pure envelope tests talks to real ``walletgate devnet`` processes.
The session devnet is shared with other tests, so these tests send from accounts
nobody else uses, or from fresh accounts they fund, and pay fresh recipients.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_abi import encode
from eth_account import Account
from eth_bloom import BloomFilter
from eth_typing import ChecksumAddress
from eth_utils import function_signature_to_4byte_selector
from hypothesis import given
from hypothesis import strategies as st
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.types import Wei

from tests.support.devnet import Devnet, DevnetProcess, DevnetRpcError, running_devnet
from walletgate.devnet.backend import to_wire
from walletgate.devnet.chain import load_token_artifact
from walletgate.devnet.jsonrpc import RpcError, answer

TOKEN_ADDRESS = "0xf2e246bb76df876cef8b38ae84130f4f55de395b"  # examples/policies.yaml
ETH = 10**18
GWEI = 10**9


@pytest.fixture
async def w3(devnet: Devnet) -> AsyncIterator[AsyncWeb3[Any]]:
    web3 = AsyncWeb3(AsyncHTTPProvider(devnet.url))
    yield web3
    await web3.provider.disconnect()


def fresh_address() -> ChecksumAddress:
    return ChecksumAddress(Account.create().address)


async def funded_account(devnet: Devnet, wei: int = ETH) -> Any:
    """A new local account holding ``wei``, paid by devnet account 10."""
    account = Account.create()
    await devnet.rpc(
        "eth_sendTransaction",
        [{"from": devnet.accounts[9].address, "to": account.address, "value": hex(wei)}],
    )
    return account


async def send_raw(devnet: Devnet, account: Any, transaction: dict[str, Any], **kwargs: Any) -> str:
    signed = account.sign_transaction(transaction, **kwargs)
    tx_hash: str = await devnet.rpc("eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()])
    return tx_hash


# --- chain identity -------------------------------------------------------------------


async def test_chain_id_is_1337(devnet: Devnet, w3: AsyncWeb3[Any]) -> None:
    assert devnet.chain_id == 1337
    assert await devnet.rpc("eth_chainId") == "0x539"
    assert await devnet.rpc("net_version") == "1337"
    assert await w3.eth.chain_id == 1337


async def test_accounts_are_the_funded_keys_1_to_10(devnet: Devnet) -> None:
    keys = [int(account.private_key, 16) for account in devnet.accounts]
    assert keys == list(range(1, 11))
    for account in devnet.accounts:
        assert Account.from_key(account.private_key).address == account.address
        assert await devnet.balance(account.address) > 1000 * ETH


async def test_token_is_deployed_where_the_examples_expect(
    devnet: Devnet, w3: AsyncWeb3[Any]
) -> None:
    assert devnet.token_address.lower() == TOKEN_ADDRESS
    assert (devnet.token_symbol, devnet.token_decimals) == ("WUSD", 6)
    token = w3.eth.contract(
        address=w3.to_checksum_address(TOKEN_ADDRESS), abi=load_token_artifact()["abi"]
    )
    assert await token.functions.symbol().call() == "WUSD"
    assert await token.functions.decimals().call() == devnet.token_decimals
    # The supply is split evenly among accounts 1-5 at deployment.
    assert await token.functions.totalSupply().call() == 5 * 10**9 * 10**6


def test_token_artifact_is_compiled_from_the_committed_source() -> None:
    artifact = load_token_artifact()
    source = Path(__file__).parent.parent / artifact["source"]
    assert hashlib.sha256(source.read_bytes()).hexdigest() == artifact["sourceSha256"], (
        "contracts/WalletgateTestToken.sol changed: run contracts/compile.sh"
    )
    # py-evm's newest fork is Prague: a newer target could emit opcodes it lacks.
    assert artifact["settings"]["evmVersion"] == "prague"
    assert artifact["compiler"]["version"].startswith("0.8.37+")


# --- sending transactions -------------------------------------------------------------


async def test_web3_eth_transfer_is_mined_at_once(devnet: Devnet, w3: AsyncWeb3[Any]) -> None:
    sender = w3.to_checksum_address(devnet.accounts[9].address)
    recipient = fresh_address()
    sender_before = await w3.eth.get_balance(sender)
    block_before = await w3.eth.block_number

    tx_hash = await w3.eth.send_transaction({"from": sender, "to": recipient, "value": Wei(12345)})
    receipt = await w3.eth.get_transaction_receipt(tx_hash)

    assert receipt["status"] == 1
    assert receipt["blockNumber"] == block_before + 1
    assert await w3.eth.get_balance(recipient) == 12345
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert await w3.eth.get_balance(sender) == sender_before - 12345 - fee


async def test_web3_erc20_transfer_is_mined(devnet: Devnet, w3: AsyncWeb3[Any]) -> None:
    token = w3.eth.contract(
        address=w3.to_checksum_address(TOKEN_ADDRESS), abi=load_token_artifact()["abi"]
    )
    sender = devnet.accounts[4].address
    recipient = fresh_address()
    sender_before = await devnet.token_balance(sender)

    tx_hash = await token.functions.transfer(recipient, 7 * 10**6).transact({"from": sender})
    receipt = await w3.eth.get_transaction_receipt(tx_hash)

    assert receipt["status"] == 1
    (event,) = token.events.Transfer().process_receipt(receipt)
    assert (event["args"]["from"], event["args"]["to"], event["args"]["value"]) == (
        sender,
        recipient,
        7 * 10**6,
    )
    assert await devnet.token_balance(recipient) == 7 * 10**6
    assert await devnet.token_balance(sender) == sender_before - 7 * 10**6
    assert bytes.fromhex(TOKEN_ADDRESS[2:]) in BloomFilter(
        int.from_bytes(receipt["logsBloom"], "big")
    )
    block = await w3.eth.get_block(receipt["blockNumber"], full_transactions=True)
    (mined,) = block["transactions"]
    assert not isinstance(mined, bytes), "full transactions were asked for"
    assert mined["hash"] == tx_hash and mined["to"] == token.address


@pytest.mark.parametrize(
    "fees",
    [
        pytest.param({"gasPrice": 2 * GWEI}, id="legacy-eip155"),
        pytest.param({"type": 1, "gasPrice": 2 * GWEI, "accessList": []}, id="eip2930"),
        pytest.param(
            {"type": 2, "maxFeePerGas": 3 * GWEI, "maxPriorityFeePerGas": GWEI}, id="eip1559"
        ),
    ],
)
async def test_raw_signed_transaction_is_mined(devnet: Devnet, fees: dict[str, Any]) -> None:
    account = await funded_account(devnet)
    recipient = fresh_address()
    tx = {"chainId": 1337, "nonce": 0, "to": recipient, "value": 999, "gas": 21000, **fees}

    tx_hash = await send_raw(devnet, account, tx)

    receipt = await devnet.rpc("eth_getTransactionReceipt", [tx_hash])
    assert receipt["status"] == "0x1"
    assert await devnet.balance(recipient) == 999
    mined = await devnet.rpc("eth_getTransactionByHash", [tx_hash])
    assert mined["from"] == account.address
    assert int(mined["type"], 16) == fees.get("type", 0)


async def test_raw_transaction_for_another_chain_is_refused(devnet: Devnet) -> None:
    account = await funded_account(devnet)
    block = await devnet.block_number()
    tx = {
        "chainId": 1,
        "nonce": 0,
        "to": fresh_address(),
        "value": 1,
        "gas": 21000,
        "gasPrice": 2 * GWEI,
    }

    with pytest.raises(DevnetRpcError) as refused:
        await send_raw(devnet, account, tx)

    assert refused.value.code == -32000
    assert "chain id" in refused.value.message
    assert await devnet.block_number() == block


async def test_eip7702_raw_transaction_is_answered(devnet: Devnet) -> None:
    # walletgate refuses these before they reach a backend; the devnet still handles them.
    account = await funded_account(devnet)
    authorization = account.sign_authorization(
        {"chainId": 1337, "address": devnet.token_address, "nonce": 1}
    )
    tx = {
        "type": 4,
        "chainId": 1337,
        "nonce": 0,
        "to": fresh_address(),
        "value": 0,
        "gas": 100_000,
        "maxFeePerGas": 3 * GWEI,
        "maxPriorityFeePerGas": GWEI,
        "authorizationList": [authorization],
    }
    tx_hash = await send_raw(devnet, account, tx)
    assert (await devnet.rpc("eth_getTransactionReceipt", [tx_hash]))["status"] == "0x1"
    # The account's code is now the EIP-7702 delegation designator.
    code = await devnet.rpc("eth_getCode", [account.address, "latest"])
    assert code.lower() == "0xef0100" + devnet.token_address[2:].lower()


async def test_blob_raw_transaction_is_answered(devnet: Devnet) -> None:
    account = await funded_account(devnet)
    tx = {
        "type": 3,
        "chainId": 1337,
        "nonce": 0,
        "to": fresh_address(),
        "value": 0,
        "gas": 100_000,
        "maxFeePerGas": 3 * GWEI,
        "maxPriorityFeePerGas": GWEI,
        "maxFeePerBlobGas": GWEI,
    }
    tx_hash = await send_raw(devnet, account, tx, blobs=[b"\0walletgate".ljust(4096 * 32, b"\0")])
    mined = await devnet.rpc("eth_getTransactionByHash", [tx_hash])
    assert mined["type"] == "0x3" and len(mined["blobVersionedHashes"]) == 1


async def test_send_transaction_without_gas_is_estimated(devnet: Devnet) -> None:
    recipient = fresh_address()
    tx_hash = await devnet.rpc(
        "eth_sendTransaction",
        [{"from": devnet.accounts[9].address, "to": recipient, "value": "0x2a"}],
    )
    receipt = await devnet.rpc("eth_getTransactionReceipt", [tx_hash])
    assert (receipt["status"], receipt["gasUsed"]) == ("0x1", hex(21000))
    assert await devnet.balance(recipient) == 42


async def test_send_transaction_from_a_locked_account_is_refused(devnet: Devnet) -> None:
    with pytest.raises(DevnetRpcError) as refused:
        await devnet.rpc(
            "eth_sendTransaction",
            [{"from": fresh_address(), "to": fresh_address(), "value": "0x1"}],
        )
    assert refused.value.code == -32000
    assert "unknown account" in refused.value.message


async def test_reverting_call_reports_the_reason(devnet: Devnet) -> None:
    data = function_signature_to_4byte_selector("transfer(address,uint256)") + encode(
        ["address", "uint256"], [fresh_address(), 10**30]
    )
    call = {
        "from": devnet.accounts[9].address,
        "to": devnet.token_address,
        "data": "0x" + data.hex(),
    }
    with pytest.raises(DevnetRpcError) as reverted:
        await devnet.rpc("eth_call", [call, "latest"])
    assert reverted.value.code == 3
    assert "transfer amount exceeds balance" in reverted.value.message


# --- JSON-RPC envelopes over HTTP -----------------------------------------------------


async def test_batch_requests_are_answered_element_by_element(devnet: Devnet) -> None:
    account = devnet.accounts[0].address
    reply = await devnet.post(
        [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
            {
                "jsonrpc": "2.0",
                "id": "two",
                "method": "eth_getBalance",
                "params": [account, "latest"],
            },
            {"jsonrpc": "2.0", "method": "eth_blockNumber"},  # a notification: no answer
            {"jsonrpc": "2.0", "id": 3, "method": "eth_noSuchMethod"},
            {
                "jsonrpc": "2.0",
                "id": 4,
                "method": "eth_getBalance",
                "params": ["0xnothex", "latest"],
            },
        ]
    )
    by_id = {response["id"]: response for response in reply}
    assert set(by_id) == {1, "two", 3, 4}
    assert by_id[1]["result"] == "0x539"
    assert int(by_id["two"]["result"], 16) == await devnet.balance(account)
    assert by_id[3]["error"]["code"] == -32601
    assert by_id[4]["error"]["code"] == -32602


def _request(method: str, params: Any = None, version: str = "2.0") -> bytes:
    message: dict[str, Any] = {"jsonrpc": version, "id": 1, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode()


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        pytest.param(b"{not json", -32700, id="malformed-json"),
        pytest.param(b"\xff\xfe", -32700, id="not-utf8"),
        pytest.param(b"[]", -32600, id="empty-batch"),
        pytest.param(b"[1]", -32600, id="batch-of-non-objects"),
        pytest.param(_request("eth_chainId", version="1.0"), -32600, id="wrong-version"),
        pytest.param(_request("eth_chainId", params={}), -32602, id="named-params"),
        pytest.param(_request("eth_getBalance", params=[]), -32602, id="missing-params"),
        pytest.param(_request("eth_sendRawTransaction", ["0xdeadbeef"]), -32000, id="bad-raw-tx"),
        pytest.param(_request("admin_peers"), -32601, id="admin-not-served"),
    ],
)
async def test_bad_requests_get_json_rpc_errors(devnet: Devnet, payload: bytes, code: int) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(devnet.url, data=payload) as response,
    ):
        assert response.status == 200
        reply = json.loads(await response.text())
    reply = reply[0] if isinstance(reply, list) else reply
    assert reply["error"]["code"] == code
    assert reply["error"]["message"]


# --- the process ----------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_devnet_prints_its_setup_and_stops_cleanly(tmp_path: Path, signum: int) -> None:
    with running_devnet(tmp_path) as process:
        started: DevnetProcess = process
        document = json.loads(process.ready_file.read_text())
        assert process.stop(signum) == 0
    assert not started.ready_file.exists(), "the ready file must not outlive the devnet"
    printed = started.log()
    assert "chain id 1337" in printed
    assert document["token"] == {
        "address": started.devnet.token_address,
        "symbol": "WUSD",
        "decimals": 6,
    }
    assert started.devnet.token_address in printed
    for account in document["accounts"]:
        assert account["address"] in printed and account["private_key"] in printed
    assert "Traceback" not in printed


def test_devnet_reports_a_port_in_use(tmp_path: Path, devnet: Devnet) -> None:
    port = devnet.url.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "walletgate.cli", "devnet", "--port", port],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


# --- pure parts -----------------------------------------------------------------------


def _echo(method: str, params: list[Any]) -> Any:
    if method == "fail":
        raise RpcError(-32000, "failed", {"why": "asked to"})
    return {"method": method, "params": params}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_any_json_payload_gets_a_json_rpc_answer(payload: Any) -> None:
    reply = answer(payload, _echo)
    replies = reply if isinstance(reply, list) else [] if reply is None else [reply]
    for response in replies:
        assert response["jsonrpc"] == "2.0"
        assert ("result" in response) != ("error" in response)
        json.dumps(response)


def test_errors_from_a_call_keep_their_code_and_data() -> None:
    reply = answer({"jsonrpc": "2.0", "id": 7, "method": "fail"}, _echo)
    assert reply == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {"code": -32000, "message": "failed", "data": {"why": "asked to"}},
    }


@given(st.integers(min_value=0, max_value=2**256))
def test_quantities_go_on_the_wire_as_exact_hex(value: int) -> None:
    wire = to_wire({"gas_used": value, "logs_bloom": value % 2**2048, "flag": True})
    assert int(wire["gasUsed"], 16) == value
    assert len(wire["logsBloom"]) == 2 + 512
    assert wire["flag"] is True
