"""What every decoder needs to know about the call it decodes, and the shape checks of
positional params they all share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from walletgate.intents import DecodedRequest, DecodeError, Intent, MethodClass
from walletgate.proxy.evm.fees import CallsFeeQuote


@dataclass(frozen=True, slots=True)
class CallContext:
    """The method being decoded, its class, the chain the backend serves (``None``
    when the caller does not know it), and the gateway's fee estimate for the calls of a
    ``wallet_sendCalls`` request (which carries no fee fields), if it has one."""

    method: str
    method_class: MethodClass
    backend_chain_id: int | None
    calls_fee_quote: CallsFeeQuote | None = None

    def positional(self, params: object, count: int) -> list[Any]:
        """``params`` as an array of exactly ``count`` elements, or a DecodeError."""
        if not isinstance(params, list):
            raise DecodeError(f"{self.method} takes its parameters as an array", where="params")
        if len(params) != count:
            plural = "s" if count != 1 else ""
            raise DecodeError(
                f"{self.method} takes {count} parameter{plural}, got {len(params)}",
                where="params",
            )
        return params

    def intent_chain(self, declared: int | None, where: str) -> int:
        """The chain an intent executes on: the one the request binds, else the backend's."""
        if declared is not None:
            return declared
        if self.backend_chain_id is None:
            raise DecodeError(
                "chainId is missing and the backend's chain is not known", where=where
            )
        return self.backend_chain_id

    def request(
        self,
        *,
        wallet: str,
        chain_id: int | None,
        intents: tuple[Intent, ...],
        tx_hash: str | None = None,
        nonce: int | None = None,
    ) -> DecodedRequest:
        """The decoded request for this call."""
        return DecodedRequest(
            method=self.method,
            method_class=self.method_class,
            wallet=wallet,
            chain_id=chain_id,
            intents=intents,
            tx_hash=tx_hash,
            nonce=nonce,
        )
