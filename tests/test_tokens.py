"""Agent tokens against a real PostgreSQL: issued once, stored hashed, revocable at once."""

from __future__ import annotations

import hashlib
import os
import string
import subprocess
import sys

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walletgate.storage.state import current_state_version
from walletgate.storage.tokens import (
    DISPLAY_PREFIX_LENGTH,
    AmbiguousToken,
    TokenAlreadyRevoked,
    TokenInfo,
    UnknownAgent,
    UnknownToken,
    hash_token,
    issue_token,
    list_tokens,
    looks_like_token,
    lookup_token,
    new_token,
    revoke_token,
)


async def _add_agents(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO owners (id, name) VALUES ('acme', 'Acme'), ('globex', 'Globex')"
    )
    await pool.execute(
        "INSERT INTO agents (id, owner_id) VALUES ('trader', 'acme'), ('payroll', 'acme'),"
        " ('other', 'globex')"
    )


@pytest.fixture
async def agents(pool: asyncpg.Pool) -> asyncpg.Pool:
    await _add_agents(pool)
    return pool


async def _public_tables_as_text(pool: asyncpg.Pool) -> str:
    names = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    )
    dumps: list[str] = []
    for row in names:
        rows = await pool.fetch(f'SELECT row_to_json(t)::text AS j FROM "{row["tablename"]}" t')
        dumps.extend(r["j"] for r in rows)
    return "\n".join(dumps)


def test_new_tokens_are_random_256_bit_and_recognisable() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert token.startswith("wg_")
        assert looks_like_token(token)
        # 43 URL-safe base64 characters carry 258 bits >= the 256 random bits drawn.
        assert len(token) == 3 + 43
        assert set(token[3:]) <= set(string.ascii_letters + string.digits + "-_")


@given(st.text(max_size=200))
@settings(max_examples=300)
def test_only_token_shaped_strings_look_like_tokens(value: str) -> None:
    if looks_like_token(value):
        assert value.startswith("wg_")
        assert value.isascii()
        assert 23 <= len(value) <= 103


async def test_issued_token_is_stored_only_as_its_hash(agents: asyncpg.Pool) -> None:
    issued = await issue_token(agents, "trader", actor="alice")

    assert issued.agent_id == "trader"
    assert issued.prefix == issued.token[:DISPLAY_PREFIX_LENGTH]
    assert issued.token not in repr(issued)
    row = await agents.fetchrow("SELECT * FROM agent_tokens WHERE id = $1", issued.token_id)
    assert bytes(row["token_hash"]) == hashlib.sha256(issued.token.encode()).digest()
    assert row["prefix"] == issued.prefix
    assert row["created_by"] == "alice"
    everything = await _public_tables_as_text(agents)
    secret_part = issued.token[DISPLAY_PREFIX_LENGTH:]
    assert issued.token not in everything
    assert secret_part not in everything
    assert secret_part[:16] not in everything


async def test_lookup_finds_the_agent_and_owner_of_a_valid_token(agents: asyncpg.Pool) -> None:
    trader = await issue_token(agents, "trader", actor="alice")
    other = await issue_token(agents, "other", actor="alice")

    assert await lookup_token(agents, trader.token) == TokenInfo(trader.token_id, "trader", "acme")
    assert await lookup_token(agents, other.token) == TokenInfo(other.token_id, "other", "globex")


@pytest.mark.parametrize(
    "candidate",
    ["", "Bearer", "wg_", "wg_short", "not-a-token-at-all-but-long-enough", "wg_" + "A" * 43],
)
async def test_lookup_of_unknown_or_malformed_tokens_is_none(
    agents: asyncpg.Pool, candidate: str
) -> None:
    await issue_token(agents, "trader", actor="alice")
    assert await lookup_token(agents, candidate) is None


async def test_a_prefix_of_a_real_token_is_not_a_token(agents: asyncpg.Pool) -> None:
    issued = await issue_token(agents, "trader", actor="alice")
    assert await lookup_token(agents, issued.token[:-1]) is None
    assert await lookup_token(agents, issued.token + "x") is None


async def test_issue_for_an_unknown_agent_is_a_clear_error(agents: asyncpg.Pool) -> None:
    with pytest.raises(UnknownAgent, match="unknown agent 'ghost'"):
        await issue_token(agents, "ghost", actor="alice")
    with pytest.raises(UnknownAgent, match="unknown agent 'Not An Id!'"):
        await issue_token(agents, "Not An Id!", actor="alice")
    assert await agents.fetchval("SELECT count(*) FROM agent_tokens") == 0


@pytest.mark.parametrize("reference", ["id", "prefix", "token"])
async def test_revoke_takes_effect_and_bumps_the_state_version(
    agents: asyncpg.Pool, reference: str
) -> None:
    issued = await issue_token(agents, "trader", actor="alice")
    keep = await issue_token(agents, "trader", actor="alice")
    before = await current_state_version(agents)
    name = {"id": str(issued.token_id), "prefix": issued.prefix, "token": issued.token}[reference]

    async with agents.acquire() as conn:
        record, version = await revoke_token(conn, name, actor="bob")

    assert record.token_id == issued.token_id
    assert not record.active
    assert record.revoked_by == "bob"
    assert version == before + 1 == await current_state_version(agents)
    assert await lookup_token(agents, issued.token) is None
    assert await lookup_token(agents, keep.token) is not None


async def test_revoke_errors_name_the_token(agents: asyncpg.Pool) -> None:
    issued = await issue_token(agents, "trader", actor="alice")
    async with agents.acquire() as conn:
        await revoke_token(conn, issued.prefix, actor="bob")
        before = await current_state_version(conn)
        with pytest.raises(TokenAlreadyRevoked, match=r"already revoked .* by bob"):
            await revoke_token(conn, str(issued.token_id), actor="bob")
        with pytest.raises(UnknownToken, match="wg_nothere"):
            await revoke_token(conn, "wg_nothere", actor="bob")
        with pytest.raises(UnknownToken, match="00000000-0000-0000-0000-000000000000"):
            await revoke_token(conn, "00000000-0000-0000-0000-000000000000", actor="bob")
        # Errors change nothing, so caches are not told about a change that did not happen.
        assert await current_state_version(conn) == before


async def test_an_unknown_pasted_token_is_not_echoed_whole(agents: asyncpg.Pool) -> None:
    unknown = new_token()
    async with agents.acquire() as conn:
        with pytest.raises(UnknownToken) as caught:
            await revoke_token(conn, unknown, actor="bob")
    assert unknown not in str(caught.value)
    assert unknown[:DISPLAY_PREFIX_LENGTH] in str(caught.value)


async def test_an_ambiguous_prefix_is_refused(agents: asyncpg.Pool) -> None:
    issued = await issue_token(agents, "trader", actor="alice")
    # 48-bit prefixes practically never collide; force one to see the refusal.
    await agents.execute(
        "INSERT INTO agent_tokens (agent_id, token_hash, prefix) VALUES ('payroll', $1, $2)",
        hash_token(new_token()),
        issued.prefix,
    )
    async with agents.acquire() as conn:
        with pytest.raises(AmbiguousToken, match="use the id"):
            await revoke_token(conn, issued.prefix, actor="bob")
        record, _ = await revoke_token(conn, str(issued.token_id), actor="bob")
    assert record.revoked_by == "bob"


async def test_last_used_is_written_at_most_once_a_minute(agents: asyncpg.Pool) -> None:
    issued = await issue_token(agents, "trader", actor="alice")

    async def last_used() -> object:
        return await agents.fetchval(
            "SELECT last_used_at FROM agent_tokens WHERE id = $1", issued.token_id
        )

    assert await last_used() is None
    await lookup_token(agents, issued.token)
    first = await last_used()
    assert first is not None
    await lookup_token(agents, issued.token)
    await lookup_token(agents, issued.token)
    assert await last_used() == first

    await agents.execute(
        "UPDATE agent_tokens SET last_used_at = now() - interval '61 seconds' WHERE id = $1",
        issued.token_id,
    )
    stale = await last_used()
    await lookup_token(agents, issued.token)
    assert await last_used() > stale  # type: ignore[operator]


async def test_list_shows_identifiers_never_secrets(agents: asyncpg.Pool) -> None:
    first = await issue_token(agents, "trader", actor="alice")
    second = await issue_token(agents, "payroll", actor="alice")
    async with agents.acquire() as conn:
        await revoke_token(conn, first.prefix, actor="bob")

    everything = await list_tokens(agents)
    payroll = await list_tokens(agents, "payroll")

    assert [r.token_id for r in everything] == [first.token_id, second.token_id]
    assert [r.token_id for r in payroll] == [second.token_id]
    assert [r.active for r in everything] == [False, True]
    text = repr(everything)
    assert first.token not in text and second.token not in text
    assert await list_tokens(agents, "other") == []
    with pytest.raises(UnknownAgent, match="ghost"):
        await list_tokens(agents, "ghost")


# -- the CLI, run as an operator would ------------------------------------------------------


def _cli(args: list[str], database_url: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "WALLETGATE_DATABASE_URL": database_url,
        "WALLETGATE_REDIS_URL": redis_url,
        "WALLETGATE_ACTOR": "cli-test",
    }
    return subprocess.run(
        [sys.executable, "-m", "walletgate.cli", "agents", "token", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_cli_issue_list_revoke(
    agents: asyncpg.Pool, database_url: str, redis_url: str
) -> None:
    issued = _cli(["issue", "trader"], database_url, redis_url)
    assert issued.returncode == 0, issued.stderr
    row = await agents.fetchrow("SELECT id, prefix, token_hash, created_by FROM agent_tokens")
    token = next(
        word for word in issued.stdout.split() if word.startswith("wg_") and looks_like_token(word)
    )
    assert bytes(row["token_hash"]) == hash_token(token)
    assert row["created_by"] == "cli-test"
    assert f"Authorization: Bearer {token}" in issued.stdout
    assert f"/t/{token}/" in issued.stdout

    listed = _cli(["list"], database_url, redis_url)
    assert listed.returncode == 0, listed.stderr
    assert row["prefix"] in listed.stdout and str(row["id"]) in listed.stdout
    assert token not in listed.stdout
    assert token[DISPLAY_PREFIX_LENGTH:] not in listed.stdout

    revoked = _cli(["revoke", row["prefix"]], database_url, redis_url)
    assert revoked.returncode == 0, revoked.stderr
    assert await lookup_token(agents, token) is None
    assert "revoked" in _cli(["list", "trader"], database_url, redis_url).stdout

    again = _cli(["revoke", str(row["id"])], database_url, redis_url)
    assert again.returncode == 0
    assert "already revoked" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["issue", "ghost"], "unknown agent 'ghost'"),
        (["list", "ghost"], "unknown agent 'ghost'"),
        (["revoke", "wg_nothere"], "no token matches 'wg_nothere'"),
    ],
)
async def test_cli_errors_are_one_clear_line(
    agents: asyncpg.Pool, database_url: str, redis_url: str, args: list[str], message: str
) -> None:
    result = _cli(args, database_url, redis_url)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
