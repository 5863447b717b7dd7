"""balance_query: the canonical (address, block tag) the balance cache is keyed on."""

from __future__ import annotations

from typing import Any

import pytest

from walletgate.proxy.evm.reads import balance_query

ADDRESS = "0x" + "ab" * 20


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([ADDRESS], (ADDRESS, "latest")),
        ([ADDRESS.upper().replace("0X", "0x"), "latest"], (ADDRESS, "latest")),
        ([ADDRESS, "pending"], (ADDRESS, "pending")),
        ([ADDRESS, "finalized"], (ADDRESS, "finalized")),
        ([ADDRESS, "0x1A"], (ADDRESS, "0x1a")),
        ([ADDRESS, "0x0"], (ADDRESS, "0x0")),
    ],
)
def test_cacheable_queries_are_canonical(params: list[Any], expected: tuple[str, str]) -> None:
    assert balance_query(params) == expected


@pytest.mark.parametrize(
    "params",
    [
        None,
        {"address": ADDRESS},
        [],
        ["0x1234"],
        [ADDRESS, "LATEST"],
        [ADDRESS, "0x01"],
        [ADDRESS, 5],
        [ADDRESS, {"blockHash": "0x" + "00" * 32}],
        [ADDRESS, "latest", "extra"],
    ],
)
def test_anything_else_is_left_to_the_backend(params: Any) -> None:
    assert balance_query(params) is None
