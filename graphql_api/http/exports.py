"""CSV downloads: a mailing's messages, and the statistics of every mailing.

Served under ``/exports`` behind the same token check as ``/graphql`` (see
``app.py``), and linked from the schema (``Mailing.messagesCsvUrl``,
``Statistics.csvUrl``). The messages are streamed in keyset batches
(``WHERE id > $last ORDER BY id LIMIT n``): a million rows cost one batch of
memory, the database never holds a cursor open between batches, and every
batch is an index range read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import structlog
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from graphql_api.http.over_http import refusal
from graphql_api.ids import Kind, key_of
from models import MailingStatus
from models.db import stored_instant
from models.mailing import COUNTERS
from models.queries.mailings import live_mailing_exists, mailing_batch
from models.queries.messages import message_batch
from models.reporting import csv_lines, delivery_rate, format_rate, spreadsheet_safe

__all__ = ["MOUNT_NAME", "export_routes", "messages_csv_url", "statistics_csv_url"]

log = structlog.get_logger(__name__)

MOUNT_NAME = "exports"
_MESSAGES = "mailing_messages"
_STATISTICS = "statistics"
BATCH_SIZE = 5000

MESSAGE_FIELDS = (
    "id",
    "phone",
    "status",
    "attempts",
    "last_error",
    "created_at",
    "sent_at",
    "failed_at",
    "finished_at",
)
STATISTICS_FIELDS = (
    "mailing_id",
    "status",
    "start_at",
    "end_at",
    *COUNTERS,
    "delivery_rate",
    "text",
)


def messages_csv_url(request: HTTPConnection, mailing_id: int) -> str:
    """Where a client downloads a mailing's messages, as seen from this request."""
    return str(request.url_for(f"{MOUNT_NAME}:{_MESSAGES}", mailing_id=mailing_id))


def statistics_csv_url(request: HTTPConnection) -> str:
    return str(request.url_for(f"{MOUNT_NAME}:{_STATISTICS}"))


def _instant(value: object) -> str:
    return "" if value is None else stored_instant(value).isoformat()


def _message_line(row: dict[str, Any]) -> tuple[object, ...]:
    error = row["last_error"]
    return (
        row["id"],
        row["phone"],
        row["status"],
        row["attempts"],
        "" if error is None else spreadsheet_safe(str(error)),
        _instant(row["created_at"]),
        _instant(row["sent_at"]),
        _instant(row["finished_at"] if row["status"] == "FAILED" else None),
        _instant(row["finished_at"]),
    )


def _mailing_line(row: dict[str, Any]) -> tuple[object, ...]:
    rate = delivery_rate(int(row["sent"]), int(row["failed"]), int(row["expired"]))
    return (
        row["id"],
        row["status"],
        _instant(row["start_at"]),
        _instant(row["end_at"]),
        *(int(row[name]) for name in COUNTERS),
        format_rate(rate),
        spreadsheet_safe(str(row["text"])),
    )


async def _message_batches(mailing_id: int) -> AsyncIterator[bytes]:
    yield csv_lines([MESSAGE_FIELDS])
    after, rows_sent = 0, 0
    while True:
        rows = await message_batch(mailing_id, after, BATCH_SIZE)
        if rows:
            yield csv_lines(_message_line(row) for row in rows)
            after = int(rows[-1]["id"])
            rows_sent += len(rows)
        if len(rows) < BATCH_SIZE:
            log.info("messages exported", mailing_id=mailing_id, rows=rows_sent)
            return


async def _mailing_batches(status: MailingStatus | None) -> AsyncIterator[bytes]:
    yield csv_lines([STATISTICS_FIELDS])
    after = 0
    while True:
        rows = await mailing_batch(after, BATCH_SIZE, None if status is None else status.value)
        if rows:
            yield csv_lines(_mailing_line(row) for row in rows)
            after = int(rows[-1]["id"])
        if len(rows) < BATCH_SIZE:
            return


def _csv_response(body: AsyncIterator[bytes], filename: str) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


def _error(status_code: int, message: str) -> Response:
    return refusal(status_code, message)


async def _messages(request: Request) -> Response:
    given: str = request.path_params["mailing_id"]
    # As for GraphQL ids: anything but a mailing's id or key that can exist
    # (beyond int64, negative, not a number, another type's) names no mailing.
    mailing_id = key_of(given, Kind.MAILING)
    if mailing_id is None or not await live_mailing_exists(mailing_id):
        return _error(404, f"mailing {given} not found")
    return _csv_response(_message_batches(mailing_id), f"mailing-{mailing_id}-messages.csv")


async def _statistics(request: Request) -> Response:
    value = request.query_params.get("status")
    try:
        status = None if value is None else MailingStatus(value)
    except ValueError:
        return _error(400, f"unknown status {value!r}: one of {', '.join(MailingStatus)}")
    return _csv_response(_mailing_batches(status), "mailings-statistics.csv")


def export_routes() -> list[BaseRoute]:
    """The routes to mount at ``/exports`` (named ``exports``), behind the API's auth."""
    return [
        Route("/mailings/{mailing_id}/messages.csv", _messages, name=_MESSAGES),
        Route("/statistics.csv", _statistics, name=_STATISTICS),
    ]
