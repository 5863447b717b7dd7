"""What the evaluator is asked: one decoded request, from one agent, to one backend."""

from __future__ import annotations

from dataclasses import dataclass

from walletgate.intents import DecodedRequest


@dataclass(frozen=True, slots=True)
class SpendRequest:
    """A decoded spending or signing request, with who sent it and where it goes.

    ``chain_id`` is the chain of the backend the request would be forwarded to; the
    request's own chain (a raw transaction's signed chain id) must match it.
    """

    agent_id: str
    decoded: DecodedRequest
    chain_id: int
