"""A real ``walletgate serve`` whose backends record every request: proof of what it forwards.

The gateway runs as a subprocess (stdout and stderr captured to a file, so tests can
read what it logs) in front of :class:`RecordingBackend` s that pass requests on to the
session devnet. Three backends are configured:

- ``default`` (``POST /``): plain, at ``/default``;
- ``keyed`` (``POST /rpc/keyed``): with a secret in the URL path, one in the query and
  one in a header, which must reach the backend and nothing else;
- ``bouncing`` (``POST /rpc/bouncing``): answers 302 to a second recorder, which must
  never see a request;
- ``broken`` (``POST /rpc/broken``): the same secrets as ``keyed``, but it answers 500
  with an HTML page, so error paths are exercised with secrets configured.

Two agents, ``alice`` and ``bob``, each own one devnet wallet (keys 4 and 5); the
policies below let alice pay three counterparties small amounts and sign messages, so a
refusal in these tests is about the boundary under test, not a missing permission.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import secrets
import socket
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import yaml
from eth_account import Account

from tests.support.devnet import Devnet
from tests.support.gateway import (
    free_port,
    issue_token,
    start_gateway,
    stop_process,
    wait_healthy,
    walletgate_cli,
)
from tests.support.recording_backend import RecordingBackend, recording_backend
from tests.support.servers import scratch_database
from walletgate.config.documents import compile_document, parse_document
from walletgate.policies.model import PolicySet

ALICE_KEY = 4
BOB_KEY = 5
COUNTERPARTY_KEYS = (6, 7, 8)
STRANGER_KEY = 10
ETH = 10**18


def private_key(n: int) -> str:
    return "0x" + n.to_bytes(32, "big").hex()


def address(n: int) -> str:
    """The canonical (lowercase) address of devnet key ``n``."""
    return str(Account.from_key(private_key(n)).address).lower()


ALICE = address(ALICE_KEY)
BOB = address(BOB_KEY)
COUNTERPARTIES = tuple(address(n) for n in COUNTERPARTY_KEYS)
STRANGER = address(STRANGER_KEY)


def policy_document(token_address: str) -> str:
    """The policy document of the recorded gateway (YAML text)."""
    document = {
        "version": 1,
        "owners": [{"id": "lab", "name": "Security lab"}],
        "agents": [{"id": "alice", "owner": "lab"}, {"id": "bob", "owner": "lab"}],
        "wallets": [
            {"id": "alice-hot", "owner": "lab", "agent": "alice", "chain": 1337, "address": ALICE},
            {"id": "bob-hot", "owner": "lab", "agent": "bob", "chain": 1337, "address": BOB},
        ],
        "assets": [
            {
                "id": "eth",
                "chain": 1337,
                "native": True,
                "symbol": "ETH",
                "decimals": 18,
                "price_usd": "3000.00",
                "price_as_of": "2026-01-01T00:00:00Z",
                "price_max_age": "3650d",
            },
            {
                "id": "wusd",
                "chain": 1337,
                "address": token_address.lower(),
                "symbol": "WUSD",
                "decimals": 6,
                "price_usd": "1.00",
                "price_as_of": "2026-01-01T00:00:00Z",
                "price_max_age": "3650d",
            },
        ],
        "policies": [
            {
                "id": "lab-baseline",
                "owner": "lab",
                "rules": [
                    {"id": "chains", "type": "chain_allowlist", "chains": [1337]},
                    {"id": "assets", "type": "asset_allowlist", "assets": ["eth", "wusd"]},
                    {
                        "id": "approvals",
                        "type": "approval_limit",
                        "asset": "wusd",
                        "max": "500",
                        "allow_unlimited": False,
                    },
                ],
            },
            _agent_policy("alice"),
            _agent_policy("bob"),
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)


def _agent_policy(agent: str) -> dict[str, Any]:
    return {
        "id": f"{agent}-limits",
        "agent": agent,
        "rules": [
            {"id": "eth-per-tx", "type": "per_tx_cap", "asset": "eth", "max": "0.01"},
            {"id": "wusd-per-tx", "type": "per_tx_cap", "asset": "wusd", "max": "100"},
            {
                "id": "eth-daily",
                "type": "cumulative_cap",
                "asset": "eth",
                "max": "1000",
                "window": "24h",
                "scope": "wallet",
            },
            {
                "id": "counterparties",
                "type": "destination_allowlist",
                "addresses": list(COUNTERPARTIES),
            },
            {
                "id": "signing",
                "type": "signing_allowlist",
                "methods": [
                    "eth_sign",
                    "personal_sign",
                    "eth_signTypedData",
                    "eth_signTypedData_v3",
                    "eth_signTypedData_v4",
                ],
                # Every typed document these tests send, whatever it is: a typed-data
                # method alone admits none (tests/test_signing_allowlist.py judges them).
                "allow_any_typed_data_unsafe": True,
            },
            # Generous: fuzzing sends many requests, and a rate limit must not hide them.
            {
                "id": "requests",
                "type": "rate_limit",
                "counts": "requests",
                "max": 1_000_000,
                "per": "1m",
                "scope": "agent",
            },
        ],
    }


@dataclass(frozen=True)
class Secrets:
    """Backend credentials that must reach the ``keyed`` backend and nobody else."""

    path: str = field(default_factory=lambda: "pathkey" + secrets.token_hex(12))
    query: str = field(default_factory=lambda: "querykey" + secrets.token_hex(12))
    header: str = field(default_factory=lambda: "headerkey" + secrets.token_hex(12))

    def all(self) -> tuple[str, str, str]:
        return (self.path, self.query, self.header)


@dataclass(frozen=True)
class RawReply:
    """What came back on a raw connection: the bytes, and whether the server closed it."""

    data: bytes
    closed: bool

    @property
    def status(self) -> int | None:
        """The HTTP status, or None when no response line came back."""
        line = self.data.split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) >= 2 and line[1].isdigit() else None

    @property
    def head(self) -> str:
        return self.data.split(b"\r\n\r\n", 1)[0].decode("latin-1")

    @property
    def body(self) -> bytes:
        return self.data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self.data else b""

    def json(self) -> Any:
        return json.loads(self.body)


def _complete(data: bytes) -> bool:
    """True once ``data`` holds a whole response with a Content-Length body."""
    if b"\r\n\r\n" not in data:
        return False
    head, body = data.split(b"\r\n\r\n", 1)
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def read_reply(sock: socket.socket, *, until_closed: bool, timeout: float = 60.0) -> RawReply:
    """Read a response from ``sock``: until the server closes the connection, or (with
    ``until_closed=False``) until one whole response has arrived. The timeout is only a
    safety net against a test hanging forever; nothing is asserted about time."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return RawReply(data, closed=True)
        except TimeoutError:
            raise AssertionError(f"no answer after {timeout}s; got {data[:200]!r}") from None
        if not chunk:
            return RawReply(data, closed=True)
        data += chunk
        if not until_closed and _complete(data):
            return RawReply(data, closed=False)


@dataclass
class RecordedGateway:
    """A running gateway, its recorders, its agents' tokens and its log file."""

    host: str
    port: int
    env: dict[str, str]
    tokens: dict[str, str]
    database_url: str
    redis_url: str
    backend: RecordingBackend
    elsewhere: RecordingBackend
    secrets: Secrets
    log_path: Path
    policies: PolicySet
    devnet: Devnet

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def log(self) -> str:
        """Everything the gateway process printed so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def post(
        self,
        body: bytes,
        *,
        token: str | None = None,
        agent: str = "alice",
        path: str = "/",
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> tuple[int, bytes]:
        """POST ``body`` synchronously (usable from hypothesis tests); the token of
        ``agent`` goes in the Authorization header unless ``token`` is given ("" for none).
        """
        token = self.tokens[agent] if token is None else token
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request("POST", path, body=body, headers=sent)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def get(self, path: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def connect(self, source: str = "127.0.0.1", timeout: float = 60.0) -> socket.socket:
        """A raw TCP connection to the gateway from ``source`` (any 127.0.0.0/8 address)."""
        return socket.create_connection((self.host, self.port), timeout, (source, 0))

    def exchange(
        self, data: bytes, *, source: str = "127.0.0.1", until_closed: bool = False
    ) -> RawReply:
        """Send raw bytes on a fresh connection and read the reply (see :func:`read_reply`)."""
        with self.connect(source) as sock:
            sock.sendall(data)
            return read_reply(sock, until_closed=until_closed)

    def sync_log(self) -> str:
        """The log once every line for requests answered so far has been written: a
        marker request is sent, and the log is read until its access line is there."""
        marker = f"/log-marker-{secrets.token_hex(8)}"
        self.get(marker)
        for _ in range(600):
            text = self.log()
            if marker in text:
                return text
            time.sleep(0.05)
        raise AssertionError(f"the access log never showed {marker}")

    async def rows(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.database_url)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    def metric(self, name: str, labels: str = "") -> float:
        """The value of one Prometheus sample from ``/metrics`` (0 when absent)."""
        _status, body = self.get("/metrics")
        prefix = f"{name}{{{labels}}}" if labels else name
        for line in body.decode().splitlines():
            if line.startswith(prefix + " "):
                return float(line.split()[-1])
        return 0.0


def _config_file(directory: Path, backend: RecordingBackend, keys: Secrets) -> Path:
    config = {
        "backends": {
            "keyed": {
                "url": f"{backend.url}/keyed/{keys.path}?apikey={keys.query}",
                "chain_id": 1337,
                "headers": {"X-Api-Key": keys.header},
            },
            "bouncing": {"url": f"{backend.url}/bounce", "chain_id": 1337},
            "broken": {
                "url": f"{backend.url}/broken/{keys.path}?apikey={keys.query}",
                "chain_id": 1337,
                "headers": {"X-Api-Key": keys.header},
            },
        }
    }
    path = directory / "walletgate.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@contextmanager
def _recorders(devnet: Devnet) -> Any:
    with (
        recording_backend() as elsewhere,
        recording_backend(devnet.url, redirect_to=f"{elsewhere.url}/stolen") as backend,
    ):
        yield backend, elsewhere


@asynccontextmanager
async def recorded_gateway(
    *,
    postgres_server_url: str,
    migrated_template: str,
    redis_server_url: str,
    devnet: Devnet,
    directory: Path,
    extra_env: Mapping[str, str] | None = None,
    serve_args: Sequence[str] = (),
) -> AsyncIterator[RecordedGateway]:
    """Start a gateway (``walletgate serve`` with ``serve_args``) on a private database
    (cloned from the migrated template), the session's Redis (flushed) and recording
    backends; stop everything afterwards."""
    async with (
        scratch_database(postgres_server_url, "wg_recorded", migrated_template) as url,
        _recorded(url, redis_server_url, devnet, directory, extra_env, serve_args) as gw,
    ):
        yield gw


@asynccontextmanager
async def _recorded(
    database_url: str,
    redis_server_url: str,
    devnet: Devnet,
    directory: Path,
    extra_env: Mapping[str, str] | None,
    serve_args: Sequence[str],
) -> AsyncIterator[RecordedGateway]:
    client = aioredis.Redis.from_url(redis_server_url)
    await client.flushdb()
    await client.aclose()
    policy_text = policy_document(devnet.token_address)
    policy_file = directory / "policies.yaml"
    policy_file.write_text(policy_text, encoding="utf-8")
    log_path = directory / "gateway.log"
    keys = Secrets()
    with _recorders(devnet) as (backend, elsewhere), log_path.open("wb") as log:
        env = {
            "WALLETGATE_DATABASE_URL": database_url,
            "WALLETGATE_REDIS_URL": redis_server_url,
            "WALLETGATE_BACKEND_URL": f"{backend.url}/default",
            "WALLETGATE_CHAIN_ID": str(devnet.chain_id),
            "WALLETGATE_CONFIG": str(_config_file(directory, backend, keys)),
            "WALLETGATE_ACTOR": "security-tests",
            **(extra_env or {}),
        }
        walletgate_cli(["policies", "apply", str(policy_file)], env)
        tokens = {agent: issue_token(agent, env) for agent in ("alice", "bob")}
        port = free_port()
        process = start_gateway(env, port, log=log, args=serve_args)
        try:
            await wait_healthy(f"http://127.0.0.1:{port}/", process)
            yield RecordedGateway(
                host="127.0.0.1",
                port=port,
                env=env,
                tokens=tokens,
                database_url=database_url,
                redis_url=redis_server_url,
                backend=backend,
                elsewhere=elsewhere,
                secrets=keys,
                log_path=log_path,
                policies=compile_document(parse_document(policy_text), 1),
                devnet=devnet,
            )
        finally:
            await asyncio.to_thread(stop_process, process)


def recorded_gateway_fixture(
    name: str, extra_env: Mapping[str, str] | None = None, serve_args: Sequence[str] = ()
) -> Any:
    """A module-scoped fixture starting a :func:`recorded_gateway` (assign it to ``gw``)."""

    @pytest_asyncio.fixture(scope="module", loop_scope="session")
    async def gateway(
        postgres_server_url: str,
        migrated_template: str,
        redis_server_url: str,
        devnet: Devnet,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> AsyncIterator[RecordedGateway]:
        async with recorded_gateway(
            postgres_server_url=postgres_server_url,
            migrated_template=migrated_template,
            redis_server_url=redis_server_url,
            devnet=devnet,
            directory=tmp_path_factory.mktemp(name),
            extra_env=extra_env,
            serve_args=serve_args,
        ) as started:
            yield started

    return gateway
