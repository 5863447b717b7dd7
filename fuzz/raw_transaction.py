"""atheris: raw transaction bytes. Acceptable: a DecodeError; anything accepted must be
read exactly as py-evm (the node) reads it."""

from __future__ import annotations

from harness import instrumented, run

with instrumented():
    from walletgate.intents import DecodeError
    from walletgate.proxy.evm.rawtx import parse_raw_transaction

from tests.support.evm_oracle import assert_read_as_the_node_reads


def test_one_input(data: bytes) -> None:
    try:
        tx = parse_raw_transaction(data, "params[0]")
    except DecodeError:
        return
    assert_read_as_the_node_reads(data, tx)


if __name__ == "__main__":
    run(test_one_input)
