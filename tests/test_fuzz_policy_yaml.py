"""Fuzzing policy YAML (hypothesis): the example document with duplicate keys, anchors and
aliases, tags, huge and odd numbers, unicode anywhere, and random edits.

Properties:

- loading, validating and compiling raise nothing but :class:`DocumentInvalid`, whose
  every error names the file, a line within it, and what is wrong;
- a duplicate key, an alias or a non-plain tag is always an error (never "the last value
  wins", never an expansion, never an object);
- a document that is valid compiles, and its export reads back to the same canonical form;
- ``walletgate policies validate`` answers hostile files with one line per error and
  exit status 1, never a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests.support.fuzzing import fuzz_settings, text_mutations
from tests.support.gateway import walletgate_cli
from walletgate.config.document_errors import DocumentError, DocumentInvalid
from walletgate.config.documents import (
    compile_document,
    export_document,
    normalize_document,
    parse_document,
    validate_document,
)
from walletgate.config.yaml_io import MAX_DOCUMENT_BYTES

EXAMPLE = (Path(__file__).resolve().parents[1] / "examples" / "policies.yaml").read_text()
LINES = EXAMPLE.splitlines()
FILE = "policies.yaml"
#: Lines holding ``key: scalar`` (not list items): where keys can be duplicated and
#: values replaced.
_SCALAR_LINE = re.compile(r"^(\s*)([a-z_]+): (\S.*)$")
SCALAR_LINES = [i for i, line in enumerate(LINES) if _SCALAR_LINE.match(line)]
KEY_LINES = [i for i, line in enumerate(LINES) if re.match(r"^\s*[a-z_]+:", line)]


def judge(text: str) -> bool:
    """Load, validate and compile ``text``; True when it is a valid document. Any
    refusal must be a :class:`DocumentInvalid` with located, non-empty errors."""
    try:
        source = parse_document(text, FILE)
        errors = validate_document(source)
        if errors:
            raise DocumentInvalid(errors)
        canonical = normalize_document(source)
        compile_document(source, 1)
    except DocumentInvalid as exc:
        assert exc.errors
        for error in exc.errors:
            assert error.file == FILE and error.message
            assert 0 <= error.line <= text.count("\n") + 2, error
        event(f"refused: {_kind(exc.errors[0].message)}")
        return False
    exported = export_document(canonical)
    assert normalize_document(parse_document(exported)) == canonical
    event("valid")
    return True


def _kind(message: str) -> str:
    """A coarse class of an error message, for the statistics."""
    for word in ("duplicate", "alias", "tag", "integer too large", "float", "YAML", "unknown"):
        if word in message:
            return word
    return "other"


def _with_line(index: int, line: str, *, insert: bool = False) -> str:
    lines = list(LINES)
    if insert:
        lines.insert(index + 1, line)
    else:
        lines[index] = line
    return "\n".join(lines) + "\n"


def _scalar(index: int) -> tuple[str, str, str]:
    match = _SCALAR_LINE.match(LINES[index])
    assert match
    return match.group(1), match.group(2), match.group(3)


odd_numbers = st.one_of(
    st.integers(1, 6000).map(lambda n: "9" * n),
    st.sampled_from(
        ["1e400", "-1e400", "1.5e-400", "-0", "0.0", ".inf", "-.inf", ".nan", "0x10", "0o17",
         "017", "1_000", "+5", "1e3", "12:30", "0b11", "2**256", "115792089237316195423570985"
         "008687907853269984665640564039457584007913129639936"]
    ),
    st.integers(-(2**300), 2**300).map(str),
)  # fmt: skip
unicode_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12
) | st.sampled_from(
    ["\u202e", "\u2066", "\u0085", "\u2028", "\u2029", "\ufeff", "\u200b", "\x00", "\x1b[31m",
     "\u0301", "😀", "ｉｄ", "ＴＲＡＤＥＲ", "trader\u200b", "é", "\x7f", "\x9f"]
)  # fmt: skip


@st.composite
def duplicate_keys(draw: st.DrawFn) -> str:
    index = draw(st.sampled_from(SCALAR_LINES))
    indent, key, _value = _scalar(index)
    value = draw(st.sampled_from(["x", '"0.1"', "1", "[]", "{}", _scalar(index)[2]]))
    return _with_line(index, f"{indent}{key}: {value}", insert=True)


@st.composite
def aliases(draw: st.DrawFn) -> str:
    first, second = sorted(
        draw(st.lists(st.sampled_from(SCALAR_LINES), min_size=2, max_size=2, unique=True))
    )
    lines = list(LINES)
    indent, key, value = _scalar(first)
    lines[first] = f"{indent}{key}: &anchor {value}"
    indent, key, _ = _scalar(second)
    use = draw(st.sampled_from(["*anchor", "[*anchor, *anchor]"]))
    lines[second] = f"{indent}{key}: {use}"
    if draw(st.booleans()):  # a merge key as well
        lines.insert(second + 1, f"{indent}<<: *anchor")
    return "\n".join(lines) + "\n"


@st.composite
def tags(draw: st.DrawFn) -> str:
    index = draw(st.sampled_from(SCALAR_LINES))
    indent, key, value = _scalar(index)
    tag = draw(
        st.sampled_from(
            ["!!python/object/apply:os.system", "!!python/name:os.system", "!!binary",
             "!!timestamp", "!!set", "!custom", "!!float", "!!int", "!<tag:evil,2024:x>"]
        )
    )  # fmt: skip
    return _with_line(index, f"{indent}{key}: {tag} {value}")


@st.composite
def odd_values(draw: st.DrawFn) -> str:
    index = draw(st.sampled_from(SCALAR_LINES))
    indent, key, _value = _scalar(index)
    value = draw(odd_numbers | unicode_text.map(lambda t: '"' + t.replace('"', "") + '"'))
    return _with_line(index, f"{indent}{key}: {value}")


@st.composite
def unicode_inserted(draw: st.DrawFn) -> str:
    index = draw(st.integers(0, len(LINES) - 1))
    line = LINES[index]
    position = draw(st.integers(0, len(line)))
    return _with_line(index, line[:position] + draw(unicode_text) + line[position:])


@st.composite
def deep(draw: st.DrawFn) -> str:
    depth = draw(st.integers(20, 3000))
    value = draw(st.sampled_from(["[" * depth + "]" * depth, "{a: " * depth + "1" + "}" * depth]))
    index = draw(st.sampled_from(SCALAR_LINES))
    indent, key, _ = _scalar(index)
    return _with_line(index, f"{indent}{key}: {value}")


@fuzz_settings(150)
@given(duplicate_keys())
def test_duplicate_keys_are_always_refused(text: str) -> None:
    assert not judge(text)
    assert any("duplicate key" in e.message for e in _errors(text))


@fuzz_settings(150)
@given(aliases())
def test_aliases_and_merge_keys_are_always_refused(text: str) -> None:
    assert not judge(text)
    assert any("aliases" in e.message for e in _errors(text))


@fuzz_settings(100)
@given(tags())
def test_tags_beyond_plain_data_are_refused(text: str) -> None:
    judge(text)
    if "!!float" not in text and "!!int" not in text:
        assert any("unsupported YAML tag" in e.message for e in _errors(text))


@fuzz_settings(300)
@given(odd_values() | unicode_inserted() | deep())
def test_odd_values_unicode_and_nesting(text: str) -> None:
    judge(text)


@fuzz_settings(300)
@given(text_mutations(EXAMPLE))
def test_random_edits(text: str) -> None:
    judge(text)


def _errors(text: str) -> Sequence[DocumentError]:
    try:
        source = parse_document(text, FILE)
    except DocumentInvalid as exc:
        return exc.errors
    return tuple(validate_document(source))


HOSTILE_FILES: dict[str, bytes] = {
    "billion laughs": (
        b'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
        + b"".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)}]\n".encode()
            for i in range(20)
        )
    ),
    "python object": b"version: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
    "duplicate version": EXAMPLE.encode() + b"version: 2\n",
    "huge integer": b"version: " + b"9" * 100_000 + b"\n",
    "over the size limit": b"version: 1\n#" + b"x" * (MAX_DOCUMENT_BYTES + 1) + b"\n",
    "not UTF-8": b"version: 1\nowners:\n  - id: \xff\xfe\n",
    "byte order mark": b"\xef\xbb\xbf" + EXAMPLE.encode(),
    "NUL character": EXAMPLE.replace("Acme Treasury", "Acme\x00Treasury").encode(),
    "deep nesting": b"a: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "not a mapping": b"- 1\n- 2\n",
}


@pytest.mark.parametrize("name", list(HOSTILE_FILES))
def test_the_validate_command_on_hostile_files(tmp_path: Path, name: str) -> None:
    path = tmp_path / "policies.yaml"
    path.write_bytes(HOSTILE_FILES[name])
    result = walletgate_cli(["policies", "validate", str(path)], {}, check=False)
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert "pwned" not in output or name == "python object"
    assert not Path("/tmp/pwned").exists()
    if name == "byte order mark":
        assert result.returncode == 0, output
        return
    assert result.returncode == 1, output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].endswith(("error", "errors"))
    assert all(line.startswith(str(path)) for line in lines[:-1]), lines


# -- what the fuzzing found, pinned --------------------------------------------------------


def test_a_control_character_is_a_located_error() -> None:
    errors = _errors(EXAMPLE.replace("name: Acme Treasury", 'name: "Acme\x1fTreasury"'))
    assert [(e.line, e.column) for e in errors] == [(12, 16)]
    assert "U+001F is not allowed" in errors[0].message


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("decimals: 6\n", "decimals: 6.0\n", "assets[1].decimals"),
        ("chain: 1337\n", "chain: !!float 1337\n", "wallets[0].chain"),
        ("max: 600\n", "max: 6e2\n", "policies[1].rules[4].max"),
    ],
)
def test_a_yaml_float_is_not_an_integer(old: str, new: str, path: str) -> None:
    errors = _errors(EXAMPLE.replace(old, new, 1))
    assert [(e.path, "YAML float" in e.message) for e in errors] == [(path, True)]


def test_an_integer_amount_too_long_to_round_trip_is_refused() -> None:
    text = EXAMPLE.replace('price_usd: "3000.00"', "price_usd: " + "9" * 101)
    errors = _errors(text)
    assert [e.path for e in errors] == ["assets[0].price_usd"]


def test_a_tag_on_a_key_is_an_error() -> None:
    """Found by atheris: a tagged mapping key raised ValueError."""
    errors = _errors(EXAMPLE.replace("version: 1", "!!binary version: 1"))
    assert any("mapping keys must be plain strings" in e.message for e in errors)
