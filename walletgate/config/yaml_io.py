"""Safe, position-aware YAML for policy documents.

PyYAML's own loaders lose positions, accept duplicate keys silently (the last one
wins) and expand aliases without bound. This loader composes the node graph with
PyYAML's parser and builds plain Python data itself, so that it can:

- record the line and column of every mapping key and sequence item;
- reject duplicate keys, aliases (no "billion laughs") and any tag beyond the plain
  YAML 1.2 core types (no object construction, ever);
- bound the document size and nesting depth;
- read scalars with the YAML 1.2 core schema, so ``yes``, ``on``, ``0x12``, ``017`` and
  ``17:30`` stay strings instead of turning into booleans and numbers.

Floats are kept as :class:`YamlFloat`, which remembers how they were written, so that
the schema check can tell the user to quote an amount instead of losing precision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from walletgate.config.document_errors import KeyPath, Problem

#: Policy documents are small; anything larger is a mistake or an attack.
MAX_DOCUMENT_BYTES = 1_048_576
#: Deeper nesting than any valid document needs; also keeps the composer's recursion safe.
MAX_DEPTH = 32

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"

_CORE_SCALARS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), "~nN"),
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    (_INT, re.compile(r"^[-+]?[0-9]+$"), "-+0123456789"),
    (
        _FLOAT,
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        "-+.0123456789",
    ),
)


class YamlFloat(float):
    """A float read from YAML, with the text it was written as (``1.50``, not ``1.5``)."""

    text: str

    def __new__(cls, text: str) -> YamlFloat:
        try:
            value = float(text)
        except ValueError:  # ".inf" and friends are spelled differently in YAML
            lowered = text.lower().lstrip("+")
            value = float(lowered.replace(".inf", "inf").replace(".nan", "nan"))
        obj = super().__new__(cls, value)
        obj.text = text
        return obj


class _CoreResolver(BaseResolver):
    """The YAML 1.2 core schema: only null, bool, decimal int and float are implicit."""


class _Dumper(yaml.SafeDumper):
    """For writing: a string is quoted if YAML 1.1 *or* 1.2 readers would misread it."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent list items under their key, as people write them by hand.
        super().increase_indent(flow, False)


for _tag, _regexp, _first in _CORE_SCALARS:
    _CoreResolver.add_implicit_resolver(_tag, _regexp, list(_first))
    _Dumper.add_implicit_resolver(_tag, _regexp, list(_first))


@dataclass(frozen=True, slots=True)
class Mark:
    """A position in the source, 1-based."""

    line: int
    column: int


@dataclass
class LoadedYaml:
    """Plain data (dicts, lists, str, int, bool, None, :class:`YamlFloat`) and positions.

    ``marks`` maps the key path of every mapping key and sequence item to where it was
    written; the root is at ``()``.
    """

    data: Any
    marks: dict[KeyPath, Mark] = field(default_factory=dict)

    def locate(self, path: KeyPath) -> Mark | None:
        """The position of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            mark = self.marks.get(path[:end])
            if mark is not None:
                return mark
        return None


class YamlProblem(ValueError):
    """The text is not YAML this loader accepts. Carries every problem found."""

    def __init__(self, problems: list[tuple[Mark | None, Problem]]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.message for _, p in problems))


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that this loader will not compose; ``path`` is where it was found."""

    def __init__(self, path: KeyPath, problem: str, mark: yaml.Mark) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.path = path


class _Loader(Reader, Scanner, Parser, Composer, _CoreResolver):
    """Parser and composer only: nodes are turned into data by :func:`_build`.

    Composition tracks the key path, so a refused alias or a too-deep nesting is
    reported where it is.
    """

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _CoreResolver.__init__(self)
        self._path: list[str | int] = []
        self._depth = 0  # counts mapping keys too, which the path does not

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        element = _path_element(parent, index)
        if element is not None:
            self._path.append(element)
        self._depth += 1
        try:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            if self.check_event(AliasEvent):
                message = "YAML aliases (*name) are not allowed: write the value out in full"
                raise _Refused(tuple(self._path), message, mark)
            if self._depth > MAX_DEPTH:
                raise _Refused(tuple(self._path), f"nesting deeper than {MAX_DEPTH} levels", mark)
            node = super().compose_node(parent, index)
            assert node is not None  # only None at the end of the stream, never mid-document
            return node
        finally:
            self._depth -= 1
            if element is not None:
                self._path.pop()


def _path_element(parent: Node | None, index: Any) -> str | int | None:
    """The key path step to the node being composed (``None`` for the root and for keys)."""
    if isinstance(parent, SequenceNode) and isinstance(index, int):
        return index
    if isinstance(parent, MappingNode) and isinstance(index, ScalarNode):
        return str(index.value)
    return None


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _from_yaml_mark(mark: yaml.Mark | None) -> Mark | None:
    return Mark(mark.line + 1, mark.column + 1) if mark is not None else None


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem, with where the construct it was parsing began."""
    problem = exc.problem or "invalid YAML"
    if exc.context and exc.context_mark is not None:
        where = f"line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1}"
        return f"invalid YAML: {problem} ({exc.context} that began at {where})"
    return f"invalid YAML: {problem}"


def _unreadable(text: str, exc: yaml.reader.ReaderError) -> tuple[Mark, Problem]:
    """Where and what the character is that YAML does not allow in a document."""
    position = min(max(exc.position, 0), len(text))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    message = (
        f"invalid YAML: character U+{exc.character:04X} is not allowed here "
        '(write control characters as escapes in a double-quoted string, e.g. "\\t")'
    )
    return Mark(line, column), Problem((), message)


def load_yaml(text: str) -> LoadedYaml:
    """Parse one YAML document into plain data with positions.

    Raises :class:`YamlProblem` for syntax errors, oversize input, aliases, unsupported
    tags, non-string or duplicate keys (every such problem, not only the first).
    """
    if len(text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise YamlProblem(
            [(Mark(1, 1), Problem((), f"document is larger than {MAX_DOCUMENT_BYTES} bytes"))]
        )
    try:
        loader = _Loader(text)  # the reader refuses control characters right here
    except yaml.reader.ReaderError as exc:
        raise YamlProblem([_unreadable(text, exc)]) from None
    try:
        root = loader.get_single_node()
    except _Refused as exc:
        raise YamlProblem(
            [(_from_yaml_mark(exc.problem_mark), Problem(exc.path, str(exc.problem)))]
        ) from None
    except yaml.MarkedYAMLError as exc:
        raise YamlProblem(
            [(_from_yaml_mark(exc.problem_mark), Problem((), _syntax_message(exc)))]
        ) from None
    except yaml.YAMLError as exc:
        raise YamlProblem([(Mark(1, 1), Problem((), str(exc)))]) from None
    finally:
        loader.dispose()
    loaded = LoadedYaml(data=None, marks={(): Mark(1, 1)})
    if root is None:
        return loaded
    problems: list[tuple[Mark | None, Problem]] = []
    loaded.marks[()] = _mark(root)
    loaded.data = _build(root, (), loaded.marks, problems)
    if problems:
        raise YamlProblem(problems)
    return loaded


def _build(
    node: Node,
    path: KeyPath,
    marks: dict[KeyPath, Mark],
    problems: list[tuple[Mark | None, Problem]],
) -> Any:
    if isinstance(node, MappingNode):
        return _build_mapping(node, path, marks, problems)
    if isinstance(node, SequenceNode):
        if node.tag != _SEQ:
            problems.append((_mark(node), Problem(path, f"unsupported YAML tag {node.tag}")))
        items = []
        for index, item in enumerate(node.value):
            marks[(*path, index)] = _mark(item)
            items.append(_build(item, (*path, index), marks, problems))
        return items
    assert isinstance(node, ScalarNode)
    try:
        return _scalar(node)
    except ValueError as exc:
        problems.append((_mark(node), Problem(path, str(exc))))
        return None


def _build_mapping(
    node: MappingNode,
    path: KeyPath,
    marks: dict[KeyPath, Mark],
    problems: list[tuple[Mark | None, Problem]],
) -> dict[str, Any]:
    if node.tag != _MAP:
        problems.append((_mark(node), Problem(path, f"unsupported YAML tag {node.tag}")))
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        try:
            key = _scalar(key_node) if isinstance(key_node, ScalarNode) else None
        except ValueError:  # a tag on the key ("!!binary key: 1")
            key = None
        if not isinstance(key, str):
            problems.append((_mark(key_node), Problem(path, "mapping keys must be plain strings")))
            continue
        key_path = (*path, key)
        if key in out:
            first = marks[key_path]
            problems.append(
                (
                    _mark(key_node),
                    Problem(key_path, f"duplicate key {key!r} (first at line {first.line})"),
                )
            )
            continue
        marks[key_path] = _mark(key_node)
        out[key] = _build(value_node, key_path, marks, problems)
    return out


def _scalar(node: ScalarNode) -> Any:
    text: str = node.value
    if node.tag == _STR:
        return text
    if node.tag == _NULL:
        return None
    if node.tag == _BOOL:
        return text.lower() == "true"
    if node.tag == _INT:
        try:
            return int(text, 10)
        except ValueError:  # Python refuses integers of more than 4300 digits
            raise ValueError(f"integer too large: {text[:20]}...") from None
    if node.tag == _FLOAT:
        return YamlFloat(text)
    raise ValueError(f"unsupported YAML tag {node.tag}")


def _represent_str(dumper: yaml.SafeDumper, data: str) -> ScalarNode:
    # Strings a reader could take for a number, boolean or null get double quotes,
    # the style the hand-written examples use.
    # Non-printable characters (NEL, line separators) get escapes: the emitter mangles
    # some of them in other styles.
    plain_tag = dumper.resolve(ScalarNode, data, (True, False))  # type: ignore[no-untyped-call]
    style = '"' if plain_tag != _STR or not data.isprintable() else None
    node: ScalarNode = dumper.represent_scalar(_STR, data, style=style)
    return node


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.SequenceNode:
    # Short lists of short scalars (chains, asset ids, days) read best on one line.
    inline = len(data) <= 10 and all(
        isinstance(item, str | int) and len(str(item)) <= 20 for item in data
    )
    return dumper.represent_sequence(_SEQ, data, flow_style=inline)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(list, _represent_list)


def dump_yaml(data: Any) -> str:
    """Write plain data as block-style YAML that :func:`load_yaml` reads back identically."""
    text: str = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )
    return text
