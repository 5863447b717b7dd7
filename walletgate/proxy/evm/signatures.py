"""Signature checks and signer recovery, delegated to eth-keys / eth-account.

The range checks are here (not left to the libraries) because eth-keys accepts
signatures that the chain rejects: ``s`` in the upper half of the curve order
(malleable, invalid since EIP-2) and ``r`` or ``s`` of zero.
"""

from __future__ import annotations

from eth_account.typed_transactions.set_code_transaction import Authorization
from eth_keys.constants import SECPK1_N
from eth_keys.datatypes import Signature
from eth_keys.exceptions import BadSignature
from eth_utils import ValidationError

from walletgate.intents import DecodeError

#: Each EIP-7702 authorization costs a signature recovery; real transactions carry one
#: or a few, so a request with more is refused rather than allowed to buy CPU time.
MAX_AUTHORIZATIONS = 32

#: What eth-keys / eth-account raise for a signature they cannot use.
RECOVERY_ERRORS = (BadSignature, ValidationError, ValueError, TypeError)


def check_signature_values(y_parity: int, r: int, s: int, where: str) -> None:
    """Refuse a signature the chain would refuse: y-parity not 0/1, r or s out of range,
    or a high ``s`` (EIP-2)."""
    if y_parity not in (0, 1):
        raise DecodeError(f"signature y-parity must be 0 or 1, got {y_parity}", where=where)
    if not 0 < r < SECPK1_N:
        raise DecodeError("signature r is out of range", where=where)
    if not 0 < s < SECPK1_N:
        raise DecodeError("signature s is out of range", where=where)
    if s > SECPK1_N // 2:
        raise DecodeError(
            "signature s is in the upper half of the curve order (malleable, EIP-2)",
            where=where,
        )


def check_authorization_count(count: int, where: str) -> None:
    """Refuse an empty authorization list (EIP-7702) or one above the limit."""
    if count == 0:
        raise DecodeError("a set-code transaction needs at least one authorization", where=where)
    if count > MAX_AUTHORIZATIONS:
        raise DecodeError(f"{count} authorizations; the limit is {MAX_AUTHORIZATIONS}", where=where)


def recover_authority(
    *, chain_id: int, delegate: str, nonce: int, y_parity: int, r: int, s: int, where: str
) -> str:
    """The account that signed an EIP-7702 authorization (whose code would change),
    as a canonical address. ``delegate`` is the canonical address the code points to."""
    check_signature_values(y_parity, r, s, where)
    digest = Authorization(chain_id, bytes.fromhex(delegate[2:]), nonce).hash()
    try:
        public_key = Signature(vrs=(y_parity, r, s)).recover_public_key_from_msg_hash(bytes(digest))
    except RECOVERY_ERRORS as exc:
        raise DecodeError(f"authorization signature does not recover: {exc}", where=where) from None
    return str(public_key.to_checksum_address()).lower()
