"""JSON-RPC batches through a real gateway: a run of consecutive reads is one unit.

It is counted against the request-rate limits together and forwarded to the backend as
one batch request; anything else in the batch (spends, signatures, notifications)
breaks the run and is decided on its own, in order.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support.recorded_gateway import ALICE, RecordedGateway, recorded_gateway_fixture

gw = recorded_gateway_fixture("batches")


def rpc(call_id: Any, method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "method": method, "params": params}


def post_batch(gw: RecordedGateway, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    status, body = gw.post(json.dumps(batch).encode())
    assert status == 200, body
    reply: list[dict[str, Any]] = json.loads(body)
    return reply


async def test_a_run_of_reads_reaches_the_backend_as_one_request(gw: RecordedGateway) -> None:
    mark = gw.backend.mark()
    batch = [
        rpc("a", "eth_chainId", []),
        rpc("b", "eth_blockNumber", []),
        rpc("c", "eth_getBalance", [ALICE, "latest"]),
        rpc("d", "eth_chainId", []),
    ]
    reply = post_batch(gw, batch)
    assert [item["id"] for item in reply] == ["a", "b", "c", "d"]
    assert reply[0]["result"] == reply[3]["result"] == "0x539"
    assert int(reply[1]["result"], 16) >= 0 and int(reply[2]["result"], 16) > 0
    sent = gw.backend.since(mark)
    assert len(sent) == 1, [r.rpc_methods() for r in sent]
    methods = ["eth_chainId", "eth_blockNumber", "eth_getBalance", "eth_chainId"]
    assert sent[0].rpc_methods() == methods


async def test_cached_balances_in_a_run_are_not_forwarded(gw: RecordedGateway) -> None:
    first = post_batch(gw, [rpc(1, "eth_getBalance", [ALICE, "latest"]), rpc(2, "eth_chainId", [])])
    mark = gw.backend.mark()
    again = post_batch(gw, [rpc(3, "eth_getBalance", [ALICE, "latest"]), rpc(4, "eth_chainId", [])])
    assert again[0]["result"] == first[0]["result"]
    assert [r.rpc_methods() for r in gw.backend.since(mark)] == [["eth_chainId"]]


async def test_a_signature_between_reads_keeps_the_order_of_the_batch(gw: RecordedGateway) -> None:
    mark = gw.backend.mark()
    batch = [
        rpc(1, "eth_chainId", []),
        rpc(2, "eth_blockNumber", []),
        rpc(3, "personal_sign", ["0x6869", ALICE]),
        rpc(4, "eth_chainId", []),
        rpc(5, "eth_blockNumber", []),
    ]
    reply = post_batch(gw, batch)
    assert [item["id"] for item in reply] == [1, 2, 3, 4, 5]
    assert all("result" in reply[i] for i in (0, 1, 3, 4)), reply
    # The signature was allowed and forwarded (the devnet itself cannot sign messages).
    assert [r.rpc_methods() for r in gw.backend.since(mark)] == [
        ["eth_chainId", "eth_blockNumber"],
        ["personal_sign"],
        ["eth_chainId", "eth_blockNumber"],
    ]


async def test_reads_with_the_same_id_are_forwarded_one_by_one(gw: RecordedGateway) -> None:
    # A backend's batch answer is matched by id: with ids repeated it cannot be.
    mark = gw.backend.mark()
    reply = post_batch(gw, [rpc(7, "eth_chainId", []), rpc(7, "eth_gasPrice", [])])
    assert reply[0] == {"jsonrpc": "2.0", "id": 7, "result": "0x539"}
    assert reply[1]["id"] == 7 and int(reply[1]["result"], 16) > 0
    assert len(gw.backend.since(mark)) == 2


async def test_notifications_are_not_part_of_a_run(gw: RecordedGateway) -> None:
    mark = gw.backend.mark()
    notification = {"jsonrpc": "2.0", "method": "eth_chainId", "params": []}
    reply = post_batch(gw, [rpc(1, "eth_chainId", []), notification, rpc(2, "eth_chainId", [])])
    assert [item["id"] for item in reply] == [1, 2]
    assert len(gw.backend.since(mark)) == 3
