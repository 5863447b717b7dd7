"""``walletgate devnet``: the devnet chain served over HTTP JSON-RPC with aiohttp.

eth-tester is not thread-safe and py-evm is CPU-bound, so the chain lives on one
worker thread: every call to it (creation included) goes through a single-worker
executor, which serializes them and keeps the event loop free to accept requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from walletgate.config.settings import Settings
from walletgate.devnet.backend import DevnetRpc
from walletgate.devnet.chain import DevAccount, DevnetError, TokenInfo, build_devnet_chain
from walletgate.devnet.jsonrpc import RpcError, answer, error_response, parse_body

_EXECUTOR_KEY = web.AppKey("executor", ThreadPoolExecutor)
_RPC_KEY = web.AppKey("rpc", DevnetRpc)
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


@dataclass(frozen=True)
class RunningDevnet:
    """A devnet that is accepting requests at ``url``."""

    url: str
    chain_id: int
    accounts: tuple[DevAccount, ...]
    token: TokenInfo

    def ready_document(self) -> dict[str, Any]:
        """What ``--ready-file`` holds: url, chain_id, accounts and token."""
        return {
            "url": self.url,
            "chain_id": self.chain_id,
            "accounts": [asdict(account) for account in self.accounts],
            "token": asdict(self.token),
        }


async def _handle_rpc(request: web.Request) -> web.StreamResponse:
    try:
        payload = parse_body(await request.read())
    except RpcError as exc:
        return web.json_response(error_response(None, exc))
    loop = asyncio.get_running_loop()
    rpc = request.app[_RPC_KEY]
    response = await loop.run_in_executor(request.app[_EXECUTOR_KEY], answer, payload, rpc.call)
    if response is None:  # only notifications: JSON-RPC sends nothing back
        return web.Response(status=204)
    return web.json_response(response)


def create_app(rpc: DevnetRpc, executor: ThreadPoolExecutor) -> web.Application:
    """The aiohttp application answering JSON-RPC POSTs at ``/``; ``rpc`` must only be
    used from ``executor``'s single thread."""
    app = web.Application()
    app[_RPC_KEY] = rpc
    app[_EXECUTOR_KEY] = executor
    app.router.add_post("/", _handle_rpc)
    return app


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise DevnetError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _url(host: str, port: int) -> str:
    connect_host = _WILDCARD_HOSTS.get(host, host)
    if ":" in connect_host:
        connect_host = f"[{connect_host}]"
    return f"http://{connect_host}:{port}"


@contextlib.asynccontextmanager
async def serve_devnet(host: str = "127.0.0.1", port: int = 8546) -> AsyncIterator[RunningDevnet]:
    """Build the chain, deploy the token and serve JSON-RPC on ``host:port`` (port 0
    picks a free one) until the context exits. Raises OSError if it cannot listen."""
    sock = _listening_socket(host, port)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="walletgate-devnet")
    runner: web.AppRunner | None = None
    try:
        loop = asyncio.get_running_loop()
        chain = await loop.run_in_executor(executor, build_devnet_chain)
        rpc = await loop.run_in_executor(executor, DevnetRpc, chain)
        runner = web.AppRunner(create_app(rpc, executor), access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        yield RunningDevnet(
            url=_url(host, sock.getsockname()[1]),
            chain_id=chain.chain_id,
            accounts=chain.accounts,
            token=chain.token,
        )
    finally:
        if runner is not None:
            await runner.cleanup()
        sock.close()
        executor.shutdown(wait=True)


def _banner(devnet: RunningDevnet) -> str:
    lines = [
        f"walletgate devnet: chain id {devnet.chain_id}, JSON-RPC at {devnet.url}",
        "",
        "Accounts (funded with 1,000,000 ETH each, unlocked for eth_sendTransaction):",
    ]
    lines += [
        f"  ({number}) {account.address}  private key {account.private_key}"
        for number, account in enumerate(devnet.accounts, start=1)
    ]
    lines += [
        "",
        f"Token {devnet.token.symbol} ({devnet.token.decimals} decimals): {devnet.token.address}",
        "",
        "Serving until SIGINT or SIGTERM.",
    ]
    return "\n".join(lines)


def _write_ready_file(path: Path, document: dict[str, Any]) -> None:
    # Written aside and renamed so that a reader never sees a half-written file.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


async def run_devnet(args: argparse.Namespace, settings: Settings) -> int:
    """The ``walletgate devnet`` command: serve until SIGINT or SIGTERM."""
    del settings  # the devnet needs neither database nor Redis
    ready_file = Path(args.ready_file) if args.ready_file else None
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with serve_devnet(args.host, args.port) as devnet:
            print(_banner(devnet), flush=True)
            if ready_file is None:
                await stop.wait()
                return 0
            try:
                _write_ready_file(ready_file, devnet.ready_document())
            except OSError as exc:
                print(
                    f"walletgate devnet: cannot write ready file {ready_file}: {exc.strerror}",
                    file=sys.stderr,
                )
                return 1
            try:
                await stop.wait()
            finally:
                ready_file.unlink(missing_ok=True)
    except DevnetError as exc:
        print(f"walletgate devnet: {exc}", file=sys.stderr)
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 0
