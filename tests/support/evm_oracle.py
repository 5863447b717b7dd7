"""How the node reads a raw transaction: py-evm, the devnet's EVM, as a second opinion."""

from __future__ import annotations

from eth.vm.forks.prague.transactions import PragueTransactionBuilder

from walletgate.proxy.evm.rawtx import RawTransaction


def assert_read_as_the_node_reads(raw: bytes, tx: RawTransaction) -> None:
    """py-evm (Prague rules) must decode the same signer, recipient, value, data, nonce,
    chain id and hash as walletgate did, when it decodes the bytes at all: bytes the node
    refuses are harmless to forward, since they are never executed."""
    try:
        node = PragueTransactionBuilder.decode(raw)
        sender = node.sender
    except Exception:
        return
    assert "0x" + sender.hex() == tx.signer, ("signer", sender.hex(), tx.signer)
    assert ("0x" + node.to.hex() if node.to else None) == tx.to
    assert node.value == tx.value
    assert node.data == tx.data
    assert node.nonce == tx.nonce
    assert node.chain_id == tx.chain_id
    assert "0x" + node.hash.hex() == tx.tx_hash
