"""Owner-signed approvals and hold timing, without servers: the EIP-712 check, the
request fingerprint, and ``approval_timeout`` from YAML to the held decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from walletgate.policies.decision import Decision, Outcome, Reason
from walletgate.proxy.holds import hold_info
from walletgate.service.approval_signatures import (
    SignatureRefused,
    check_signature,
    request_hash,
    typed_data,
)
from walletgate.storage.approvals import DEFAULT_TIMEOUT_SECONDS, fingerprint

OWNER = "0x" + (9).to_bytes(32, "big").hex()
OTHER = "0x" + (8).to_bytes(32, "big").hex()
APPROVER = str(Account.from_key(OWNER).address)
REQUEST = {"jsonrpc": "2.0", "id": 7, "method": "eth_sendTransaction", "params": [{"to": "0x1"}]}
NOW = 1_800_000_000


def _sign(key: str, approval_id: str, req_hash: str, expiry: int, chain_id: int = 1337) -> str:
    document = typed_data(approval_id, req_hash, chain_id, expiry=expiry)
    signed = Account.sign_message(encode_typed_data(full_message=document), key)
    return "0x" + bytes(signed.signature).hex()


def _check(
    signature: str, *, approval_id: str = "a-1", expiry: int = NOW + 60, **kw: object
) -> str:
    args: dict[str, object] = {
        "approval_id": approval_id,
        "req_hash": request_hash(REQUEST),
        "chain_id": 1337,
        "approver": APPROVER,
        "signature": signature,
        "expiry": expiry,
        "now": NOW,
    }
    args.update(kw)
    return check_signature(**args)  # type: ignore[arg-type]


def test_the_approvers_signature_over_this_approval_is_accepted() -> None:
    signature = _sign(OWNER, "a-1", request_hash(REQUEST), NOW + 60)
    assert _check(signature) == APPROVER.lower()


@pytest.mark.parametrize(
    ("key", "approval_id", "req_hash", "chain_id", "why"),
    [
        (OTHER, "a-1", None, 1337, "another signer"),
        (OWNER, "a-2", None, 1337, "another approval"),
        (OWNER, "a-1", "0x" + "11" * 32, 1337, "another request"),
        (OWNER, "a-1", None, 1, "another chain"),
    ],
)
def test_a_signature_by_another_key_or_over_anything_else_is_refused(
    key: str, approval_id: str, req_hash: str | None, chain_id: int, why: str
) -> None:
    signature = _sign(key, approval_id, req_hash or request_hash(REQUEST), NOW + 60, chain_id)
    with pytest.raises(SignatureRefused, match="not by the owner's approver"):
        _check(signature)


def test_an_expired_or_unreadable_signature_is_refused() -> None:
    signature = _sign(OWNER, "a-1", request_hash(REQUEST), NOW - 1)
    with pytest.raises(SignatureRefused, match="expired"):
        _check(signature, expiry=NOW - 1)
    with pytest.raises(SignatureRefused, match="cannot be read"):
        _check("0x1234")


def test_the_fingerprint_ignores_the_call_id_but_not_the_agent_or_the_params() -> None:
    params = [{"from": "0xa", "to": "0xb", "value": "0x1"}]
    base = fingerprint("eth_sendTransaction", params, "trader", 1337)
    assert base == fingerprint("eth_sendTransaction", [dict(params[0])], "trader", 1337)
    assert base != fingerprint("eth_sendTransaction", params, "payroll", 1337)
    assert base != fingerprint(
        "eth_sendTransaction", [{**params[0], "value": "0x2"}], "trader", 1337
    )
    assert base != fingerprint("eth_sendTransaction", params, "trader", 1)
    assert request_hash(REQUEST) == request_hash({**REQUEST, "id": 8})


def test_holds_expire_after_their_timeout_and_delays_after_their_release() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    held = Decision(Outcome.HOLD, Reason.APPROVAL_REQUIRED, "held")
    assert hold_info(held, now, "0x").expires_at == now + timedelta(seconds=DEFAULT_TIMEOUT_SECONDS)
    timed = Decision(Outcome.HOLD, Reason.APPROVAL_REQUIRED, "held", hold_timeout_seconds=30)
    assert (hold_info(timed, now, "0x").kind, hold_info(timed, now, "0x").expires_at) == (
        "approval",
        now + timedelta(seconds=30),
    )
    delayed = Decision(
        Outcome.HOLD,
        Reason.APPROVAL_REQUIRED,
        "held",
        hold_delay_seconds=60,
        hold_timeout_seconds=30,
    )
    info = hold_info(delayed, now, "0x")
    assert (info.kind, info.release_at, info.expires_at) == (
        "delay",
        now + timedelta(seconds=60),
        now + timedelta(seconds=90),
    )
