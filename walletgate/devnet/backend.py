"""The devnet's JSON-RPC methods, answered by eth-tester through web3.py's
``EthereumTesterProvider``.

The provider maps standard JSON-RPC methods onto eth-tester; this module adds what a
node serving real clients must do on top: the devnet's chain id, ``gas`` filled in for
eth_sendTransaction, eth_signTypedData_v3/_v4 signed with the unlocked accounts' keys,
results in JSON-RPC wire form (hex quantities, camelCase keys,
receipt blooms) and errors as JSON-RPC error objects. Not thread-safe: like the chain,
a ``DevnetRpc`` must only be used from one thread.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from eth_account import Account
from eth_bloom import BloomFilter
from eth_tester.exceptions import TransactionFailed
from eth_tester.exceptions import ValidationError as TesterValidationError
from eth_utils import decode_hex, is_address, to_checksum_address
from eth_utils.toolz import compose
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.providers.eth_tester import EthereumTesterProvider
from web3.providers.eth_tester.defaults import API_ENDPOINTS, static_return
from web3.providers.eth_tester.middleware import (
    transaction_result_formatter,
    transaction_result_remapper,
)

from walletgate.devnet.chain import DevnetChain
from walletgate.devnet.jsonrpc import EXECUTION_REVERTED, SERVER_ERROR, RpcError
from walletgate.proxy.jsonrpc import ErrorCode

logger = logging.getLogger(__name__)

# Namespaces served; admin_*, debug_*, db_*, txpool_* and testing_* are left out.
_SERVED_NAMESPACES = ("web3", "net", "eth", "evm")
# The typed-data methods the devnet signs for its unlocked accounts (eth-tester has none).
_TYPED_DATA_METHODS = frozenset({"eth_signTypedData_v3", "eth_signTypedData_v4"})
# Methods whose first parameter is a transaction object.
_TRANSACTION_METHODS = frozenset(
    {"eth_sendTransaction", "eth_call", "eth_estimateGas", "eth_createAccessList"}
)
_BLOOM_BYTES = 256
_SNAKE_PART = re.compile(r"_([a-z0-9])")
_format_transaction = compose(transaction_result_remapper, transaction_result_formatter)


def devnet_endpoints(chain_id: int) -> dict[str, dict[str, Any]]:
    """web3.py's eth-tester endpoint table, reporting ``chain_id``."""
    endpoints = {namespace: dict(API_ENDPOINTS[namespace]) for namespace in _SERVED_NAMESPACES}
    endpoints["eth"]["chainId"] = static_return(chain_id)
    endpoints["net"]["version"] = static_return(str(chain_id))
    return endpoints


def to_wire(value: Any, key: str = "") -> Any:
    """A result as JSON-RPC puts it on the wire: integers as hex quantities, bytes as
    hex data, blooms as 256 bytes, snake_case keys in camelCase."""
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int):
        if key == "logsBloom":
            return "0x" + value.to_bytes(_BLOOM_BYTES, "big").hex()
        return hex(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        wire_keys = (_SNAKE_PART.sub(lambda m: m.group(1).upper(), str(k)) for k in value)
        return {
            wire_key: to_wire(item, wire_key)
            for wire_key, item in zip(wire_keys, value.values(), strict=True)
        }
    if isinstance(value, (list, tuple)):
        return [to_wire(item) for item in value]
    raise TypeError(f"cannot put {type(value).__name__} on the wire")


def _receipt_bloom(logs: list[Mapping[str, Any]]) -> int:
    bloom = BloomFilter()
    for log in logs:
        bloom.add(decode_hex(log["address"]))
        for topic in log["topics"]:
            bloom.add(decode_hex(topic))
    return int(bloom)


def _complete_receipt(receipt: Mapping[str, Any]) -> dict[str, Any]:
    # eth-tester leaves out the bloom (clients such as ethers require it) and adds a
    # pre-Byzantium state root that post-merge receipts do not have.
    completed = {key: value for key, value in receipt.items() if key != "state_root"}
    completed["logsBloom"] = _receipt_bloom(receipt["logs"])
    return completed


def _complete_block(block: Mapping[str, Any]) -> dict[str, Any]:
    # web3's middleware formats a transaction fetched alone but not the full
    # transactions embedded in a block; give those the same treatment.
    completed = dict(block)
    completed["transactions"] = [
        _format_transaction(tx) if isinstance(tx, Mapping) else tx for tx in block["transactions"]
    ]
    return completed


_RESULT_COMPLETERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "eth_getTransactionReceipt": _complete_receipt,
    "eth_getBlockByNumber": _complete_block,
    "eth_getBlockByHash": _complete_block,
}


class DevnetRpc:
    """Answers JSON-RPC method calls against a :class:`DevnetChain`."""

    def __init__(self, chain: DevnetChain) -> None:
        self._unlocked = {account.address.lower() for account in chain.accounts}
        self._keys = {account.address.lower(): account.private_key for account in chain.accounts}
        provider = EthereumTesterProvider(
            chain.tester, api_endpoints=devnet_endpoints(chain.chain_id)
        )
        # No web3 middleware of our own: only the provider's, which converts between
        # JSON-RPC and eth-tester shapes and defaults a call's "from" to account 1.
        w3 = Web3(provider, middleware=[])
        self._request = provider.request_func(w3, w3.middleware_onion)

    def call(self, method: str, params: list[Any]) -> Any:
        """The JSON-ready result of ``method``; raises :class:`RpcError` on failure."""
        if method in _TYPED_DATA_METHODS:
            return self._sign_typed_data(method, params)
        if method in _TRANSACTION_METHODS:
            params = [self._transaction_param(method, params), *params[1:]]
        if method == "eth_sendTransaction":
            params = [self._with_gas(params[0]), *params[1:]]
        result = self._provider_call(method, params)
        completer = _RESULT_COMPLETERS.get(method)
        if completer is not None and isinstance(result, Mapping):
            result = completer(result)
        return to_wire(result)

    def _sign_typed_data(self, method: str, params: list[Any]) -> str:
        """``[address, typedData]`` (an object or a JSON string) signed with the unlocked
        account's key, as a 65-byte 0x-hex signature (what geth and anvil answer)."""
        if len(params) != 2 or not isinstance(params[0], str):
            raise RpcError(ErrorCode.INVALID_PARAMS, f"{method} takes [address, typedData]")
        key = self._keys.get(params[0].lower())
        if key is None:
            raise RpcError(SERVER_ERROR, f"unknown account {params[0]}: not unlocked here")
        document = params[1]
        try:
            if isinstance(document, str):
                document = json.loads(document)
            signed = Account.sign_typed_data(key, full_message=document)
        except Exception as exc:  # eth-account's many errors for data it cannot encode
            raise RpcError(ErrorCode.INVALID_PARAMS, f"invalid typed data: {exc}") from None
        return "0x" + bytes(signed.signature).hex()

    def _transaction_param(self, method: str, params: list[Any]) -> dict[str, Any]:
        if not params or not isinstance(params[0], dict):
            raise RpcError(
                ErrorCode.INVALID_PARAMS, f"invalid params for {method}: expected a transaction"
            )
        transaction = dict(params[0])
        # "input" is the current name of the field eth-tester still calls "data".
        if "input" in transaction:
            data = transaction.pop("input")
            transaction.setdefault("data", data)
        for field in ("from", "to"):
            address = transaction.get(field)
            if address is not None:
                if not isinstance(address, str) or not is_address(address):
                    raise RpcError(
                        ErrorCode.INVALID_PARAMS,
                        f"invalid params for {method}: bad {field!r} address",
                    )
                transaction[field] = to_checksum_address(address)
        if method == "eth_sendTransaction":
            sender = transaction.get("from")
            if sender is None:
                raise RpcError(
                    ErrorCode.INVALID_PARAMS, "invalid params for eth_sendTransaction: no 'from'"
                )
            if sender.lower() not in self._unlocked:
                raise RpcError(SERVER_ERROR, f"unknown account {sender}: not unlocked here")
        return transaction

    def _with_gas(self, transaction: dict[str, Any]) -> dict[str, Any]:
        # Nodes estimate the gas of eth_sendTransaction when it is not given;
        # eth-tester requires it.
        if transaction.get("gas") is not None:
            return transaction
        estimate = self._provider_call("eth_estimateGas", [transaction])
        return {**transaction, "gas": estimate}

    def _provider_call(self, method: str, params: list[Any]) -> Any:
        try:
            response = self._request(method, params)
        except ContractLogicError as exc:
            message = exc.message or "execution reverted"
            raise RpcError(EXECUTION_REVERTED, message, exc.data) from None
        except TransactionFailed as exc:
            raise RpcError(EXECUTION_REVERTED, str(exc)) from None
        except TesterValidationError as exc:
            raise RpcError(
                ErrorCode.INVALID_PARAMS, f"invalid params for {method}: {exc}"
            ) from None
        except (IndexError, KeyError, TypeError) as exc:
            # What the provider's formatters raise for missing or mistyped params.
            logger.debug("%s rejected its params", method, exc_info=True)
            raise RpcError(
                ErrorCode.INVALID_PARAMS, f"invalid params for {method}: {exc}"
            ) from None
        except Exception as exc:
            # The chain refused it (nonce, funds, gas, undecodable raw transaction, …).
            logger.debug("%s failed", method, exc_info=True)
            raise RpcError(SERVER_ERROR, f"{method} failed: {exc}") from None
        if "error" in response:
            error = response["error"]
            raise RpcError(int(error["code"]), str(error["message"]))
        return response["result"]
