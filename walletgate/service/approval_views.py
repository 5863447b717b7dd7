"""The filter of approval lists (:func:`walletgate.service.approvals.list_approvals`),
shared by the CLI and the admin API."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ApprovalFilter:
    status: str | None = None
    agent: str | None = None
    wallet: str | None = None
    owner: str | None = None
    limit: int = 100
