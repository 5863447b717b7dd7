"""Owner-signed approvals: the EIP-712 message an owner's approver key signs.

An owner with a registered approver address (``walletgate approvals approver set``)
has its holds approved only with an EIP-712 signature by that address over::

    Approval(string approvalId, bytes32 requestHash, string verdict, uint256 expiry)

in the domain ``{name: "walletgate", version: "1", chainId: <the spend's chain>}``.
``requestHash`` is :func:`request_hash` of the stored request (exactly what will be
forwarded), ``verdict`` is ``"approve"``, ``expiry`` the unix time after which the
signature is refused. So an admin key alone cannot move money: the signature names
one approval, one request and one verdict, and each is accepted once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.exceptions import BadSignature
from eth_utils.exceptions import ValidationError

from walletgate.errors import UserError

DOMAIN_NAME = "walletgate"
DOMAIN_VERSION = "1"
APPROVE = "approve"

_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
    ],
    "Approval": [
        {"name": "approvalId", "type": "string"},
        {"name": "requestHash", "type": "bytes32"},
        {"name": "verdict", "type": "string"},
        {"name": "expiry", "type": "uint256"},
    ],
}


class SignatureRefused(UserError):
    """An approval signature that does not authorize this approval."""


def request_hash(request: Mapping[str, Any]) -> str:
    """sha256 of the stored request's canonical method and params (its id left out)."""
    canonical = json.dumps(
        {"method": request.get("method"), "params": request.get("params")},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return "0x" + hashlib.sha256(canonical.encode()).hexdigest()


def typed_data(
    approval_id: str, req_hash: str, chain_id: int, *, expiry: int, verdict: str = APPROVE
) -> dict[str, Any]:
    """The full EIP-712 document to sign (``eth_signTypedData_v4`` shape)."""
    return {
        "types": _TYPES,
        "primaryType": "Approval",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id},
        "message": {
            "approvalId": approval_id,
            "requestHash": req_hash,
            "verdict": verdict,
            "expiry": expiry,
        },
    }


def recover_signer(document: Mapping[str, Any], signature: str) -> str:
    """The lowercase address that signed ``document``; SignatureRefused if none can be."""
    try:
        signable = encode_typed_data(full_message=dict(document))
        signer = Account.recover_message(signable, signature=signature)
    except (ValueError, TypeError, BadSignature, ValidationError) as exc:
        raise SignatureRefused(f"the signature cannot be read: {exc}") from None
    return str(signer).lower()


def check_signature(
    *,
    approval_id: str,
    req_hash: str,
    chain_id: int,
    approver: str,
    signature: str,
    expiry: int,
    now: float,
) -> str:
    """The signer, when ``signature`` is ``approver``'s over this approval and not
    expired; raises :class:`SignatureRefused` otherwise."""
    if expiry <= now:
        raise SignatureRefused(f"the signature expired at {expiry} (unix time): sign again")
    document = typed_data(approval_id, req_hash, chain_id, expiry=expiry)
    signer = recover_signer(document, signature)
    if signer != approver.lower():
        raise SignatureRefused(
            f"the signature is by {signer}, not by the owner's approver {approver.lower()} "
            "(or it was made over another approval, request, verdict or expiry)"
        )
    return signer


def signature_key(signature: str) -> str:
    """What a used signature is remembered by (its normalized bytes' sha256)."""
    text = signature.lower().removeprefix("0x")
    return hashlib.sha256(text.encode()).hexdigest()
