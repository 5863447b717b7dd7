"""What the fuzz tests share: their hypothesis settings and hostile value strategies.

Profiles: each fuzz test names the number of examples it runs in CI (a few minutes for
the whole set on two cores). ``WALLETGATE_FUZZ_EXAMPLES=100000`` runs every fuzz test
with that many examples instead (the long profile, see docs/reliability.md). Count what
ran with ``--hypothesis-show-statistics``.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ_EXAMPLES_ENV = "WALLETGATE_FUZZ_EXAMPLES"


def fuzz_settings(ci_examples: int) -> settings:
    """Settings for one fuzz test: ``ci_examples`` examples, or the long profile's count."""
    configured = os.environ.get(FUZZ_EXAMPLES_ENV, "").strip()
    examples = int(configured) if configured else ci_examples
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


#: Spellings a strict reader must refuse or read exactly: hex with and without leading
#: zeros, upper-case prefixes, spaces, signs, unicode digits, absurd lengths.
tricky_strings = st.sampled_from(
    [
        "",
        "0x",
        "0x0",
        "0x00",
        "0x01",
        "0X1",
        " 0x1",
        "0x1 ",
        "-0x1",
        "+1",
        "1_000",
        "1e3",
        "0b101",
        "0o17",
        "١٢٣",  # Arabic-Indic digits: int() reads them, a strict reader must not
        "１２３",  # fullwidth digits
        "0x" + "f" * 64,
        "0x1" + "0" * 64,
        "0x" + "0" * 200 + "1",
        "9" * 80,
        "9" * 5000,
        "latest",
        "pending",
        "\u202e0x1",  # right-to-left override
        "0x\u200b1",  # zero-width space
        "\x00",
        "\ud7ff",
        "true",
        "null",
    ]
)

huge_integers = st.sampled_from(
    [2**63, 2**64 - 1, 2**64, 2**160, 2**255, 2**256 - 1, 2**256, 2**256 + 1, 10**99, -1, -(2**255)]
) | st.integers(min_value=-(2**300), max_value=2**300)

json_scalars = (
    st.none()
    | st.booleans()
    | huge_integers
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | tricky_strings
    | st.binary(max_size=40).map(lambda b: "0x" + b.hex())
)

json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a node inside ``value`` (dict keys and list indexes), root included."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(paths(item, (*prefix, index)))
    return out


def replace_at(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of ``value`` with the node at ``path`` replaced by ``new``."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replace_at(value[head], rest, new)}
    copy = list(value)
    copy[head] = replace_at(copy[head], rest, new)
    return copy


def delete_at(value: Any, path: tuple[Any, ...]) -> Any:
    """A copy of ``value`` without the node at ``path`` (the root cannot be deleted)."""
    parent_path, last = path[:-1], path[-1]
    parent = value
    for step in parent_path:
        parent = parent[step]
    if isinstance(parent, dict):
        smaller: Any = {k: v for k, v in parent.items() if k != last}
    else:
        smaller = [v for i, v in enumerate(parent) if i != last]
    return replace_at(value, parent_path, smaller)


@st.composite
def mutations_of(draw: st.DrawFn, value: Any, replacements: st.SearchStrategy[Any]) -> Any:
    """``value`` with one to three nodes replaced (by ``replacements``), deleted, or given
    an extra member."""
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(value)))
        action = draw(st.sampled_from(["replace", "delete", "extend"]))
        node: Any = value
        for step in path:
            node = node[step]
        if action == "delete" and path:
            value = delete_at(value, path)
        elif action == "extend" and isinstance(node, dict):
            key = draw(st.text(max_size=12) | st.sampled_from(sorted(node) or ["x"]))
            value = replace_at(value, path, {**node, key: draw(replacements)})
        elif action == "extend" and isinstance(node, list):
            value = replace_at(value, path, [*node, draw(replacements)])
        else:
            value = replace_at(value, path, draw(replacements))
    return value


#: Longer pieces text mutations insert: escapes, and numbers no decimal can hold.
_PIECES = ["\\u0000", "\\ud800", "é", "1e9999999999999999999", "-1E-99999999999999999", "0."]


@st.composite
def text_mutations(draw: st.DrawFn, text: str) -> str:
    """``text`` with characters inserted, deleted or replaced, or a slice duplicated
    (which copies JSON members, and so makes duplicate keys)."""
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        piece = draw(st.sampled_from([*'{}[]",:\\0x1 ', *_PIECES]))
        if action == "insert":
            text = text[:position] + piece + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + 1 :]
        elif action == "replace":
            text = text[:position] + piece + text[position + 1 :]
        else:
            end = draw(st.integers(position, min(len(text), position + 40)))
            text = text[:end] + text[position:end] + text[end:]
    return text
