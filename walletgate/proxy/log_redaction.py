"""Logging for ``walletgate serve`` that never writes an agent token.

Tokens reach the process in headers and, for agent toolkits that accept only a URL, in
the request path (``/t/TOKEN/``). Three things could write them out, and each is closed:

- the access log: :class:`RedactingAccessLogger` replaces the ``{token}`` segment of
  the token routes, and anything token-shaped elsewhere in the path (``/T/TOKEN``);
- aiohttp's report of a malformed HTTP request, which quotes the raw request line with
  its path: :class:`MalformedRequestFilter` turns it into one line naming the error
  class, without the quote and without a traceback (the client gets its 400 anyway;
  a traceback per bad request would let anyone flood the log);
- anything else: :class:`RedactingFormatter` redacts every token-shaped string from
  each formatted record, tracebacks included, as the last line of defence.
"""

from __future__ import annotations

import logging
import re
import time

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from walletgate.storage.tokens import TOKEN_PREFIX

#: Anything that could be a token or most of one: the prefix and 20+ token characters.
_TOKEN_SHAPED = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_\-]{20,}")
REDACTED = TOKEN_PREFIX + "<redacted>"
#: The ``{token}`` segment of the ``/t/{token}/...`` routes, whatever it holds.
_PATH_TOKEN = re.compile(r"^/t/[^/]+")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def redact_tokens(text: str) -> str:
    """``text`` with every token-shaped substring replaced by ``wg_<redacted>``."""
    # Every match starts with the prefix: without it there is nothing to replace, and a
    # substring test is far cheaper than the regex (this runs on every log line).
    if TOKEN_PREFIX not in text:
        return text
    return _TOKEN_SHAPED.sub(REDACTED, text)


class RedactingFormatter(logging.Formatter):
    """A formatter whose output (message, arguments and traceback) carries no token.

    The ``asctime`` text is built once per second, not once per record (an access
    line per request made ``strftime`` a visible cost); the output is the same."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self._second: float = -1.0
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        return redact_tokens(super().format(record))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = record.created // 1
        if second != self._second:
            self._second_text = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        if not self.default_msec_format:
            return self._second_text
        return self.default_msec_format % (self._second_text, record.msecs)


class MalformedRequestFilter(logging.Filter):
    """Rewrites aiohttp's "Error handling request" for a malformed HTTP request (an
    :class:`HttpProcessingError` from its parser) into one INFO line without the quoted
    request and without a traceback. Other records pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.name == "aiohttp.server" and isinstance(error, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "refused a malformed HTTP request from %s: %s (HTTP %s)"
            record.args = (remote, type(error).__name__, error.code)
            record.exc_info = None
            record.exc_text = None
            record.levelno = logging.INFO
            record.levelname = logging.getLevelName(logging.INFO)
        return True


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log lines that never contain a token carried in the URL path."""

    @property
    def enabled(self) -> bool:
        """aiohttp skips :meth:`log` (and the work of calling it) when this is false."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %.1fms',
            request.remote,
            request.method,
            loggable_path(request),
            response.status,
            time * 1000,
        )


def loggable_path(request: web.BaseRequest) -> str:
    """The request path without the ``/t/{token}`` segment of the token routes and
    without anything token-shaped elsewhere (a mistyped ``/T/TOKEN``, ``//t/TOKEN``)."""
    path = request.path
    if path.startswith("/t/"):
        path = _PATH_TOKEN.sub("/t/<redacted>", path)
    return redact_tokens(path)


def configure_logging(level: int = logging.INFO, *, process_label: str = "") -> None:
    """Send every log record to stderr through the filter and formatter above;
    ``process_label`` follows the logger name (``[worker 2]``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        RedactingFormatter(LOG_FORMAT.replace("%(name)s", f"%(name)s{process_label}"))
    )
    handler.addFilter(MalformedRequestFilter())
    # LOG_FORMAT names no thread, process or source line: do not collect them for every
    # record (the logging HOWTO's "Optimization"; the access log writes one per request).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
