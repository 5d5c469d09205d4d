"""Structured logging for every process: one configuration, read from settings.

Loggers come from ``structlog.get_logger(__name__)``; ids go in as keyword
fields (``log.info("message sent", message_id=..., mailing_id=...)``), and
``structlog.contextvars.bind_contextvars`` carries them through a request or
a task. The standard library's records (uvicorn, huey, tortoise) are rendered
by the same processors, to the same stream.

Our own lines take structlog's native path (level filtering in the bound
logger, orjson, one write per line) rather than going through the standard
library's handlers: the engine logs every send attempt, thousands a second,
and the stdlib round trip cost about a tenth of a worker's CPU.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
import structlog

from settings import Settings, get_settings

__all__ = ["HotLogger", "configure_logging"]


class _NamedWriteLogger(structlog.WriteLogger):
    """A write logger that knows its name, for ``add_logger_name``."""

    def __init__(self, name: str, file: TextIO) -> None:
        super().__init__(file)
        self.name = name


class _LoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        name = str(args[0]) if args else "mailings"
        return _NamedWriteLogger(name, self._file)


def _orjson_dumps(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


class _HotOutput:
    """Where :class:`HotLogger` writes JSON lines itself; None: through structlog."""

    def __init__(self, stream: TextIO, level: int) -> None:
        self.stream = stream
        self.level = level
        self._second = -1
        self._prefix = ""

    def timestamp(self) -> str:
        # TimeStamper(fmt="iso", utc=True)'s text, with the seconds formatted once a second.
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z"


_hot: _HotOutput | None = None


class HotLogger:
    """A logger for the lines written once per message, thousands a second.

    With JSON logs it writes the very line structlog would (the same keys,
    in the same order, the same timestamp), without structlog's processor
    chain, which cost three times as much as the line itself. Lines carry
    their ids as fields: no context bound with ``bind_contextvars`` is
    merged in. Elsewhere (console logs, or logging not configured) it is
    structlog's logger.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._log = structlog.get_logger(name)

    def info(self, event: str, **fields: Any) -> None:
        hot = _hot
        # structlog.reset_defaults() (tests) undoes configure_logging: follow it.
        if hot is None or not structlog.is_configured():
            self._log.info(event, **fields)
            return
        if hot.level > logging.INFO:
            return
        fields["event"] = event
        fields["level"] = "info"
        fields["logger"] = self._name
        fields["timestamp"] = hot.timestamp()
        hot.stream.write(
            orjson.dumps(fields, default=str, option=orjson.OPT_APPEND_NEWLINE).decode()
        )
        hot.stream.flush()


def configure_logging(settings: Settings | None = None, stream: TextIO | None = None) -> None:
    """Configure structlog and the standard library for this process."""
    settings = settings or get_settings()
    stream = stream or sys.stderr
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if settings.log_format == "json":
        # A plain-text traceback: no local variables, which could hold secrets.
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    else:
        # Plain tracebacks here too: with rich installed, structlog's default
        # would print every frame's local variables, secrets included.
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    level = logging.getLevelNamesMapping()[settings.log_level]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_LoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Tortoise logs every SQL statement with its parameters at DEBUG; httpx
    # logs every request at INFO, which the engine already logs with its ids.
    logging.getLogger("tortoise").setLevel(max(logging.INFO, level))
    logging.getLogger("httpx").setLevel(max(logging.WARNING, level))
    _enable_hot_lines(level)


# What HotLogger does by itself, so it may skip the chain only when it holds nothing else.
_PLAIN_STEPS = (
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.format_exc_info,
)


def _enable_hot_lines(level: int) -> None:
    """Let HotLogger write itself only if structlog would write plain JSON lines to one file."""
    global _hot
    config = structlog.get_config()
    *steps, renderer = config["processors"]
    factory = config["logger_factory"]
    plain = (
        isinstance(renderer, structlog.processors.JSONRenderer)
        and isinstance(factory, _LoggerFactory)
        and all(
            step in _PLAIN_STEPS or isinstance(step, structlog.processors.TimeStamper)
            for step in steps
        )
    )
    _hot = _HotOutput(factory._file, level) if plain else None
