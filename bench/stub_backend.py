"""A fast stub wallet backend: fixed JSON-RPC answers, so the bench measures the proxy.

Run as its own process: ``python -m bench.stub_backend --port 8600 --chain-id 31337``.
It answers single calls and batches, echoes each call's id, and answers ``eth_chainId``
with the chain walletgate is configured for (walletgate checks it at start-up). It uses
aiohttp's low-level server on uvloop with orjson: the cheapest well-kept Python server,
so that the backend's share of the machine's two cores is as small as it can be.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Mapping
from typing import Any

import orjson
import uvloop
from aiohttp import web

#: What a "sent" transaction hashes to, whatever was sent.
FIXED_TX_HASH = "0x" + "ab" * 32
FIXED_BALANCE = hex(10**18)
FIXED_BLOCK = "0x10d4f"


def fixed_results(chain_id: int) -> dict[str, Any]:
    """The answer of every method the stub knows, for ``chain_id``."""
    return {
        "eth_chainId": hex(chain_id),
        "net_version": str(chain_id),
        "eth_blockNumber": FIXED_BLOCK,
        "eth_getBalance": FIXED_BALANCE,
        "eth_getTransactionCount": "0x5",
        "eth_gasPrice": "0x3b9aca00",
        "eth_maxPriorityFeePerGas": "0x3b9aca00",
        "eth_estimateGas": "0x5208",
        "eth_call": "0x",
        "eth_getCode": "0x",
        "eth_sendTransaction": FIXED_TX_HASH,
        "eth_sendRawTransaction": FIXED_TX_HASH,
    }


def answer(call: Any, results: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-RPC response to one call object."""
    if not isinstance(call, dict):
        return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "bad call"}}
    method = call.get("method")
    if isinstance(method, str) and method in results:
        return {"jsonrpc": "2.0", "id": call.get("id"), "result": results[method]}
    return {
        "jsonrpc": "2.0",
        "id": call.get("id"),
        "error": {"code": -32601, "message": f"the stub does not know {method!r}"},
    }


def respond(body: bytes, results: Mapping[str, Any]) -> bytes:
    """The response body to a request body (a call or a batch)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return orjson.dumps(
            {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
        )
    if isinstance(payload, list):
        return orjson.dumps([answer(call, results) for call in payload])
    return orjson.dumps(answer(payload, results))


async def serve_stub(host: str, port: int, chain_id: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    results = fixed_results(chain_id)

    async def handle(request: web.BaseRequest) -> web.Response:
        return web.Response(
            body=respond(await request.read(), results), content_type="application/json"
        )

    server = web.Server(handle, access_log=None)
    runner = web.ServerRunner(server, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"stub backend listening on http://{host}:{port}/ (chain {chain_id})", flush=True)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chain-id", type=int, required=True)
    args = parser.parse_args(argv)
    uvloop.run(serve_stub(args.host, args.port, args.chain_id))


if __name__ == "__main__":
    main()
