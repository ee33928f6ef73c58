"""One quiet line, not a traceback, for requests aiohttp refuses before any handler runs.

aiohttp answers a malformed request (a control character or a bad byte in a header, an
over-long line) with 400 itself, then logs the parser error with its traceback and the
offending raw line at ERROR. Anyone who can connect could fill the log that way, and the
raw line may be an ``X-Warp10-Token`` header: a secret must never reach the log. So the
record becomes a WARNING with the parser's reason only, without the echoed bytes.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

_LOGGER = "aiohttp.server"


def _reason(exc: HttpProcessingError) -> str:
    """The parser's reason without the bytes it echoes (they follow a ':' or a quote)."""
    text = (exc.message or type(exc).__name__).strip().splitlines()[0]
    for stop in (":", "'", '"'):
        text = text.split(stop, 1)[0]
    return text.strip()[:80] or type(exc).__name__


class _QuietBadRequests(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "refused a malformed HTTP request from %s: %s %s"
            record.args = (remote, exc.code, _reason(exc))
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_bad_requests() -> None:
    """Install the filter once (idempotent: a test may start several apps in a process)."""
    logger = logging.getLogger(_LOGGER)
    if not any(isinstance(f, _QuietBadRequests) for f in logger.filters):
        logger.addFilter(_QuietBadRequests())
