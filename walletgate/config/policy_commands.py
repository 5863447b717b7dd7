"""``walletgate policies validate | plan | apply | export``: the imperative shell.

Reading files, talking to PostgreSQL and Redis and printing live here; the work itself
is in :mod:`walletgate.config.documents` (pure) and :mod:`walletgate.storage.policy_repo`.
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
    parse_document,
    summarize,
    validate_document,
)
from walletgate.config.schema_check import SCHEMA_RESOURCE
from walletgate.config.settings import Settings
from walletgate.config.yaml_io import MAX_DOCUMENT_BYTES
from walletgate.errors import UserError
from walletgate.storage.cache import CacheUnavailable, publish_state
from walletgate.storage.policy_repo import apply, load_document, plan
from walletgate.storage.runtime import database_connection, open_stores

STDIN = "-"


def read_source(file: str) -> SourceDocument:
    """Read and parse a policy document (``-`` for stdin), reading at most the size limit.

    Raises :class:`DocumentInvalid` for bad content and :class:`UserError` when the file
    cannot be read at all.
    """
    try:
        if file == STDIN:
            raw = sys.stdin.buffer.read(MAX_DOCUMENT_BYTES + 1)
        else:
            with open(file, "rb") as handle:
                raw = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise UserError(f"cannot read {file}: {exc.strerror or exc}") from None
    name = "<stdin>" if file == STDIN else file
    if len(raw) > MAX_DOCUMENT_BYTES:
        message = f"document is larger than {MAX_DOCUMENT_BYTES} bytes"
        raise DocumentInvalid([DocumentError(name, 1, 1, "(document)", message)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        position = f"byte {exc.start}"
        message = f"not UTF-8 text ({position}): save the file as UTF-8"
        raise DocumentInvalid([DocumentError(name, 1, 1, "(document)", message)]) from None
    return parse_document(text, name)


def _print_errors(errors: tuple[DocumentError, ...]) -> int:
    for error in errors:
        print(error, file=sys.stderr)
    count = len(errors)
    print(f"{count} error{'s' if count != 1 else ''}", file=sys.stderr)
    return 1


def _checked(file: str) -> SourceDocument:
    source = read_source(file)
    errors = validate_document(source)
    if errors:
        raise DocumentInvalid(errors)
    return source


def _actor(settings: Settings) -> str:
    return settings.actor or os.environ.get("USER") or "unknown"


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
            changes = await plan(conn, source)
    except DocumentInvalid as exc:
        return _print_errors(exc.errors)
    print(changes.render())
    return 0


async def run_apply(args: argparse.Namespace, settings: Settings) -> int:
    """Apply a document in one transaction, then refresh every gateway's policy cache."""
    try:
        source = _checked(args.file)
        async with open_stores(settings) as stores:
            async with stores.pool.acquire() as conn:
                result = await apply(conn, source, actor=_actor(settings))
            print(result.plan.render())
            if result.changed:
                version = result.state_version
                print(f"Applied change set {result.change_set} (state version {version}).")
            try:
                # Also after a no-op: it repairs a cache a failed earlier publish left stale.
                await publish_state(stores.redis, stores.pool, ttl=settings.policy_cache_ttl)
            except CacheUnavailable as exc:
                print(
                    f"walletgate: the change is committed, but the policy cache was not "
                    f"refreshed ({exc}); gateways pick it up within {settings.policy_cache_ttl}s, "
                    "or run apply again",
                    file=sys.stderr,
                )
                return 1
    except DocumentInvalid as exc:
        return _print_errors(exc.errors)
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
            document = await load_document(conn)
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
