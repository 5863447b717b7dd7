"""``walletgate policies validate | plan | apply | export``: read files, print results.

The actions are in :mod:`walletgate.service.policies`; turning bytes into a checked
document is :mod:`walletgate.config.sources` (pure). This module only reads files and
stdin, writes the export and prints.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from importlib import resources
from pathlib import Path

from walletgate.config.document_errors import DocumentError, DocumentInvalid
from walletgate.config.documents import (
    SourceDocument,
    document_warnings_of,
    export_document,
    normalize_document,
    summarize,
)
from walletgate.config.schema_check import SCHEMA_RESOURCE
from walletgate.config.settings import Settings
from walletgate.config.sources import checked_source, source_from_bytes
from walletgate.config.yaml_io import MAX_DOCUMENT_BYTES
from walletgate.errors import UserError
from walletgate.service.actor import actor_of
from walletgate.service.policies import apply_policies, export_policies, plan_policies
from walletgate.storage.runtime import database_connection, open_stores

STDIN = "-"


def _read_bytes(file: str) -> tuple[bytes, str]:
    """The first bytes of ``file`` (``-``: stdin), one more than the size limit allows."""
    try:
        if file == STDIN:
            raw = sys.stdin.buffer.read(MAX_DOCUMENT_BYTES + 1)
        else:
            with open(file, "rb") as handle:
                raw = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise UserError(f"cannot read {file}: {exc.strerror or exc}") from None
    return raw, "<stdin>" if file == STDIN else file


def read_source(file: str) -> SourceDocument:
    """Read and parse a policy document (``-`` for stdin), reading at most the size limit.

    Raises :class:`DocumentInvalid` for bad content and :class:`UserError` when the file
    cannot be read at all.
    """
    return source_from_bytes(*_read_bytes(file))


def _checked(file: str) -> SourceDocument:
    return checked_source(*_read_bytes(file))


def _print_errors(errors: tuple[DocumentError, ...]) -> int:
    for error in errors:
        print(error, file=sys.stderr)
    count = len(errors)
    print(f"{count} error{'s' if count != 1 else ''}", file=sys.stderr)
    return 1


def run_validate(args: argparse.Namespace, settings: Settings) -> int:
    """Check a document without a database: print ``OK: ...`` or every error (exit 1)."""
    try:
        source = _checked(args.file)
    except DocumentInvalid as exc:
        return _print_errors(exc.errors)
    warnings = document_warnings_of(source)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    note = f" ({len(warnings)} warning{'s' if len(warnings) != 1 else ''})" if warnings else ""
    print(f"OK: {summarize(normalize_document(source))}{note}")
    return 0


async def run_plan(args: argparse.Namespace, settings: Settings) -> int:
    """Print what ``apply`` would add, change and remove."""
    try:
        source = _checked(args.file)
        async with database_connection(settings) as conn:
            changes = await plan_policies(conn, source)
    except DocumentInvalid as exc:
        return _print_errors(exc.errors)
    print(changes.render())
    return 0


async def run_apply(args: argparse.Namespace, settings: Settings) -> int:
    """Apply a document in one transaction, then refresh every gateway's policy cache."""
    try:
        source = _checked(args.file)
        async with open_stores(settings) as stores:
            applied = await apply_policies(
                stores, source, actor=actor_of(settings), cache_ttl=settings.policy_cache_ttl
            )
    except DocumentInvalid as exc:
        return _print_errors(exc.errors)
    result = applied.result
    print(result.plan.render())
    if result.changed:
        print(f"Applied change set {result.change_set} (state version {result.state_version}).")
    if not applied.announcement.ok:
        print(
            f"walletgate: the change is committed, but the policy cache was not "
            f"refreshed ({applied.announcement.error}); gateways pick it up within "
            f"{settings.policy_cache_ttl}s, or run apply again",
            file=sys.stderr,
        )
        return 1
    return 0


def schema_reference(output: str | None) -> str:
    """The path to the packaged schema, relative to where the export is written."""
    schema = Path(str(resources.files("walletgate.config").joinpath(SCHEMA_RESOURCE)))
    base = Path(output).resolve().parent if output else Path.cwd()
    try:
        return os.path.relpath(schema, base)
    except ValueError:  # another drive on Windows: no relative path exists
        return schema.as_uri()


async def run_export(args: argparse.Namespace, settings: Settings) -> int:
    """Write the current state as a policy document that ``apply`` reproduces exactly."""
    try:
        async with database_connection(settings) as conn:
            document = await export_policies(conn)
    except DocumentInvalid as exc:
        return _print_errors(exc.errors)
    text = export_document(document, schema_reference(args.output))
    if args.output:
        try:
            await asyncio.to_thread(Path(args.output).write_text, text, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        print(f"Exported {summarize(document)} to {args.output}.", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
