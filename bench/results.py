"""The bench's results as plain data: what was measured, on what, saved as JSON.

The runner produces a :class:`Results`; the report renders one. Nothing here does I/O
apart from :func:`save` and :func:`load`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.loadgen import Load
from bench.stats import median

#: Sections of a run.
CLOSED = "closed"  # closed-loop saturation, every scenario, every target
OPEN = "open"  # open-loop fixed rate
SCALE = "scale"  # walletgate deployments of different sizes, spends only
WORKERS = "workers"  # walletgate with 1 and N worker processes

#: Open-loop rates: half the pass-through's saturation (the issue's measure), and a
#: quarter of walletgate's own, a load it carries with room to spare on a shared machine.
PASS_RATE = "half pass-through saturation"
OWN_RATE = "quarter of walletgate's saturation"
OWN_RATE_SHARE = 0.25
#: The scale section runs every deployment at the same fixed rate, this share of the
#: main deployment's saturation: its CPU per request then compares like with like
#: (under saturation it moves with how much each run happened to batch).
SCALE_RATE = "half of walletgate's saturation"
SCALE_RATE_SHARE = 0.5


@dataclass(frozen=True)
class Measurement:
    """One load run against one target, and the CPU its processes used meanwhile."""

    section: str
    scenario: str
    target: str
    round: int
    load: Load
    cpu_seconds: dict[str, float]  # per process group: proxy, backend, postgres, redis
    offered_rate: float | None = None  # open loop: requests per second offered
    rate_basis: str | None = None  # open loop: PASS_RATE, OWN_RATE or SCALE_RATE

    def cpu_us_per_request(self, group: str) -> float:
        """Microseconds of CPU of ``group`` per answered request (NaN if none)."""
        seconds = self.cpu_seconds.get(group)
        if seconds is None or self.load.requests == 0:
            return math.nan
        return seconds / self.load.requests * 1e6


@dataclass(frozen=True)
class TargetInfo:
    name: str
    label: str
    groups: tuple[str, ...]  # CPU groups measured for it


@dataclass
class Results:
    """Everything a run measured, with the facts needed to read it."""

    config: dict[str, Any]
    machine: dict[str, Any]
    targets: dict[str, TargetInfo]
    scenarios: dict[str, str]  # name -> title
    measurements: list[Measurement] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what was not run, and why
    calibration: dict[str, float] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)  # of allowed spends
    read_profile: dict[str, Any] = field(default_factory=dict)  # of reads
    anatomy: dict[str, dict[str, float]] = field(default_factory=dict)  # scenario -> counts
    # wallet count (as text, for JSON) -> scenario -> µs per decode + evaluate
    decisions: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def select(
        self, section: str, scenario: str, target: str, rate_basis: str | None = None
    ) -> list[Measurement]:
        """The measurements of one cell (of one open-loop rate basis, if given)."""
        return [
            m
            for m in self.measurements
            if m.section == section
            and m.scenario == scenario
            and m.target == target
            and (rate_basis is None or m.rate_basis == rate_basis)
        ]

    def throughput(self, section: str, scenario: str, target: str) -> float:
        """Median throughput over the rounds of one cell (NaN if it was not run)."""
        return median([m.load.throughput for m in self.select(section, scenario, target)])


def save(results: Results, path: Path) -> None:
    """Write ``results`` as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(results), indent=1, default=str) + "\n")


def load(path: Path) -> Results:
    """Read results written by :func:`save`."""
    raw = json.loads(path.read_text())
    raw["targets"] = {
        k: TargetInfo(**{**v, "groups": tuple(v["groups"])}) for k, v in raw["targets"].items()
    }
    raw["measurements"] = [
        Measurement(**{**m, "load": Load(**m["load"])}) for m in raw["measurements"]
    ]
    return Results(**raw)
