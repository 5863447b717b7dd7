"""The state lease protocol (issue #13) against real processes: three ``walletgate serve``
gateways with a short lease (600 ms), one PostgreSQL, a Valkey of this module's own
(which a test pauses), the devnet behind them.

A gateway serves reads from the policies and tokens in its memory, with no Redis trip,
while it holds a lease; ``policies apply`` and ``agents token revoke`` return only once
every live lease acknowledged the change or ran out. What is proven here, with no
timing assertion (no test measures how long anything took):

- once apply or revoke returns, every gateway judges its next request under the new
  state: a spend allowed before is refused, a read counted under a rate rule the apply
  added, a revoked token refused (401), including on a gateway that answered that
  token from memory a moment before, and with reads in flight across the change;
- also when the gateways hear no announcement (their subscriptions cut, SUBSCRIBE
  taken away by an ACL) or Redis lost the lease registry (FLUSHALL): then only the
  change's wait for the leases protects it (changes made with the service function,
  which returns within milliseconds, make that wait the only thing that can);
- a request whose headers (its token) reached the gateway before the change and whose
  body arrived after it returned is judged under the new state;
- a gateway paused (SIGSTOP) across the change does not stop the command from
  returning, and when it resumes, even the requests that queued up while it was
  paused are judged under the new state;
- a killed gateway (SIGKILL) does not stop it either, and the others serve the change;
- with Valkey paused, gateways cannot renew, stop trusting their memory and fail
  closed (reads too, unless ``reads_fail_open``), then recover when it resumes;
- a hypothesis state machine interleaves reads, pauses, resumes (with requests queued
  while paused), waits, lost announcements, Redis flushes, applies and revocations,
  checking every answer against a model of the last change that returned.

Changes are made with the CLI (a subprocess, as an operator does) or with the service
functions behind it, in this process.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import os
import secrets
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
import yaml
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.support.devnet import Devnet
from tests.support.faults import PrivateValkey, private_valkey
from tests.support.fleet import running_fleet
from tests.support.gateway import free_port, start_gateway, stop_process, wait_healthy
from tests.support.lease_fleet import Gateways, Outcome, call, kinds, outcome_of, read_call
from tests.support.spender_fleet import WALLET, fresh_recipient, transfer
from walletgate.config.settings import Settings
from walletgate.config.sources import checked_source
from walletgate.service.policies import apply_policies
from walletgate.service.tokens import revoke_agent_token
from walletgate.storage.runtime import Stores, open_stores

pytestmark = pytest.mark.asyncio(loop_scope="session")

LEASE_MS = 600
LEASE_ENV = {"WALLETGATE_STATE_LEASE_MS": str(LEASE_MS)}
GATEWAYS = 3
#: How long a test waits for something that must happen eventually (a liveness bound,
#: not a measurement: nothing asserts how long it took).
EVENTUALLY = 30.0
UNAVAILABLE = -32002

T = TypeVar("T")


def lease_document(
    chain_id: int, *, denied: Sequence[str] = (), read_limit: tuple[str, int] | None = None
) -> str:
    """Agents ``spender`` (wallet ``hot``, devnet key 3, under a roomy daily cap) and
    ``reader``; ``denied`` recipients refused; ``read_limit`` = (rule id, max): the
    reader's requests an hour."""
    spending: list[dict[str, Any]] = [
        {
            "id": "budget",
            "type": "cumulative_cap",
            "asset": "eth",
            "max": "1",
            "window": "24h",
            "scope": "wallet",
        }
    ]
    if denied:
        spending.append({"id": "denied", "type": "destination_denylist", "addresses": list(denied)})
    policies: list[dict[str, Any]] = [{"id": "spending", "wallet": "hot", "rules": spending}]
    if read_limit is not None:
        rule_id, most = read_limit
        policies.append(
            {
                "id": "reading",
                "agent": "reader",
                "rules": [
                    {
                        "id": rule_id,
                        "type": "rate_limit",
                        "counts": "requests",
                        "max": most,
                        "per": "1h",
                        "scope": "agent",
                    }
                ],
            }
        )
    document = {
        "version": 1,
        "owners": [{"id": "ops"}],
        "agents": [{"id": "spender", "owner": "ops"}, {"id": "reader", "owner": "ops"}],
        "wallets": [
            {"id": "hot", "owner": "ops", "agent": "spender", "chain": chain_id, "address": WALLET}
        ],
        "assets": [
            {"id": "eth", "chain": chain_id, "native": True, "symbol": "ETH", "decimals": 18}
        ],
        "policies": policies,
    }
    return yaml.safe_dump(document, sort_keys=False)


def fresh_rule() -> str:
    """A rate rule id never used before: its counter starts empty."""
    return f"reads-{secrets.token_hex(4)}"


@dataclass
class World:
    gateways: Gateways
    devnet: Devnet
    valkey: PrivateValkey
    stores: Stores  # for changes made with the service functions, in this process
    spender: str  # the spender's token
    directory: Path
    base: bool = True  # the base policy (nothing denied, no read limit) is in force

    async def apply(
        self,
        *,
        denied: Sequence[str] = (),
        read_limit: tuple[str, int] | None = None,
        via: str = "cli",
    ) -> None:
        """Apply the policy: ``walletgate policies apply`` in a subprocess, as an operator
        runs it (``via="cli"``), or the service function behind it, in this process
        (``via="service"``: it returns within milliseconds of the last acknowledgement).
        Returns when the change returned, having checked that it succeeded."""
        text = lease_document(self.devnet.chain_id, denied=denied, read_limit=read_limit)
        self.base = not denied and read_limit is None
        if via == "service":
            source = checked_source(text.encode(), "leases.yaml")
            applied = await apply_policies(self.stores, source, actor="lease-tests", cache_ttl=300)
            assert applied.announcement.ok, applied.announcement.error
            return
        path = self.directory / f"policies-{secrets.token_hex(4)}.yaml"
        path.write_text(text)
        await self.gateways.cli_async("policies", "apply", str(path))

    async def revoke(self, token_id: str, *, via: str = "cli") -> None:
        """Revoke a token: ``walletgate agents token revoke`` or the service function
        (see :meth:`apply`); returns when the change returned."""
        if via == "service":
            revoked = await revoke_agent_token(
                self.stores, token_id, actor="lease-tests", cache_ttl=300
            )
            assert revoked.announcement.ok, revoked.announcement.error
            return
        await self.gateways.cli_async("agents", "token", "revoke", token_id)

    async def read(self, index: int, token: str) -> Outcome:
        return await call(self.gateways.urls[index], token, "eth_chainId")

    async def spend(self, index: int, recipient: str) -> Outcome:
        """1 wei from the spender's wallet to ``recipient`` (the devnet signs and mines)."""
        return await call(
            self.gateways.urls[index], self.spender, "eth_sendTransaction", transfer(recipient, 1)
        )

    def lose_announcements(self, lost: bool = True) -> None:
        """While ``lost``, the gateways hear no announcement: their subscriptions are cut
        (``CLIENT KILL TYPE pubsub``) and may not be made again (an ACL takes SUBSCRIBE
        away; PUBLISH still works). Only their leases then stand between them and stale
        state. ``lost=False`` gives SUBSCRIBE back (they subscribe again by themselves)."""
        commands = ("subscribe", "psubscribe", "ssubscribe")
        change = [("-" if lost else "+") + command for command in commands]
        with self.valkey.client() as client:
            client.execute_command("ACL", "SETUSER", "default", *change)
            if lost:
                client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")

    @contextlib.contextmanager
    def announcements_lost(self) -> Iterator[None]:
        self.lose_announcements()
        try:
            yield
        finally:
            self.lose_announcements(False)

    async def leases_held(self, indices: Sequence[int]) -> None:
        """Wait until each of these gateways reports a valid state lease (when it exports
        ``walletgate_state_lease_valid``): the change that follows meets live leases."""
        for index in indices:
            await eventually(
                f"gateway {index} holds a state lease",
                functools.partial(self.gateways.lease_valid, index),
                lambda valid: valid is None or valid == 1.0,
            )


async def eventually(
    what: str,
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    pause: float = 0.05,
) -> T:
    """Probe until ``done`` holds (fails after :data:`EVENTUALLY` seconds)."""
    deadline = time.monotonic() + EVENTUALLY
    while True:
        found = await probe()
        if done(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what} (last seen: {found!r})")
        await asyncio.sleep(pause)


@pytest.fixture(scope="module")
def valkey() -> Iterator[PrivateValkey]:
    with private_valkey() as server:
        try:
            yield server
        finally:
            if server.process is not None and server.process.poll() is None:
                server.process.send_signal(signal.SIGCONT)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(
    postgres_server_url: str, migrated_template: str, devnet: Devnet, valkey: PrivateValkey
) -> AsyncIterator[World]:
    with tempfile.TemporaryDirectory(prefix="walletgate-leases-") as directory:
        async with running_fleet(
            postgres_server_url=postgres_server_url,
            migrated_template=migrated_template,
            redis_url=valkey.url,
            backend_url=devnet.url,
            chain_id=devnet.chain_id,
            document=lease_document(devnet.chain_id),
            agent="reader",
            count=GATEWAYS,
            extra_env=LEASE_ENV,
        ) as fleet:
            gateways = Gateways(fleet.urls, fleet.processes, fleet.env, fleet.database_url)
            settings_ = Settings(
                database_url=fleet.database_url, redis_url=valkey.url, state_lease_ms=LEASE_MS
            )
            try:
                async with open_stores(settings_) as stores:
                    _, spender = await gateways.issue("spender")
                    yield World(gateways, devnet, valkey, stores, spender, Path(directory))
            finally:
                gateways.resume_all()


@pytest_asyncio.fixture(loop_scope="session", autouse=True)
async def every_gateway_running(world: World) -> AsyncIterator[None]:
    """Each test starts with every gateway running and the base policy applied, and
    leaves them running."""
    if not world.base:
        await world.apply(via="service")
    yield
    world.gateways.resume_all()
    for index, process in enumerate(world.gateways.processes):
        if process.poll() is not None:
            await world.gateways.restart(index)


async def warm(world: World, token: str, indices: Sequence[int] = range(GATEWAYS)) -> None:
    """Each gateway answers ``token`` a few times (it then holds it in memory)."""
    for index in indices:
        for _ in range(3):
            assert (await world.read(index, token)).answered


# -- after the change returns, every gateway judges under it ----------------------------------


async def test_after_apply_returns_every_gateway_judges_under_the_new_policy(
    world: World,
) -> None:
    _, reader = await world.gateways.issue("reader")
    recipient = fresh_recipient()
    await warm(world, reader)
    for index in range(GATEWAYS):
        assert (await world.spend(index, recipient)).answered
    await world.leases_held(range(GATEWAYS))

    # A read limit of one an hour: the first read after the return is the one.
    await world.apply(read_limit=(fresh_rule(), 1))
    reads = [await world.read(index, reader) for index in (0, 1, 2, 0)]
    assert kinds(reads) == ["answered", "rate_limited", "rate_limited", "rate_limited"], reads

    # The limit lifted and the recipient denied: spends allowed before are refused now.
    await world.apply(denied=[recipient])
    spends = [await world.spend(index, recipient) for index in range(GATEWAYS)]
    assert kinds(spends) == ["destination_denied"] * GATEWAYS, spends
    reads = [await world.read(index, reader) for index in range(GATEWAYS)]
    assert kinds(reads) == ["answered"] * GATEWAYS, reads


async def test_after_revoke_returns_no_gateway_accepts_the_token(world: World) -> None:
    token_id, revoked = await world.gateways.issue("reader")
    _, kept = await world.gateways.issue("reader")
    await warm(world, revoked)
    await warm(world, kept)
    await world.leases_held(range(GATEWAYS))

    await world.revoke(token_id)
    refused = [await world.read(index, revoked) for index in range(GATEWAYS)]
    assert all(o.unauthorized for o in refused), refused
    assert all(o.answered for o in [await world.read(index, kept) for index in range(GATEWAYS)])
    again = [await world.read(index, revoked) for index in range(GATEWAYS)]
    assert all(o.unauthorized for o in again), again


@dataclass
class Traffic:
    """Reads sent over and over through every gateway, each noted with when it was sent."""

    world: World
    token: str
    sent: list[tuple[float, int, Outcome]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, per_gateway: int = 2) -> None:
        for index in range(GATEWAYS):
            for _ in range(per_gateway):
                self._tasks.append(asyncio.create_task(self._run(index)))

    async def _run(self, index: int) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.sent.append((started, index, await self.world.read(index, self.token)))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def sent_after(self, moment: float) -> list[Outcome]:
        return [outcome for started, _, outcome in self.sent if started > moment]

    def sent_before(self, moment: float) -> list[Outcome]:
        return [outcome for started, _, outcome in self.sent if started < moment]


async def test_reads_in_flight_across_a_revocation(world: World) -> None:
    token_id, token = await world.gateways.issue("reader")
    await warm(world, token)
    traffic = Traffic(world, token)
    traffic.start()
    try:
        await eventually(
            "reads answered", lambda: asyncio.sleep(0.05), lambda _: len(traffic.sent) > 30
        )
        await world.revoke(token_id)
        returned = time.monotonic()
        await eventually(
            "reads sent after the revocation returned",
            lambda: asyncio.sleep(0.05),
            lambda _: len(traffic.sent_after(returned)) >= 30,
        )
    finally:
        await traffic.stop()
    after = traffic.sent_after(returned)
    assert all(o.unauthorized for o in after), [o for o in after if not o.unauthorized]
    assert any(o.answered for o in traffic.sent_before(returned))


async def test_reads_in_flight_across_an_apply(world: World) -> None:
    _, token = await world.gateways.issue("reader")
    await warm(world, token)
    traffic = Traffic(world, token)
    traffic.start()
    try:
        await eventually(
            "reads answered", lambda: asyncio.sleep(0.05), lambda _: len(traffic.sent) > 30
        )
        await world.apply(read_limit=(fresh_rule(), 1))
        returned = time.monotonic()
        await eventually(
            "reads sent after the apply returned",
            lambda: asyncio.sleep(0.05),
            lambda _: len(traffic.sent_after(returned)) >= 30,
        )
    finally:
        await traffic.stop()
    after = traffic.sent_after(returned)
    # Under the new policy one read an hour fits, and every other is refused for it.
    assert sum(o.answered for o in after) <= 1, kinds(after)
    assert {o.kind for o in after} <= {"answered", "rate_limited"}, kinds(after)
    assert sum(o.answered for o in traffic.sent_before(returned)) > 1


@pytest.mark.parametrize("via", ["cli", "service"])
async def test_lost_announcements_leave_no_gateway_on_the_old_state(world: World, via: str) -> None:
    token_id, revoked = await world.gateways.issue("reader")
    _, limited = await world.gateways.issue("reader")
    await warm(world, revoked)
    await warm(world, limited)
    await world.leases_held(range(GATEWAYS))

    with world.announcements_lost():
        await world.revoke(token_id, via=via)
        refused = [await world.read(index, revoked) for index in range(GATEWAYS)]
        assert all(o.unauthorized for o in refused), refused

        await world.leases_held(range(GATEWAYS))
        await world.apply(read_limit=(fresh_rule(), 1), via=via)
        reads = [await world.read(index, limited) for index in (0, 1, 2, 0)]
        assert kinds(reads) == ["answered", "rate_limited", "rate_limited", "rate_limited"], reads


async def test_after_redis_lost_the_leases_a_change_still_waits_them_out(world: World) -> None:
    # FLUSHALL takes the lease registry with it (as a restart without persistence
    # would): a change cannot know who holds a lease and waits a full term instead.
    # The gateways hear nothing meanwhile, so only that wait protects the change.
    token_id, revoked = await world.gateways.issue("reader")
    await warm(world, revoked)
    await world.leases_held(range(GATEWAYS))
    with world.announcements_lost():
        with world.valkey.client() as client:
            client.flushall()
        await world.revoke(token_id, via="service")
        refused = [await world.read(index, revoked) for index in range(GATEWAYS)]
    assert all(o.unauthorized for o in refused), refused


async def slow_body_read(
    url: str, token: str
) -> tuple[asyncio.StreamWriter, Callable[[], Awaitable[Outcome]]]:
    """Start a read whose body comes later: the request line and headers (the token)
    are sent now; the returned function sends the body and returns the outcome."""
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = json.dumps(read_call()).encode()
    head = (
        f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(head.encode())
    await writer.drain()

    async def finish() -> Outcome:
        writer.write(body)
        await writer.drain()
        response = await reader.read()
        status_line, _, rest = response.partition(b"\r\n")
        status = int(status_line.split()[1])
        payload = rest.partition(b"\r\n\r\n")[2]
        return outcome_of(status, json.loads(payload) if payload.strip() else None)

    return writer, finish


@pytest.mark.parametrize("via", ["cli", "service"])
@pytest.mark.parametrize("change", ["revoke", "apply"])
async def test_a_request_whose_body_arrives_after_the_change_returned_is_judged_under_it(
    world: World, change: str, via: str
) -> None:
    # The gateway has the request's token (in its headers) before the change, and its
    # body only after the change returned: it is decided after the return, so it must
    # be decided on the new state, as every request was before leases (its first Redis
    # trip proved the state version, after the body).
    token_id, token = await world.gateways.issue("reader")
    await warm(world, token)
    await world.leases_held(range(GATEWAYS))
    started = [await slow_body_read(url, token) for url in world.gateways.urls]
    try:
        await asyncio.sleep(0.2)  # the gateways have read the headers by now
        if change == "revoke":
            await world.revoke(token_id, via=via)
        else:
            await world.apply(read_limit=(fresh_rule(), 1), via=via)
        outcomes = [await finish() for _writer, finish in started]
    finally:
        for writer, _finish in started:
            writer.close()
    if change == "revoke":
        assert all(o.unauthorized for o in outcomes), outcomes
    else:  # one read an hour: one of the three at most
        assert sorted(kinds(outcomes)) == ["answered", "rate_limited", "rate_limited"], outcomes


# -- a paused gateway -----------------------------------------------------------------------


@pytest.mark.parametrize("via", ["cli", "service"])
@pytest.mark.parametrize("queued", [True, False], ids=["queued-while-paused", "sent-after"])
async def test_a_paused_gateway_judges_its_first_requests_under_the_new_state(
    world: World, queued: bool, via: str
) -> None:
    token_id, revoked = await world.gateways.issue("reader")
    _, limited = await world.gateways.issue("reader")
    recipient = fresh_recipient()
    await warm(world, revoked)
    await warm(world, limited)
    assert (await world.spend(2, recipient)).answered
    await world.leases_held(range(GATEWAYS))

    world.gateways.pause(2)
    # Both commands return although gateway 2 holds a lease it cannot acknowledge.
    await world.revoke(token_id, via=via)
    await world.apply(denied=[recipient], read_limit=(fresh_rule(), 1), via=via)
    first: list[Coroutine[Any, Any, Outcome]] = [
        world.read(2, revoked),
        world.spend(2, recipient),
        world.read(2, limited),
        world.read(2, limited),
    ]
    if queued:
        # Sent now, they wait in the paused gateway's listen queue: it meets them at
        # once when it resumes, before anything else it has to do.
        tasks = [asyncio.create_task(coroutine) for coroutine in first]
        await asyncio.sleep(0.1)  # let the requests reach its socket
        world.gateways.resume(2)
        outcomes = await asyncio.gather(*tasks)
    else:
        world.gateways.resume(2)
        outcomes = [await outcome for outcome in first]
    revoked_read, spend, *limited_reads = outcomes
    assert revoked_read.unauthorized, revoked_read
    assert spend.kind == "destination_denied", spend
    assert sorted(kinds(limited_reads)) == ["answered", "rate_limited"], limited_reads
    # The running ones, too.
    others = [await world.read(i, revoked) for i in range(GATEWAYS)]
    assert all(o.unauthorized for o in others), others
    assert kinds([await world.read(i, limited) for i in range(GATEWAYS)]) == ["rate_limited"] * 3


# -- a killed gateway -----------------------------------------------------------------------


async def test_a_killed_gateway_does_not_hold_up_apply_or_revoke(world: World) -> None:
    token_id, revoked = await world.gateways.issue("reader")
    _, limited = await world.gateways.issue("reader")
    recipient = fresh_recipient()
    await warm(world, revoked)
    await warm(world, limited)
    await world.leases_held(range(GATEWAYS))

    world.gateways.kill(1)  # its lease stays in Redis, unacknowledged, until it expires
    await world.apply(denied=[recipient], read_limit=(fresh_rule(), 1))
    await world.revoke(token_id)
    for index in (0, 2):
        assert (await world.read(index, revoked)).unauthorized
        assert (await world.spend(index, recipient)).kind == "destination_denied"
    limited_reads = [await world.read(index, limited) for index in (0, 2, 0)]
    assert kinds(limited_reads) == ["answered", "rate_limited", "rate_limited"]

    await world.gateways.restart(1)
    assert (await world.read(1, revoked)).unauthorized
    assert (await world.spend(1, recipient)).kind == "destination_denied"
    assert (await world.read(1, limited)).kind == "rate_limited"


# -- Valkey paused ----------------------------------------------------------------------------


async def test_with_valkey_paused_gateways_stop_trusting_memory_and_fail_closed(
    world: World, valkey: PrivateValkey
) -> None:
    port = free_port()
    fail_open_url = f"http://127.0.0.1:{port}/"
    fail_open = start_gateway({**world.gateways.env, "WALLETGATE_READS_FAIL_OPEN": "1"}, port)
    try:
        await wait_healthy(fail_open_url, fail_open)
        _, token = await world.gateways.issue("reader")
        recipient = fresh_recipient()
        await warm(world, token)
        assert (await call(fail_open_url, token, "eth_chainId")).answered
        assert (await call(fail_open_url, world.spender, "eth_blockNumber")).answered
        for index in range(GATEWAYS):
            assert (await world.spend(index, recipient)).answered
        await world.leases_held(range(GATEWAYS))

        assert valkey.process is not None
        valkey.process.send_signal(signal.SIGSTOP)
        try:
            await check_fail_closed(world, token, recipient, fail_open_url)
        finally:
            valkey.process.send_signal(signal.SIGCONT)

        for index in range(GATEWAYS):
            await eventually(
                f"gateway {index} reads again",
                functools.partial(world.read, index, token),
                lambda outcome: outcome.answered,
            )
            await eventually(
                f"gateway {index} spends again",
                functools.partial(world.spend, index, recipient),
                lambda outcome: outcome.answered,
            )
        await world.leases_held(range(GATEWAYS))
    finally:
        stop_process(fail_open)


async def check_fail_closed(world: World, token: str, recipient: str, fail_open_url: str) -> None:
    """With Valkey paused: each gateway stops answering from memory once its lease is
    gone, and from then on refuses every read and spend as unavailable."""
    for index in range(GATEWAYS):
        await eventually(
            f"gateway {index} refuses reads",
            functools.partial(world.read, index, token),
            lambda outcome: not outcome.answered,
        )
    for index in range(GATEWAYS):
        reads = [await world.read(index, token) for _ in range(3)]
        assert all(o.code == UNAVAILABLE for o in reads), reads
        spend = await world.spend(index, recipient)
        assert spend.code == UNAVAILABLE and spend.kind == "unavailable", spend
        valid = await world.gateways.lease_valid(index)
        assert valid in (None, 0.0), valid
    # reads_fail_open: the agent it knows may still read; a spend is still refused.
    assert (await call(fail_open_url, token, "eth_chainId")).answered
    spend = await call(fail_open_url, world.spender, "eth_sendTransaction", transfer(recipient, 1))
    assert spend.kind == "unavailable", spend


# -- a state machine of the protocol ------------------------------------------------------


def in_loop(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` in ``loop`` (the test's, where the fixtures live) from the
    thread the state machine runs in."""
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=120)


@dataclass
class Model:
    """What every gateway must answer the reader: its current token, the tokens revoked,
    and the read limit in force (max, reads counted under it)."""

    token: str
    token_id: str
    revoked: list[str] = field(default_factory=list)
    limit: int | None = None
    used: int = 0

    def expected(self, token: str) -> str:
        if token in self.revoked:
            return "unauthorized"
        if self.limit is not None and self.used >= self.limit:
            return "rate_limited"
        return "answered"


class LeaseProtocol(RuleBasedStateMachine):
    """Reads, pauses, resumes, waits, applies and revocations in any order; every answer
    is checked against :class:`Model`, which changes only when a change has returned.
    So "after apply's or revoke's wait returns, no gateway trusts an older version" is
    checked on every read, including the first ones of a gateway just resumed."""

    world: World
    loop: asyncio.AbstractEventLoop
    tally: collections.Counter[str]  # steps taken, by kind (printed at the end)

    def __init__(self) -> None:
        super().__init__()
        self.model: Model | None = None
        self.announcements_lost = False

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return in_loop(self.loop, coroutine)

    @initialize()
    def start(self) -> None:
        self.world.gateways.resume_all()
        self.change(None)
        token_id, token = self.run(self.world.gateways.issue("reader"))
        self.model = Model(token, token_id)

    def change(self, limit: int | None) -> None:
        read_limit = None if limit is None else (fresh_rule(), limit)
        self.run(self.world.apply(read_limit=read_limit, via="service"))

    def check_read(self, index: int, token: str) -> None:
        assert self.model is not None
        outcome = self.run(self.world.read(index, token))
        expected = self.model.expected(token)
        self.tally[f"read {expected}"] += 1
        assert outcome.kind == expected, (index, outcome, self.model)
        if outcome.answered:
            self.model.used += 1

    def pick(self, index: int) -> int:
        running = self.world.gateways.running()
        return running[index % len(running)]

    @rule(index=st.integers(0, GATEWAYS - 1), revoked=st.booleans())
    def read(self, index: int, revoked: bool) -> None:
        assert self.model is not None
        token = self.model.revoked[-1] if revoked and self.model.revoked else self.model.token
        self.check_read(self.pick(index), token)

    @precondition(lambda self: len(self.world.gateways.paused) < GATEWAYS - 1)
    @rule(index=st.integers(0, GATEWAYS - 1))
    def pause(self, index: int) -> None:
        self.world.gateways.pause(self.pick(index))
        self.tally["pause"] += 1

    @precondition(lambda self: bool(self.world.gateways.paused))
    @rule(data=st.data(), queued=st.booleans())
    def resume(self, data: st.DataObject, queued: bool) -> None:
        assert self.model is not None
        index = data.draw(st.sampled_from(sorted(self.world.gateways.paused)))
        tokens = [self.model.token, *self.model.revoked[-1:]]
        self.tally["resume, requests queued" if queued else "resume"] += 1
        if not queued:
            self.world.gateways.resume(index)
            return
        # Requests wait in its listen queue and meet it the moment it resumes.
        expected = {token: self.model.expected(token) for token in tokens}

        async def queue_then_resume() -> list[Outcome]:
            tasks = [asyncio.create_task(self.world.read(index, t)) for t in tokens]
            await asyncio.sleep(0.2)
            self.world.gateways.resume(index)
            return list(await asyncio.gather(*tasks))

        outcomes = self.run(queue_then_resume())
        for token, outcome in zip(tokens, outcomes, strict=True):
            self.tally[f"read queued while paused, {expected[token]}"] += 1
            assert outcome.kind == expected[token], (index, outcome, self.model)
            if outcome.answered:
                self.model.used += 1

    @rule(lost=st.booleans())
    def announcements(self, lost: bool) -> None:
        self.world.lose_announcements(lost)
        self.announcements_lost = lost
        self.tally["announcements lost" if lost else "announcements heard"] += 1

    @rule()
    def flush(self) -> None:
        """Redis loses everything (the lease registry, the version key, the counters:
        request counts start again from zero)."""
        assert self.model is not None
        with self.world.valkey.client() as client:
            client.flushall()
        self.model.used = 0
        self.tally["redis flushed"] += 1

    @rule(seconds=st.sampled_from([0.0, 0.1, 0.25, 0.45, 0.7]))
    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    @rule()
    def revoke(self) -> None:
        assert self.model is not None
        self.run(self.world.revoke(self.model.token_id, via="service"))
        self.tally[f"revoke, {self.situation()}"] += 1
        self.model.revoked.append(self.model.token)
        for index in self.world.gateways.running():
            self.check_read(index, self.model.token)
        token_id, token = self.run(self.world.gateways.issue("reader"))
        self.model.token, self.model.token_id = token, token_id

    @rule(limit=st.sampled_from([None, 1, 2, 3]))
    def apply(self, limit: int | None) -> None:
        assert self.model is not None
        self.change(limit)
        self.tally[f"apply, {self.situation()}"] += 1
        self.model.limit, self.model.used = limit, 0
        for index in self.world.gateways.running():
            self.check_read(index, self.model.token)

    def situation(self) -> str:
        lost = ", announcements lost" if self.announcements_lost else ""
        return f"{len(self.world.gateways.paused)} paused{lost}"

    def teardown(self) -> None:
        self.world.gateways.resume_all()
        self.world.lose_announcements(False)


async def test_a_state_machine_of_the_protocol(world: World) -> None:
    tally: collections.Counter[str] = collections.Counter()
    bound = {"world": world, "loop": asyncio.get_running_loop(), "tally": tally}
    machine = type("BoundLeaseProtocol", (LeaseProtocol,), bound)
    run_settings = settings(
        max_examples=int(os.environ.get("WALLETGATE_LEASE_EXAMPLES", "6")),
        stateful_step_count=20,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    # In a thread of its own: each step runs its I/O in this loop (in_loop).
    await asyncio.to_thread(run_state_machine_as_test, machine, settings=run_settings)
    print("state machine steps:", dict(sorted(tally.items())))
