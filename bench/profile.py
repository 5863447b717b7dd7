"""Where a walletgate process spends its time: py-spy samples, summarised by component.

py-spy samples the running gateway from outside (no code change, no restart) and writes
collapsed stacks: ``frame;frame;…;leaf count`` per line, where a frame reads
``function (path/file.py:line)``. Each sample is charged to one component: the one of
the frame nearest the leaf that belongs to a known component. Event-loop, selector and
``json`` frames are transparent, so a socket write is charged to whoever wrote (Redis,
PostgreSQL, the backend client, the HTTP server) and an encoder to whoever encoded.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: (component, pattern on a frame's path); the first matching pattern names a frame.
COMPONENTS: tuple[tuple[str, str], ...] = (
    (
        "Redis round trips (counters, caches)",
        r"(^|/)redis/|storage/(counter\w*|cache|token_memory|balance_cache|auto_pipeline|redis_\w+)\.py",
    ),
    ("PostgreSQL (audit rows)", r"asyncpg/|storage/audit\w*\.py"),
    ("backend HTTP client", r"aiohttp/(client|connector|client_\w+)\.py|proxy/backend\.py"),
    ("policy evaluation", r"walletgate/policies/"),
    ("decoding (EVM, JSON-RPC)", r"proxy/evm/|proxy/jsonrpc\.py|eth_\w+/|rlp/"),
    ("access log", r"(^|/)logging/|log_redaction\.py"),
    ("metrics", r"prometheus_client/|proxy/metrics\.py"),
    (
        "request pipeline (glue)",
        r"proxy/(pipeline|spend_path|read_path|answers|passthrough|settle)\.py",
    ),
    ("HTTP server (aiohttp, auth)", r"aiohttp/|proxy/app\.py|multidict/|yarl/"),
)
# Standard-library frames (their paths are relative to the library, e.g. asyncio/...).
_TRANSPARENT = re.compile(r"^(asyncio|selectors|json|concurrent|threading|uuid)(/|\.py)")
#: Costs that cut across components: (name, pattern on "function (path)" of any frame).
CROSS_CUTTING: tuple[tuple[str, str], ...] = (
    ("sending on sockets (the send system call)", r"^(write|writelines|_write_ready) \(asyncio/"),
    ("JSON encoding and decoding (stdlib json)", r"\(json/"),
    ("logging", r"\(logging/"),
)
_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*?)(?::\d+)?\)$", re.S)
EVENT_LOOP = "event loop and other"


@dataclass(frozen=True)
class Profile:
    """Samples per component and per function (inclusive), out of ``samples``."""

    samples: int
    components: dict[str, int]
    functions: dict[str, int]  # "function (path)" -> samples with it on the stack
    cross_cutting: dict[str, int]

    def share(self, count: int) -> float:
        return count / self.samples if self.samples else 0.0


def read_collapsed(path: Path) -> str:
    """py-spy's output: a frame it sampled mid-change can name itself with bytes that
    are not UTF-8; such a name is kept as replacement characters (one odd frame)."""
    return path.read_text(encoding="utf-8", errors="replace")


def parse_collapsed(text: str) -> Iterator[tuple[list[str], int]]:
    """``(frames root first, count)`` per sample line (frame names may span lines)."""
    for match in re.finditer(r"^(.+?) (\d+)$", text, re.M | re.S):
        yield match.group(1).split(";"), int(match.group(2))


def _split(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), ""
    return " ".join(match["func"].split()), match["path"]


def component_of(frames: list[str]) -> str:
    """The component a sample belongs to (see the module docstring)."""
    for frame in reversed(frames):
        _, path = _split(frame)
        if _TRANSPARENT.search(path):
            continue
        for name, pattern in COMPONENTS:
            if re.search(pattern, path):
                return name
    return EVENT_LOOP


def summarize(samples: Iterable[tuple[list[str], int]]) -> Profile:
    """Count samples per component and per function on the stack."""
    components: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    cross: Counter[str] = Counter()
    total = 0
    for frames, count in samples:
        total += count
        components[component_of(frames)] += count
        keys = []
        for frame in frames:
            func, path = _split(frame)
            keys.append(f"{func} ({path})")
        for key in set(keys):
            functions[key] += count
        for name, pattern in CROSS_CUTTING:
            if any(re.search(pattern, key) for key in keys):
                cross[name] += count
    return Profile(total, dict(components), dict(functions), dict(cross))


def walletgate_functions(profile: Profile, limit: int) -> list[tuple[str, int]]:
    """The walletgate functions with the most samples on the stack (inclusive)."""
    ours = [
        (k, v) for k, v in profile.functions.items() if "walletgate/" in k and "cli.py" not in k
    ]
    return sorted(ours, key=lambda item: -item[1])[:limit]


def record(py_spy: Path, pid: int, seconds: float, output: Path, *, rate: int = 250) -> None:
    """Sample process ``pid`` and its children for ``seconds`` into collapsed stacks."""
    subprocess.run(
        [
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--output",
            str(output),
            "--nonblocking",
        ],
        capture_output=True,
        check=True,
        timeout=seconds + 60,
    )
