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

With ``LOG_DIR`` set, every line goes as JSON to a file of this process,
``LOG_DIR/<command>-<pid>.log`` (one writer per file, so no two processes
interleave; rolled over past 50 MB, three old ones kept), and the console
keeps what a person watching can read: lines not about one message (state
changes, warnings about the provider, errors) and any error. ``make run``
works that way, beside ``mailings watch``'s per-mailing summary.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

import orjson
import structlog

from settings import Settings, get_settings

__all__ = ["HotLogger", "configure_logging"]

_MAX_FILE_BYTES = 50 * 1024 * 1024
_OLD_FILES = 3
_ERRORS = frozenset({"error", "critical", "exception"})


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


class _RotatingFile:
    """This process's log file, rolled over to ``.1``, ``.2`` ... when it grows too big."""

    def __init__(self, path: Path, max_bytes: int = _MAX_FILE_BYTES, keep: int = _OLD_FILES):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._max_bytes = max_bytes
        self._keep = keep
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115  (open while the process logs)
        self._size = self._file.tell()

    def write(self, text: str) -> int:
        with self._lock:
            if self._size and self._size + len(text) > self._max_bytes:
                self._roll()
            self._size += len(text)
            return self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        self._file.close()

    def _roll(self) -> None:
        self._file.close()
        for i in range(self._keep - 1, 0, -1):
            older = self._path.with_name(f"{self._path.name}.{i}")
            if older.exists():
                older.replace(self._path.with_name(f"{self._path.name}.{i + 1}"))
        self._path.replace(self._path.with_name(f"{self._path.name}.1"))
        self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115
        self._size = 0


def _for_console(event_dict: Any) -> bool:
    """A line about one message goes to the file only, unless it is an error."""
    return "message_id" not in event_dict or event_dict.get("level") in _ERRORS


class _ConsoleTee:
    """The last processor with ``LOG_DIR``: JSON for the file, and the console's copy."""

    def __init__(
        self,
        to_file: structlog.types.Processor,
        to_console: structlog.types.Processor,
        console: TextIO,
    ) -> None:
        self._to_file = to_file
        self._to_console = to_console
        self._console = console
        self._lock = threading.Lock()

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        line = self._to_file(logger, method_name, event_dict)
        if _for_console(event_dict):
            text = cast(str, self._to_console(logger, method_name, dict(event_dict)))
            with self._lock:
                self._console.write(f"{text}\n")
                self._console.flush()
        return line


class _ConsoleFilter(logging.Filter):
    """The standard library's records that the console keeps with ``LOG_DIR``."""

    def filter(self, record: logging.LogRecord) -> bool:
        # One line per HTTP request belongs in the file.
        return record.levelno >= logging.WARNING or record.name != "uvicorn.access"


def configure_logging(
    settings: Settings | None = None, stream: TextIO | None = None, role: str = "mailings"
) -> None:
    """Configure structlog and the standard library for this process.

    ``role`` names this process's file under ``LOG_DIR`` (the command it runs).
    """
    settings = settings or get_settings()
    stream = stream or sys.stderr
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    as_json = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    # Plain tracebacks: with rich installed, structlog's default would print
    # every frame's local variables, secrets included.
    as_text = structlog.dev.ConsoleRenderer(
        colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
    )
    on_console: structlog.types.Processor = as_json if settings.log_format == "json" else as_text
    if settings.log_format == "json" or settings.log_dir is not None:
        # A plain-text traceback: no local variables, which could hold secrets.
        shared.append(structlog.processors.format_exc_info)
    level = logging.getLevelNamesMapping()[settings.log_level]
    handlers: list[logging.Handler] = []
    if settings.log_dir is None:
        renderer, out = on_console, stream
        handlers.append(_handler(stream, shared, on_console))
    else:
        out = cast(TextIO, _RotatingFile(settings.log_dir / f"{role}-{os.getpid()}.log"))
        renderer = _ConsoleTee(as_json, on_console, stream)
        handlers.append(_handler(out, shared, as_json))
        console = _handler(stream, shared, on_console)
        console.addFilter(_ConsoleFilter())
        handlers.append(console)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_LoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level)
    # Tortoise logs every SQL statement with its parameters at DEBUG, and its
    # start and shutdown at INFO (before a report on the console, say); httpx
    # logs every request at INFO, which the engine already logs with its ids.
    logging.getLogger("tortoise").setLevel(level if level <= logging.DEBUG else logging.WARNING)
    logging.getLogger("httpx").setLevel(max(logging.WARNING, level))
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(known, _WithoutQuery) for known in access.filters):
        access.addFilter(_WithoutQuery())
    _enable_hot_lines(level)


class _WithoutQuery(logging.Filter):
    """Access lines name the path without its query string.

    A signed export link's query is its credential (``expires`` and
    ``signature``): written to a log, anyone who reads it downloads phone
    numbers for as long as the link lives.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn's access record: (client, method, path with query, HTTP version, status).
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].split("?", 1)[0], *args[3:])
        return True


def _handler(
    stream: TextIO, shared: list[structlog.types.Processor], renderer: structlog.types.Processor
) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    return handler


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
