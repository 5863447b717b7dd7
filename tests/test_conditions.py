"""The condition tree (walletgate.policies.conditions) and its compilation from YAML
(walletgate.config.conditions, config.signatures): each operator, nested tuples, arrays,
the caller's own wallet, and the paths that reasons name."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from walletgate.config.conditions import (
    ConditionError,
    compile_condition,
    compile_fields,
    decompile_fields,
)
from walletgate.config.signatures import Param, SignatureError, parse_signature
from walletgate.policies.conditions import (
    AllOf,
    AnyOf,
    AtLeast,
    AtMost,
    Context,
    Equals,
    Every,
    Field,
    Fields,
    InList,
    Not,
    OneOf,
    OwnWallet,
    Some,
    failure,
)

WALLET = "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
CHECKSUMMED = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
A = "0x" + "aa" * 20
B = "0x" + "bb" * 20
CTX = Context(wallet=WALLET)
TOKENS = {"tokens": frozenset({A})}


def test_equals_and_one_of() -> None:
    assert failure(Equals(5), 5, CTX) is None
    assert failure(Equals(5), 6, CTX) == "args: 6 is not 5"
    assert failure(Equals(A), A.upper().replace("0X", "0x"), CTX) is None  # any case
    assert failure(Equals(True), 1, CTX) is not None  # a bool is not an integer
    assert failure(Equals(1), True, CTX) is not None
    assert failure(Equals(b"\x01"), b"\x01", CTX) is None
    assert failure(Equals("abc"), "ABC", CTX) is not None  # plain strings are exact
    assert failure(OneOf((100, 500)), 500, CTX) is None
    assert failure(OneOf((100, 500)), 3000, CTX) == "args: 3000 is not one of 100, 500"


def test_bounds() -> None:
    assert failure(AtMost(10), 10, CTX) is None
    assert failure(AtMost(10), 11, CTX) == "args: 11 is more than 10"
    assert failure(AtLeast(10), 10, CTX) is None
    assert failure(AtLeast(10), 9, CTX) == "args: 9 is less than 10"
    assert failure(AtMost(10), "5", CTX) == "args: '5' is not an integer"
    assert failure(AtMost(10), True, CTX) is not None


def test_in_list_and_own_wallet() -> None:
    assert failure(InList("tokens", frozenset({A})), A, CTX) is None
    assert failure(InList("tokens", frozenset({A})), B, CTX) == f"args: {B} is not in list 'tokens'"
    assert failure(InList("tokens", frozenset({A})), 5, CTX) is not None
    assert failure(OwnWallet(), CHECKSUMMED, CTX) is None
    reason = failure(OwnWallet(), A, CTX)
    assert reason == f"args: {A} is not the caller's own wallet {WALLET}"


def test_arrays() -> None:
    every = Every(InList("tokens", frozenset({A})))
    assert failure(every, [A, A], CTX) is None
    assert failure(every, [], CTX) is None
    assert failure(every, (A, A, B), CTX) == f"args[2]: {B} is not in list 'tokens'"
    assert failure(every, A, CTX) is not None  # not an array
    some = Some(Equals(B))
    assert failure(some, [A, B], CTX) is None
    assert failure(some, [], CTX) is not None
    assert "no element is" in (failure(some, [A], CTX) or "")


def test_nested_tuples_by_index_and_by_name() -> None:
    condition = Fields((Field(1, "order", Fields((Field(0, "recipient", OwnWallet()),))),))
    assert failure(condition, (5, (WALLET, 3)), CTX) is None
    reason = failure(condition, (5, (A, 3)), CTX)
    assert reason is not None and reason.startswith("args.order.recipient: ")
    by_name = Fields((Field("to", "to", Equals(A)),))
    assert failure(by_name, {"to": A}, CTX) is None
    assert failure(by_name, {"from": A}, CTX) == "args.to: missing"
    unnamed = Fields((Field(0, 0, Equals(1)),))
    assert failure(unnamed, (2,), CTX) == "args[0]: 2 is not 1"


def test_and_or_not() -> None:
    assert failure(AllOf((AtLeast(1), AtMost(5))), 3, CTX) is None
    assert failure(AllOf((AtLeast(1), AtMost(5))), 6, CTX) == "args: 6 is more than 5"
    assert failure(AnyOf((AtMost(1), AtLeast(5))), 5, CTX) is None
    reason = failure(AnyOf((AtMost(1), AtLeast(5))), 3, CTX)
    assert reason is not None and "none of the alternatives" in reason
    assert failure(Not(Equals(A)), B, CTX) is None
    assert failure(Not(Equals(A)), A, CTX) == f"args: {A} must not be {A}"


@given(st.lists(st.integers(min_value=0, max_value=2**256 - 1), max_size=8), st.integers(0, 2**64))
def test_every_passes_iff_each_element_passes(values: list[int], bound: int) -> None:
    each = [failure(AtMost(bound), value, CTX) is None for value in values]
    assert (failure(Every(AtMost(bound)), values, CTX) is None) == all(each)
    assert (failure(Some(AtMost(bound)), values, CTX) is None) == any(each)
    assert (failure(Not(Every(AtMost(bound))), values, CTX) is None) == (not all(each))


@given(st.integers(-(2**255), 2**255 - 1), st.integers(-(2**255), 2**255 - 1))
def test_bounds_are_exact_integers(value: int, bound: int) -> None:
    assert (failure(AtMost(bound), value, CTX) is None) == (value <= bound)
    assert (failure(AtLeast(bound), value, CTX) is None) == (value >= bound)


# -- compilation from YAML -------------------------------------------------------------


def params(signature: str) -> tuple[Param, ...]:
    return parse_signature(signature).params


def test_compile_against_the_signature() -> None:
    sig = "swap(address to,uint256 amount,address[] path,(address recipient,uint24 fee) order)"
    node: dict[str, Any] = {
        "to": {"own_wallet": True},
        "amount": {"lte": "1000", "gte": 1},
        "path": {"every": {"in_list": "tokens"}},
        "order": {"fields": {"recipient": {"equals": B}, "1": {"one_of": ["500", "3000"]}}},
    }
    condition = compile_fields(node, params(sig), TOKENS)
    good = (WALLET, 10, [A], (B, 500))
    assert failure(condition, good, CTX) is None
    assert (
        failure(condition, (WALLET, 1001, [A], (B, 500)), CTX)
        == "args.amount: 1001 is more than 1000"
    )
    bad_path = failure(condition, (WALLET, 10, [A, B], (B, 500)), CTX)
    assert bad_path == f"args.path[1]: {B} is not in list 'tokens'"
    assert (
        failure(condition, (WALLET, 10, [A], (B, 100)), CTX)
        == "args.order.fee: 100 is not one of 500, 3000"
    )
    # Decompiling gives the same condition back.
    again = compile_fields(decompile_fields(condition.fields), params(sig), TOKENS)
    assert again == condition


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"to": {"lte": "5"}}, "lte/gte compare integers"),
        ({"amount": {"own_wallet": True}}, "own_wallet applies to addresses"),
        ({"amount": {"in_list": "tokens"}}, "in_list applies to addresses"),
        ({"to": {"in_list": "nobody"}}, "unknown address list"),
        ({"amount": {"every": {"lte": "1"}}}, "every/some apply to arrays"),
        ({"amount": {"lte": "-1"}}, "outside the range of a uint256"),
        ({"amount": {"lte": "1.5"}}, "is not a whole number"),
        ({"small": {"lte": "256"}}, "outside the range of a uint8"),
        ({"to": {"equals": "0x7E5F4552091A69125d5DfCb7b8C2659029395BDF"}}, "checksum"),
        ({"nope": {"equals": "1"}}, "no argument or field 'nope'"),
        ({"9": {"equals": "1"}}, "no argument or field '9'"),
        ({"amount": {"fields": {"x": {"equals": "1"}}}}, "fields apply to tuples"),
        ({"amount": {"frobnicate": "1"}}, "unknown condition operator"),
        ({"to": {"own_wallet": False}}, "own_wallet takes true"),
        ({"to": {"own_wallet": True}, "0": {"own_wallet": True}}, "the same field as 'to'"),
    ],
)
def test_compile_errors_name_the_problem(node: dict[str, Any], message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_fields(node, params("f(address to,uint256 amount,uint8 small)"), TOKENS)
    assert message in caught.value.message


def test_bytes_values() -> None:
    (param,) = params("f(bytes32 salt)")
    assert compile_condition({"equals": "0x" + "00" * 32}, param.type, {}, ()) == Equals(bytes(32))
    with pytest.raises(ConditionError):
        compile_condition({"equals": "0x00"}, param.type, {}, ())


def test_signatures() -> None:
    parsed = parse_signature("swap( (address to, uint amount)[] orders , bytes )")
    assert parsed.canonical == "swap((address,uint256)[],bytes)"
    assert parsed.named == "swap((address to,uint256 amount)[] orders,bytes)"
    element = parsed.params[0].type.element
    assert element is not None and [p.name for p in element.components] == ["to", "amount"]
    named = parse_signature("pay(address,uint256)", ["recipient", "amount"])
    assert [p.name for p in named.params] == ["recipient", "amount"]
    for bad in ["pay(uint7)", "pay(address", "pay(address a,uint256 a)", "(address)"]:
        with pytest.raises(SignatureError):
            parse_signature(bad)
    with pytest.raises(SignatureError):
        parse_signature("pay(address to)", ["x"])
