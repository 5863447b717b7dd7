"""CPU time of server processes, from ``/proc/<pid>/stat``.

A process tree's CPU time is its own (all threads) plus its live descendants', plus
what its reaped children used (``cutime``/``cstime``), so PostgreSQL backends that come
and go and ``--workers`` children are all counted. Linux only, like the bench.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psutil

_TICKS = os.sysconf("SC_CLK_TCK")


def parse_stat(text: str, *, ticks: int = _TICKS) -> tuple[float, float]:
    """``(own, reaped children)`` CPU seconds from the text of ``/proc/<pid>/stat``.

    The command name (field 2) may contain spaces and parentheses, so fields are counted
    from its closing parenthesis: utime, stime, cutime, cstime are fields 14 to 17.
    """
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime) / ticks, (cutime + cstime) / ticks


def _stat(pid: int) -> tuple[float, float]:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return parse_stat(handle.read())
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0.0  # it exited between listing and reading: its time went to cutime


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and every process below it."""
    own, reaped = _stat(pid)
    total = own + reaped
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return total
    for child in children:
        child_own, child_reaped = _stat(child.pid)
        total += child_own + child_reaped
    return total


@dataclass(frozen=True)
class CpuGroups:
    """Named groups of process trees whose CPU time is measured together."""

    groups: Mapping[str, Sequence[int]]

    def sample(self) -> dict[str, float]:
        """CPU seconds so far, per group."""
        return {
            name: sum(tree_cpu_seconds(pid) for pid in pids) for name, pids in self.groups.items()
        }


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds used between two samples, per group."""
    return {name: after[name] - before.get(name, 0.0) for name in after}
