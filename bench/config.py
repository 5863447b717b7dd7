"""How much a bench run measures, and the walletgate deployments it sets up."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchConfig:
    """How much to measure. The defaults are the full run (about 15 minutes)."""

    seconds: float = 3.0  # per closed-loop measurement
    rounds: int = 5
    open_seconds: float = 6.0
    connections: int = 32
    wallets: tuple[int, ...] = (1, 1_000, 100_000)
    main_wallets: int = 1_000  # the deployment the scenario matrix runs against
    audit_rows: int = 1_000_000  # added to a copy of the largest deployment
    workers: int = 2
    profile_seconds: float = 15.0
    chain_id: int = 31337
    nginx: bool = True
    smoke: bool = False


SMOKE = BenchConfig(
    seconds=1.0,  # wrk's shortest
    rounds=1,
    open_seconds=0.75,
    wallets=(1, 100),
    main_wallets=100,
    audit_rows=1_000,
    profile_seconds=1.0,
    smoke=True,
)


@dataclass(frozen=True)
class Deployment:
    """One walletgate setup: its policy set's size and its audit table's."""

    name: str
    wallets: int
    audit_rows: int
    redis_db: int

    @property
    def label(self) -> str:
        rows = f", {self.audit_rows:,} audit rows" if self.audit_rows else ""
        return f"walletgate ({self.wallets:,} wallets{rows})"


def deployments_for(config: BenchConfig) -> list[Deployment]:
    """A deployment per wallet count, plus the largest one with a filled audit table."""
    out = [Deployment(f"w{w}", w, 0, index) for index, w in enumerate(config.wallets, 1)]
    if config.audit_rows:
        largest = max(config.wallets)
        out.append(Deployment(f"w{largest}-audit", largest, config.audit_rows, len(out) + 1))
    return out
