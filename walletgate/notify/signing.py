"""Webhook signatures in the style of Stripe's: HMAC-SHA256 over ``"<ts>.<body>"``.

The header is ``Walletgate-Signature: t=<unix seconds>,v1=<hex digest>``. A receiver
recomputes the digest with its copy of the secret, compares in constant time, and
refuses timestamps too far from its clock (replays of an old delivery).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Walletgate-Signature"
EVENT_ID_HEADER = "Walletgate-Event-Id"
EVENT_TYPE_HEADER = "Walletgate-Event-Type"
DELIVERY_ID_HEADER = "Walletgate-Delivery-Id"


class SignatureError(ValueError):
    """A signature header is missing, malformed, stale, or does not match."""


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``."""
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret, signed, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Walletgate-Signature`` header value for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: bytes, header: str, body: bytes, *, now: int, tolerance: int = 300) -> int:
    """Check a ``Walletgate-Signature`` header; returns its timestamp.

    Raises :class:`SignatureError` unless one of its ``v1`` values matches and its
    timestamp is within ``tolerance`` seconds of ``now``.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("malformed signature header: expected t=<ts>,v1=<hex>")
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"timestamp {timestamp} is more than {tolerance} s from now")
    expected = signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("no signature matches the body")
    return timestamp
