"""The fleet the end-to-end spend tests share: agent ``spender`` with wallet ``hot``
(devnet key 3) under a daily ETH cap, behind real gateways (tests/support/fleet.py).

Each test module gets its own module-scoped ``fleet`` on a flushed Redis from
:func:`spender_fleet_fixture`, or, behind a :class:`StallingBackend`, the ``stalling``,
``fleet`` and (autouse) ``forwarding`` fixtures from :func:`stalling_fleet_fixtures`.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from eth_account import Account

from tests.support.devnet import Devnet
from tests.support.fleet import Fleet, StallingBackend, running_fleet
from walletgate.config.amounts import from_base_units

WALLET = str(Account.from_key("0x" + (3).to_bytes(32, "big").hex()).address).lower()
#: Every fleet transfer names its gas and fee per gas, so walletgate fills nothing and
#: counts exactly ``value + FEE`` (fees are spending): 21000 gas at 2 gwei, above
#: the devnet's base fee.
GAS = 21_000
FEE_PER_GAS = 2 * 10**9
FEE = GAS * FEE_PER_GAS


def worth(value_wei: int, spends: int) -> int:
    """A cap that fits ``spends`` transfers worth ``value_wei`` together, fees included."""
    return value_wei + spends * FEE


def document(chain_id: int, rule: str, cap_wei: int) -> str:
    """One agent, one wallet (devnet key 3), and a daily ETH cap named ``rule``."""
    return f"""version: 1
owners: [{{id: ops}}]
agents: [{{id: spender, owner: ops}}]
wallets:
  - {{id: hot, owner: ops, agent: spender, chain: {chain_id}, address: "{WALLET}"}}
assets:
  - {{id: eth, chain: {chain_id}, native: true, symbol: ETH, decimals: 18}}
policies:
  - id: budget
    wallet: hot
    rules:
      - id: {rule}
        type: cumulative_cap
        asset: eth
        max: "{from_base_units(cap_wei, 18)}"
        window: 24h
        scope: wallet
"""


def fresh_recipient() -> str:
    return "0x" + secrets.token_hex(20)


def transfer(recipient: str, wei: int) -> list[Any]:
    """eth_sendTransaction params: ``wei`` to ``recipient``, costing up to ``FEE`` more."""
    return [
        {
            "from": WALLET,
            "to": recipient,
            "value": hex(wei),
            "gas": hex(GAS),
            "maxFeePerGas": hex(FEE_PER_GAS),
            "maxPriorityFeePerGas": hex(1),
        }
    ]


async def flush_redis(url: str) -> None:
    """FLUSHDB on the (single-node) Redis at ``url``."""
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    await client.aclose()


@asynccontextmanager
async def spender_fleet(
    postgres_server_url: str,
    migrated_template: str,
    redis_url: str,
    devnet: Devnet,
    *,
    backend_url: str | None = None,
    rule: str = "warmup",
    cap_wei: int = 10**18,
    count: int = 3,
    extra_env: Mapping[str, str] | None = None,
) -> AsyncIterator[Fleet]:
    """``count`` gateways for agent ``spender`` on the devnet's chain, in front of
    ``backend_url`` (the devnet itself by default), under :func:`document`."""
    async with running_fleet(
        postgres_server_url=postgres_server_url,
        migrated_template=migrated_template,
        redis_url=redis_url,
        backend_url=backend_url or devnet.url,
        chain_id=devnet.chain_id,
        document=document(devnet.chain_id, rule, cap_wei),
        agent="spender",
        count=count,
        extra_env=extra_env,
    ) as running:
        yield running


def spender_fleet_fixture(
    *, rule: str = "warmup", extra_env: Mapping[str, str] | None = None
) -> Any:
    """A module-scoped ``fleet`` fixture: three gateways in front of the devnet on the
    session's Redis, flushed first. Use as ``fleet = spender_fleet_fixture(...)``."""

    @pytest_asyncio.fixture(scope="module", name="fleet")
    async def fleet(
        postgres_server_url: str, migrated_template: str, redis_server_url: str, devnet: Devnet
    ) -> AsyncIterator[Fleet]:
        await flush_redis(redis_server_url)
        servers = (postgres_server_url, migrated_template, redis_server_url, devnet)
        async with spender_fleet(*servers, rule=rule, extra_env=extra_env) as running:
            yield running

    return fleet


def stalling_fleet_fixtures() -> tuple[Any, Any, Any]:
    """Module-scoped ``stalling`` (a :class:`StallingBackend` in front of the devnet) and
    ``fleet`` (two gateways in front of it, on the session's Redis, flushed first), and
    the autouse ``forwarding`` that resets the backend to forward at once before every
    test. Use as ``stalling, fleet, forwarding = stalling_fleet_fixtures()``."""

    @pytest_asyncio.fixture(scope="module", name="stalling")
    async def stalling(devnet: Devnet) -> AsyncIterator[StallingBackend]:
        async with StallingBackend(devnet.url) as backend:
            yield backend

    @pytest_asyncio.fixture(scope="module", name="fleet")
    async def fleet(
        postgres_server_url: str,
        migrated_template: str,
        redis_server_url: str,
        devnet: Devnet,
        stalling: StallingBackend,
    ) -> AsyncIterator[Fleet]:
        await flush_redis(redis_server_url)
        servers = (postgres_server_url, migrated_template, redis_server_url, devnet)
        async with spender_fleet(*servers, backend_url=stalling.url, count=2) as running:
            yield running

    @pytest.fixture(autouse=True, name="forwarding")
    def forwarding(stalling: StallingBackend) -> None:
        stalling.delay, stalling.mode = 0.0, "forward"

    return stalling, fleet, forwarding
