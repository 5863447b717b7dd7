"""The log formatter and access-log path: the fast paths write what the plain ones did."""

from __future__ import annotations

import logging
import time

import pytest

from walletgate.proxy.log_redaction import (
    LOG_FORMAT,
    REDACTED,
    RedactingFormatter,
    redact_tokens,
)

TOKEN = "wg_" + "A1b2_C3-d4" * 4


def _record(created: float, message: str) -> logging.LogRecord:
    record = logging.LogRecord("walletgate", logging.INFO, __file__, 1, message, None, None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


@pytest.mark.parametrize("offset", [0.0, 0.0004, 0.5, 0.9996, 1.0, 59.9999, 3600.25, 86400 * 40])
def test_formatter_output_is_the_standard_one_redacted(offset: float) -> None:
    ours, standard = RedactingFormatter(LOG_FORMAT), logging.Formatter(LOG_FORMAT)
    created = float(int(time.time())) + offset
    for message in ("plain", f"token {TOKEN} here"):
        record = _record(created, message)
        assert ours.format(record) == redact_tokens(standard.format(record))


def test_formatter_with_a_date_format_is_unchanged() -> None:
    ours, standard = RedactingFormatter(LOG_FORMAT, "%H:%M"), logging.Formatter(LOG_FORMAT, "%H:%M")
    record = _record(time.time(), "x")
    assert ours.format(record) == standard.format(record)


def test_redact_tokens() -> None:
    assert redact_tokens(f"/T/{TOKEN}/x") == f"/T/{REDACTED}/x"
    assert redact_tokens("/rpc/mainnet wg_short") == "/rpc/mainnet wg_short"
    assert redact_tokens("nothing here") == "nothing here"
