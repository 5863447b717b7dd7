"""The state of one bench run, and how it measures: load runs with CPU accounting, in
rounds with the target order rotating, at saturation or at fixed rates; store traffic
per request; py-spy profiles."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import anatomy, loadgen, profile
from bench.config import BenchConfig
from bench.procstat import cpu_delta
from bench.progress import say
from bench.results import (
    CLOSED,
    OPEN,
    OWN_RATE,
    OWN_RATE_SHARE,
    PASS_RATE,
    SCALE_RATE,
    SCALE_RATE_SHARE,
    Measurement,
    Results,
)
from bench.scenarios import ALLOWED_SPEND, READS, SCENARIOS, Scenario
from bench.targets import Target, target_pid
from bench.tools import Tools

#: An open-loop rate is offered to a target only below this share of its saturation:
#: beyond it the queue grows for the whole run, and the latency says only "overloaded".
MAX_OPEN_LOAD = 0.9


class Run:
    """The state of one run: its targets, its results, where its files go."""

    def __init__(self, config: BenchConfig, workdir: Path, tools: Tools) -> None:
        self.config = config
        self.workdir = workdir
        self.tools = tools
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.bodies = _write_bodies(workdir / "bodies")
        self.targets: dict[str, Target] = {}
        self.results = Results(
            config=asdict(config),
            machine={},
            targets={},
            scenarios={s.name: s.title for s in SCENARIOS},
            notes=list(tools.notes),
        )

    def add(self, target: Target) -> None:
        self.targets[target.info.name] = target
        self.results.targets[target.info.name] = target.info

    # -- measuring ---------------------------------------------------------------------

    def measure(
        self,
        section: str,
        scenario: Scenario,
        target: Target,
        round_: int,
        *,
        rate: float | None = None,
        rate_basis: str | None = None,
        connections: int | None = None,
    ) -> Measurement:
        """One load run (closed loop, or open loop at ``rate``), with CPU accounting."""
        body = self.bodies[scenario.name]
        before = target.cpu.sample()
        if rate is None:
            load = loadgen.closed_loop(
                self.tools.wrk,
                target.url,
                body,
                target.token,
                connections=connections or self.config.connections,
                seconds=self.config.seconds,
            )
        else:
            load = loadgen.open_loop(
                target.url, body, target.token, rate=rate, seconds=self.config.open_seconds
            )
        measurement = Measurement(
            section,
            scenario.name,
            target.info.name,
            round_,
            load,
            cpu_delta(before, target.cpu.sample()),
            rate,
            rate_basis,
        )
        self.results.measurements.append(measurement)
        say(
            f"{section:7} {scenario.name:13} {target.info.name:13} "
            f"{load.throughput:8.0f} req/s  p99 {load.latency_ms.get('p99', 0):7.2f} ms"
            + (f"  (offered {rate:.0f}/s)" if rate else "")
        )
        return measurement

    def warm_up(self, scenario: Scenario, target: Target) -> None:
        """A short unrecorded run: connections open, caches warm, code paths hot."""
        loadgen.closed_loop(
            self.tools.wrk,
            target.url,
            self.bodies[scenario.name],
            target.token,
            connections=self.config.connections,
            seconds=1.0,
        )

    def rounds(
        self, section: str, scenarios: Sequence[Scenario], targets: Sequence[Target], **kw: Any
    ) -> None:
        """Every scenario on every target, ``rounds`` times, rotating the target order."""
        for scenario in scenarios:
            for target in targets:
                self.warm_up(scenario, target)
            for round_ in range(self.config.rounds):
                shift = round_ % len(targets)
                for target in [*targets[shift:], *targets[:shift]]:
                    self.measure(section, scenario, target, round_, **kw)

    def fixed_rate_rounds(
        self, section: str, scenarios: Sequence[Scenario], targets: Sequence[Target]
    ) -> None:
        """:meth:`rounds` in open loop, every target at the same rate per scenario: a
        share of the main walletgate's closed-loop saturation."""
        for scenario in scenarios:
            rate = self.results.throughput(CLOSED, scenario.name, "walletgate")
            rate *= SCALE_RATE_SHARE
            for target in targets:
                self.warm_up(scenario, target)
            for round_ in range(self.config.rounds):
                shift = round_ % len(targets)
                for target in [*targets[shift:], *targets[:shift]]:
                    self.measure(
                        section, scenario, target, round_, rate=rate, rate_basis=SCALE_RATE
                    )

    def open_loop(self, scenarios: Sequence[Scenario], targets: Sequence[Target]) -> None:
        """Latency at half the pass-through's saturation rate; and at a quarter of
        walletgate's own (a rate it carries), with the others at that rate too, so what
        walletgate adds shows even where it cannot carry the first rate."""
        for scenario in scenarios:
            rate = self.results.throughput(CLOSED, scenario.name, "passthrough") / 2
            for target in targets:
                capacity = self.results.throughput(CLOSED, scenario.name, target.info.name)
                if rate > MAX_OPEN_LOAD * capacity:
                    self.results.skipped.append(
                        f"open loop, {scenario.name}, {target.info.name}: {rate:.0f}/s is over "
                        f"{MAX_OPEN_LOAD:.0%} of its saturation ({capacity:.0f}/s)"
                    )
                else:
                    self.measure(OPEN, scenario, target, 0, rate=rate, rate_basis=PASS_RATE)
            walletgate = self.results.throughput(CLOSED, scenario.name, "walletgate")
            for target in targets:
                if target.info.name in ("walletgate", "direct", "passthrough"):
                    self.measure(
                        OPEN,
                        scenario,
                        target,
                        0,
                        rate=walletgate * OWN_RATE_SHARE,
                        rate_basis=OWN_RATE,
                    )

    async def count_store_traffic(self, target: Target, redis_url: str) -> None:
        """Redis round trips and PostgreSQL transactions per request, per scenario."""
        for scenario in SCENARIOS:
            counted = await anatomy.measure(
                target.url,
                target.token,
                scenario.body,
                redis_url=redis_url,
                database_url=target.database_url,
                requests=10 if self.config.smoke else 50,
            )
            self.results.anatomy[scenario.name] = asdict(counted)
            say(
                f"anatomy {scenario.name:13} Redis {counted.redis_round_trips:.1f} round trips "
                f"({counted.redis_commands:.1f} commands), "
                f"PostgreSQL {counted.postgres_transactions:.1f} write transactions per request"
            )

    def profile_spends(self, target: Target) -> None:
        """py-spy samples of ``target`` while it saturates on allowed spends."""
        found = self._profile(target, ALLOWED_SPEND)
        if found is not None:
            self.results.profile = found

    def profile_reads(self, target: Target) -> None:
        """py-spy samples of ``target`` while it saturates on reads."""
        found = self._profile(target, READS)
        if found is not None:
            self.results.read_profile = found

    def _profile(self, target: Target, scenario: Scenario) -> dict[str, Any] | None:
        if self.tools.py_spy is None:
            return None
        output = self.workdir / f"profile-{scenario.name}.txt"
        seconds = self.config.profile_seconds
        body = self.bodies[scenario.name]
        with _background_wrk(self.tools, target, body, self.config.connections, seconds + 3):
            time.sleep(1.0)  # sample the steady state, not the connection set-up
            profile.record(self.tools.py_spy, target_pid(target), seconds, output)
        summary = profile.summarize(profile.parse_collapsed(profile.read_collapsed(output)))
        say(f"profile: {summary.samples} samples of {target.info.name} -> {output}")
        return {
            "scenario": scenario.name,
            "target": target.info.name,
            "seconds": seconds,
            "rate_hz": 250,
            "samples": summary.samples,
            "components": summary.components,
            "functions": dict(profile.walletgate_functions(summary, 25)),
            "cross_cutting": summary.cross_cutting,
            "raw": str(output),
        }


@contextlib.contextmanager
def _background_wrk(
    tools: Tools, target: Target, body: Path, connections: int, seconds: float
) -> Iterator[None]:
    argv = [str(tools.wrk), "-t1", f"-c{connections}", f"-d{round(seconds)}s"]
    argv += ["-s", str(loadgen.LUA_SCRIPT), target.url, "--", str(body), target.token]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        process.wait(seconds + 30)


def _write_bodies(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for scenario in SCENARIOS:
        path = directory / f"{scenario.name}.json"
        path.write_text(json.dumps(scenario.body, separators=(",", ":")))
        out[scenario.name] = path
    return out
