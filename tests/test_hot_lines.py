"""logs.py: the per-message lines written without structlog's chain are structlog's lines."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from logs import HotLogger, _enable_hot_lines, configure_logging
from settings import Settings

Configure = Callable[..., io.StringIO]


@pytest.fixture
def configure() -> Iterator[Configure]:
    root_handlers = logging.getLogger().handlers[:]
    root_level = logging.getLogger().level

    def configure(**settings: Any) -> io.StringIO:
        stream = io.StringIO()
        configure_logging(Settings(**settings), stream=stream)
        return stream

    yield configure
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = root_handlers
    logging.getLogger().setLevel(root_level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_hot_line_is_the_line_structlog_writes(configure: Configure) -> None:
    stream = configure(log_format="json", log_level="INFO")
    fields = {"message_id": 7, "mailing_id": 1, "client_id": 3, "latency_ms": 1.5, "note": None}
    structlog.get_logger("tasks.engine").info("message sent", **fields)
    HotLogger("tasks.engine").info("message sent", **fields)
    slow, hot = _lines(stream)
    assert list(hot) == list(slow), "same keys in the same order"
    assert {k: v for k, v in hot.items() if k != "timestamp"} == {
        k: v for k, v in slow.items() if k != "timestamp"
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", str(hot["timestamp"]))
    assert str(hot["timestamp"])[:16] == str(slow["timestamp"])[:16]


def test_hot_lines_follow_the_level_and_the_format(configure: Configure) -> None:
    stream = configure(log_format="json", log_level="WARNING")
    HotLogger("tasks.engine").info("message sent", message_id=1)
    assert stream.getvalue() == ""
    stream = configure(log_format="console", log_level="INFO")
    HotLogger("tasks.engine").info("message sent", message_id=1)
    assert "message sent" in stream.getvalue()
    assert "message_id=1" in stream.getvalue()


def test_a_chain_with_more_steps_keeps_hot_lines_in_it(configure: Configure) -> None:
    # Should logging ever add a step (a redaction, a second output), hot lines go through it.
    stream = configure(log_format="json", log_level="INFO")

    def tagged(_: object, __: str, event: dict[str, object]) -> dict[str, object]:
        return {**event, "tagged": True}

    processors = structlog.get_config()["processors"]
    structlog.configure(processors=[tagged, *processors])
    _enable_hot_lines(logging.INFO)
    HotLogger("tasks.recorder").info("message sent", message_id=1)
    (line,) = _lines(stream)
    assert line["tagged"] is True
