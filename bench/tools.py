"""The bench's outside tools, installed on first use on a Debian machine.

- wrk (closed-loop load, required): ``apt-get install wrk`` when it is missing and we are
  root; otherwise the bench stops and says what to install.
- nginx (the pass-through floor for any proxy, optional): the Debian package's binary,
  unpacked into the bench's tool directory with ``apt-get download`` + ``dpkg -x``, so no
  system service is installed or started; skipped (and said so) when that fails.
- py-spy (the profile): a pinned dev dependency in pyproject.toml, so it is in the venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.progress import say

TOOLS_DIR = Path(__file__).resolve().parent / ".tools"


class ToolMissing(SystemExit):
    """A required tool is not installed and could not be installed."""


@dataclass(frozen=True)
class Tools:
    wrk: Path
    nginx: Path | None
    py_spy: Path | None
    notes: tuple[str, ...] = ()


def _apt(*args: str) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(
        ["apt-get", *args], env=env, capture_output=True, text=True, check=False, timeout=600
    )
    if done.returncode != 0:
        say(f"apt-get {' '.join(args)} failed: {done.stderr.strip()[-300:]}")
    return done.returncode == 0


def _is_root() -> bool:
    return os.geteuid() == 0


def ensure_wrk() -> Path:
    """wrk's path, installing the Debian package first when it is missing."""
    found = shutil.which("wrk")
    if found:
        return Path(found)
    if _is_root() and shutil.which("apt-get"):
        say("installing wrk (apt-get install wrk)")
        if _apt("install", "-y", "-qq", "wrk") or (
            _apt("update", "-qq") and _apt("install", "-y", "-qq", "wrk")
        ):
            found = shutil.which("wrk")
            if found:
                return Path(found)
    raise ToolMissing("bench: wrk is required: install it with 'sudo apt-get install wrk'")


def ensure_nginx() -> tuple[Path | None, str | None]:
    """nginx's path (from PATH or unpacked into TOOLS_DIR), or None and why not."""
    found = shutil.which("nginx")
    if found:
        return Path(found), None
    unpacked = TOOLS_DIR / "nginx" / "usr" / "sbin" / "nginx"
    if unpacked.exists():
        return unpacked, None
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        return None, "nginx is not installed and this is not a Debian machine"
    download = TOOLS_DIR / "download"
    download.mkdir(parents=True, exist_ok=True)
    say("fetching nginx (apt-get download nginx; unpacked, not installed)")
    done = subprocess.run(
        ["apt-get", "download", "nginx"],
        cwd=download,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    packages = sorted(download.glob("nginx_*.deb"))
    if done.returncode != 0 or not packages:
        return None, f"could not download nginx: {done.stderr.strip()[-200:]}"
    subprocess.run(["dpkg", "-x", str(packages[-1]), str(TOOLS_DIR / "nginx")], check=True)
    if not unpacked.exists():
        return None, "the nginx package holds no usr/sbin/nginx"
    return unpacked, None


def ensure_tools(*, want_nginx: bool = True) -> Tools:
    """Every tool the bench uses; exits with a clear message when wrk is unavailable."""
    notes: list[str] = []
    wrk = ensure_wrk()
    nginx: Path | None = None
    if want_nginx:
        nginx, why_not = ensure_nginx()
        if why_not:
            notes.append(f"nginx skipped: {why_not}")
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        notes.append("profile skipped: py-spy is not installed (pip install -e '.[dev]')")
    return Tools(wrk, nginx, Path(spy) if spy else None, tuple(notes))


def tool_version(argv: list[str]) -> str:
    """The first line a tool prints about its version ('' when it cannot say)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return ""
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else ""
