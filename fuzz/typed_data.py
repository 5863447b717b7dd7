"""atheris: EIP-712 typed data given as a JSON string to eth_signTypedData_v4.
Acceptable: a DecodeError, or intents acting for the signer."""

from __future__ import annotations

from harness import instrumented, run

with instrumented():
    from walletgate.intents import DecodeError
    from walletgate.proxy.evm.decode import decode_call

SIGNER = "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"


def test_one_input(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # a request body must be UTF-8: parse_body refuses it before this
    try:
        decoded = decode_call("eth_signTypedData_v4", [SIGNER, text], chain_id=1337)
    except DecodeError:
        return
    assert decoded.wallet == SIGNER
    assert all(intent.wallet == SIGNER for intent in decoded.intents)


if __name__ == "__main__":
    run(test_one_input)
