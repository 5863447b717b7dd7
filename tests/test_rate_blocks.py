"""Request-rate limits with quota leased in blocks (issue #13), across three real
``walletgate serve`` processes on one Redis, in front of the bench's stub backend.

A gateway takes several units of an agent's request budget in one counted Redis step
and spends them locally while the clock is in the bucket they were counted in. What is
proven here, with no timing assertion:

- never looser: for hypothesis-generated arrival patterns (bursts, spread-out reads,
  trickles, batches, several agents, one gateway or all three), the reads answered
  within any span of the window never exceed the limit. Each call is timed by the
  client (sent, answered), and a span counts only the calls that were sent and answered
  inside it, so it counts only admissions that surely happened inside it;
- unused quota does not carry over when the bucket moves on: a burst right after a
  bucket boundary, on a gateway that holds leftover units of the previous bucket, is
  still held to the limit;
- a slow agent alone is not starved by leases other processes hold: reading at a
  modest pace through all three gateways, it gets its whole limit, and no more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field

import aiohttp
import pytest
import pytest_asyncio
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import event as tally
from hypothesis import strategies as st

from tests.support.fleet import running_fleet
from tests.support.gateway import ROOT, free_port
from tests.support.lease_fleet import Gateways, Outcome, batch, call
from tests.support.spender_fleet import flush_redis

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHAIN_ID = 1337
GATEWAYS = 3
#: The window of the generated patterns' limits: a rolling 2 s, kept in 1 s buckets.
WINDOW = 2.0
#: After this long unused, an agent's counter holds nothing that still counts (the
#: window, the partly expired oldest bucket, and a bucket more for safety).
QUIET = WINDOW + 2.0
#: Limits of the generated patterns' agents: blocks of at most 1, 2, 4 and 6 units.
LIMITS = (6, 32, 64, 100)
AGENTS_PER_LIMIT = 8
SLOW_LIMIT = 32  # a minute: blocks of up to 2
CARRY_LIMIT = 64  # per WINDOW: blocks of up to 4
ENV = {
    # The proof is about counting, not timeouts: bursts of a hundred concurrent reads
    # must not be refused as unavailable because Redis took longer than 0.5 s.
    "WALLETGATE_REDIS_TIMEOUT": "5",
    "WALLETGATE_STATE_LEASE_MS": "2000",
}


def pattern_agent(limit: int, number: int) -> str:
    return f"p{limit}-{number}"


def rate_document() -> str:
    """Agents of every limit in :data:`LIMITS` (per :data:`WINDOW`), and the agents of
    the deterministic tests; each has its own agent-scoped request rate."""
    limits: dict[str, tuple[int, str]] = {
        pattern_agent(limit, number): (limit, f"{int(WINDOW)}s")
        for limit in LIMITS
        for number in range(AGENTS_PER_LIMIT)
    }
    limits["slow"] = (SLOW_LIMIT, "1m")
    limits["carry"] = (CARRY_LIMIT, f"{int(WINDOW)}s")
    document = {
        "version": 1,
        "owners": [{"id": "ops"}],
        "agents": [{"id": agent, "owner": "ops"} for agent in limits],
        "policies": [
            {
                "id": f"rate-{agent}",
                "agent": agent,
                "rules": [
                    {
                        "id": "requests",
                        "type": "rate_limit",
                        "counts": "requests",
                        "max": most,
                        "per": per,
                        "scope": "agent",
                    }
                ],
            }
            for agent, (most, per) in limits.items()
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)


def _answers(url: str) -> bool:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def stub_backend() -> Iterator[str]:
    """The bench's stub backend (fixed answers, fast) on a free port; its URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.stub_backend",
            "--port",
            str(port),
            "--chain-id",
            str(CHAIN_ID),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while not _answers(url):
            if process.poll() is not None:
                raise AssertionError(f"the stub backend exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError("the stub backend did not start")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Agents:
    """The pattern agents, each with its token, handed out only once nothing of an
    earlier use still counts (:data:`QUIET` after its last call)."""

    tokens: dict[str, str]
    free_at: dict[str, float] = field(default_factory=dict)

    async def take(self, limit: int, taken: Sequence[str]) -> str:
        candidates = [
            pattern_agent(limit, number)
            for number in range(AGENTS_PER_LIMIT)
            if pattern_agent(limit, number) not in taken
        ]
        agent = min(candidates, key=lambda name: self.free_at.get(name, 0.0))
        await asyncio.sleep(max(0.0, self.free_at.get(agent, 0.0) - time.monotonic()))
        return agent

    def used(self, agent: str) -> None:
        self.free_at[agent] = time.monotonic() + QUIET


@dataclass
class World:
    gateways: Gateways
    tokens: dict[str, str]
    agents: Agents
    session: aiohttp.ClientSession


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(
    postgres_server_url: str, migrated_template: str, redis_server_url: str
) -> AsyncIterator[World]:
    await flush_redis(redis_server_url)
    with stub_backend() as backend_url:
        async with running_fleet(
            postgres_server_url=postgres_server_url,
            migrated_template=migrated_template,
            redis_url=redis_server_url,
            backend_url=backend_url,
            chain_id=CHAIN_ID,
            document=rate_document(),
            agent="slow",
            count=GATEWAYS,
            extra_env=ENV,
        ) as fleet:
            gateways = Gateways(fleet.urls, fleet.processes, fleet.env, fleet.database_url)
            names = [pattern_agent(lim, n) for lim in LIMITS for n in range(AGENTS_PER_LIMIT)]
            tokens = {"slow": fleet.token}
            for name in [*names, "carry"]:
                tokens[name] = (await gateways.issue(name))[1]
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=60)
            ) as session:
                yield World(gateways, tokens, Agents(tokens), session)


# -- what was answered, and when ------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    """One call: the agent, when it was sent and answered (wall clock, the gateways'
    clock too), and what the gateway did with it."""

    agent: str
    sent: float
    done: float
    outcome: Outcome


async def timed_read(world: World, agent: str, gateway: int) -> list[Timed]:
    sent = time.time()
    outcome = await call(world.gateways.urls[gateway], world.tokens[agent], "eth_chainId",
                         session=world.session)  # fmt: skip
    return [Timed(agent, sent, time.time(), outcome)]


async def timed_batch(world: World, agent: str, gateway: int, size: int) -> list[Timed]:
    sent = time.time()
    outcomes = await batch(world.gateways.urls[gateway], world.tokens[agent], size,
                           session=world.session)  # fmt: skip
    done = time.time()
    return [Timed(agent, sent, done, outcome) for outcome in outcomes]


def most_answered_in_a_window(calls: Sequence[Timed], window: float) -> int:
    """The most calls answered within one span of ``window`` seconds, counting only
    calls sent and answered inside the span (their admission surely was inside it)."""
    answered = sorted((c.sent, c.done) for c in calls if c.outcome.answered)
    most = 0
    for start, _ in answered:
        inside = sum(1 for sent, done in answered if sent >= start and done <= start + window)
        most = max(most, inside)
    return most


def assert_never_looser(calls: Sequence[Timed], limit: int, window: float) -> None:
    unexpected = [c for c in calls if c.outcome.kind not in ("answered", "rate_limited")]
    assert not unexpected, unexpected[:5]
    most = most_answered_in_a_window(calls, window)
    assert most <= limit, f"{most} reads answered within {window} s against a limit of {limit}"


# -- generated arrival patterns ---------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Some reads of one agent, ``delay`` seconds after the previous event began."""

    delay: float
    agent: int  # which of the example's agents
    kind: str  # single, burst (concurrent), trickle (one after another), batch
    size: int
    gateway: int | None  # None: spread over every gateway


EVENTS = st.builds(
    Event,
    delay=st.sampled_from([0.0, 0.0, 0.02, 0.1, 0.3, 0.6, 1.0, 1.3, 2.2]),
    agent=st.integers(0, 2),
    kind=st.sampled_from(["single", "burst", "burst", "trickle", "batch"]),
    size=st.integers(1, 60),
    gateway=st.sampled_from([None, None, 0, 1, 2]),
)
#: Each example's agents (by limit), and its events (at most ~5 s of them).
PATTERNS = st.tuples(
    st.lists(st.sampled_from(LIMITS), min_size=1, max_size=3),
    st.lists(EVENTS, min_size=1, max_size=8),
)


async def play(world: World, event: Event, agent: str, seed: int) -> list[Timed]:
    chooser = random.Random(seed)

    def gateway(i: int) -> int:
        return event.gateway if event.gateway is not None else (i + chooser.randrange(3)) % 3

    if event.kind == "single":
        return await timed_read(world, agent, gateway(0))
    if event.kind == "batch":
        return await timed_batch(world, agent, gateway(0), event.size)
    if event.kind == "burst":
        parts = await asyncio.gather(
            *(timed_read(world, agent, gateway(i)) for i in range(event.size))
        )
        return [c for part in parts for c in part]
    calls: list[Timed] = []
    for i in range(min(event.size, 25)):  # trickle: one after another, a little apart
        calls += await timed_read(world, agent, gateway(i))
        await asyncio.sleep(0.03)
    return calls


@settings(
    max_examples=int(os.environ.get("WALLETGATE_LEASE_EXAMPLES", "6")),
    deadline=None,
    database=None,
    # Each example drives real processes for seconds: no explain phase.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
@given(pattern=PATTERNS, seed=st.integers(0, 2**32 - 1))
async def test_generated_arrivals_never_get_more_than_the_limit(
    world: World, pattern: tuple[list[int], list[Event]], seed: int
) -> None:
    limits, events = pattern
    agents: list[str] = []
    for limit in limits:
        agents.append(await world.agents.take(limit, agents))
    began = time.monotonic()
    offset, tasks = 0.0, []
    for number, event in enumerate(events):
        offset = min(offset + event.delay, 5.0)
        await asyncio.sleep(max(0.0, began + offset - time.monotonic()))
        agent = agents[event.agent % len(agents)]
        tasks.append(asyncio.create_task(play(world, event, agent, seed + number)))
    calls = [c for part in await asyncio.gather(*tasks) for c in part]
    for agent in agents:
        world.agents.used(agent)
    for agent, limit in zip(agents, limits, strict=True):
        mine = [c for c in calls if c.agent == agent]
        assert_never_looser(mine, limit, WINDOW)
        refused = any(c.outcome.kind == "rate_limited" for c in mine)
        tally(f"limit {limit}: {'some refused' if refused else 'none refused'}")


# -- the bucket moves on ----------------------------------------------------------------------


async def until_next_bucket(margin: float = 0.05) -> None:
    """Sleep into the next 1 s bucket (the windows of these limits have 1 s buckets)."""
    now = time.time()
    await asyncio.sleep(int(now) + 1 + margin - now)


@pytest.mark.parametrize("first", [9, CARRY_LIMIT - 4], ids=["few-first", "most-first"])
async def test_leftover_units_do_not_carry_into_the_next_bucket(world: World, first: int) -> None:
    agent = "carry"
    calls: list[Timed] = []
    for _round in range(2):
        # Quick reads one after another through gateway 0: its blocks grow (1, 2, 4, 4
        # units...), and it is left holding unused units of this bucket.
        await until_next_bucket()
        for _ in range(first):
            calls += await timed_read(world, agent, 0)
        # The bucket moves on (the previous one still counts in the window); then a
        # burst: many reads at once on that same gateway, every one of them meeting
        # its leftover block of the previous bucket.
        await until_next_bucket()
        parts = await asyncio.gather(*(timed_read(world, agent, 0) for _ in range(80)))
        calls += [c for part in parts for c in part]
        await asyncio.sleep(QUIET)
    assert_never_looser(calls, CARRY_LIMIT, WINDOW)


# -- a slow agent -----------------------------------------------------------------------------


async def test_a_slow_agent_alone_gets_its_whole_limit(world: World) -> None:
    # Reads a little apart, in turn through the three gateways: each gateway sees one
    # every half second or so, and none of them sits on units the others need.
    outcomes = []
    for i in range(SLOW_LIMIT):
        outcomes.append(await call(world.gateways.urls[i % GATEWAYS], world.tokens["slow"],
                                   "eth_chainId", session=world.session))  # fmt: skip
        await asyncio.sleep(0.15)
    assert [o.kind for o in outcomes] == ["answered"] * SLOW_LIMIT, outcomes
    over = [
        await call(url, world.tokens["slow"], "eth_chainId", session=world.session)
        for url in world.gateways.urls
    ]
    assert [o.kind for o in over] == ["rate_limited"] * GATEWAYS, over
