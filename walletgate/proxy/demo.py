"""``walletgate serve --demo``: the five-minute walkthrough in one command.

Starts the devnet in this process, applies ``examples/policies.yaml`` (wired to the
devnet's accounts and token), issues a token for the ``trader`` agent, prints how to
use it, and serves the gateway in front of the devnet.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from walletgate.config.settings import Settings, SettingsError
from walletgate.devnet.chain import DevnetError
from walletgate.devnet.server import RunningDevnet, serve_devnet
from walletgate.service.policy_commands import run_apply
from walletgate.storage.runtime import open_stores
from walletgate.storage.tokens import issue_token

EXAMPLE_POLICIES = Path(__file__).resolve().parents[2] / "examples" / "policies.yaml"
DEMO_AGENT = "trader"
DEVNET_PORT = 8546

Serve = Callable[..., Awaitable[None]]


def _banner(settings: Settings, devnet_url: str, token: str) -> str:
    base = f"http://{settings.host}:{settings.port}"
    return f"""
walletgate demo is running.

  devnet (backend):  {devnet_url}  chain 1337, keys 0x…01 to 0x…0a, WUSD token
  agent:             {DEMO_AGENT} (wallet 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf)
  agent URL:         {base}/t/{token}/
  or header:         Authorization: Bearer {token}

  The token is shown once. Policies: {EXAMPLE_POLICIES}
  Audit log:         .venv/bin/walletgate tx list --agent {DEMO_AGENT}
  Stop with Ctrl-C.
"""


async def run_demo(settings: Settings, serve: Serve, *, devnet_port: int = DEVNET_PORT) -> int:
    """Run the demo until SIGINT/SIGTERM, with the devnet on ``devnet_port``; returns the
    exit code."""
    if not EXAMPLE_POLICIES.is_file():
        raise SettingsError(f"--demo needs {EXAMPLE_POLICIES} (run it from a source checkout)")
    try:
        async with serve_devnet(port=devnet_port) as devnet:
            return await _demo(settings, serve, devnet)
    except DevnetError as exc:
        raise SettingsError(f"cannot start the demo devnet: {exc}") from None


async def _demo(settings: Settings, serve: Serve, devnet: RunningDevnet) -> int:
    settings = replace(
        settings, backend_url=devnet.url, chain_id=devnet.chain_id, actor=settings.actor or "demo"
    )
    async with open_stores(settings) as stores:
        code = await run_apply(argparse.Namespace(file=str(EXAMPLE_POLICIES)), settings)
        if code != 0:
            return code
        issued = await issue_token(stores.pool, DEMO_AGENT, actor=settings.actor)
        print(_banner(settings, devnet.url, issued.token), flush=True)
        await serve(settings, stores=stores)
    return 0
