"""Entry point of the EVM adapter: a JSON-RPC method and its params become a
:class:`DecodedRequest` (sans-I/O: no network, no clock, no globals)."""

from __future__ import annotations

from collections.abc import Callable

from walletgate.intents import DecodedRequest, DecodeError, MethodClass
from walletgate.proxy.evm.context import CallContext
from walletgate.proxy.evm.fees import CallsFeeQuote
from walletgate.proxy.evm.methods import DEFAULT_CLASSIFIER, MethodClassifier
from walletgate.proxy.evm.rawtx import decode_raw_transaction
from walletgate.proxy.evm.reads import balance_query
from walletgate.proxy.evm.sendcalls import decode_send_calls
from walletgate.proxy.evm.signing import (
    decode_eth_sign,
    decode_personal_sign,
    decode_sign_typed_data,
)
from walletgate.proxy.evm.transactions import decode_transaction_object

__all__ = ["balance_query", "decode_call"]

Decoder = Callable[[CallContext, object], DecodedRequest]

_DECODERS: dict[str, Decoder] = {
    "eth_sendTransaction": decode_transaction_object,
    "eth_signTransaction": decode_transaction_object,
    "eth_sendRawTransaction": decode_raw_transaction,
    "wallet_sendCalls": decode_send_calls,
    "eth_sign": decode_eth_sign,
    "personal_sign": decode_personal_sign,
    "eth_signTypedData": decode_sign_typed_data,
    "eth_signTypedData_v1": decode_sign_typed_data,
    "eth_signTypedData_v3": decode_sign_typed_data,
    "eth_signTypedData_v4": decode_sign_typed_data,
}


def decode_call(
    method: str,
    params: object,
    *,
    chain_id: int | None = None,
    classifier: MethodClassifier = DEFAULT_CLASSIFIER,
    calls_fee_quote: CallsFeeQuote | None = None,
) -> DecodedRequest:
    """Decode one call. ``chain_id`` is the chain of the backend it would go to: intents
    of a request that binds no chain (a transaction object without ``chainId``, a
    pre-EIP-155 raw transaction, a permit without ``domain.chainId``) execute there, and
    without it such a request is a :class:`DecodeError`.

    Spending and signing methods yield the wallet and intents; other classes yield a
    request with no wallet and no intents (the proxy forwards or denies them by class).
    Raises :class:`DecodeError` naming the bad part of the params (``params[0].value``),
    and its subclass :class:`~walletgate.proxy.evm.fees.MissingFeeFields` for a
    transaction that leaves its gas or fees to the backend (or a ``wallet_sendCalls``
    without ``calls_fee_quote``, the gateway's estimate of its calls' fees).
    """
    method_class = classifier.classify(method)
    context = CallContext(method, method_class, chain_id, calls_fee_quote)
    if method_class not in (MethodClass.SPENDING, MethodClass.SIGNING):
        return DecodedRequest(method, method_class, wallet=None, chain_id=None, intents=())
    decoder = _DECODERS.get(method)
    if decoder is None:  # unreachable with validated classifiers; refuse, never pass
        raise DecodeError(f"no decoder for {method}", where="method", code=-32601)
    return decoder(context, params)
