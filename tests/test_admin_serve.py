"""The admin API as ``walletgate serve --workers 2`` runs it, with keys from the CLI.

Every worker listens on the admin port (SO_REUSEPORT, like the main port); keys are
issued, listed and revoked with ``walletgate admin-keys``, and a revoked key is refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import psutil

from tests.support.gateway import free_port, walletgate_cli
from tests.test_serve_workers import (  # the same gateway set-up as the worker tests
    _SUPERVISOR_LINE,
    _listening_ports,
    _start,
    _until,
    gateway_env,
    supervised_cleanup,
)

__all__ = ["gateway_env", "supervised_cleanup"]  # fixtures used by name

_KEY = re.compile(r"wga_[A-Za-z0-9_-]{43}")
_PREFIX = re.compile(r"admin key (wga_\S{8})")


async def _owners(url: str, key: str) -> tuple[int, object]:
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def test_serve_runs_the_admin_api_in_every_worker(
    gateway_env: dict[str, str],
    tmp_path: Path,
    supervised_cleanup: list[object],
) -> None:
    admin_port = free_port()
    env = {**gateway_env, "WALLETGATE_ADMIN_PORT": str(admin_port)}
    issued = walletgate_cli(["admin-keys", "issue", "--owner", "acme"], env).stdout
    key_match, prefix_match = _KEY.search(issued), _PREFIX.search(issued)
    assert key_match and prefix_match, issued
    key, prefix = key_match.group(0), prefix_match.group(1)
    refused = walletgate_cli(["admin-keys", "issue", "--owner", "nobody"], env, check=False)
    assert refused.returncode == 1 and "unknown owner 'nobody'" in refused.stderr

    log = tmp_path / "serve.log"
    process = _start(env, log, "--port", str(free_port()), "--workers", "2")
    supervised_cleanup.append(process)
    await _until(
        lambda: _SUPERVISOR_LINE.search(log.read_bytes()) or process.poll() is not None,
        "the supervisor's listening line",
    )
    match = _SUPERVISOR_LINE.search(log.read_bytes())
    assert match, log.read_text()
    workers = [int(p) for p in match.group(2).split(b",")]
    for worker in workers:
        assert admin_port in _listening_ports(worker), worker
    assert psutil.pid_exists(process.pid)

    url = f"http://127.0.0.1:{admin_port}/owners"
    for _ in range(10):  # fresh connections, spread by the kernel over the workers
        status, body = await _owners(url, key)
        assert status == 200 and body == {"items": [body["items"][0]]}, body  # type: ignore[index]

    listed = walletgate_cli(["admin-keys", "list"], env).stdout
    assert prefix in listed and "owner acme" in listed and "active" in listed
    walletgate_cli(["admin-keys", "revoke", prefix], env)
    assert "revoked" in walletgate_cli(["admin-keys", "list"], env).stdout
    status, body = await _owners(url, key)
    assert status == 401, body
    again = walletgate_cli(["admin-keys", "revoke", prefix], env, check=False)
    assert again.returncode == 1 and "already revoked" in again.stderr
