"""What the numbers were measured on: the machine, the software, the commit."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from bench import stores
from bench.tools import Tools, tool_version


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return ""


async def machine_facts(store: stores.Stores, tools: Tools) -> dict[str, Any]:
    """What the numbers were measured on."""
    conn = await asyncpg.connect(store.admin_url)
    try:
        postgres = await conn.fetchval("SHOW server_version")
        fsync = await conn.fetchval("SHOW fsync")
        synchronous_commit = await conn.fetchval("SHOW synchronous_commit")
    finally:
        await conn.close()
    client = aioredis.Redis.from_url(store.redis_url)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    redis_version = (
        f"Valkey {info['valkey_version']}"
        if "valkey_version" in info
        else f"Redis {info.get('redis_version', '?')}"
    )
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = {
        name: metadata.version(name)
        for name in ("aiohttp", "redis", "asyncpg", "uvloop", "orjson", "py-spy")
        if _installed(name)
    }
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": round(memory_gb, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
        "postgresql": f"{postgres} (fsync {fsync}, synchronous_commit {synchronous_commit})",
        "redis": redis_version,
        "wrk": tool_version([str(tools.wrk), "-v"]),
        "nginx": tool_version([str(tools.nginx), "-v"]) if tools.nginx else "",
        "commit": _git_commit(),
        "load_average_start": os.getloadavg(),
    }


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def _git_commit() -> str:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        ["git", "-C", str(root), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()
