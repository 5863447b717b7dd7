"""A realistic policy document with any number of wallets (the scale scenarios).

Ten wallets per agent and ten agents per owner, like an operator running fleets of
agents. Every owner has a baseline policy (chains, a denylist, assets, a daily USD cap)
and every agent its limits (per-transaction caps, a daily cap per wallet, a destination
allowlist, request and transaction rate limits), so every allowed spend takes the full
path: every rule type that needs counters claims one. The limits are far above what a
benchmark spends, so allowed spends stay allowed for the whole run, and one spend above
the per-transaction cap is the refused spend.

The bench agent is ``agent-0`` and spends from ``wallet-0``. Pure: parameters in, a
document out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WALLETS_PER_AGENT = 10
AGENTS_PER_OWNER = 10
BENCH_AGENT = "agent-0"
#: Where allowed spends go (on every agent's allowlist).
COUNTERPARTY = "0x" + "c0" * 20
#: Spends per transaction allowed (in ETH): a benchmark request moves 1 gwei.
PER_TX_CAP_ETH = "1.5"
ALLOWED_VALUE_WEI = 10**9
REFUSED_VALUE_WEI = 2 * 10**18  # above PER_TX_CAP_ETH


@dataclass(frozen=True)
class Fleet:
    """How many of each entity a document of ``wallets`` wallets holds."""

    wallets: int

    @property
    def agents(self) -> int:
        return -(-self.wallets // WALLETS_PER_AGENT)

    @property
    def owners(self) -> int:
        return -(-self.agents // AGENTS_PER_OWNER)


def wallet_address(index: int) -> str:
    """The canonical address of wallet ``index`` (distinct, deterministic, lowercase)."""
    return f"0x{0xB0 << 152 | index:040x}"


def bench_wallet() -> str:
    """The address the bench agent spends from."""
    return wallet_address(0)


def _owner_policy(owner: int, chain_id: int) -> dict[str, Any]:
    return {
        "id": f"owner-{owner}-baseline",
        "owner": f"owner-{owner}",
        "rules": [
            {"id": "chains", "type": "chain_allowlist", "chains": [chain_id]},
            {
                "id": "sanctioned",
                "type": "destination_denylist",
                "addresses": ["0x000000000000000000000000000000000000dead"],
            },
            {"id": "known-assets", "type": "asset_allowlist", "assets": ["eth"]},
            {
                "id": "owner-daily-usd",
                "type": "cumulative_cap",
                "usd": "1000000000",
                "window": "24h",
                "scope": "owner",
            },
        ],
    }


def _agent_policy(agent: int) -> dict[str, Any]:
    return {
        "id": f"agent-{agent}-limits",
        "agent": f"agent-{agent}",
        "rules": [
            {"id": "eth-per-tx", "type": "per_tx_cap", "asset": "eth", "max": PER_TX_CAP_ETH},
            {
                "id": "eth-daily",
                "type": "cumulative_cap",
                "asset": "eth",
                "max": "1000000",
                "window": "24h",
                "scope": "wallet",
            },
            {
                "id": "counterparties",
                "type": "destination_allowlist",
                "addresses": [COUNTERPARTY, f"0x{agent + 1:040x}"],
            },
            {
                "id": "requests",
                "type": "rate_limit",
                "counts": "requests",
                "max": 100_000_000,
                "per": "1m",
                "scope": "agent",
            },
            {
                "id": "spends",
                "type": "rate_limit",
                "counts": "transactions",
                "max": 100_000_000,
                "per": "1m",
                "scope": "agent",
            },
        ],
    }


def policy_document(wallets: int, chain_id: int) -> dict[str, Any]:
    """The policy document of a fleet of ``wallets`` wallets on ``chain_id``."""
    if wallets < 1:
        raise ValueError(f"a fleet needs at least one wallet, not {wallets}")
    fleet = Fleet(wallets)
    return {
        "version": 1,
        "owners": [{"id": f"owner-{o}"} for o in range(fleet.owners)],
        "agents": [
            {"id": f"agent-{a}", "owner": f"owner-{a // AGENTS_PER_OWNER}"}
            for a in range(fleet.agents)
        ],
        "wallets": [
            {
                "id": f"wallet-{w}",
                "owner": f"owner-{w // WALLETS_PER_AGENT // AGENTS_PER_OWNER}",
                "agent": f"agent-{w // WALLETS_PER_AGENT}",
                "chain": chain_id,
                "address": wallet_address(w),
            }
            for w in range(wallets)
        ],
        "assets": [
            {
                "id": "eth",
                "chain": chain_id,
                "native": True,
                "symbol": "ETH",
                "decimals": 18,
                "price_usd": "3000.00",
                "price_as_of": "2026-01-01T00:00:00Z",
                "price_max_age": "3650d",
            }
        ],
        "policies": [_owner_policy(o, chain_id) for o in range(fleet.owners)]
        + [_agent_policy(a) for a in range(fleet.agents)],
    }
