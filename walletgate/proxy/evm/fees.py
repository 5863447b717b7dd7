"""The most a transaction can cost in fees: one small pure module every decoder shares.

Fees are spending (SPEC §3): a transaction can burn ``gas`` x its max fee per gas (or its
legacy gas price), plus, for a blob transaction, the blob gas of its blobs x its max fee
per blob gas. That maximum is what walletgate judges and counts, as a
:class:`~walletgate.intents.NetworkFee`; what the chain really charges is at most that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from walletgate.intents import DecodeError, NetworkFee

#: EIP-4844: every blob uses 2**17 blob gas.
BLOB_GAS_PER_BLOB = 131072
#: EIP-4844: a versioned hash is a KZG commitment's hash with its first byte set to 0x01.
BLOB_HASH_VERSION = 0x01
#: The fields that fix what a transaction object pays per gas (legacy or EIP-1559).
FEE_PER_GAS_FIELDS = ("gasPrice", "maxFeePerGas")
#: The fields walletgate fills when a transaction object leaves them to the backend.
FILLED_FIELDS = frozenset({"gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas"})


class MissingFeeFields(DecodeError):
    """A transaction whose gas or fee per gas is left to the backend: it cannot be judged
    as it stands (the backend would choose what it costs). The gateway fills the fields
    from the backend's quotes and decodes the filled transaction; anywhere else this is a
    refusal like any :class:`DecodeError`.

    Raised only once everything else in the request has been checked, so a request that
    raises it is otherwise well formed. ``wallet`` is its sender.
    """

    def __init__(self, message: str, *, where: str, wallet: str) -> None:
        super().__init__(message, where=where)
        self.wallet = wallet


@dataclass(frozen=True, slots=True)
class CallsFeeQuote:
    """What the gateway estimated for the calls of a ``wallet_sendCalls`` request, which
    carries no fee fields (the wallet chooses them): ``gas`` per call, in call order,
    and the max fee per gas the fees are counted at. An estimate, not a bound the wallet
    has to respect: see docs/policies.md."""

    gas: tuple[int, ...]
    max_fee_per_gas: int


def max_fee(
    gas: int, fee_per_gas: int, *, blob_count: int = 0, max_fee_per_blob_gas: int = 0
) -> int:
    """``gas`` x ``fee_per_gas`` + blob gas x ``max_fee_per_blob_gas``: the most a
    transaction can pay in fees, in wei."""
    return gas * fee_per_gas + blob_count * BLOB_GAS_PER_BLOB * max_fee_per_blob_gas


def network_fee(
    chain_id: int,
    wallet: str,
    *,
    gas: int,
    fee_per_gas: int,
    blob_count: int = 0,
    max_fee_per_blob_gas: int = 0,
) -> NetworkFee:
    """The :class:`NetworkFee` intent of a transaction with these fee fields."""
    blob_fee = blob_count * BLOB_GAS_PER_BLOB * max_fee_per_blob_gas
    return NetworkFee(
        chain_id=chain_id,
        wallet=wallet,
        amount=max_fee(
            gas, fee_per_gas, blob_count=blob_count, max_fee_per_blob_gas=max_fee_per_blob_gas
        ),
        gas=gas,
        max_fee_per_gas=fee_per_gas,
        blob_fee=blob_fee,
    )


def check_blob_hashes(hashes: Sequence[bytes], where: str) -> None:
    """Every versioned hash starts with the version byte 0x01 (EIP-4844); a node refuses
    others, and walletgate must not judge a transaction the node reads differently."""
    for index, versioned in enumerate(hashes):
        if not versioned or versioned[0] != BLOB_HASH_VERSION:
            raise DecodeError(
                f"blob versioned hash must start with version byte 0x01, got "
                f"0x{versioned[:1].hex() or '(empty)'}",
                where=f"{where}[{index}]",
            )


def object_fee(
    chain_id: int,
    wallet: str,
    quantities: Mapping[str, int],
    *,
    blob_count: int,
    where: str,
) -> NetworkFee:
    """The fee of a transaction object (eth_sendTransaction / eth_signTransaction).

    ``gas`` and a fee per gas (``gasPrice``, else ``maxFeePerGas``) must be present:
    without them the backend picks what the transaction costs, so it is refused
    (:class:`MissingFeeFields`) and the gateway fills them first. A blob transaction also
    needs ``maxFeePerBlobGas``, which walletgate does not fill.
    """
    if blob_count and "maxFeePerBlobGas" not in quantities:
        raise DecodeError(
            "a blob transaction needs maxFeePerBlobGas", where=f"{where}.maxFeePerBlobGas"
        )
    missing = [
        name
        for name, present in (
            ("gas", "gas" in quantities),
            ("maxFeePerGas", any(field in quantities for field in FEE_PER_GAS_FIELDS)),
        )
        if not present
    ]
    if missing:
        raise MissingFeeFields(
            f"{' and '.join(missing)} missing: the backend would choose what the transaction "
            "costs, so it cannot be judged as it is",
            where=f"{where}.{missing[0]}",
            wallet=wallet,
        )
    fee_per_gas = quantities.get("gasPrice", quantities.get("maxFeePerGas", 0))
    return network_fee(
        chain_id,
        wallet,
        gas=quantities["gas"],
        fee_per_gas=fee_per_gas,
        blob_count=blob_count,
        max_fee_per_blob_gas=quantities.get("maxFeePerBlobGas", 0),
    )


def calls_fees(
    chain_id: int, wallet: str, quote: CallsFeeQuote | None, calls: int, where: str
) -> tuple[NetworkFee, ...]:
    """One estimated :class:`NetworkFee` per call of a ``wallet_sendCalls`` request.

    Without a quote (the gateway estimates one before judging) the request cannot be
    judged: :class:`MissingFeeFields`.
    """
    if quote is None:
        raise MissingFeeFields(
            "wallet_sendCalls carries no fee fields: its fees must be estimated before "
            "it can be judged",
            where=f"{where}.calls",
            wallet=wallet,
        )
    if len(quote.gas) != calls:
        raise DecodeError(
            f"fee estimate covers {len(quote.gas)} calls, the request has {calls}",
            where=f"{where}.calls",
        )
    return tuple(
        network_fee(chain_id, wallet, gas=gas, fee_per_gas=quote.max_fee_per_gas)
        for gas in quote.gas
    )
