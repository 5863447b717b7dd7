"""What applying a document would change: a pure diff of two canonical documents.

The result, a :class:`Plan`, lists per entity kind the ids added, changed and removed,
and for each change the fields that differ. Lists of rules are matched by rule id, so
editing one rule shows as ``rules[eth-daily].max: "5" -> "6"``, not as a new list.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from walletgate.config.semantics import ENTITY_KINDS

_ABSENT = "(absent)"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of one entity: its value before and after (``None`` when absent)."""

    path: str
    before: Any
    after: Any

    def __str__(self) -> str:
        return f"{self.path}: {_show(self.before)} -> {_show(self.after)}"


@dataclass(frozen=True, slots=True)
class EntityChange:
    """An entity present on both sides whose fields differ."""

    id: str
    fields: tuple[FieldChange, ...]


@dataclass(frozen=True, slots=True)
class KindPlan:
    """The changes to one kind of entity (``owners``, ``agents``, ...)."""

    kind: str
    added: tuple[str, ...] = ()
    changed: tuple[EntityChange, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


@dataclass(frozen=True, slots=True)
class Plan:
    """Every change, per kind, in the order ``apply`` creates them."""

    kinds: tuple[KindPlan, ...]

    @property
    def empty(self) -> bool:
        """True when the document matches the current state exactly."""
        return all(kind.empty for kind in self.kinds)

    def kind(self, name: str) -> KindPlan:
        """The plan for one kind; raises ``KeyError`` for an unknown kind."""
        for kind in self.kinds:
            if kind.kind == name:
                return kind
        raise KeyError(name)

    def counts(self) -> tuple[int, int, int]:
        """Totals: (added, changed, removed)."""
        return (
            sum(len(k.added) for k in self.kinds),
            sum(len(k.changed) for k in self.kinds),
            sum(len(k.removed) for k in self.kinds),
        )

    def render(self) -> str:
        """A human-readable plan, Terraform style: ``+`` add, ``~`` change, ``-`` remove."""
        if self.empty:
            return "No changes: the database already matches the document."
        lines: list[str] = []
        for kind in self.kinds:
            if kind.empty:
                continue
            lines.append(f"{kind.kind}:")
            lines.extend(f"  + {entity_id}" for entity_id in kind.added)
            for change in kind.changed:
                lines.append(f"  ~ {change.id}")
                lines.extend(f"      {field}" for field in change.fields)
            lines.extend(f"  - {entity_id}" for entity_id in kind.removed)
        added, changed, removed = self.counts()
        lines.append(f"Plan: {added} to add, {changed} to change, {removed} to remove.")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON-able data (for ``--json`` output and logs)."""
        return {
            kind.kind: {
                "added": list(kind.added),
                "changed": {
                    change.id: [
                        {"path": f.path, "before": f.before, "after": f.after}
                        for f in change.fields
                    ]
                    for change in kind.changed
                },
                "removed": list(kind.removed),
            }
            for kind in self.kinds
        }


def _show(value: Any) -> str:
    if value is None:
        return _ABSENT
    return json.dumps(value, sort_keys=False, separators=(", ", ": "))


def diff_documents(current: Mapping[str, Any], desired: Mapping[str, Any]) -> Plan:
    """The plan that turns canonical document ``current`` into canonical ``desired``."""
    kinds = []
    for kind in ENTITY_KINDS:
        before = {entity["id"]: entity for entity in current.get(kind, [])}
        after = {entity["id"]: entity for entity in desired.get(kind, [])}
        changed = tuple(
            EntityChange(entity_id, tuple(diff_values(before[entity_id], after[entity_id])))
            for entity_id in sorted(before.keys() & after.keys())
            if before[entity_id] != after[entity_id]
        )
        kinds.append(
            KindPlan(
                kind,
                added=tuple(sorted(after.keys() - before.keys())),
                changed=changed,
                removed=tuple(sorted(before.keys() - after.keys())),
            )
        )
    return Plan(tuple(kinds))


def diff_values(before: Any, after: Any, path: str = "") -> list[FieldChange]:
    """Field-level differences between two JSON-like values, most specific path first."""
    if before == after:
        return []
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        changes: list[FieldChange] = []
        for key in [*before, *(k for k in after if k not in before)]:
            sub = f"{path}.{key}" if path else str(key)
            changes += diff_values(before.get(key), after.get(key), sub)
        return changes
    if _keyed_list(before) and _keyed_list(after):
        return _diff_keyed(before, after, path)
    return [FieldChange(path, before, after)]


def _keyed_list(value: Any) -> bool:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) and "id" in v for v in value):
        return False
    return len({item["id"] for item in value}) == len(value)


def _diff_keyed(before: list[Any], after: list[Any], path: str) -> list[FieldChange]:
    old = {item["id"]: item for item in before}
    new = {item["id"]: item for item in after}
    changes: list[FieldChange] = []
    for item_id in [*old, *(i for i in new if i not in old)]:
        changes += diff_values(old.get(item_id), new.get(item_id), f"{path}[{item_id}]")
    common_old = [i for i in old if i in new]
    common_new = [i for i in new if i in old]
    if common_old != common_new:
        changes.append(FieldChange(f"{path} order", common_old, common_new))
    return changes
