"""Redis key names of the caches, hash-tagged for Redis Cluster.

Redis Cluster routes a key by the part inside ``{…}``. Keys that one script or
transaction touches together must share that tag, so every state key carries
``{wg:state}``; a token entry and a wallet's balances each live in their own slot so
that they spread over the cluster.
"""

from __future__ import annotations

from walletgate.intents import canonical_address

_STATE_TAG = "{wg:state}"
#: The state version the caches were last told about (an integer, with a TTL).
STATE_VERSION_KEY = f"{_STATE_TAG}:version"
#: The policy document of that version: JSON ``{"version": int, "document": {...}}``.
POLICY_DOCUMENT_KEY = f"{_STATE_TAG}:policy"
#: The gateways' state leases: lease id -> "<acknowledged version> <expiry ms>"
#: (walletgate.storage.leases).
LEASES_KEY = f"{_STATE_TAG}:leases"
#: "<longest lease term ms> <registry created at ms>": the registry's own record.
LEASE_TERM_KEY = f"{_STATE_TAG}:leases:term"
#: Pub/sub channel on which a new state version is announced.
STATE_CHANNEL = "wg:state:changes"
#: Pub/sub channel on which the key of a wallet's dropped balances is announced, so
#: every gateway forgets its in-memory copies (walletgate.storage.near_balances).
BALANCE_DROPS_CHANNEL = "wg:balance:drops"


def token_key(token_digest: bytes) -> str:
    """The token cache entry of a token, by its SHA-256 digest (never the token itself)."""
    return f"wg:token:{{{token_digest.hex()}}}"


def balance_key(chain_id: int, address: str) -> str:
    """The hash holding a wallet's cached balances, one field per block tag.

    Raises :class:`walletgate.intents.InvalidAddress` for a malformed address.
    """
    return f"wg:balance:{{{chain_id}:{canonical_address(address)}}}"
