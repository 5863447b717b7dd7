"""Running the two load generators, each in its own process, and reading their answers.

- closed loop (saturation throughput): wrk, with ``bench/lua/jsonrpc.lua``;
- open loop (latency at a fixed rate): ``bench.openloop``, which wrk cannot do (it waits
  for each answer before sending the next request on a connection), and which reports
  its own scheduling lag and CPU cost per request.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LUA_SCRIPT = Path(__file__).resolve().parent / "lua" / "jsonrpc.lua"


class LoadError(RuntimeError):
    """A load generator failed or printed no result."""


@dataclass(frozen=True)
class Load:
    """What a load run measured: answered requests, time, errors, latency in ms."""

    requests: int
    seconds: float
    errors: int
    latency_ms: dict[str, float]
    dropped: int = 0  # open loop: requests not started because too many were in flight
    generator_lag_ms: float = 0.0  # open loop: p99 of how late the generator fired
    generator_cpu_us: float = 0.0  # open loop: the generator's CPU per answered request

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def _last_json_line(output: str, what: str) -> dict[str, Any]:
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            parsed: dict[str, Any] = json.loads(line)
            return parsed
    raise LoadError(f"{what} printed no result: {output[-500:]!r}")


def parse_wrk(output: str) -> Load:
    """The summary line ``jsonrpc.lua`` prints, as a :class:`Load`."""
    raw = _last_json_line(output, "wrk")
    errors = sum(raw["errors"].values())
    latency = {k: v / 1000.0 for k, v in raw["latency_us"].items() if k.startswith("p")}
    return Load(raw["requests"], raw["duration_us"] / 1e6, errors, latency)


def closed_loop(
    wrk: Path, url: str, body_file: Path, token: str, *, connections: int, seconds: float
) -> Load:
    """Saturate ``url`` with ``connections`` keep-alive connections for ``seconds``."""
    argv = [str(wrk), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    argv += ["--timeout", "10s", "-s", str(LUA_SCRIPT), url, "--", str(body_file), token]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise LoadError(f"wrk exited with {done.returncode}: {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def _openloop_argv(url: str, body_file: Path, token: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.openloop",
        "--url",
        url,
        "--body-file",
        str(body_file),
        "--header",
        f"Authorization: Bearer {token}",
    ]


def _run_openloop(argv: list[str], seconds: float) -> Load:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 90, check=False)
    if done.returncode != 0:
        raise LoadError(f"bench.openloop exited with {done.returncode}: {done.stderr[-500:]}")
    raw = _last_json_line(done.stdout, "bench.openloop")
    return Load(
        raw["completed"],
        raw["duration"],
        raw["errors"],
        raw["latency_ms"],
        raw["dropped"],
        raw["generator_lag_ms"]["p99"],
        raw["generator_cpu_us_per_request"],
    )


def open_loop(url: str, body_file: Path, token: str, *, rate: float, seconds: float) -> Load:
    """Send ``rate`` requests per second to ``url`` for ``seconds``, on schedule."""
    argv = _openloop_argv(url, body_file, token)
    argv += ["--rate", f"{rate:.1f}", "--duration", str(seconds)]
    return _run_openloop(argv, seconds)


def python_generator_ceiling(url: str, body_file: Path, *, seconds: float) -> Load:
    """The open-loop generator's own ceiling: its closed-loop mode against ``url``."""
    argv = _openloop_argv(url, body_file, "")
    argv += ["--closed", "32", "--duration", str(seconds)]
    return _run_openloop(argv, seconds)
