"""The local EVM devnet (SPEC §7): eth-tester's py-evm backend served as JSON-RPC, with
chain id 1337, ten funded accounts (private keys 1..10) and the WUSD ERC-20 token.

``walletgate devnet`` runs :func:`run_devnet`; code that needs a devnet in-process uses
:func:`serve_devnet`.
"""

from walletgate.devnet.chain import (
    DEVNET_CHAIN_ID,
    TOKEN_ADDRESS,
    TOKEN_DECIMALS,
    TOKEN_SYMBOL,
    DevAccount,
    DevnetError,
    TokenInfo,
)
from walletgate.devnet.server import RunningDevnet, run_devnet, serve_devnet

__all__ = [
    "DEVNET_CHAIN_ID",
    "TOKEN_ADDRESS",
    "TOKEN_DECIMALS",
    "TOKEN_SYMBOL",
    "DevAccount",
    "DevnetError",
    "RunningDevnet",
    "TokenInfo",
    "run_devnet",
    "serve_devnet",
]
