"""The processes under test, and the probe that each answers every scenario right."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from bench.procstat import CpuGroups
from bench.results import TargetInfo
from bench.scenarios import Scenario


@dataclass
class Target:
    """A process under test, reachable at ``url``, with the CPU groups to measure."""

    info: TargetInfo
    url: str
    cpu: CpuGroups
    walletgate: bool
    token: str = ""
    database_url: str = ""


def target_pid(target: Target) -> int:
    """The pid of the target's (top) process."""
    return next(iter(target.cpu.groups["proxy"]))


async def _probe(target: Target, scenario: Scenario) -> str | None:
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(target.url, json=scenario.body, headers=headers) as response,
    ):
        answer = await response.json(content_type=None)
    check = scenario.check_walletgate if target.walletgate else scenario.check_forwarded
    return check(answer)


async def probe_all(targets: Sequence[Target], scenarios: Sequence[Scenario]) -> None:
    """Every target answers every scenario as it should, or the run stops here."""
    problems = []
    for target in targets:
        for scenario in scenarios:
            problem = await _probe(target, scenario)
            if problem is not None:
                problems.append(f"{target.info.name}, {scenario.name}: {problem}")
    if problems:
        raise SystemExit("bench: targets answered wrongly:\n  " + "\n  ".join(problems))
