"""docs/api.md lists every operation of the admin API's OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from walletgate.admin.spec import operations

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_every_operation_is_in_the_api_page() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [op.operation_id for op in operations() if f"`{op.operation_id}`" not in text]
    assert missing == []
