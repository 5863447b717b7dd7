"""The world a fault scenario runs in: gateways, a faulty backend, funded agents.

:func:`fault_world` starts a :class:`tests.support.fleet.Fleet` of ``walletgate serve``
processes in front of a :class:`FaultyBackend` (itself in front of the devnet), on the
PostgreSQL and Redis the test names (its own private ones when it means to stop them),
with several agents, each with a funded wallet and a token of its own.
:meth:`World.begin` starts a scenario: a fresh cap rule (fresh counters) and the marks
from which the witnesses of :mod:`tests.support.fault_checks` are read afterwards.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from tests.support.devnet import Devnet
from tests.support.fault_backend import FaultyBackend
from tests.support.fault_checks import Witnesses, check_counters
from tests.support.fault_load import (
    Load,
    Sent,
    Spender,
    document,
    fund,
    new_spenders,
    sign_transfer,
    tx_hash_of,
)
from tests.support.fleet import Fleet, running_fleet
from tests.support.gateway import start_gateway, stop_process, wait_healthy
from tests.support.spender_fleet import FEE_PER_GAS
from walletgate.config.settings import Settings
from walletgate.storage.runtime import connect_redis
from walletgate.storage.tokens import issue_token


@dataclass
class Scenario:
    """One scenario's rule and cap, and where its witnesses start."""

    world: World
    rule: str
    cap: int
    first_block: int
    backend_mark: int

    async def witnesses(self, sent: list[Sent], outside: Iterable[str] = ()) -> Witnesses:
        """Read the chain, the backend's record and the audit log (after the load)."""
        await self.world.backend.quiet()
        return await Witnesses.read(
            self.world.devnet,
            self.world.fleet.database_url,
            sent,
            self.world.backend.spends_since(self.backend_mark),
            self.first_block,
            self.world.spenders,
            outside,
        )


@dataclass
class World:
    fleet: Fleet
    backend: FaultyBackend
    devnet: Devnet
    spenders: list[Spender]
    tokens: dict[str, str]

    async def begin(self, rule: str, cap: int) -> Scenario:
        """Apply a fresh per-wallet cap ``rule`` of ``cap`` wei; mark the start."""
        self.fleet.apply(document(self.devnet.chain_id, self.spenders, rule, cap))
        first_block = await self.devnet.block_number() + 1
        return Scenario(self, rule, cap, first_block, len(self.backend.received))

    def load(
        self,
        *,
        values: tuple[int, int],
        seed: int,
        resolve_seconds: float = 2.0,
        per_agent: int = 100,
    ) -> Load:
        """Every agent spending ``values`` (wei, inclusive range) through every gateway
        (see :class:`Load` for the rest)."""
        return Load(
            self.devnet,
            self.fleet.urls,
            self.tokens,
            self.spenders,
            values=values,
            seed=seed,
            resolve_seconds=resolve_seconds,
            per_agent=per_agent,
        )

    async def add_gateway(self, port: int, env: Mapping[str, str] | None = None) -> int:
        """Start one more gateway on ``port`` (``env`` on top of the fleet's); its index."""
        process = start_gateway({**self.fleet.env, **(env or {})}, port)
        url = f"http://127.0.0.1:{port}/"
        self.fleet.processes.append(process)
        self.fleet.urls.append(url)
        await wait_healthy(url, process)
        return len(self.fleet.urls) - 1

    async def restart_gateway(self, index: int) -> None:
        """Start gateway ``index`` again on its port (after it was killed)."""
        old = self.fleet.processes[index]
        stop_process(old)
        port = int(self.fleet.urls[index].rstrip("/").rpartition(":")[2])
        process = start_gateway(self.fleet.env, port)
        self.fleet.processes[index] = process
        await wait_healthy(self.fleet.urls[index], process)

    async def rpc(self, gateway: int, agent: str, method: str, params: list[Any]) -> dict[str, Any]:
        """One JSON-RPC call as ``agent`` through gateway ``gateway``."""
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        headers = {"Authorization": f"Bearer {self.tokens[agent]}"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.fleet.urls[gateway], json=body, headers=headers) as response,
        ):
            reply: dict[str, Any] = await response.json(content_type=None)
            return reply

    async def reconcile(self, *flags: str) -> str:
        """``walletgate reconcile`` (in a thread: the backend it asks runs in this loop)."""
        result = await asyncio.to_thread(self.fleet.cli, "reconcile", *flags)
        out: str = result.stdout
        return out

    async def outcomes_written(self, raws: Iterable[str], within: float = 30.0) -> None:
        """Wait until no audit row of these raw transactions says ``pending``: each
        forwarded spend's outcome reached PostgreSQL."""
        wanted = sorted(set(raws))
        deadline = time.monotonic() + within
        while True:
            pending = await self.fleet.rows(
                """SELECT id FROM transactions WHERE status = 'pending'
                      AND lower(request #>> '{params,0}') = ANY($1::text[])""",
                wanted,
            )
            if not pending:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(pending)} forwarded spends never got their outcome")
            await asyncio.sleep(0.1)

    async def use_open_nonces(self, sent: Iterable[Sent]) -> list[str]:
        """A lost transaction whose nonce is still open could yet be broadcast by anyone
        holding it, so reconcile rightly keeps it. Each agent moves on: it spends that
        nonce on a 1-wei transfer of its own, straight to the chain. Their hashes."""
        lost = [s for s in sent if s.outcome_unknown]
        hashes = []
        max_fee = FEE_PER_GAS
        for spender in self.spenders:
            count = await self.devnet.rpc("eth_getTransactionCount", [spender.address, "pending"])
            nonce = int(count, 16)
            if any(s.agent == spender.agent and s.nonce >= nonce for s in lost):
                recipient = "0x" + secrets.token_hex(20)
                raw = sign_transfer(spender, self.devnet.chain_id, nonce, recipient, 1, max_fee)
                await self.devnet.rpc("eth_sendRawTransaction", [raw])
                hashes.append(tx_hash_of(raw))
        return hashes

    async def counters_agree(self, witnesses: Witnesses, rule: str) -> None:
        """:func:`check_counters` on the fleet's Redis and database (see there)."""
        # walletgate's own client factory: the URL may name a Redis Cluster.
        client = connect_redis(self.fleet.env["WALLETGATE_REDIS_URL"], Settings(redis_timeout=5))
        pool = await asyncpg.create_pool(self.fleet.database_url, min_size=1, max_size=2)
        try:
            await check_counters(witnesses, rule, client, pool)
        finally:
            await pool.close()
            await client.aclose()

    def exited(self) -> list[int]:
        """Gateways that are no longer running."""
        return [i for i, p in enumerate(self.fleet.processes) if p.poll() is not None]


async def _issue_tokens(database_url: str, agents: Iterable[str]) -> dict[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        return {
            agent: (await issue_token(conn, agent, actor="fault-tests")).token for agent in agents
        }
    finally:
        await conn.close()


@asynccontextmanager
async def fault_world(
    *,
    postgres_server_url: str,
    migrated_template: str,
    redis_url: str,
    devnet: Devnet,
    backend: FaultyBackend,
    agents: int | list[Spender] = 8,
    gateways: int = 2,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[World]:
    """Gateways on a fresh database and ``redis_url`` (flushed by the caller), in front
    of ``backend``, with ``agents`` funded agents, new or given (see the module
    docstring)."""
    spenders = new_spenders(agents) if isinstance(agents, int) else agents
    await fund(devnet, spenders)
    async with running_fleet(
        postgres_server_url=postgres_server_url,
        migrated_template=migrated_template,
        redis_url=redis_url,
        backend_url=backend.url,
        chain_id=devnet.chain_id,
        document=document(devnet.chain_id, spenders, "warmup", 10**18),
        agent=spenders[0].agent,
        count=gateways,
        extra_env=env,
    ) as fleet:
        tokens = await _issue_tokens(fleet.database_url, (s.agent for s in spenders))
        yield World(fleet, backend, devnet, spenders, tokens)
