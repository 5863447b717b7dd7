"""atheris: request bodies through the gateway's pure pipeline (parse, decode, evaluate).

Acceptable: parse errors as responses, DecodeError, any decision. Also checked: what is
forwarded (the parsed call, written back out) parses to the very same call.
"""

from __future__ import annotations

from datetime import UTC, datetime

from harness import ROOT, instrumented, run

with instrumented():
    from walletgate.config.documents import compile_document, parse_document
    from walletgate.intents import DecodeError, MethodClass
    from walletgate.policies.evaluator import evaluate
    from walletgate.policies.request import SpendRequest
    from walletgate.proxy.evm.decode import decode_call
    from walletgate.proxy.evm.methods import classify
    from walletgate.proxy.jsonrpc import call_to_json, dumps, loads_strict, parse_body

POLICIES = compile_document(parse_document((ROOT / "examples" / "policies.yaml").read_text()), 1)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_one_input(data: bytes) -> None:
    parsed = parse_body(data)
    for item in parsed.items:
        if item.call is None:
            continue
        call = item.call
        assert loads_strict(dumps(call_to_json(call))) == call_to_json(call)
        if classify(call.method) not in (MethodClass.SPENDING, MethodClass.SIGNING):
            continue
        try:
            decoded = decode_call(call.method, call.params, chain_id=1337)
        except DecodeError:
            continue
        evaluate(SpendRequest("trader", decoded, 1337), POLICIES, NOW)


if __name__ == "__main__":
    run(test_one_input)
