"""Agent tokens: issued once, stored hashed, revocable at once (SPEC §3).

A token is ``wg_`` + 43 URL-safe characters (256 random bits). The ``wg_`` prefix lets
secret scanners recognise a leaked token, and the URL-safe alphabet lets it sit in an
RPC URL path (``/t/TOKEN/``) for agent toolkits that accept nothing but a URL.

PostgreSQL keeps only the SHA-256 of a token and a short, non-secret prefix that
operators use to tell tokens apart. A plain hash is enough here: password hashing
(bcrypt, scrypt, argon2) slows down guessing of *low-entropy* secrets, but a guess at a
256-bit random token succeeds with probability 2**-256 however fast the hash is, and a
fast hash keeps authentication cheap on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import asyncpg

from walletgate.errors import UserError
from walletgate.storage.state import bump_state_version

TOKEN_PREFIX = "wg_"
_TOKEN_BYTES = 32  # 256 bits of randomness
#: Characters of the token kept in clear as its identifier: "wg_" + 8 (48 bits).
DISPLAY_PREFIX_LENGTH = len(TOKEN_PREFIX) + 8
#: A syntactically possible token; anything else is rejected before any lookup.
_TOKEN_RE = re.compile(r"^wg_[A-Za-z0-9_-]{20,100}$")
#: ``last_used_at`` is written at most this often per token.
TOUCH_INTERVAL_SECONDS = 60


class TokenError(UserError):
    """A token operation cannot be done; the message says why and names the token."""


class UnknownAgent(TokenError):
    """The agent id does not name an agent."""


class UnknownToken(TokenError):
    """No token has this id, prefix or value."""


class AmbiguousToken(TokenError):
    """A prefix matches more than one token."""


class TokenAlreadyRevoked(TokenError):
    """The token was revoked before; ``record`` says when and by whom."""

    def __init__(self, record: TokenRecord) -> None:
        super().__init__(
            f"token {record.prefix} ({record.token_id}) was already revoked "
            f"at {record.revoked_at} by {record.revoked_by or 'unknown'}"
        )
        self.record = record


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """Who a valid token belongs to: what the gateway needs to authorize a request."""

    token_id: UUID
    agent_id: str
    owner_id: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly issued token. ``token`` is the plaintext: show it once, never store it."""

    token_id: UUID
    agent_id: str
    prefix: str
    created_at: datetime
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token as operators see it: never the secret."""

    token_id: UUID
    agent_id: str
    prefix: str
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class VersionedLookup:
    """A token lookup together with the state version it was read at (one snapshot)."""

    info: TokenInfo | None
    state_version: int


def hash_token(token: str) -> bytes:
    """The SHA-256 digest under which a token is stored and cached."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def looks_like_token(value: str) -> bool:
    """True when ``value`` has the shape of a walletgate token (no lookup is done)."""
    return bool(_TOKEN_RE.match(value))


def new_token(prefix: str = TOKEN_PREFIX) -> str:
    """A fresh random secret: ``prefix`` (``wg_`` for agent tokens) + 256 bits, URL-safe
    base64. Admin keys (:mod:`walletgate.storage.admin_keys`) are made the same way."""
    return prefix + secrets.token_urlsafe(_TOKEN_BYTES)


_RECORD_COLUMNS = (
    "id, agent_id, prefix, created_at, created_by, last_used_at, revoked_at, revoked_by"
)


def _record(row: asyncpg.Record) -> TokenRecord:
    return TokenRecord(
        token_id=row["id"],
        agent_id=row["agent_id"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
        revoked_by=row["revoked_by"],
    )


async def issue_token(
    conn: asyncpg.Connection | asyncpg.Pool, agent_id: str, *, actor: str
) -> IssuedToken:
    """Create a token for ``agent_id`` and return it; the plaintext is not kept anywhere.

    Raises :class:`UnknownAgent` when there is no such agent.
    """
    token = new_token()
    try:
        row = await conn.fetchrow(
            "INSERT INTO agent_tokens (agent_id, token_hash, prefix, created_by)"
            " VALUES ($1, $2, $3, $4) RETURNING id, created_at",
            agent_id,
            hash_token(token),
            token[:DISPLAY_PREFIX_LENGTH],
            actor,
        )
    except (asyncpg.ForeignKeyViolationError, asyncpg.CheckViolationError):
        # The foreign key (or the wg_id domain, for a malformed id) is the authority on
        # whether the agent exists; checking first would race with a concurrent apply.
        raise UnknownAgent(f"unknown agent {agent_id!r}") from None
    return IssuedToken(
        token_id=row["id"],
        agent_id=agent_id,
        prefix=token[:DISPLAY_PREFIX_LENGTH],
        created_at=row["created_at"],
        token=token,
    )


async def _agent_exists(conn: asyncpg.Connection | asyncpg.Pool, agent_id: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM agents WHERE id::text = $1", agent_id)
    return found is not None


async def list_tokens(
    conn: asyncpg.Connection | asyncpg.Pool, agent_id: str | None = None
) -> list[TokenRecord]:
    """Every token (or every token of ``agent_id``), oldest first, without secrets.

    Raises :class:`UnknownAgent` when ``agent_id`` names no agent.
    """
    if agent_id is None:
        rows = await conn.fetch(
            f"SELECT {_RECORD_COLUMNS} FROM agent_tokens ORDER BY created_at, id"
        )
    else:
        if not await _agent_exists(conn, agent_id):
            raise UnknownAgent(f"unknown agent {agent_id!r}")
        rows = await conn.fetch(
            f"SELECT {_RECORD_COLUMNS} FROM agent_tokens WHERE agent_id::text = $1"
            " ORDER BY created_at, id",
            agent_id,
        )
    return [_record(row) for row in rows]


async def _find_token(conn: asyncpg.Connection, token_id_or_prefix: str) -> TokenRecord:
    """The one token named by an id, a display prefix or the full token value."""
    reference = token_id_or_prefix.strip()
    try:
        token_id: UUID | None = UUID(reference)
    except ValueError:
        token_id = None
    if token_id is not None:
        rows = await conn.fetch(
            f"SELECT {_RECORD_COLUMNS} FROM agent_tokens WHERE id = $1 FOR UPDATE", token_id
        )
    elif len(reference) > DISPLAY_PREFIX_LENGTH and looks_like_token(reference):
        # A leaked token found by a scanner can be revoked by pasting it as is.
        rows = await conn.fetch(
            f"SELECT {_RECORD_COLUMNS} FROM agent_tokens WHERE token_hash = $1 FOR UPDATE",
            hash_token(reference),
        )
    else:
        rows = await conn.fetch(
            f"SELECT {_RECORD_COLUMNS} FROM agent_tokens WHERE prefix = $1 FOR UPDATE",
            reference,
        )
    if not rows:
        raise UnknownToken(f"no token matches {_safe_reference(reference)!r}")
    if len(rows) > 1:
        ids = ", ".join(str(row["id"]) for row in rows)
        raise AmbiguousToken(f"prefix {reference!r} matches several tokens ({ids}); use the id")
    return _record(rows[0])


def _safe_reference(reference: str) -> str:
    """What to echo back of a reference: never the whole of a pasted secret."""
    if looks_like_token(reference) and len(reference) > DISPLAY_PREFIX_LENGTH:
        return reference[:DISPLAY_PREFIX_LENGTH] + "…"
    return reference


async def revoke_token(
    conn: asyncpg.Connection, token_id_or_prefix: str, *, actor: str
) -> tuple[TokenRecord, int]:
    """Revoke a token (named by id, display prefix or value) and bump the state version.

    Both happen in one transaction, so the revocation and the version that tells caches
    about it commit together. Returns the revoked record and the new state version;
    after the caller's transaction commits, call
    :func:`walletgate.storage.cache.publish_state` so every gateway sees it at once.

    Raises :class:`UnknownToken`, :class:`AmbiguousToken` or
    :class:`TokenAlreadyRevoked`.
    """
    async with conn.transaction():
        record = await _find_token(conn, token_id_or_prefix)
        if not record.active:
            raise TokenAlreadyRevoked(record)
        row = await conn.fetchrow(
            "UPDATE agent_tokens SET revoked_at = now(), revoked_by = $2"
            f" WHERE id = $1 RETURNING {_RECORD_COLUMNS}",
            record.token_id,
            actor,
        )
        version = await bump_state_version(conn)
    return _record(row), version


# One statement, so the token row and the state version come from one snapshot. The left
# join keeps the version row when the token is unknown or revoked.
_LOOKUP_SQL = """
SELECT s.version AS state_version, t.id, t.agent_id, t.owner_id, t.token_hash, t.touch_due
FROM state_version s
LEFT JOIN (
    SELECT tok.id, tok.agent_id, ag.owner_id, tok.token_hash,
           (tok.last_used_at IS NULL
            OR tok.last_used_at < now() - make_interval(secs => $2)) AS touch_due
    FROM agent_tokens tok JOIN agents ag ON ag.id = tok.agent_id
    WHERE tok.token_hash = $1 AND tok.revoked_at IS NULL
) t ON true
WHERE s.id = 1
"""


async def lookup_token_versioned(
    conn: asyncpg.Connection | asyncpg.Pool, token: str
) -> VersionedLookup:
    """Like :func:`lookup_token`, plus the state version the answer is valid for.

    Caches stamp the answer with that version, so an answer read before a revocation
    can never be taken for one read after it.
    """
    digest = hash_token(token)
    row = await conn.fetchrow(_LOOKUP_SQL, digest, float(TOUCH_INTERVAL_SECONDS))
    version: int = row["state_version"]
    # The database found the row by this hash; the constant-time comparison makes the
    # match explicit without a timing side channel on the stored secret's digest.
    if row["id"] is None or not hmac.compare_digest(bytes(row["token_hash"]), digest):
        return VersionedLookup(None, version)
    info = TokenInfo(token_id=row["id"], agent_id=row["agent_id"], owner_id=row["owner_id"])
    if row["touch_due"]:
        await touch_token(conn, info.token_id)
    return VersionedLookup(info, version)


async def lookup_token(conn: asyncpg.Connection | asyncpg.Pool, token: str) -> TokenInfo | None:
    """The agent and owner of a valid token; ``None`` for an unknown or revoked token.

    Records the use in ``last_used_at`` at most once a minute per token.
    """
    if not looks_like_token(token):
        return None
    return (await lookup_token_versioned(conn, token)).info


async def touch_token(conn: asyncpg.Connection | asyncpg.Pool, token_id: UUID) -> None:
    """Set ``last_used_at`` to now unless it was set within the last minute.

    The condition is in the UPDATE itself, so many gateway processes together still
    write a token's row at most once a minute.
    """
    await conn.execute(
        "UPDATE agent_tokens SET last_used_at = now()"
        " WHERE id = $1 AND revoked_at IS NULL"
        " AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))",
        token_id,
        float(TOUCH_INTERVAL_SECONDS),
    )
