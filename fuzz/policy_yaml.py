"""atheris: policy documents. Acceptable: DocumentInvalid (located errors) or a
compiled PolicySet."""

from __future__ import annotations

from harness import instrumented, run

with instrumented():
    from walletgate.config.document_errors import DocumentInvalid
    from walletgate.config.documents import compile_document, parse_document


def test_one_input(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # the CLI refuses such files before parsing (read_source)
    try:
        compile_document(parse_document(text, "fuzz.yaml"), 1)
    except DocumentInvalid as exc:
        assert exc.errors and all(error.message for error in exc.errors)


if __name__ == "__main__":
    run(test_one_input)
