"""Fuzzing EIP-712 typed data (hypothesis): permits, Permit2 and plain messages with
mutated types, values, domains and JSON text.

Properties:

- decoding raises nothing but a DecodeError naming where the problem is;
- an approval walletgate derives from a permit is exactly what would be signed: putting
  the judged amounts, spender and token back into the document leaves eth-account's
  signable message unchanged, so no spelling of a number ("1_000", " 5", "0x0a",
  "١٢٣") can be judged as one amount and signed as another;
- a permit whose owner is not the signing address is refused;
- through a real gateway, mutated typed data for alice is answered as the oracle of
  :mod:`tests.support.gateway_oracle` says and refused requests never reach the backend.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from eth_account.messages import encode_typed_data
from hypothesis import event, given
from hypothesis import strategies as st

from tests.support.evm_builders import (
    ALICE,
    BOB,
    PERMIT2,
    SPENDER,
    TOKEN,
    address_of,
    dai_permit,
    mail,
    permit,
    permit2_batch,
    permit2_single,
    permit2_transfer,
)
from tests.support.fuzzing import (
    fuzz_settings,
    huge_integers,
    json_values,
    mutations_of,
    text_mutations,
    tricky_strings,
)
from tests.support.gateway_oracle import served_like_the_oracle
from tests.support.recorded_gateway import ALICE as GATEWAY_ALICE
from tests.support.recorded_gateway import RecordedGateway, recorded_gateway_fixture
from walletgate.intents import DecodeError, TokenApproval
from walletgate.proxy.evm.decode import decode_call

gw = recorded_gateway_fixture("fuzz-typed-data")

SIGNER = address_of(ALICE)
OTHER_TOKEN = "0x" + "71" * 20


def templates(signer: str) -> list[dict[str, Any]]:
    """Valid documents of every kind walletgate tells apart, signed by ``signer``."""
    return [
        permit(signer, 10**18),
        permit(signer, 2**256 - 1, chain_id=None),
        dai_permit(signer, True),
        dai_permit(signer, False),
        permit2_single(TOKEN, 5 * 10**6),
        permit2_batch([(TOKEN, 1), (OTHER_TOKEN, 2**160 - 1)]),
        permit2_transfer([(TOKEN, 7)], batch=False),
        permit2_transfer([(TOKEN, 7), (OTHER_TOKEN, 8)], batch=True, witness=True),
        mail(),
    ]


type_names = st.sampled_from(
    [
        *("uint256", "uint160", "uint255", "uint", "int256", "address", "address[]", "bool"),
        *("string", "bytes32", "bytes", "Permit", "PermitDetails", "PermitDetails[]"),
        *("TokenPermissions[2]", "EIP712Domain", "uint256[]"),
        # malformed type strings, which eth-abi's grammar refuses in its own ways
        *("PermitDetails[[]", "uint256[", "address[0]", "bytes33", "uint7", "(uint256)", ""),
    ]
)
replacements = (
    tricky_strings
    | huge_integers
    | type_names
    | st.sampled_from([SIGNER, address_of(BOB), SPENDER, TOKEN, PERMIT2, "0x" + SIGNER[2:].upper()])
    | json_values
)


_numbers = st.integers(0, 2**256 + 10)
#: Every way a client might spell an amount; exactly one reading may be judged.
amount_spellings = st.one_of(
    _numbers,
    _numbers.map(hex),
    _numbers.map(str),
    _numbers.map(lambda n: "0x" + format(n, "X")),
    _numbers.map(lambda n: "0x" + format(n, "064x")),
    _numbers.map(lambda n: f" {n}"),
    _numbers.map(lambda n: f"+{n}"),
    _numbers.map(lambda n: f"{n:_}"),
    _numbers.map(lambda n: f"{n}.0"),
    st.floats(allow_nan=False),
    st.booleans(),
    tricky_strings,
)


@st.composite
def respelled_amounts(draw: st.DrawFn, signer: str) -> dict[str, Any]:
    """A permit with its amounts written in other spellings."""
    document: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(templates(signer)[:-1])))
    for path in _amount_paths(document):
        _put(document, path, draw(amount_spellings))
    return document


def documents(signer: str) -> st.SearchStrategy[Any]:
    """Templates, mutated (as objects, or as JSON text), and permits with their amounts
    spelled in other ways."""
    objects = st.sampled_from(templates(signer)).flatmap(
        lambda doc: st.just(doc) | mutations_of(doc, replacements)
    ) | respelled_amounts(signer)
    texts = st.sampled_from(templates(signer)).flatmap(lambda doc: text_mutations(json.dumps(doc)))
    return objects | objects.map(json.dumps) | texts


def _decode(document: Any, signer: str = SIGNER) -> Any:
    return decode_call("eth_signTypedData_v4", [signer, document], chain_id=1337)


def _amount_paths(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Where each approval's amount sits, in the order walletgate lists approvals."""
    message = document["message"]
    if document["primaryType"] == "Permit":
        return [("message", "value")] if "value" in message else [("message", "allowed")]
    field = "details" if "details" in message else "permitted"
    if isinstance(message[field], list):
        return [("message", field, i, "amount") for i in range(len(message[field]))]
    return [("message", field, "amount")]


def _put(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = document
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


def assert_judged_as_signed(document: dict[str, Any], approvals: list[TokenApproval]) -> None:
    """Writing the judged values into the document must not change what is signed."""
    judged = copy.deepcopy(document)
    for path, approval in zip(_amount_paths(document), approvals, strict=True):
        if path[-1] == "allowed":
            _put(judged, path, approval.amount != 0)
        else:
            _put(judged, path, approval.amount)
        if path[-1] == "amount":
            _put(judged, (*path[:-1], "token"), approval.token)
    if approvals:
        _put(judged, ("message", "spender"), approvals[0].spender)
    assert encode_typed_data(full_message=judged) == encode_typed_data(full_message=document)
    if document["primaryType"] == "Permit":
        assert approvals[0].token == document["domain"]["verifyingContract"].lower()


@fuzz_settings(800)
@given(documents(SIGNER))
def test_typed_data_is_refused_or_judged_exactly_as_signed(document: Any) -> None:
    try:
        decoded = _decode(document)
    except DecodeError as exc:
        assert exc.message and exc.where.startswith("params")
        event("refused")
        return
    approvals = [i for i in decoded.intents if isinstance(i, TokenApproval)]
    event(f"{len(approvals)} approvals judged" if approvals else "judged as a plain signature")
    parsed = json.loads(document) if isinstance(document, str) else document
    assert decoded.wallet == SIGNER
    if approvals:
        assert_judged_as_signed(parsed, approvals)


@fuzz_settings(200)
@given(
    st.sampled_from(templates(address_of(BOB))[:4]),
    st.sampled_from([SIGNER, "0x" + SIGNER[2:].upper()]),
)
def test_a_permit_for_another_owner_is_refused(document: dict[str, Any], signer: str) -> None:
    try:
        _decode(document, signer)
    except DecodeError as exc:
        assert exc.where in ("params[1].message.owner", "params[1].message.holder")
    else:
        raise AssertionError("a permit of another owner was accepted")


@fuzz_settings(60)
@given(documents(GATEWAY_ALICE))
def test_hostile_typed_data_through_the_gateway(gw: RecordedGateway, document: Any) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_signTypedData_v4", "params": []}
    body["params"] = [GATEWAY_ALICE, document]
    served_like_the_oracle(gw, json.dumps(body).encode())


def test_a_malformed_type_string_is_refused() -> None:
    """Found by atheris: eth-abi's type grammar raises ParseError, not a ValueError."""
    document = permit2_batch([(TOKEN, 1)])
    document["types"]["PermitBatch"][0]["type"] = "PermitDetails[[]"
    try:
        _decode(document)
    except DecodeError as exc:
        assert exc.where == "params[1]" and "does not encode" in exc.message
    else:
        raise AssertionError("a malformed type string was accepted")
