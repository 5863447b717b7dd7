"""The ``devnet`` fixture: a real ``walletgate devnet`` process for the test session.

The process listens on a free port (``--port 0``) and reports its URL, chain id,
accounts and token in its ``--ready-file``; the fixture waits for that file, hands out a
:class:`Devnet` and terminates the process at the end of the session.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector

STARTUP_TIMEOUT = 120.0  # seconds; py-evm start and token deployment take a few
STOP_TIMEOUT = 30.0
_PR_SET_PDEATHSIG = 1
_BALANCE_OF = function_signature_to_4byte_selector("balanceOf(address)")


class DevnetRpcError(Exception):
    """The devnet answered with a JSON-RPC error object."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        super().__init__(f"{method}: {error.get('code')} {error.get('message')}")
        self.code: int = error.get("code", 0)
        self.message: str = error.get("message", "")
        self.data: Any = error.get("data")


@dataclass(frozen=True)
class DevAccount:
    """A funded devnet account (private keys 0x…01 to 0x…0a)."""

    address: str
    private_key: str


@dataclass(frozen=True)
class Devnet:
    """A running devnet and small async helpers to query it."""

    url: str
    chain_id: int
    accounts: list[DevAccount]
    token_address: str
    token_decimals: int
    token_symbol: str = "WUSD"

    @classmethod
    def from_ready_document(cls, document: dict[str, Any]) -> Devnet:
        """Read what ``walletgate devnet --ready-file`` wrote."""
        return cls(
            url=document["url"],
            chain_id=document["chain_id"],
            accounts=[DevAccount(a["address"], a["private_key"]) for a in document["accounts"]],
            token_address=document["token"]["address"],
            token_decimals=document["token"]["decimals"],
            token_symbol=document["token"]["symbol"],
        )

    async def post(self, payload: Any) -> Any:
        """POST ``payload`` as JSON and return the decoded JSON reply (None if empty)."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
            session.post(self.url, json=payload) as response,
        ):
            response.raise_for_status()
            text = await response.text()
        return json.loads(text) if text else None

    async def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """The ``result`` of one call; raises :class:`DevnetRpcError` on an error reply."""
        reply = await self.post(
            {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
        )
        if "error" in reply:
            raise DevnetRpcError(method, reply["error"])
        return reply["result"]

    async def balance(self, address: str) -> int:
        """Wei held by ``address`` at the latest block."""
        return int(await self.rpc("eth_getBalance", [address, "latest"]), 16)

    async def token_balance(self, address: str) -> int:
        """WUSD base units held by ``address``."""
        data = _BALANCE_OF + encode(["address"], [address])
        result = await self.rpc(
            "eth_call", [{"to": self.token_address, "data": "0x" + data.hex()}, "latest"]
        )
        (amount,) = decode(["uint256"], bytes.fromhex(result.removeprefix("0x")))
        return int(amount)

    async def block_number(self) -> int:
        """The latest block number."""
        return int(await self.rpc("eth_blockNumber"), 16)


@dataclass
class DevnetProcess:
    """A ``walletgate devnet`` subprocess and where it reports."""

    process: subprocess.Popen[bytes]
    ready_file: Path
    log_file: Path
    devnet: Devnet

    def log(self) -> str:
        """Everything the process printed so far (stdout and stderr)."""
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum``, wait for the exit and return the exit code (kills if stuck)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _die_with_parent() -> None:
    # Runs in the child before exec: if the test run is killed outright, the kernel
    # sends the devnet SIGTERM instead of leaving it orphaned (Linux only).
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_for_ready_file(
    process: subprocess.Popen[bytes], ready_file: Path, log_file: Path
) -> dict[str, Any]:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not ready_file.exists():
        if process.poll() is not None:
            raise RuntimeError(
                f"walletgate devnet exited with {process.returncode} before it was ready:\n"
                + log_file.read_text(encoding="utf-8", errors="replace")
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"walletgate devnet not ready after {STARTUP_TIMEOUT}s")
        time.sleep(0.05)
    document: dict[str, Any] = json.loads(ready_file.read_text(encoding="utf-8"))
    return document


@contextlib.contextmanager
def running_devnet(directory: Path) -> Iterator[DevnetProcess]:
    """Start ``walletgate devnet`` on a free port, wait until it serves, and make sure
    it is gone (SIGTERM, then SIGKILL) when the block exits."""
    ready_file = directory / "devnet-ready.json"
    log_file = directory / "devnet.log"
    command = [
        sys.executable,
        "-m",
        "walletgate.cli",
        "devnet",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--ready-file",
        str(ready_file),
    ]
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
    handle: DevnetProcess | None = None
    try:
        document = _wait_for_ready_file(process, ready_file, log_file)
        handle = DevnetProcess(process, ready_file, log_file, Devnet.from_ready_document(document))
        yield handle
    finally:
        if handle is not None:
            handle.stop()
        elif process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def devnet_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetProcess]:
    """The session's ``walletgate devnet`` subprocess."""
    with running_devnet(tmp_path_factory.mktemp("devnet")) as handle:
        yield handle


@pytest.fixture(scope="session")
def devnet(devnet_process: DevnetProcess) -> Devnet:
    """A running devnet shared by the whole test session (chain id 1337, ten funded
    accounts, the WUSD token). Tests share its state: use fresh recipient addresses."""
    return devnet_process.devnet
