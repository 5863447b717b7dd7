"""Which class each Ethereum JSON-RPC method belongs to (SPEC §3), with safe defaults.

Anything not listed is UNKNOWN and denied by the proxy: a new method that moves money
must never slip through as a read because nobody thought of it.

Decisions worth knowing:
- ``eth_accounts`` and ``eth_requestAccounts`` are never forwarded: on a shared custody
  backend they list every key it holds, other agents' wallets included. walletgate
  answers them itself with the calling agent's own wallets (:data:`OWN_ACCOUNT_METHODS`),
  so that clients which look an account up first (ethers' ``getSigner(address)``) work.
  ``eth_coinbase`` is ADMIN.
- ``personal_sign`` is SIGNING although it shares the ``personal_`` prefix; every other
  ``personal_*`` method manages keys or signs with a password and is ADMIN.
- Operators may move methods between READ, ADMIN and UNKNOWN, but not into or out of
  SPENDING and SIGNING: those classes are defined by the decoders that turn them into
  intents, and a method without a decoder would be judged as if it did nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from walletgate.intents import MethodClass

SPENDING_METHODS = frozenset(
    {
        "eth_sendTransaction",
        "eth_sendRawTransaction",
        # A signed transaction can be broadcast anywhere, so signing one is spending.
        "eth_signTransaction",
        "wallet_sendCalls",
    }
)

SIGNING_METHODS = frozenset(
    {
        "eth_sign",
        "personal_sign",
        "eth_signTypedData",
        "eth_signTypedData_v1",
        "eth_signTypedData_v3",
        "eth_signTypedData_v4",
    }
)

READ_METHODS = frozenset(
    {
        "eth_blockNumber",
        "eth_blobBaseFee",
        "eth_call",
        "eth_chainId",
        "eth_createAccessList",
        "eth_estimateGas",
        "eth_feeHistory",
        "eth_gasPrice",
        "eth_getBalance",
        "eth_getBlockByHash",
        "eth_getBlockByNumber",
        "eth_getBlockReceipts",
        "eth_getBlockTransactionCountByHash",
        "eth_getBlockTransactionCountByNumber",
        "eth_getCode",
        "eth_getFilterChanges",
        "eth_getFilterLogs",
        "eth_getLogs",
        "eth_getProof",
        "eth_getStorageAt",
        "eth_getTransactionByBlockHashAndIndex",
        "eth_getTransactionByBlockNumberAndIndex",
        "eth_getTransactionByHash",
        "eth_getTransactionCount",
        "eth_getTransactionReceipt",
        "eth_getUncleByBlockHashAndIndex",
        "eth_getUncleByBlockNumberAndIndex",
        "eth_getUncleCountByBlockHash",
        "eth_getUncleCountByBlockNumber",
        "eth_maxPriorityFeePerGas",
        "eth_newBlockFilter",
        "eth_newFilter",
        "eth_newPendingTransactionFilter",
        "eth_protocolVersion",
        "eth_simulateV1",
        "eth_syncing",
        "eth_uninstallFilter",
        "net_listening",
        "net_peerCount",
        "net_version",
        "wallet_getCallsStatus",
        "wallet_getCapabilities",
        "web3_clientVersion",
        "web3_sha3",
    }
)

ADMIN_METHODS = frozenset({"eth_accounts", "eth_requestAccounts", "eth_coinbase"})
#: Answered by walletgate with the caller's own wallets, never forwarded (see above).
OWN_ACCOUNT_METHODS = frozenset({"eth_accounts", "eth_requestAccounts"})

#: Namespaces for node administration and key management.
ADMIN_PREFIXES = (
    "admin_",
    "clique_",
    "debug_",
    "engine_",
    "miner_",
    "personal_",
    "txpool_",
)

_DECODER_CLASSES = frozenset({MethodClass.SPENDING, MethodClass.SIGNING})


class MethodOverrideError(ValueError):
    """An operator's method-class override is not allowed; the message names the method."""


def classify(method: str) -> MethodClass:
    """The built-in class of ``method`` (no operator overrides)."""
    if method in SPENDING_METHODS:
        return MethodClass.SPENDING
    if method in SIGNING_METHODS:
        return MethodClass.SIGNING
    if method in READ_METHODS:
        return MethodClass.READ
    if method in ADMIN_METHODS or method.startswith(ADMIN_PREFIXES):
        return MethodClass.ADMIN
    return MethodClass.UNKNOWN


@dataclass(frozen=True)
class MethodClassifier:
    """Classifies methods: built-in defaults, then the operator's validated overrides.

    Build one with :func:`method_classifier`; the default instance has no overrides.
    """

    overrides: Mapping[str, MethodClass] = field(default_factory=lambda: MappingProxyType({}))

    def classify(self, method: str) -> MethodClass:
        """The class the proxy must treat ``method`` as."""
        override = self.overrides.get(method)
        return override if override is not None else classify(method)  # module defaults


def method_classifier(overrides: Mapping[str, str | MethodClass] | None = None) -> MethodClassifier:
    """Validate operator overrides (method name -> class name) and build a classifier.

    Raises :class:`MethodOverrideError` for an unknown class name, or for a change into or
    out of SPENDING / SIGNING (see the module docstring).
    """
    checked: dict[str, MethodClass] = {}
    for method, wanted in (overrides or {}).items():
        try:
            target = MethodClass(wanted)
        except ValueError:
            choices = ", ".join(str(c) for c in MethodClass)
            raise MethodOverrideError(
                f"method {method!r}: unknown class {wanted!r} (one of {choices})"
            ) from None
        current = classify(method)
        if target != current and (target in _DECODER_CLASSES or current in _DECODER_CLASSES):
            raise MethodOverrideError(
                f"method {method!r}: cannot change class from {current} to {target}; "
                "spending and signing methods are fixed by their decoders"
            )
        checked[method] = target
    return MethodClassifier(MappingProxyType(checked))


DEFAULT_CLASSIFIER = MethodClassifier()
