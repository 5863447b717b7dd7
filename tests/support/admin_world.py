"""A small world for the admin API tests: two owners, their keys, audit rows.

acme (examples/policies.yaml: agents trader and payroll, three wallets, caps and rate
limits) and globex (agent bot, wallet bot-main) each get an owner key; an operator key
reaches both.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import yaml

from walletgate.config.documents import parse_document
from walletgate.config.sources import checked_source
from walletgate.service.admin_keys import issue_key
from walletgate.service.policies import apply_policies
from walletgate.storage.runtime import Stores

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policies.yaml"
BOT_ADDRESS = "0x1efF47bc3a10a45d4b230b5d10e37751fe6aa718".lower()


def two_owner_document() -> dict[str, Any]:
    """The example document plus a second owner with one agent and one wallet."""
    data: dict[str, Any] = copy.deepcopy(parse_document(EXAMPLE.read_text(encoding="utf-8")).data)
    data["owners"].append({"id": "globex", "name": "Globex"})
    data["agents"].append({"id": "bot", "owner": "globex"})
    data["wallets"].append(
        {"id": "bot-main", "owner": "globex", "agent": "bot", "chain": 1337, "address": BOT_ADDRESS}
    )
    data["policies"].append(
        {
            "id": "globex-daily",
            "owner": "globex",
            "rules": [
                {"id": "chains", "type": "chain_allowlist", "chains": [1337]},
                {
                    "id": "eth-daily",
                    "type": "cumulative_cap",
                    "asset": "eth",
                    "max": "1",
                    "window": "24h",
                    "scope": "wallet",
                },
            ],
        }
    )
    return data


def document_text(data: dict[str, Any] | None = None) -> str:
    """A document as the YAML an operator would send."""
    return yaml.safe_dump(two_owner_document() if data is None else data, sort_keys=False)


@dataclass(frozen=True)
class Keys:
    operator: str
    acme: str
    globex: str
    acme_prefix: str


async def set_up_world(stores: Stores) -> Keys:
    """Apply the two-owner document and issue an operator key and one key per owner."""
    source = checked_source(document_text().encode(), "world")
    await apply_policies(stores, source, actor="setup", cache_ttl=60)
    operator = await issue_key(stores, owner_id=None, actor="setup")
    acme = await issue_key(stores, owner_id="acme", actor="setup")
    globex = await issue_key(stores, owner_id="globex", actor="setup")
    return Keys(operator.key, acme.key, globex.key, acme.record.prefix)


_WALLET_OWNER = {"trader-hot": ("trader", "acme"), "bot-main": ("bot", "globex")}


async def insert_transaction(
    pool: asyncpg.Pool,
    wallet: str,
    *,
    decision: str = "allow",
    status: str = "committed",
    claims: list[dict[str, Any]] | None = None,
    created_at: datetime | None = None,
    amounts: dict[str, str] | None = None,
) -> uuid.UUID:
    """An audit row of ``wallet``'s agent, as the pipeline writes one."""
    agent, owner = _WALLET_OWNER[wallet]
    tx_id = uuid.uuid4()
    await pool.execute(
        """INSERT INTO transactions (id, created_at, agent_id, wallet_id, owner_id, chain_id,
                                     method, request, decision, reason, status, amounts, claims)
           VALUES ($1, coalesce($2, now()), $3, $4, $5, 1337, 'eth_sendTransaction', '{}',
                   $6, 'test', $7, $8, $9)""",
        tx_id,
        created_at,
        agent,
        wallet,
        owner,
        decision,
        status,
        json.dumps(amounts or {"eth": "1000"}),
        json.dumps(claims or []),
    )
    return tx_id
