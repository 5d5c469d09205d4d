"""LOG_DIR: every line in a file per process; the console keeps what a person can read."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from logs import _RotatingFile, configure_logging
from settings import Settings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    tortoise = logging.getLogger("tortoise").level
    yield
    for handler in root.handlers:
        stream = getattr(handler, "stream", None)
        if isinstance(stream, _RotatingFile):
            stream.close()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("tortoise").setLevel(tortoise)


def test_lines_about_one_message_go_to_the_file_only(tmp_path: Path, restore_logging: None) -> None:
    console = io.StringIO()
    configure_logging(Settings(log_dir=tmp_path, log_format="console"), console, role="worker")
    log = structlog.get_logger("tasks.engine")
    log.info("message sent", message_id=7, mailing_id=1, client_id=3)
    log.warning("message will be retried", message_id=8, mailing_id=1, client_id=4)
    log.error("an outcome could not be stored at all", message_id=9)
    log.info("mailing status changed", mailing_id=1, new="RUNNING")
    logging.getLogger("uvicorn.access").info("GET /graphql 200")
    logging.getLogger("huey").warning("a task failed")
    logging.getLogger("tortoise").info("Tortoise-ORM shutdown")

    (path,) = tmp_path.iterdir()
    assert path.name == f"worker-{os.getpid()}.log"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["event"] for line in lines] == [
        "message sent",
        "message will be retried",
        "an outcome could not be stored at all",
        "mailing status changed",
        "GET /graphql 200",
        "a task failed",
    ]
    assert lines[0]["message_id"] == 7
    shown = console.getvalue().splitlines()
    assert len(shown) == 3, shown
    assert "an outcome could not be stored at all" in shown[0]
    assert "mailing status changed" in shown[1]
    assert "a task failed" in shown[2]


def test_without_log_dir_the_console_gets_everything_but_tortoise_news(
    restore_logging: None,
) -> None:
    console = io.StringIO()
    configure_logging(Settings(log_format="json"), console)
    structlog.get_logger("tasks.engine").info("message sent", message_id=7)
    logging.getLogger("tortoise").info("Tortoise-ORM startup")
    logging.getLogger("tortoise").warning("a real problem")
    events = [json.loads(line)["event"] for line in console.getvalue().splitlines()]
    assert events == ["message sent", "a real problem"]


def test_the_file_rolls_over_and_keeps_three(tmp_path: Path) -> None:
    path = tmp_path / "worker-1.log"
    file = _RotatingFile(path, max_bytes=100, keep=3)
    for i in range(12):
        file.write(f"{i:02d}" + "x" * 37 + "\n")  # 40 bytes a line: two lines a file
        file.flush()
    file.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["worker-1.log", "worker-1.log.1", "worker-1.log.2", "worker-1.log.3"]
    assert [line[:2] for line in path.read_text().splitlines()] == ["10", "11"]
    oldest = (tmp_path / "worker-1.log.3").read_text().splitlines()
    assert [line[:2] for line in oldest] == ["04", "05"]
