"""Structured logging for every process: one configuration, read from settings.

Loggers come from ``structlog.get_logger(__name__)``; ids go in as keyword
fields (``log.info("message sent", message_id=..., mailing_id=...)``), and
``structlog.contextvars.bind_contextvars`` carries them through a request or
a task. The standard library's records (uvicorn, huey, tortoise) are rendered
by the same processors.
"""

from __future__ import annotations

import logging
import sys

import structlog

from settings import Settings, get_settings

__all__ = ["configure_logging"]


def configure_logging(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if settings.log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # Tortoise logs every SQL statement with its parameters at DEBUG; httpx
    # logs every request at INFO, which the engine already logs with its ids.
    logging.getLogger("tortoise").setLevel(max(logging.INFO, root.level))
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
