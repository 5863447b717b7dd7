"""The payloads of owner events: what a webhook's ``data`` says about each change.

Pure functions from the change (an audit row, a freeze, an applied plan) to the owners
told and the JSON each gets; ``outbox.record_events`` writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from walletgate.notify.outbox import NewEvent

if TYPE_CHECKING:
    from walletgate.config.diff import Plan
    from walletgate.policies.model import Freeze
    from walletgate.storage.audit import AuditRecord


def spend_event(record: AuditRecord) -> NewEvent:
    """``spend.notify``: a spend a ``notify`` tier fired on, as it was judged."""
    explanation: Mapping[str, Any] = (
        record.explanation if isinstance(record.explanation, Mapping) else {}
    )
    findings = explanation.get("findings") or []
    tiers = [
        {"policy": f.get("policy"), "rule": f.get("rule"), "message": f.get("message")}
        for f in findings
        if isinstance(f, Mapping) and f.get("rule_type") == "tier"
    ]
    payload = {
        "transaction_id": str(record.id),
        "agent": record.agent_id,
        "wallet": record.wallet_id,
        "chain_id": record.chain_id,
        "method": record.method,
        "decision": record.decision,
        "reason": record.reason,
        "status": record.status,
        "message": explanation.get("message"),
        "amounts": {asset: str(units) for asset, units in record.amounts.items()},
        "usd_value": None if record.usd_value is None else str(record.usd_value),
        "tiers": tiers,
        "approval_id": None if record.approval_id is None else str(record.approval_id),
    }
    assert record.owner_id is not None, "only an owner's spends notify"
    return NewEvent(record.owner_id, "spend.notify", payload)


def freeze_events(
    kind: str, freeze: Freeze, owners: list[str], *, actor: str, reason: str = ""
) -> list[NewEvent]:
    """``freeze.created`` or ``freeze.lifted`` for each owner the freeze concerns."""
    payload: dict[str, Any] = {
        "scope": freeze.scope,
        "target": freeze.target,
        "reason": freeze.reason,
        "frozen_by": freeze.frozen_by,
        "frozen_at": freeze.frozen_at.isoformat(),
    }
    if kind == "freeze.lifted":
        payload |= {"unfrozen_by": actor, "unfreeze_reason": reason}
    return [NewEvent(owner, kind, payload) for owner in owners]


def _owner_of(kind: str, entity: Mapping[str, Any], docs: list[Mapping[str, Any]]) -> set[str]:
    """The owners an entity of ``kind`` belongs to (an asset belongs to everyone)."""
    if kind == "owners":
        return {entity["id"]}
    if kind in ("agents", "wallets"):
        return {entity["owner"]}
    if kind == "assets":
        return {owner["id"] for doc in docs for owner in doc["owners"]}
    owners: set[str] = set()
    for scope in ("owner", "agent", "wallet"):
        target = entity.get(scope)
        if target is None:
            continue
        if scope == "owner":
            owners.add(target)
            continue
        for doc in docs:
            owners |= {e["owner"] for e in doc[f"{scope}s"] if e["id"] == target}
    return owners


def policy_events(
    current: Mapping[str, Any],
    desired: Mapping[str, Any],
    plan: Plan,
    *,
    actor: str,
    change_set: UUID,
    state_version: int,
) -> list[NewEvent]:
    """``policy.applied`` for each owner whose part of the document changed, with the
    changes that concern it (an asset's change concerns every owner)."""
    docs = [current, desired]
    by_id = {
        kind: {e["id"]: e for doc in (current, desired) for e in doc[kind]}
        for kind in ("owners", "agents", "wallets", "assets", "policies")
    }
    changes: dict[str, list[dict[str, str]]] = {}
    for kind_plan in plan.kinds:
        touched = [
            *((entity_id, "added") for entity_id in kind_plan.added),
            *((change.id, "changed") for change in kind_plan.changed),
            *((entity_id, "removed") for entity_id in kind_plan.removed),
        ]
        for entity_id, action in touched:
            for owner in _owner_of(kind_plan.kind, by_id[kind_plan.kind][entity_id], docs):
                changes.setdefault(owner, []).append(
                    {"kind": kind_plan.kind, "id": entity_id, "action": action}
                )
    return [
        NewEvent(
            owner,
            "policy.applied",
            {
                "change_set": str(change_set),
                "state_version": state_version,
                "actor": actor,
                "changes": owner_changes,
            },
        )
        for owner, owner_changes in sorted(changes.items())
    ]
