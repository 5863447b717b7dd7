"""``contract_allowlist`` methods listed with their signature: check, canonicalise, compile.

A method is a plain string (a signature, a ``0x`` selector or ``"*"``: any arguments), or
an object::

    - signature: "swap(address to,uint256 amount)"   # or name them with args: [to, amount]
      conditions: {to: {own_wallet: true}, amount: {lte: "1000000"}}
      recipients: [to]          # address arguments the destination lists judge
      max_value: "0.1"          # most native coin (whole units) sent with one call

Address lists that conditions name (``in_list``) are the rule's ``lists``. Also here: the
warnings ``validate`` prints for methods that take addresses or amounts nothing
constrains (:func:`method_warnings`). Pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from eth_utils.abi import function_signature_to_4byte_selector

from walletgate.config.addresses import checked_address
from walletgate.config.amounts import normalize_decimal
from walletgate.config.conditions import ConditionError, Lists, compile_fields, decompile_fields
from walletgate.config.document_errors import KeyPath, Problem
from walletgate.config.signatures import AbiType, Param, Signature, SignatureError, parse_signature
from walletgate.intents import InvalidAddress
from walletgate.policies.method_rules import MethodRule, RecipientPath, Step
from walletgate.proxy.evm.erc20 import TOKEN_SELECTORS
from walletgate.proxy.evm.nft import NFT_SELECTORS
from walletgate.proxy.evm.wrappers import WRAPPER_SELECTORS

ANY_METHOD = "*"


def compile_lists(raw: Mapping[str, Sequence[str]] | None) -> Lists:
    """A rule's named address lists, canonical."""
    return {
        name: frozenset(checked_address(a) for a in items) for name, items in (raw or {}).items()
    }


def compile_method(contract: str, entry: Mapping[str, Any], lists: Lists) -> MethodRule:
    """The :class:`MethodRule` of a method object; raises :class:`ConditionError` or
    :class:`SignatureError`."""
    signature = _signature(entry)
    condition = None
    if "conditions" in entry:
        condition = compile_fields(entry["conditions"], signature.params, lists, ("conditions",))
    recipients = tuple(
        recipient_path(text, signature.params, ("recipients", number))
        for number, text in enumerate(entry.get("recipients", []))
    )
    max_value = Decimal(normalize_decimal(entry["max_value"])) if "max_value" in entry else None
    return MethodRule(
        contract=contract,
        selector=selector_of_signature(signature),
        signature=signature.canonical,
        types=tuple(param.type.canonical for param in signature.params),
        condition=condition,
        recipients=recipients,
        max_value=max_value,
    )


def selector_of_signature(signature: Signature) -> str:
    return "0x" + function_signature_to_4byte_selector(signature.canonical).hex()


def _signature(entry: Mapping[str, Any]) -> Signature:
    try:
        return parse_signature(entry["signature"], entry.get("args"))
    except SignatureError as exc:
        raise ConditionError(("signature",), str(exc)) from None


def recipient_path(text: str, params: Sequence[Param], path: KeyPath) -> RecipientPath:
    """Resolve ``a.b.c`` (names or indexes) to steps; arrays on the way are walked whole."""
    steps: list[Step] = []
    fields, current = tuple(params), None
    for segment in text.split("."):
        if current is not None:
            while current.element is not None:
                steps.append(None)
                current = current.element
            if not current.is_tuple:
                raise ConditionError(
                    path, f"{text!r}: a {current.canonical} has no field {segment!r}"
                )
            fields = current.components
        index = _index(segment, fields, text, path)
        steps.append(index)
        current = fields[index].type
    assert current is not None  # text.split yields at least one segment
    while current.element is not None:
        steps.append(None)
        current = current.element
    if current.base != "address":
        raise ConditionError(path, f"{text!r} is a {current.canonical}; a recipient is an address")
    return RecipientPath(text, tuple(steps))


def _index(segment: str, fields: Sequence[Param], text: str, path: KeyPath) -> int:
    for index, param in enumerate(fields):
        if param.name == segment:
            return index
    if segment.isdigit() and int(segment) < len(fields):
        return int(segment)
    raise ConditionError(path, f"{text!r}: no argument or field {segment!r}")


def method_problems(rule: Mapping[str, Any], path: KeyPath) -> Iterator[Problem]:
    """Every problem in the method objects of a ``contract_allowlist`` rule."""
    try:
        lists = compile_lists(rule.get("lists"))
    except InvalidAddress:
        return  # reported by the address list checks
    for number, contract in enumerate(rule["contracts"]):
        for index, entry in enumerate(contract.get("methods", [])):
            if isinstance(entry, Mapping):
                where: KeyPath = (*path, "contracts", number, "methods", index)
                try:
                    method = compile_method("0x" + "00" * 20, entry, lists)
                except ConditionError as exc:
                    yield Problem((*where, *exc.path), exc.message)
                    continue
                if method.selector in ASSET_SELECTORS and set(entry) & _CHECKS:
                    yield Problem(where, _asset_method_message(method.signature))


#: The keys of a method object that judge a call (an object with none is a plain entry).
_CHECKS = frozenset({"conditions", "recipients", "max_value"})
#: Selectors walletgate decodes as token or NFT operations on any contract: such a call
#: is a transfer or approval judged by the asset rules, never a contract call, so a
#: method entry's checks would never see it.
ASSET_SELECTORS = TOKEN_SELECTORS | NFT_SELECTORS


def _asset_method_message(signature: str) -> str:
    return (
        f"{signature} is read as a token or NFT transfer or approval, which the asset "
        "rules judge (per_tx_cap, cumulative_cap, approval_limit, asset_allowlist, the "
        "destination lists), not contract_allowlist: its conditions, recipients and "
        "max_value would never apply. Bound it with those rules instead"
    )


def canonical_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A method object in canonical form: its signature written with names, its
    conditions decompiled, its recipients and max_value tidy."""
    signature = _signature(entry)
    out: dict[str, Any] = {"signature": signature.named}
    if "conditions" in entry:
        # Lists only matter for membership, not spelling: any names compile here.
        names = _list_names(entry["conditions"])
        fields = compile_fields(entry["conditions"], signature.params, names, ("conditions",))
        out["conditions"] = decompile_fields(fields.fields)
    if "recipients" in entry:
        out["recipients"] = sorted(set(entry["recipients"]))
    if "max_value" in entry:
        out["max_value"] = normalize_decimal(entry["max_value"])
    return out


def entry_order(entry: str | Mapping[str, Any]) -> tuple[int, str]:
    """Sort key of canonical methods: strings first, then objects by their JSON."""
    if isinstance(entry, str):
        return 0, entry
    return 1, json.dumps(entry, sort_keys=True)


def _list_names(node: Any) -> dict[str, frozenset[str]]:
    names: dict[str, frozenset[str]] = {}
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "in_list" and isinstance(value, str):
                names[value] = frozenset()
            names.update(_list_names(value))
    elif isinstance(node, list):
        for item in node:
            names.update(_list_names(item))
    return names


def method_warnings(rule: Mapping[str, Any], path: KeyPath) -> Iterator[Problem]:
    """A warning for each method listed without conditions whose address, amount (uint)
    or ``bytes`` (calldata it may run) arguments nothing constrains (recipients count as
    constrained: the destination lists judge them). Wrapper methods are exempt: their
    inner calls are judged one by one."""
    for number, contract in enumerate(rule["contracts"]):
        for index, entry in enumerate(contract.get("methods", [])):
            where: KeyPath = (*path, "contracts", number, "methods", index)
            is_object = isinstance(entry, Mapping)
            text = entry["signature"] if is_object else entry
            if text == ANY_METHOD or text.startswith("0x") or (is_object and "conditions" in entry):
                continue
            try:
                signature = parse_signature(text, entry.get("args") if is_object else None)
            except SignatureError:
                continue  # an error, reported by the checks
            if selector_of_signature(signature) in WRAPPER_SELECTORS:
                continue
            marked = set(entry.get("recipients", [])) if is_object else set()
            loose = [
                label
                for label, abi_type in _leaves(signature.params, "")
                # Dynamic bytes may be calldata the contract runs (execute(bytes)).
                if (abi_type.base in ("address", "uint") or abi_type.canonical == "bytes")
                and label not in marked
            ]
            if loose:
                yield Problem(
                    where,
                    f"{signature.canonical} is allowed with any arguments: nothing constrains "
                    f"{', '.join(loose)}; list it with conditions (and recipients) to bound them",
                )


def _leaves(params: Sequence[Param], prefix: str) -> Iterator[tuple[str, AbiType]]:
    for index, param in enumerate(params):
        label = f"{prefix}{param.name if param.name is not None else index}"
        abi_type = param.type
        while abi_type.element is not None:
            abi_type = abi_type.element
        if abi_type.is_tuple:
            yield from _leaves(abi_type.components, label + ".")
        else:
            yield label, abi_type
