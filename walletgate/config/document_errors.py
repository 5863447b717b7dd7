"""Errors in a policy document, each pinned to a file, a line, a column and a key path.

Checks that know nothing about files (the schema, the semantic checks) report a
:class:`Problem` at a key path; :mod:`walletgate.config.documents` turns it into a
:class:`DocumentError` by looking the path up in the positions the YAML loader recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: A key path inside a document: mapping keys and sequence indexes, from the root.
KeyPath = tuple[str | int, ...]


def format_path(path: KeyPath) -> str:
    """Render a key path the way users read it: ``policies[1].rules[0].max``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(document)"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong at ``path``, before it is located in a file."""

    path: KeyPath
    message: str


@dataclass(frozen=True, slots=True)
class DocumentError:
    """One error, located. ``line`` and ``column`` are 1-based; 0 when unknown."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}"


class DocumentInvalid(ValueError):
    """A document failed to load or validate; ``errors`` lists every error found."""

    def __init__(self, errors: Sequence[DocumentError]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(str(error) for error in self.errors))


def sorted_errors(errors: Iterable[DocumentError]) -> list[DocumentError]:
    """Errors in reading order (by position, then path), without exact duplicates."""
    unique = dict.fromkeys(errors)
    return sorted(unique, key=lambda e: (e.file, e.line, e.column, e.path, e.message))
