"""A policy document from raw bytes: the size limit, UTF-8, YAML and validation.

Pure (no I/O): the CLI hands it the bytes of a file or stdin, the admin API the body of
a request, so both refuse the same documents with the same located errors.
"""

from __future__ import annotations

from walletgate.config.document_errors import DocumentError, DocumentInvalid
from walletgate.config.documents import SourceDocument, parse_document, validate_document
from walletgate.config.yaml_io import MAX_DOCUMENT_BYTES


def _invalid(name: str, message: str) -> DocumentInvalid:
    return DocumentInvalid([DocumentError(name, 1, 1, "(document)", message)])


def source_from_bytes(raw: bytes, name: str) -> SourceDocument:
    """Parse ``raw`` (named ``name`` in errors) as a policy document, without validating it.

    Raises :class:`DocumentInvalid` when it is too large, not UTF-8 or not YAML.
    """
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise _invalid(name, f"document is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(name, f"not UTF-8 text (byte {exc.start}): save the file as UTF-8") from None
    return parse_document(text, name)


def checked_source(raw: bytes, name: str) -> SourceDocument:
    """Like :func:`source_from_bytes`, and the document must also be valid.

    Raises :class:`DocumentInvalid` with every error found.
    """
    source = source_from_bytes(raw, name)
    errors = validate_document(source)
    if errors:
        raise DocumentInvalid(errors)
    return source
