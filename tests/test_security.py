"""Security boundaries, end to end against a real ``walletgate serve``.

- An agent cannot act for another agent's wallet, whatever the request names it by.
- Tokens: stored and cached only as SHA-256 digests, never logged, compared in
  constant time, throttled when guessed, dead on their next use once revoked.
- walletgate calls no URL but its configured backends, follows no redirect, and its
  logs and error messages carry no backend secret.

Every refusal is checked against the recording backend: the refused call never arrived.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from itertools import chain
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from eth_account import Account
from eth_utils import to_checksum_address

from tests.support.devnet import Devnet
from tests.support.gateway import issue_token, walletgate_cli
from tests.support.recorded_gateway import (
    ALICE,
    ALICE_KEY,
    BOB,
    BOB_KEY,
    COUNTERPARTIES,
    RecordedGateway,
    address,
    private_key,
    recorded_gateway_fixture,
)
from walletgate.proxy.app import AUTH_FAILURE_LIMIT
from walletgate.storage.tokens import DISPLAY_PREFIX_LENGTH, lookup_token

Case = Callable[[int], tuple[str, list[Any]]]


gw = recorded_gateway_fixture("security")


def new_id() -> int:
    return secrets.randbelow(10**15)


def rpc(call_id: int, method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "method": method, "params": params}


def post_json(gw: RecordedGateway, document: Any, **kwargs: Any) -> tuple[int, Any]:
    status, body = gw.post(json.dumps(document).encode(), **kwargs)
    return status, json.loads(body) if body else None


def forwarded_ids(gw: RecordedGateway, mark: int) -> set[Any]:
    return {call.get("id") for call in gw.backend.forwarded_calls(mark)}


# -- one agent, another agent's wallet ---------------------------------------------------------


def _mail(signer: str) -> dict[str, Any]:
    """Typed data that is no permit: judged as a plain signature of ``signer``."""
    return {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}],
            "Mail": [{"name": "from", "type": "address"}, {"name": "contents", "type": "string"}],
        },
        "primaryType": "Mail",
        "domain": {"name": "walletgate"},
        "message": {"from": signer, "contents": "hello"},
    }


def _authorization(signer_key: int) -> dict[str, str]:
    signed = Account.sign_authorization(
        {"chainId": 1337, "address": to_checksum_address(COUNTERPARTIES[0]), "nonce": 0},
        private_key(signer_key),
    )
    return {
        "chainId": hex(signed.chain_id),
        "address": COUNTERPARTIES[0],
        "nonce": hex(signed.nonce),
        "yParity": hex(signed.y_parity),
        "r": hex(signed.r),
        "s": hex(signed.s),
    }


def _raw(signer_key: int, nonce: int, **fields: Any) -> str:
    tx = {
        "chainId": 1337,
        "nonce": nonce,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 1,
        "gas": 100_000,
        "to": to_checksum_address(COUNTERPARTIES[0]),
        "value": 1,
        "data": b"",
        **fields,
    }
    return "0x" + bytes(Account.sign_transaction(tx, private_key(signer_key)).raw_transaction).hex()


def _send(key: int) -> tuple[str, list[Any]]:
    return "eth_sendTransaction", [{"from": address(key), "to": COUNTERPARTIES[0], "value": "0x1"}]


#: Each case builds a request acting for the wallet of devnet key ``key``. The nonce of
#: raw transactions is filled in by the test (0 for refusals, which are never mined).
CASES: dict[str, Case] = {
    "eth_sendTransaction from": _send,
    "eth_sendTransaction from, checksummed": lambda key: (
        "eth_sendTransaction",
        [{"from": to_checksum_address(address(key)), "to": COUNTERPARTIES[0], "value": "0x1"}],
    ),
    "eth_sendTransaction from, upper case": lambda key: (
        "eth_sendTransaction",
        [{"from": "0x" + address(key)[2:].upper(), "to": COUNTERPARTIES[0], "value": "0x1"}],
    ),
    "eth_signTransaction from": lambda key: (
        "eth_signTransaction",
        [{"from": address(key), "to": COUNTERPARTIES[0], "value": "0x1", "gas": "0x5208"}],
    ),
    "raw transaction signed with the key": lambda key: (
        "eth_sendRawTransaction",
        [_raw(key, 0)],
    ),
    "wallet_sendCalls from": lambda key: (
        "wallet_sendCalls",
        [
            {
                "version": "2.0.0",
                "chainId": "0x539",
                "from": address(key),
                "atomicRequired": True,
                "calls": [{"to": COUNTERPARTIES[0], "value": "0x1"}],
            }
        ],
    ),
    "eth_sign": lambda key: ("eth_sign", [address(key), "0x" + "ab" * 32]),
    "personal_sign": lambda key: ("personal_sign", ["0x68656c6c6f", address(key)]),
    "personal_sign, swapped": lambda key: ("personal_sign", [address(key), "0x68656c6c6f"]),
    "eth_signTypedData_v4": lambda key: (
        "eth_signTypedData_v4",
        [address(key), json.dumps(_mail(address(key)))],
    ),
    "eth_signTypedData_v3, as an object": lambda key: (
        "eth_signTypedData_v3",
        [address(key), _mail(address(key))],
    ),
    "eth_signTypedData, legacy array": lambda key: (
        "eth_signTypedData",
        [[{"type": "string", "name": "note", "value": "hi"}], address(key)],
    ),
}


async def _nonce(devnet: Devnet, who: str) -> int:
    return int(await devnet.rpc("eth_getTransactionCount", [who, "pending"]), 16)


@pytest.mark.parametrize("case", list(CASES))
async def test_an_agent_cannot_act_for_another_agents_wallet(
    gw: RecordedGateway, devnet: Devnet, case: str
) -> None:
    mark = gw.backend.mark()
    refused_id = new_id()
    method, params = CASES[case](BOB_KEY)
    status, reply = post_json(gw, rpc(refused_id, method, params), agent="alice")
    assert status == 200
    error = reply["error"]
    assert error["code"] == -32003, reply
    assert error["data"]["reason"] == "wallet_not_owned", reply
    assert refused_id not in forwarded_ids(gw, mark)
    rows = await gw.rows(
        "SELECT agent_id, wallet_id, decision, reason, status FROM transactions WHERE id = $1",
        error["data"]["transaction_id"],
    )
    assert [tuple(row) for row in rows] == [("alice", None, "deny", "wallet_not_owned", "denied")]

    # The control: the same request for alice's own wallet is not refused by walletgate.
    if method == "eth_sendRawTransaction":
        method, params = "eth_sendRawTransaction", [_raw(ALICE_KEY, await _nonce(devnet, ALICE))]
    else:
        method, params = CASES[case](ALICE_KEY)
    allowed_id = new_id()
    status, reply = post_json(gw, rpc(allowed_id, method, params), agent="alice")
    assert reply.get("error", {}).get("data", {}).get("decision") != "deny", reply
    assert allowed_id in forwarded_ids(gw, mark)


@pytest.mark.parametrize(
    "where", ["eth_sendTransaction authorizationList", "raw transaction authorizationList"]
)
async def test_a_delegation_signed_with_another_agents_key_is_refused(
    gw: RecordedGateway, where: str
) -> None:
    """An EIP-7702 authorization hands the *signer's* account to a contract: inside
    alice's own transaction, one signed with bob's key acts for bob's wallet."""
    mark = gw.backend.mark()
    call_id = new_id()
    if where.startswith("eth_sendTransaction"):
        tx = {
            "from": ALICE,
            "to": ALICE,
            "type": "0x4",
            "authorizationList": [_authorization(BOB_KEY)],
        }
        request = rpc(call_id, "eth_sendTransaction", [tx])
    else:
        auth = Account.sign_authorization(
            {"chainId": 1337, "address": to_checksum_address(COUNTERPARTIES[0]), "nonce": 0},
            private_key(BOB_KEY),
        )
        raw = _raw(ALICE_KEY, 0, type=4, to=to_checksum_address(ALICE), authorizationList=[auth])
        request = rpc(call_id, "eth_sendRawTransaction", [raw])
    _status, reply = post_json(gw, request)
    assert reply["error"]["data"]["reason"] == "wallet_not_owned", reply
    assert call_id not in forwarded_ids(gw, mark)


async def test_a_batch_refuses_only_the_foreign_elements(gw: RecordedGateway) -> None:
    mark = gw.backend.mark()
    read, foreign_send, foreign_sign, own_sign = (new_id() for _ in range(4))
    batch = [
        rpc(read, "eth_chainId", []),
        rpc(foreign_send, *_send(BOB_KEY)),
        rpc(foreign_sign, "personal_sign", ["0x6869", BOB]),
        rpc(own_sign, "personal_sign", ["0x6869", ALICE]),
    ]
    status, reply = post_json(gw, batch)
    assert status == 200
    assert [item["id"] for item in reply] == [read, foreign_send, foreign_sign, own_sign]
    assert reply[0]["result"] == "0x539"
    assert reply[1]["error"]["data"]["reason"] == "wallet_not_owned"
    assert reply[2]["error"]["data"]["reason"] == "wallet_not_owned"
    forwarded = forwarded_ids(gw, mark)
    assert {read, own_sign} <= forwarded
    assert not {foreign_send, foreign_sign} & forwarded


async def test_a_second_credential_does_not_widen_the_first(gw: RecordedGateway) -> None:
    """With alice's token in the path and bob's in the header, the request is alice's:
    one request has one identity, and the path token (the URL form) decides it."""
    mark = gw.backend.mark()
    call_id = new_id()
    _status, reply = post_json(
        gw,
        rpc(call_id, *_send(BOB_KEY)),
        token=gw.tokens["bob"],
        path=f"/t/{gw.tokens['alice']}/",
    )
    assert reply["error"]["data"]["reason"] == "wallet_not_owned"
    assert call_id not in forwarded_ids(gw, mark)


# -- tokens ----------------------------------------------------------------------------------


async def _redis_text(url: str) -> bytes:
    """Every key and value in Redis, whatever its type, as one byte string."""
    # Any: redis-py's return types are unions of every mode; this client returns bytes.
    client: Any = aioredis.Redis.from_url(url)
    out: list[bytes] = []
    try:
        async for key in client.scan_iter(count=1000):
            out.append(key)
            kind = (await client.type(key)).decode()
            if kind == "string":
                out.append(await client.get(key) or b"")
            elif kind == "hash":
                out.extend(chain.from_iterable((await client.hgetall(key)).items()))
            elif kind == "list":
                out.extend(await client.lrange(key, 0, -1))
            elif kind == "set":
                out.extend(await client.smembers(key))
            elif kind == "zset":
                out.extend(member for member, _ in await client.zrange(key, 0, -1, withscores=True))
            elif kind == "stream":
                for _id, fields in await client.xrange(key):
                    out.extend(chain.from_iterable(fields.items()))
    finally:
        await client.aclose()
    return b"\n".join(out)


async def _database_text(url: str) -> str:
    """Every row of every table, as text (bytea shows as hex)."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        parts: list[str] = []
        for table in tables:
            rows = await conn.fetch(f'SELECT t::text AS row FROM "{table["tablename"]}" t')
            parts.extend(row["row"] for row in rows)
        return "\n".join(parts)
    finally:
        await conn.close()


def _leaks(text: str, token: str) -> bool:
    """True when ``text`` holds the secret part of ``token`` in any common encoding
    (the first characters are a public display prefix)."""
    secret = token[DISPLAY_PREFIX_LENGTH:]
    return any(form in text for form in (secret, secret.encode().hex()))


def _requests_carrying_tokens(gw: RecordedGateway, token: str) -> list[bytes]:
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
    length = f"Content-Length: {len(body)}\r\n".encode()
    raw_token = token.encode()

    def request(line: bytes, *headers: bytes) -> bytes:
        return (
            line
            + b"\r\nHost: gw\r\nConnection: close\r\n"
            + b"".join(h + b"\r\n" for h in headers)
            + length
            + b"\r\n"
            + body
        )

    bearer = b"Authorization: Bearer " + raw_token
    return [
        request(b"POST /t/" + raw_token + b"/ HTTP/1.1"),
        request(b"POST /t/" + raw_token + b" HTTP/1.1"),
        request(b"POST /t/" + raw_token + b"/rpc/keyed HTTP/1.1"),
        request(b"POST /t/" + raw_token + b"/rpc/nope HTTP/1.1"),
        request(b"POST /t/" + raw_token + b"/no/such/route HTTP/1.1"),
        request(b"POST /T/" + raw_token + b"/ HTTP/1.1"),
        request(b"POST //t/" + raw_token + b"/ HTTP/1.1"),
        request(b"GET /t/" + raw_token + b"/ HTTP/1.1"),
        request(b"POST /?token=" + raw_token + b" HTTP/1.1"),
        request(b"POST /t/" + raw_token + b"/ HTTP/9.9"),
        request(b"POST /t/" + raw_token + b"\xff/ HTTP/1.1"),
        request(b"POST /t/" + raw_token + b"/ HTTP/1.1", b"Bad Header Line"),
        request(b"POST / HTTP/1.1", bearer),
        request(b"POST / HTTP/1.1", b"Authorization : Bearer " + raw_token),
        request(b"POST / HTTP/1.1", bearer + b"\x00"),
        request(b"POST / HTTP/1.1", bearer, b"Content-Length: 1"),
    ]


async def _assert_tokens_stay_secret(gw: RecordedGateway) -> None:
    """Send every token-carrying request, then look for the tokens everywhere."""
    tokens = dict(gw.tokens)
    tokens["revoked"] = issue_token("alice", gw.env)
    walletgate_cli(["agents", "token", "revoke", tokens["revoked"]], gw.env)
    answers: list[bytes] = []
    for token in tokens.values():
        for request in _requests_carrying_tokens(gw, token):
            answers.append(gw.exchange(request, until_closed=True).data)
        answers.append(gw.post(b"{}", token=token)[1])
    log = gw.sync_log()
    stored = await _database_text(gw.database_url)
    cached = (await _redis_text(gw.redis_url)).decode("latin-1")
    for name, token in tokens.items():
        assert not _leaks(log, token), f"the {name} token is in the gateway log"
        assert not _leaks(stored, token), f"the {name} token is in the database"
        assert not _leaks(cached, token), f"the {name} token is in Redis"
        digest = hashlib.sha256(token.encode()).digest()
        rows = await gw.rows("SELECT prefix FROM agent_tokens WHERE token_hash = $1", digest)
        assert [row["prefix"] for row in rows] == [token[:DISPLAY_PREFIX_LENGTH]]
    # walletgate's own answers never echo a token back (aiohttp's 400 for an unparsable
    # request line quotes that line to the client who sent it, and to no one else).
    for answer in answers:
        if b"HTTP/1.0 400" not in answer and b"HTTP/1.1 400" not in answer:
            assert not any(_leaks(answer.decode("latin-1"), t) for t in tokens.values())
    # The requests were logged, just without their tokens.
    assert "/t/<redacted>/rpc/nope" in log
    assert "refused a malformed HTTP request" in log
    assert "Traceback" not in log


async def test_tokens_are_never_stored_cached_or_logged_in_plain_text(gw: RecordedGateway) -> None:
    await _assert_tokens_stay_secret(gw)


gw_workers = recorded_gateway_fixture("security-workers", serve_args=("--workers", "2"))


async def test_worker_processes_log_no_tokens_either(gw_workers: RecordedGateway) -> None:
    """``serve --workers`` starts fresh processes: they must set up the same logging."""
    await _assert_tokens_stay_secret(gw_workers)
    assert "[worker " in gw_workers.log()


async def test_tokens_are_looked_up_by_digest_and_compared_in_constant_time(
    gw: RecordedGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def compare(a: Any, b: Any) -> bool:
        compared.append((bytes(a), bytes(b)))
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", compare)
    token = gw.tokens["alice"]
    digest = hashlib.sha256(token.encode()).digest()
    conn = await asyncpg.connect(gw.database_url)
    try:
        found = await lookup_token(conn, token)
        assert found is not None and found.agent_id == "alice"
        assert compared == [(digest, digest)]
        near_miss = token[:-1] + ("A" if token[-1] != "A" else "B")
        assert await lookup_token(conn, near_miss) is None
    finally:
        await conn.close()


async def test_repeated_bad_tokens_from_one_client_are_refused(gw: RecordedGateway) -> None:
    """Per client address, in this process: the 21st bad token within a minute gets 429,
    and so does a *good* token from that address (a guess that finally hits must not be
    confirmed). Other clients are not affected."""
    attacker, bystander = "127.0.0.2", "127.0.0.3"
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'

    def attempt(source: str, token: str, *, in_path: bool = False) -> int | None:
        path = f"/t/{token}/" if in_path else "/"
        auth = "" if in_path else f"Authorization: Bearer {token}\r\n"
        request = (
            f"POST {path} HTTP/1.1\r\nHost: gw\r\n{auth}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        return gw.exchange(request, source=source).status

    throttled_before = gw.metric("walletgate_auth_failures_total", 'kind="throttled"')
    guesses = ["wg_" + secrets.token_urlsafe(32) for _ in range(AUTH_FAILURE_LIMIT)]
    statuses = [attempt(attacker, guess, in_path=i % 2 == 0) for i, guess in enumerate(guesses)]
    assert statuses == [401] * AUTH_FAILURE_LIMIT
    assert attempt(attacker, "wg_" + secrets.token_urlsafe(32)) == 429
    assert attempt(attacker, gw.tokens["alice"]) == 429
    assert attempt(bystander, gw.tokens["alice"]) == 200
    reply = gw.exchange(
        (f"POST / HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {guesses[0]}\r\n").encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body,
        source=attacker,
    )
    assert reply.status == 429
    assert int(dict(_headers(reply.head))["retry-after"]) >= 1
    assert reply.json()["error"]["code"] == -32000
    assert gw.metric("walletgate_auth_failures_total", 'kind="throttled"') >= throttled_before + 3


def _headers(head: str) -> list[tuple[str, str]]:
    lines = head.split("\r\n")[1:]
    return [
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(":") for line in lines)
    ]


async def test_a_revoked_token_fails_on_its_next_use(gw: RecordedGateway) -> None:
    token = issue_token("alice", gw.env)
    call = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    assert post_json(gw, call, token=token)[0] == 200  # now cached in memory and Redis
    assert post_json(gw, [call], token="", path=f"/t/{token}/")[0] == 200
    walletgate_cli(["agents", "token", "revoke", token], gw.env)
    status, reply = post_json(gw, call, token=token)
    assert status == 401 and reply["error"]["message"] == "unknown or revoked agent token"
    assert post_json(gw, [call], token="", path=f"/t/{token}/")[0] == 401
    assert post_json(gw, call, token=gw.tokens["alice"])[0] == 200, "other tokens still work"


# -- no URL but the configured backends ------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/rpc/nope",
        "/rpc/..%2Fdefault",
        "/rpc/default%2F..%2F..%2Fstolen",
        "/rpc/http:%2F%2F127.0.0.1:1%2F",
        "/rpc/",
        "/rpc/default/extra",
    ],
)
def test_unknown_backend_names_are_404_and_reach_nothing(gw: RecordedGateway, path: str) -> None:
    mark, elsewhere = gw.backend.mark(), gw.elsewhere.mark()
    call_id = new_id()
    status, body = gw.post(json.dumps(rpc(call_id, "eth_chainId", [])).encode(), path=path)
    assert status == 404, body
    assert call_id not in forwarded_ids(gw, mark)
    assert gw.elsewhere.since(elsewhere) == []


def test_an_absolute_request_target_or_host_header_changes_nothing(gw: RecordedGateway) -> None:
    mark, elsewhere = gw.backend.mark(), gw.elsewhere.mark()
    call_id = new_id()
    body = json.dumps(rpc(call_id, "eth_chainId", [])).encode()
    target = f"{gw.elsewhere.url}/"
    reply = gw.exchange(
        f"POST {target} HTTP/1.1\r\nHost: {gw.elsewhere.url[7:]}\r\n".encode()
        + f"Authorization: Bearer {gw.tokens['alice']}\r\n".encode()
        + f"X-Forwarded-Host: {gw.elsewhere.url[7:]}\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    assert reply.status == 200 and reply.json()["result"] == "0x539"
    assert [r.path for r in gw.backend.since(mark)] == ["/default"]
    assert gw.elsewhere.since(elsewhere) == []


def test_a_request_member_naming_a_url_is_refused(gw: RecordedGateway) -> None:
    mark = gw.backend.mark()
    call = {**rpc(new_id(), "eth_chainId", []), "backend": gw.elsewhere.url}
    _status, reply = post_json(gw, call)
    assert reply["error"]["code"] == -32600
    assert "unexpected request member 'backend'" in reply["error"]["message"]
    assert gw.backend.since(mark) == []


async def test_redirects_are_not_followed(gw: RecordedGateway) -> None:
    mark, elsewhere = gw.backend.mark(), gw.elsewhere.mark()
    read_id, spend_id = new_id(), new_id()
    _status, read = post_json(gw, rpc(read_id, "eth_blockNumber", []), path="/rpc/bouncing")
    assert read["error"]["code"] == -32002
    # With its gas and fee given, walletgate asks the backend for nothing before forwarding
    # (a spend that leaves them to the backend is refused when no quote comes back).
    method, (tx,) = _send(ALICE_KEY)
    complete = [{**tx, "gas": "0x5208", "maxFeePerGas": hex(10**9)}]
    _status, spend = post_json(gw, rpc(spend_id, method, complete), path="/rpc/bouncing")
    assert spend["error"]["code"] == -32002
    assert spend["error"]["data"]["reason"] == "backend_unknown"
    assert {read_id, spend_id} <= forwarded_ids(gw, mark), "the configured backend was asked"
    assert gw.elsewhere.since(elsewhere) == [], "the redirect target was never contacted"
    rows = await gw.rows(
        "SELECT status FROM transactions WHERE id = $1", spend["error"]["data"]["transaction_id"]
    )
    assert [row["status"] for row in rows] == ["unknown"]


# -- secrets in logs and errors ------------------------------------------------------------


async def test_backend_secrets_reach_the_backend_and_nothing_else(gw: RecordedGateway) -> None:
    mark = gw.backend.mark()
    answers: list[bytes] = []
    for path in ("/rpc/keyed", "/rpc/broken"):
        for request in (
            rpc(new_id(), "eth_blockNumber", []),
            rpc(new_id(), *_send(ALICE_KEY)),
            rpc(new_id(), *_send(BOB_KEY)),
            [rpc(new_id(), "eth_chainId", []), rpc(new_id(), "admin_peers", [])],
        ):
            answers.append(gw.post(json.dumps(request).encode(), path=path)[1])
        answers.append(gw.post(b"{not json", path=path)[1])
        answers.append(gw.post(b"{}", path=path, token="wg_" + "x" * 40)[1])
    for path in ("/readyz", "/metrics", "/healthz"):
        answers.append(gw.get(path)[1])
    log = gw.sync_log()
    everything = b"\n".join(answers).decode("latin-1") + log
    for secret in gw.secrets.all():
        assert secret not in everything
    keyed = [r for r in gw.backend.since(mark) if r.path.startswith("/keyed/")]
    assert keyed, "the keyed backend was used"
    for received in keyed:
        assert received.path == f"/keyed/{gw.secrets.path}"
        assert received.query == f"apikey={gw.secrets.query}"
        assert received.headers["X-Api-Key"] == gw.secrets.header
    for received in gw.backend.requests:
        assert "Authorization" not in received.headers, "an agent credential was forwarded"
        seen = received.body.decode("latin-1") + received.path + received.query
        assert not any(_leaks(seen, token) for token in gw.tokens.values())
