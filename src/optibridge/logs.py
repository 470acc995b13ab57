"""Structured logs: JSON in production, readable in a terminal; secrets never in clear.

Every event, structlog's and the standard library's (the clients' retries, Alembic), goes
through ``redact``: fields named like a secret are replaced, the values of registered secrets
(API keys, tokens, the signing secret) are masked wherever they appear, and so are e-mail
addresses, phone numbers and ``sig=``/``token=`` query parameters, in strings nested
in lists and mappings too.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, TextIO

import structlog

if TYPE_CHECKING:
    from optibridge.config import Config

_SECRET_KEYS = re.compile(r"(key|token|secret|password|sig|authorization)", re.I)
_SEP = r"\s\"'<>,;:()\[\]{}\\/|="
_EMAIL = re.compile(rf"[^@{_SEP}]+@[^@{_SEP}]+")
_PHONE = re.compile(r"\+\d[\d ()-]{6,18}\d")
_QUERY_SECRET = re.compile(r"\b(sig|token|key|api_key|secret)=[^&\s\"'<>]+", re.I)
_secrets: set[str] = set()
_MIN_SECRET = 6  # shorter values would mask ordinary words


def register_secrets(values: Iterable[str | None]) -> None:
    """Mask these values wherever they appear in a log line from now on."""
    _secrets.update(v for v in values if v and len(v) >= _MIN_SECRET)


def register_config_secrets(config: Config) -> None:
    """Register every secret the configuration holds."""
    server = config.server
    values = [server.signing_secret, server.admin_token]
    for tenant in config.tenants.values():
        values += [tenant.api_key, tenant.platform.api_key]
    register_secrets(v.get_secret_value() for v in values if v is not None)


def mask(value: str) -> str:
    """``value`` with secrets, addresses and secret query parameters masked."""
    for secret in sorted(_secrets, key=len, reverse=True):
        value = value.replace(secret, "***")
    value = _QUERY_SECRET.sub(lambda m: m.group(1) + "=***", value)
    value = _EMAIL.sub(lambda m: m.group(0)[0] + "***@***", value)
    return _PHONE.sub(lambda m: m.group(0)[:3] + "***", value)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {k: "***" if _is_secret_key(k) else _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    return value


def _is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and key != "event" and bool(_SECRET_KEYS.search(key))


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop secret-looking fields and mask secrets and customer addresses everywhere."""
    for key, value in list(event.items()):
        if key.startswith("_"):
            continue  # structlog's own bookkeeping (the stdlib record)
        event[key] = "***" if _is_secret_key(key) else _clean(value)
    return event


def _renderer(json_output: bool, colors: bool) -> Any:
    if json_output:
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=colors,
                                         exception_formatter=structlog.dev.plain_traceback)


def configure_logging(log_format: str = "auto", level: int = logging.INFO,
                      file: TextIO | None = None) -> None:
    """Send structlog events and the stdlib's (such as the clients' retries) to ``file``
    (default stderr): JSON when asked or when not on a terminal, else readable lines."""
    out = file or sys.stderr
    json_output = log_format == "json" or (log_format == "auto" and not out.isatty())
    renderer = _renderer(json_output, out.isatty())
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    stamp, structlog.processors.format_exc_info, redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                           stamp],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, redact, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
