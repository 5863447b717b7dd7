"""A bare aiohttp pass-through proxy: the floor for any proxy written in Python.

Run as its own process: ``python -m bench.passthrough --port 8601 --backend URL``.
It does what every HTTP proxy in Python must do and nothing else: accept the request,
read the body, POST it to the backend over a pooled keep-alive session, return the
answer. No parsing, no authentication, no policy. It is built from the same pieces as
walletgate (an aiohttp ``web.Application`` and one ``ClientSession``) and runs on the
same event loop, so the ratio between the two is the cost of what walletgate adds.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import aiohttp
import uvloop
from aiohttp import web

_SESSION = web.AppKey("session", aiohttp.ClientSession)
_BACKEND = web.AppKey("backend", str)


async def forward(request: web.Request) -> web.Response:
    """POST the body to the backend and return its answer."""
    body = await request.read()
    session = request.app[_SESSION]
    async with session.post(
        request.app[_BACKEND], data=body, headers={"Content-Type": "application/json"}
    ) as reply:
        answer = await reply.read()
        return web.Response(body=answer, status=reply.status, content_type="application/json")


async def serve_passthrough(host: str, port: int, backend: str) -> None:
    """Serve until SIGTERM or SIGINT."""
    app = web.Application()
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=100)
    app[_SESSION] = aiohttp.ClientSession(connector=connector)
    app[_BACKEND] = backend
    app.router.add_post("/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"pass-through listening on http://{host}:{port}/ -> {backend}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await app[_SESSION].close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", required=True, help="the stub backend's URL")
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="event loop (use the one walletgate runs on)",
    )
    args = parser.parse_args(argv)
    coroutine = serve_passthrough(args.host, args.port, args.backend)
    if args.loop == "uvloop":
        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)


if __name__ == "__main__":
    main()
