"""Structured logs: JSON in production, readable in a terminal; secrets never in clear."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_KEYS = re.compile(r"(key|token|secret|password|sig|authorization)", re.I)
_EMAIL = re.compile(r"[^@\s\"'<>]+@[^@\s\"'<>]+")
_PHONE = re.compile(r"\+\d{7,15}")


def _mask(value: str) -> str:
    value = _EMAIL.sub(lambda m: m.group(0)[0] + "***@***", value)
    return _PHONE.sub(lambda m: m.group(0)[:3] + "***", value)


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop secret-looking fields and mask customer addresses in every log event."""
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key) and key != "event":
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = _mask(value)
    return event


def configure_logging(log_format: str = "auto", level: int = logging.INFO,
                      file: TextIO | None = None) -> None:
    """Send structlog events (and the stdlib's, such as the clients' retries) to ``file``
    (default stderr): JSON when asked or when not on a terminal."""
    out = file or sys.stderr
    json_output = log_format == "json" or (log_format == "auto" and not out.isatty())
    renderer: Any = (structlog.processors.JSONRenderer() if json_output
                     else structlog.dev.ConsoleRenderer(colors=out.isatty()))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(_RedactFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _mask(record.getMessage())
        record.args = ()
        return True
