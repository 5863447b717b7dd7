"""Policy documents: parse, validate, canonicalise, compile and export.

The entry points other modules use:

- :func:`parse_document` - YAML text to a :class:`SourceDocument` (data + positions);
- :func:`validate_document` - every error (schema, then semantics) as located
  :class:`DocumentError` values;
- :func:`normalize_document` - the canonical JSON-able form used for diffing and storage;
- :func:`compile_document` - the evaluator's :class:`PolicySet`;
- :func:`export_document` - canonical form back to YAML that round-trips.

Everything here is pure: text in, data out. Reading files is the CLI's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from walletgate.config.compiler import compile_canonical
from walletgate.config.document_errors import (
    DocumentError,
    DocumentInvalid,
    Problem,
    format_path,
    sorted_errors,
)
from walletgate.config.normalize import canonical_document
from walletgate.config.schema_check import schema_problems
from walletgate.config.semantics import ENTITY_KINDS, semantic_problems
from walletgate.config.warnings import document_warnings
from walletgate.config.yaml_io import LoadedYaml, Mark, YamlProblem, dump_yaml, load_yaml
from walletgate.policies.model import PolicySet

__all__ = [
    "DocumentError",
    "DocumentInvalid",
    "SourceDocument",
    "compile_document",
    "document_warnings_of",
    "export_document",
    "normalize_document",
    "parse_document",
    "summarize",
    "validate_document",
]

#: Where errors in documents that did not come from a file are said to be.
NO_FILE = "<document>"
SCHEMA_COMMENT = "# yaml-language-server: $schema="


@dataclass(frozen=True)
class SourceDocument:
    """A parsed document: its plain data and where each key was written."""

    file: str
    data: Any
    positions: LoadedYaml = field(repr=False)


def _located(file: str, positions: LoadedYaml | None, problem: Problem) -> DocumentError:
    mark = positions.locate(problem.path) if positions is not None else None
    return _error(file, mark, problem)


def _error(file: str, mark: Mark | None, problem: Problem) -> DocumentError:
    line, column = (mark.line, mark.column) if mark is not None else (0, 0)
    return DocumentError(file, line, column, format_path(problem.path), problem.message)


def parse_document(text: str, file: str = NO_FILE) -> SourceDocument:
    """Parse YAML text. Raises :class:`DocumentInvalid` when it is not acceptable YAML."""
    try:
        loaded = load_yaml(text)
    except YamlProblem as exc:
        raise DocumentInvalid(
            sorted_errors(_error(file, mark, problem) for mark, problem in exc.problems)
        ) from None
    return SourceDocument(file, loaded.data, loaded)


def validate_document(
    doc: Any, file: str = NO_FILE, positions: LoadedYaml | None = None
) -> list[DocumentError]:
    """Every error in ``doc``, in reading order; empty when the document is valid.

    ``doc`` may be a :class:`SourceDocument` (errors then carry lines and columns) or
    plain data. Semantic checks run once the structure is right, since they rely on it.
    """
    if isinstance(doc, SourceDocument):
        file, positions, doc = doc.file, doc.positions, doc.data
    problems = schema_problems(doc)
    if not problems:
        problems = semantic_problems(doc)
    return sorted_errors(_located(file, positions, problem) for problem in problems)


def document_warnings_of(
    doc: Any, file: str = NO_FILE, positions: LoadedYaml | None = None
) -> list[DocumentError]:
    """Every warning (:mod:`walletgate.config.warnings`) in a valid ``doc``, located
    like errors; empty for a document that is not valid (its errors come first)."""
    if isinstance(doc, SourceDocument):
        file, positions, doc = doc.file, doc.positions, doc.data
    if schema_problems(doc) or semantic_problems(doc):
        return []
    return sorted_errors(_located(file, positions, problem) for problem in document_warnings(doc))


def normalize_document(doc: Any, file: str = NO_FILE) -> dict[str, Any]:
    """The canonical form of ``doc`` (see :mod:`walletgate.config.normalize`).

    Raises :class:`DocumentInvalid` with every error if ``doc`` is not valid; ``file``
    names where plain data came from in those errors.
    """
    errors = validate_document(doc, file)
    if errors:
        raise DocumentInvalid(errors)
    data = doc.data if isinstance(doc, SourceDocument) else doc
    return canonical_document(data)


def compile_document(
    doc: Mapping[str, Any] | SourceDocument,
    version: int,
    policy_versions: Mapping[str, int] | None = None,
) -> PolicySet:
    """Validate and compile ``doc`` into a :class:`PolicySet` stamped with ``version``.

    ``policy_versions`` (policy id -> row version) sets each ``Policy.version``; policies
    not listed get 1. Raises :class:`DocumentInvalid` if the document is not valid.
    """
    return compile_canonical(normalize_document(doc), version, policy_versions)


def _tidy(value: Any) -> Any:
    # Defaults that canonicalisation fills back in: leaving them out keeps exports short.
    if isinstance(value, list):
        return [_tidy(item) for item in value]
    if isinstance(value, dict):
        # A typed_data entry's name has no default: "" requires an empty domain name,
        # and leaving it out would admit every name.
        defaults_empty = ("description",) if "primary_type" in value else ("name", "description")
        return {
            key: _tidy(item)
            for key, item in value.items()
            if not (key in defaults_empty and item == "")
            and not (key == "enabled" and item is True)
        }
    return value


def export_document(doc: Mapping[str, Any], schema_ref: str | None = None) -> str:
    """YAML text for a canonical document; reading it back gives the same canonical form.

    ``schema_ref`` (a path or URL to ``policies.schema.json``) is written in the
    ``# yaml-language-server`` comment so editors validate the file as it is edited.
    """
    header = f"{SCHEMA_COMMENT}{schema_ref}\n" if schema_ref else ""
    header += "# Exported by `walletgate policies export`. See docs/policies.md for every key.\n"
    return header + dump_yaml(_tidy(dict(doc)))


_SINGULAR = {"owners": "owner", "agents": "agent", "wallets": "wallet", "assets": "asset"}


def summarize(doc: Mapping[str, Any]) -> str:
    """A one-line census of a document: ``1 owner, 2 agents, ... (14 rules)``."""
    parts = []
    for kind in ENTITY_KINDS:
        count = len(doc.get(kind, []))
        parts.append(f"{count} {kind if count != 1 else _SINGULAR.get(kind, 'policy')}")
    rules = sum(len(policy.get("rules", [])) for policy in doc.get("policies", []))
    return f"{', '.join(parts)} ({rules} rule{'s' if rules != 1 else ''})"
