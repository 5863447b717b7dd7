"""Method signatures with argument names: ``swap((address to,uint256 min) order,bytes data)``.

A ``contract_allowlist`` method entry names its method by signature; conditions and
recipients refer to the arguments (and tuple fields) by those names, or by index. This
module parses such a signature into a tree of :class:`Param` values, checks every type
with eth-abi's own grammar, and renders the canonical signature (types only) whose
keccak gives the selector. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eth_abi.exceptions import ABITypeError, ParseError
from eth_abi.grammar import normalize, parse

_NAME_RE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_ARRAY_SUFFIX_RE = re.compile(r"(\[[0-9]*\])*")


class SignatureError(ValueError):
    """A signature that is not ``name(type name, ...)`` with valid ABI types."""


@dataclass(frozen=True, slots=True)
class AbiType:
    """An ABI type. ``canonical`` is eth-abi's spelling (``uint256``, ``(address,bool)[]``);
    a tuple has ``components``, an array its ``element`` type."""

    canonical: str
    components: tuple[Param, ...] = ()
    element: AbiType | None = None

    @property
    def is_array(self) -> bool:
        return self.element is not None

    @property
    def is_tuple(self) -> bool:
        return self.element is None and self.canonical.startswith("(")

    @property
    def base(self) -> str:
        """The leaf kind: ``address``, ``uint``, ``int``, ``bool``, ``bytes`` (any
        size), ``string``, ``fixed``, or ``tuple`` / ``array``."""
        if self.is_array:
            return "array"
        if self.is_tuple:
            return "tuple"
        return re.sub(r"[0-9x]+$", "", self.canonical) if self.canonical != "bytes" else "bytes"


@dataclass(frozen=True, slots=True)
class Param:
    """An argument or tuple field: its name (``None`` when unnamed) and type."""

    name: str | None
    type: AbiType


@dataclass(frozen=True, slots=True)
class Signature:
    """A parsed method signature."""

    name: str
    params: tuple[Param, ...]

    @property
    def canonical(self) -> str:
        """``name(type,...)``: what the 4-byte selector is computed from."""
        return f"{self.name}({','.join(param.type.canonical for param in self.params)})"

    @property
    def named(self) -> str:
        """The signature with its argument names, in one spelling."""
        return f"{self.name}({_render(self.params)})"


def parse_signature(text: str, names: list[str] | None = None) -> Signature:
    """Parse ``name(type [name], ...)``; ``names`` (the entry's ``args``) names the
    top-level arguments instead. Raises :class:`SignatureError`."""
    text = text.strip()
    open_at = text.find("(")
    if open_at < 0 or not text.endswith(")") or not _NAME_RE.fullmatch(text[:open_at].strip()):
        raise SignatureError(
            f"{text!r} is not a method signature such as transfer(address,uint256)"
        )
    params, end = _params(text, open_at + 1)
    if end != len(text) - 1:
        raise SignatureError(f"unexpected text after the arguments in {text!r}")
    if names is not None:
        if len(names) != len(params):
            raise SignatureError(
                f"args names {len(names)} arguments, the signature has {len(params)}"
            )
        if any(param.name is not None for param in params):
            raise SignatureError("name the arguments in the signature or in args, not both")
        params = tuple(Param(name, param.type) for name, param in zip(names, params, strict=True))
    _check_names(params)
    return Signature(text[:open_at].strip(), params)


def _check_names(params: tuple[Param, ...]) -> None:
    seen = [param.name for param in params if param.name is not None]
    duplicates = sorted({name for name in seen if seen.count(name) > 1})
    if duplicates:
        raise SignatureError(f"argument name {duplicates[0]!r} is used twice")


def _params(text: str, at: int) -> tuple[tuple[Param, ...], int]:
    """Parameters from ``text[at:]`` up to the matching ``)``; returns them and its index."""
    params: list[Param] = []
    if text[at:].lstrip().startswith(")"):
        return (), text.index(")", at)
    while True:
        param, at = _param(text, at)
        params.append(param)
        while at < len(text) and text[at] == " ":
            at += 1
        if at >= len(text):
            raise SignatureError(f"unbalanced parentheses in {text!r}")
        if text[at] == ")":
            return tuple(params), at
        if text[at] != ",":
            raise SignatureError(f"expected ',' or ')' at position {at} of {text!r}")
        at += 1


def _param(text: str, at: int) -> tuple[Param, int]:
    while at < len(text) and text[at] == " ":
        at += 1
    if at < len(text) and text[at] == "(":
        components, close = _params(text, at + 1)
        _check_names(components)
        suffix = _ARRAY_SUFFIX_RE.match(text, close + 1)
        assert suffix is not None  # the pattern matches the empty string
        inner = f"({','.join(param.type.canonical for param in components)})"
        abi_type = _typed(inner + suffix.group(), components)
        at = suffix.end()
    else:
        match = re.compile(r"[A-Za-z0-9_\[\]]+").match(text, at)
        if match is None:
            raise SignatureError(f"expected a type at position {at} of {text!r}")
        abi_type = _typed(match.group(), ())
        at = match.end()
    name_match = re.compile(r" +([A-Za-z_$][A-Za-z0-9_$]*)").match(text, at)
    if name_match is not None and name_match.group(1) not in ("memory", "calldata"):
        return Param(name_match.group(1), abi_type), name_match.end()
    return Param(None, abi_type), at


def _typed(spelled: str, components: tuple[Param, ...]) -> AbiType:
    """The :class:`AbiType` of a type spelled ``spelled`` (a tuple's components already
    parsed: an array of tuples passes them down to its element type)."""
    try:
        parsed = parse(normalize(spelled))  # type: ignore[no-untyped-call]
        parsed.validate()
    except (ParseError, ABITypeError) as exc:
        raise SignatureError(f"{spelled!r} is not an ABI type: {exc}") from None
    if parsed.is_array:
        element = _typed(parsed.item_type.to_type_str(), components)
        return AbiType(parsed.to_type_str(), element=element)
    return AbiType(parsed.to_type_str(), components)


def _render(params: tuple[Param, ...]) -> str:
    parts = []
    for param in params:
        spelled = _spell(param.type)
        parts.append(spelled if param.name is None else f"{spelled} {param.name}")
    return ",".join(parts)


def _spell(abi_type: AbiType) -> str:
    if abi_type.element is not None:
        return _spell(abi_type.element) + abi_type.canonical[len(abi_type.element.canonical) :]
    if abi_type.is_tuple:
        return f"({_render(abi_type.components)})"
    return abi_type.canonical
