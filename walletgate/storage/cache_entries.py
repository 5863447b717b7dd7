"""What the caches store in Redis, and how it is read back.

Every entry carries the state version it was read at, so a reader can tell whether it
is current. Anything unreadable decodes to ``None``: garbage in a cache is a miss,
never an error and never trusted, since PostgreSQL can always rebuild it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson

from walletgate.policies.model import Freeze
from walletgate.storage.freezes import freeze_to_json, freezes_from_json
from walletgate.storage.tokens import TokenInfo


@dataclass(frozen=True, slots=True)
class StateEntry:
    """A state version with its policy document, each policy's row version and the
    freezes in force."""

    version: int
    document: Mapping[str, Any]
    policy_versions: Mapping[str, int]
    freezes: tuple[Freeze, ...] = ()


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """A token cache entry: the answer and the state version it was read at."""

    version: int
    info: TokenInfo | None


def encode_state(state: StateEntry) -> bytes:
    """The policy cache entry for ``state``."""
    return orjson.dumps(
        {
            "version": state.version,
            "document": state.document,
            "policy_versions": state.policy_versions,
            "freezes": [freeze_to_json(freeze) for freeze in state.freezes],
        }
    )


def decode_version(raw: bytes | str | None) -> int | None:
    """The state version in the version key, or ``None`` when missing or unreadable."""
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def decode_state(raw: bytes | str | None) -> StateEntry | None:
    """The policy cache entry, or ``None`` when missing or unreadable."""
    if raw is None:
        return None
    try:
        entry = orjson.loads(raw)
        version, document = entry["version"], entry["document"]
        policy_versions = entry["policy_versions"]
        freezes = freezes_from_json(entry["freezes"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if not (
        isinstance(version, int)
        and isinstance(document, dict)
        and isinstance(policy_versions, dict)
    ):
        return None
    return StateEntry(version, document, policy_versions, freezes)


def encode_token(version: int, info: TokenInfo | None) -> bytes:
    """The token cache entry: ``info`` (``None``: unknown or revoked) as of ``version``."""
    if info is None:
        return orjson.dumps({"version": version, "valid": False})
    return orjson.dumps(
        {
            "version": version,
            "valid": True,
            "token_id": str(info.token_id),
            "agent_id": info.agent_id,
            "owner_id": info.owner_id,
        }
    )


def decode_token(raw: bytes | str | None) -> TokenEntry | None:
    """The token cache entry, or ``None`` when missing or unreadable."""
    if raw is None:
        return None
    try:
        entry = orjson.loads(raw)
        version = entry["version"]
        if not entry["valid"]:
            return TokenEntry(int(version), None)
        info = TokenInfo(UUID(entry["token_id"]), str(entry["agent_id"]), str(entry["owner_id"]))
        return TokenEntry(int(version), info)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
