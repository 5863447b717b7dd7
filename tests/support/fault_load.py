"""Several agents spending through real gateways at once, for the fault tests.

Each agent has a wallet of its own, a fresh key funded on the devnet, and spends with
signed raw transactions (EIP-1559 transfers), each to a fresh recipient: a transaction's
hash is known before it is sent, so the chain, the backend's record and the audit log
can be matched one to one, and ``walletgate reconcile`` can settle every outcome.

An agent behaves as a careful client does. It sends one transaction at a time (nonces
must reach the chain in order), and when it cannot know whether a transaction went out
(the answer was lost, or the gateway died mid-request) it looks at the chain before it
reuses or moves past that nonce. It spends until its cap refuses it, while the test
changes the world under it (stops servers, kills processes) and then reads what
happened from :attr:`Load.sent`.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from tests.support.devnet import Devnet
from tests.support.spender_fleet import FEE, FEE_PER_GAS, GAS
from walletgate.config.amounts import from_base_units

#: Gas for a plain transfer, and what each agent's wallet is funded with.
#: Every transfer names its gas and fee per gas (those of the spender fleet), so
#: walletgate fills nothing and counts exactly ``value + FEE`` (fees are spending).
TRANSFER_GAS = GAS
FUNDING_WEI = 10**18
#: ``Sent.failure`` when the gateway could not be connected to (it is down).
NOT_CONNECTED = "not connected"


@dataclass(frozen=True)
class Spender:
    """An agent and its one wallet (a fresh key)."""

    agent: str
    wallet: str  # the wallet's id in the policy document
    key: str
    address: str  # lower case

    @classmethod
    def fresh(cls, agent: str) -> Spender:
        key = "0x" + secrets.token_hex(32)
        address = str(Account.from_key(key).address).lower()
        return cls(agent, f"{agent}-wallet", key, address)


def new_spenders(count: int, prefix: str = "agent") -> list[Spender]:
    return [Spender.fresh(f"{prefix}{i}") for i in range(count)]


async def fund(devnet: Devnet, spenders: Sequence[Spender]) -> None:
    """Give every wallet ``FUNDING_WEI`` from a devnet account (for value and gas)."""
    funder = devnet.accounts[-1].address
    for spender in spenders:
        tx = {"from": funder, "to": spender.address, "value": hex(FUNDING_WEI)}
        await devnet.rpc("eth_sendTransaction", [tx])


def document(chain_id: int, spenders: Sequence[Spender], rule: str, cap_wei: int) -> str:
    """One owner; each agent with its wallet; a daily ETH cap ``rule`` per wallet.

    A fresh ``rule`` name starts fresh counters, so scenarios do not share them.
    """
    agents = "\n".join(f"  - {{id: {s.agent}, owner: ops}}" for s in spenders)
    wallets = "\n".join(
        f"  - {{id: {s.wallet}, owner: ops, agent: {s.agent}, chain: {chain_id}, "
        f'address: "{s.address}"}}'
        for s in spenders
    )
    return f"""version: 1
owners: [{{id: ops}}]
agents:
{agents}
wallets:
{wallets}
assets:
  - {{id: eth, chain: {chain_id}, native: true, symbol: ETH, decimals: 18}}
policies:
  - id: budget
    owner: ops
    rules:
      - id: {rule}
        type: cumulative_cap
        asset: eth
        max: "{from_base_units(cap_wei, 18)}"
        window: 24h
        scope: wallet
"""


@dataclass(frozen=True)
class Sent:
    """One spend as the agent saw it."""

    agent: str
    wallet: str  # address
    recipient: str
    value: int
    nonce: int
    raw: str  # lower-case hex
    tx_hash: str
    gateway: int
    started: float  # time.monotonic()
    ended: float
    status: int | None  # HTTP status; None when no answer came
    reply: dict[str, Any] | None
    failure: str | None = None  # the transport error when no answer came

    @property
    def counted(self) -> int:
        """What walletgate counts for it: the value and the most its fee can cost."""
        return self.value + FEE

    @property
    def error(self) -> dict[str, Any]:
        error = (self.reply or {}).get("error")
        return error if isinstance(error, dict) else {}

    @property
    def reason(self) -> str | None:
        """walletgate's reason for a refusal (or ``backend_unknown``), else None."""
        data = self.error.get("data")
        return str(data["reason"]) if isinstance(data, dict) and "reason" in data else None

    @property
    def succeeded(self) -> bool:
        return self.reply is not None and "result" in self.reply

    @property
    def unavailable(self) -> bool:
        """Refused because walletgate could not decide (fail closed)."""
        return self.error.get("code") == -32002 and self.reason == "unavailable"

    @property
    def outcome_unknown(self) -> bool:
        """The agent cannot tell whether it went out: the answer was lost on the way."""
        return self.reason == "backend_unknown" or (self.reply is None and self.reached_gateway)

    @property
    def reached_gateway(self) -> bool:
        return self.failure != NOT_CONNECTED


def sign_transfer(
    spender: Spender, chain_id: int, nonce: int, to: str, value: int, max_fee: int
) -> str:
    fields = {
        "chainId": chain_id,
        "nonce": nonce,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": 1,
        "gas": TRANSFER_GAS,
        "to": to_checksum_address(to),
        "value": value,
    }
    signed = Account.sign_transaction(fields, spender.key)
    return "0x" + bytes(signed.raw_transaction).hex()


def tx_hash_of(raw: str) -> str:
    return "0x" + keccak(hexstr=raw).hex()


#: An agent refused for its cap this many times has spent its budget and stops.
CAPPED_AFTER = 2
#: Pauses (seconds) after a refusal: a capped agent backs off; a gateway that is down
#: or refusing everything is not hammered in a tight loop.
CAP_BACKOFF = 0.2
REFUSAL_PAUSE = 0.05


class Load:
    """Agents spending through ``urls`` (round robin), each until its cap refuses it
    ``CAPPED_AFTER`` times, it sent ``per_agent`` spends, or :meth:`stop` (see the
    module docstring). ``urls`` is read at every request, so a test may replace a
    gateway (same port) while the load runs."""

    def __init__(
        self,
        devnet: Devnet,
        urls: list[str],
        tokens: dict[str, str],
        spenders: Sequence[Spender],
        *,
        values: tuple[int, int],
        resolve_seconds: float = 2.0,
        per_agent: int = 100,
        seed: int = 0,
    ) -> None:
        self.devnet = devnet
        self.urls = urls
        self.tokens = tokens
        self.spenders = list(spenders)
        self.values = values
        self.resolve_seconds = resolve_seconds
        self.per_agent = per_agent
        self.seed = seed
        self.sent: list[Sent] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._max_fee = 0

    async def start(self) -> None:
        self._max_fee = FEE_PER_GAS
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        )
        self._tasks = [
            asyncio.create_task(self._agent(index, spender), name=f"agent-{spender.agent}")
            for index, spender in enumerate(self.spenders)
        ]

    async def stop(self) -> list[Sent]:
        """Stop after every agent's request in flight; returns every spend sent."""
        self._stop.set()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            if self._session is not None:
                await self._session.close()
        return self.sent

    def after(self, moment: float) -> list[Sent]:
        """Spends sent after ``moment`` (time.monotonic())."""
        return [s for s in self.sent if s.started > moment]

    def finished(self) -> bool:
        """True when every agent has stopped on its own (budget spent, or limit)."""
        return all(task.done() for task in self._tasks)

    def finished_agents(self) -> set[str]:
        """The agents that have stopped on their own."""
        return {s.agent for s, task in zip(self.spenders, self._tasks, strict=True) if task.done()}

    async def until(self, what: str, condition: Callable[[], bool], within: float = 60.0) -> None:
        """Wait until ``condition()`` holds (fails the test after ``within`` seconds, or
        when every agent stopped without it)."""
        deadline = time.monotonic() + within
        while not condition():
            for task in self._tasks:
                if task.done() and task.exception() is not None:
                    raise AssertionError(f"an agent failed: {task.exception()!r}")
            if time.monotonic() > deadline or self.finished():
                raise AssertionError(f"the load never reached: {what} ({self.summary()})")
            await asyncio.sleep(0.02)

    def summary(self) -> str:
        """How the spends so far were answered, most common first."""
        answers = Counter(
            "sent"
            if s.succeeded
            else s.reason or s.failure or str(s.error.get("message", s.reply))[:80]
            for s in self.sent
        )
        listed = ", ".join(f"{n} {answer}" for answer, n in answers.most_common())
        return f"{len(self.sent)} spends: {listed}"

    async def _pending_nonce(self, spender: Spender) -> int:
        count = await self.devnet.rpc("eth_getTransactionCount", [spender.address, "pending"])
        return int(count, 16)

    async def _resolve(self, sent: Sent) -> None:
        """Wait a little for a transaction whose outcome was lost to reach the chain."""
        deadline = time.monotonic() + self.resolve_seconds
        while time.monotonic() < deadline:
            if await self.devnet.rpc("eth_getTransactionReceipt", [sent.tx_hash]):
                return
            await asyncio.sleep(0.05)

    async def _post(
        self, gateway: int, token: str, raw: str
    ) -> tuple[int | None, dict[str, Any] | None, str | None]:
        assert self._session is not None
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw]}
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with self._session.post(
                self.urls[gateway % len(self.urls)], json=body, headers=headers
            ) as response:
                text = await response.text()
        except aiohttp.ClientConnectorError:
            return None, None, NOT_CONNECTED  # the request never left the agent
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, None, type(exc).__name__
        try:
            reply = json.loads(text)
        except ValueError:
            return response.status, None, f"HTTP {response.status}, not JSON: {text[:80]!r}"
        return response.status, reply if isinstance(reply, dict) else None, None

    async def _agent(self, index: int, spender: Spender) -> None:
        chooser = random.Random(self.seed * 1000 + index)
        token = self.tokens[spender.agent]
        nonce = await self._pending_nonce(spender)
        gateway, sent_count, capped = index, 0, 0
        while not self._stop.is_set() and sent_count < self.per_agent and capped < CAPPED_AFTER:
            gateway += 1
            sent_count += 1
            recipient = "0x" + chooser.randbytes(20).hex()
            value = chooser.randint(*self.values)
            raw = sign_transfer(
                spender, self.devnet.chain_id, nonce, recipient, value, self._max_fee
            )
            started = time.monotonic()
            status, reply, failure = await self._post(gateway, token, raw)
            sent = Sent(
                agent=spender.agent,
                wallet=spender.address,
                recipient=recipient,
                value=value,
                nonce=nonce,
                raw=raw.lower(),
                tx_hash=tx_hash_of(raw),
                gateway=gateway % len(self.urls),
                started=started,
                ended=time.monotonic(),
                status=status,
                reply=reply,
                failure=failure,
            )
            self.sent.append(sent)
            if sent.succeeded:
                nonce += 1
                continue
            if sent.reason == "cumulative_cap_exceeded":
                capped += 1
                await asyncio.sleep(CAP_BACKOFF)
                continue
            if sent.outcome_unknown:
                await self._resolve(sent)
            elif not sent.reached_gateway or sent.reason is not None:
                # Refused by walletgate, or the gateway is down: the nonce is unused.
                await asyncio.sleep(REFUSAL_PAUSE)
                continue
            # The chain refused it (a late transaction took the nonce), or its fate is
            # unknown: the chain says which nonce is next.
            nonce = await self._pending_nonce(spender)
