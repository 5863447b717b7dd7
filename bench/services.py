"""The processes under test: start, wait until they listen, stop. Each logs to a file.

- the stub backend (``bench.stub_backend``);
- the bare aiohttp pass-through (``bench.passthrough``);
- nginx as a pass-through, when an nginx binary is available (``bench.tools``);
- ``walletgate serve``, exactly as an operator starts it (settings in the environment).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

READY_TIMEOUT = 600.0  # walletgate compiles a 100,000-wallet policy set at start-up


class ServiceFailed(RuntimeError):
    """A service exited or did not become ready; the message points at its log."""


@dataclass
class Service:
    """A running process under test and how to reach it."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid


def free_port() -> int:
    """A port the kernel picked as free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _spawn(
    name: str,
    argv: list[str],
    log_dir: Path,
    url: str,
    env: Mapping[str, str] | None = None,
) -> Service:
    log = log_dir / f"{name}.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    return Service(name, url, process, log, dict(env or {}))


def _started(service: Service, ready_text: str) -> Service:
    try:
        wait_for_text(service, ready_text)
    except BaseException:
        stop(service)
        raise
    return service


def wait_for_text(service: Service, text: str) -> None:
    """Wait until ``service`` logs ``text`` (its "I am listening" line)."""
    deadline = time.monotonic() + READY_TIMEOUT
    needle = text.encode()
    while time.monotonic() < deadline:
        if needle in service.log.read_bytes():
            return
        if service.process.poll() is not None:
            raise ServiceFailed(
                f"{service.name} exited with {service.process.returncode}; see {service.log}"
            )
        time.sleep(0.1)
    raise ServiceFailed(f"{service.name} did not start in {READY_TIMEOUT:.0f}s; see {service.log}")


def start_stub(log_dir: Path, chain_id: int) -> Service:
    """The stub backend on a free port."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.stub_backend", "--port", str(port)]
    argv += ["--chain-id", str(chain_id)]
    return _started(_spawn("stub", argv, log_dir, f"http://127.0.0.1:{port}/"), "listening")


def start_passthrough(log_dir: Path, backend: str, loop: str) -> Service:
    """The bare aiohttp pass-through in front of ``backend``."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.passthrough", "--port", str(port)]
    argv += ["--backend", backend, "--loop", loop]
    service = _spawn("passthrough", argv, log_dir, f"http://127.0.0.1:{port}/")
    return _started(service, "listening")


def nginx_config(port: int, backend: str, prefix: Path) -> str:
    """An nginx configuration that proxies everything to ``backend`` with keep-alive."""
    host_port = backend.removeprefix("http://").rstrip("/")
    return f"""daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream backend {{ server {host_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=1024;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def start_nginx(log_dir: Path, backend: str, nginx: Path) -> Service:
    """nginx (one worker process, like one Python process) in front of ``backend``."""
    port = free_port()
    prefix = log_dir / "nginx"
    prefix.mkdir(exist_ok=True)
    config = prefix / "nginx.conf"
    config.write_text(nginx_config(port, backend, prefix))
    argv = [str(nginx), "-p", str(prefix), "-e", "stderr", "-c", str(config)]
    service = _spawn("nginx", argv, log_dir, f"http://127.0.0.1:{port}/")
    try:
        _wait_for_port(service, port)
    except BaseException:
        stop(service)
        raise
    return service


def _wait_for_port(service: Service, port: int) -> None:
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise ServiceFailed(f"{service.name} exited; see {service.log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            time.sleep(0.1)
    raise ServiceFailed(f"{service.name} is not listening on {port}; see {service.log}")


def walletgate_ready_text(workers: int) -> str:
    """What ``walletgate serve`` prints once it listens (with --workers: once all do)."""
    return f"with {workers} workers" if workers > 1 else "walletgate listening on"


def launch_walletgate(name: str, log_dir: Path, env: Mapping[str, str], workers: int) -> Service:
    """Start ``walletgate serve`` on a free port, configured by ``env`` (WALLETGATE_*);
    see :func:`wait_for_text` and :func:`walletgate_ready_text` for when it is ready."""
    port = free_port()
    argv = [sys.executable, "-m", "walletgate.cli", "serve", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return _spawn(name, argv, log_dir, f"http://127.0.0.1:{port}/", env)


def stop(service: Service) -> None:
    """SIGTERM, then SIGKILL if it does not exit within 30 seconds."""
    if service.process.poll() is None:
        service.process.send_signal(signal.SIGTERM)
        try:
            service.process.wait(30)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait(10)
