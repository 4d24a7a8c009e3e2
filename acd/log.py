"""Structured logging: one JSON (or console) line per event, secrets scrubbed.

Every module logs through ``get_logger``; values of keys that look like secrets are
replaced before rendering, so an AMI secret or a database password never reaches a log.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEY = re.compile(r"(secret|password|passwd|token|authorization|api_key)", re.I)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)@", re.I)
REDACTED = "***"


def redact_url(url: str) -> str:
    """Hide the password part of ``scheme://user:password@host`` URLs."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", url)


def _scrub(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if _SECRET_KEY.search(key):
            event[key] = REDACTED
        elif isinstance(value, str) and "://" in value:
            event[key] = redact_url(value)
    return event


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Set up structlog and route stdlib logging (panoramisk, aiohttp, alembic) through it."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _scrub,
    ]
    structlog.configure(
        # filter_by_level first: a debug call on a busy call path costs almost nothing.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger; call as ``log.info("event_name", key=value)``."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
