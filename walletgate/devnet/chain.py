"""The devnet chain: eth-tester's py-evm backend with chain id 1337 and the WUSD token.

Everything here is synchronous and touches py-evm state, which is not thread-safe:
callers must keep every call for one chain on one thread (the server uses a
single-worker executor).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from eth_abi import encode
from eth_tester import EthereumTester, PyEVMBackend
from eth_utils import ValidationError, to_checksum_address

DEVNET_CHAIN_ID = 1337
TOKEN_ARTIFACT = "WalletgateTestToken.json"
TOKEN_NAME = "Walletgate Test USD"
TOKEN_SYMBOL = "WUSD"
TOKEN_DECIMALS = 6
TOKEN_HOLDERS = 5  # accounts 1..5 each receive TOKEN_AMOUNT_PER_HOLDER
TOKEN_AMOUNT_PER_HOLDER = 1_000_000_000 * 10**TOKEN_DECIMALS
# Deployed by account 1 (private key 0x…01) with nonce 0; examples/policies.yaml names it.
TOKEN_ADDRESS = to_checksum_address("0xf2e246bb76df876cef8b38ae84130f4f55de395b")


class DevnetError(RuntimeError):
    """The devnet could not be set up as documented."""


@dataclass(frozen=True)
class DevAccount:
    """A funded, unlocked devnet account."""

    address: str  # checksummed
    private_key: str  # 0x-prefixed, 32 bytes


@dataclass(frozen=True)
class TokenInfo:
    """The ERC-20 token deployed at devnet start."""

    address: str  # checksummed
    symbol: str
    decimals: int


@dataclass(frozen=True)
class DevnetChain:
    """A ready chain: the eth-tester instance and what was set up on it."""

    tester: EthereumTester
    chain_id: int
    accounts: tuple[DevAccount, ...]
    token: TokenInfo


def load_token_artifact() -> dict[str, Any]:
    """The compiled WalletgateTestToken (``abi``, ``bytecode``, compiler details)."""
    text = (resources.files("walletgate") / "devnet_contracts" / TOKEN_ARTIFACT).read_text(
        encoding="utf-8"
    )
    artifact: dict[str, Any] = json.loads(text)
    return artifact


def _chain_class(base: type[Any], chain_id: int) -> type[Any]:
    """``base`` (eth-tester's chain class) with ``chain_id``, refusing transactions
    signed for another chain or for none, as nodes do by default (py-evm checks
    neither)."""

    def apply_transaction(self: Any, transaction: Any) -> Any:
        signed_for = transaction.chain_id
        if signed_for is None:
            raise ValidationError(
                "only replay-protected (EIP-155) transactions are accepted: no chain id"
            )
        if signed_for != chain_id:
            raise ValidationError(
                f"invalid chain id: the transaction is for chain {signed_for}, "
                f"this devnet is chain {chain_id}"
            )
        return base.apply_transaction(self, transaction)

    return type(
        "WalletgateDevnetChain",
        (base,),
        {"chain_id": chain_id, "apply_transaction": apply_transaction},
    )


def _backend_with_chain_id(chain_id: int) -> PyEVMBackend:
    """A py-evm backend whose chain signs and validates with ``chain_id``.

    eth-tester hard-codes the chain id as a class attribute of the chain class it builds
    and offers no parameter, so the freshly created chain is reopened (same database,
    still at genesis) through a subclass carrying the wanted id.
    """
    backend = PyEVMBackend()
    default_chain = backend.chain
    backend.chain = _chain_class(type(default_chain), chain_id)(default_chain.chaindb.db)
    return backend


def _accounts(backend: PyEVMBackend) -> tuple[DevAccount, ...]:
    return tuple(
        DevAccount(
            address=key.public_key.to_checksum_address(),
            private_key=key.to_hex(),
        )
        for key in backend.account_keys
    )


def _constructor_types(abi: list[dict[str, Any]]) -> list[str]:
    constructor = next(entry for entry in abi if entry["type"] == "constructor")
    return [param["type"] for param in constructor["inputs"]]


def _deploy_token(tester: EthereumTester, accounts: tuple[DevAccount, ...]) -> TokenInfo:
    """Deploy WUSD from account 1 and check it landed at the documented address."""
    artifact = load_token_artifact()
    arguments = encode(
        _constructor_types(artifact["abi"]),
        [
            TOKEN_NAME,
            TOKEN_SYMBOL,
            TOKEN_DECIMALS,
            [account.address for account in accounts[:TOKEN_HOLDERS]],
            TOKEN_AMOUNT_PER_HOLDER,
        ],
    )
    transaction: dict[str, Any] = {
        "from": accounts[0].address,
        "data": artifact["bytecode"] + arguments.hex(),
    }
    transaction["gas"] = tester.estimate_gas(transaction)
    receipt = tester.get_transaction_receipt(tester.send_transaction(transaction))
    address = receipt["contract_address"]
    if receipt["status"] != 1 or address is None:
        raise DevnetError(f"deploying {TOKEN_SYMBOL} failed: receipt {receipt}")
    if to_checksum_address(address) != TOKEN_ADDRESS:
        # Only possible if account 1 sent something before the deployment.
        raise DevnetError(f"{TOKEN_SYMBOL} deployed at {address}, expected {TOKEN_ADDRESS}")
    return TokenInfo(address=TOKEN_ADDRESS, symbol=TOKEN_SYMBOL, decimals=TOKEN_DECIMALS)


def build_devnet_chain() -> DevnetChain:
    """Create the chain (id 1337; eth-tester's ten funded, unlocked accounts with private
    keys 1..10) and deploy the token from account 1.

    Transactions are mined as soon as they are sent (eth-tester's auto-mine).
    """
    backend = _backend_with_chain_id(DEVNET_CHAIN_ID)
    tester = EthereumTester(backend)
    accounts = _accounts(backend)
    token = _deploy_token(tester, accounts)
    return DevnetChain(tester=tester, chain_id=DEVNET_CHAIN_ID, accounts=accounts, token=token)
