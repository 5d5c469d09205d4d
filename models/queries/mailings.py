"""SQL on ``mailing`` (with its ``mailing_stats`` row) beyond what the ORM says plainly."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tortoise import BaseDBAsyncClient

from models.db import connection, execute, fetch

__all__ = [
    "due_mailing_ids",
    "live_mailing_exists",
    "mailing_batch",
    "mailings_by_status",
    "mark_audience_built",
    "running_mailings",
]


async def due_mailing_ids(now: datetime) -> list[int]:
    """Mailings the sweep must look at: started or due, or final with pending messages."""
    rows = await fetch(
        connection(),
        "SELECT m.id FROM mailing m JOIN mailing_stats s ON s.mailing_id = m.id"
        " WHERE (m.status IN ('SCHEDULED', 'RUNNING', 'PAUSED') AND m.start_at <= $1)"
        " OR s.pending > 0 ORDER BY m.id",
        now,
    )
    return [int(r["id"]) for r in rows]


async def mark_audience_built(conn: BaseDBAsyncClient, mailing_id: int, version: int) -> None:
    """Record that the audience follows filter ``version`` (never going back)."""
    await execute(
        conn,
        "UPDATE mailing SET audience_version = $2"
        " WHERE id = $1 AND (audience_version IS NULL OR audience_version < $2)",
        mailing_id,
        version,
    )


async def running_mailings() -> list[dict[str, Any]]:
    """What the engine needs of every running mailing to claim and send its messages."""
    return await fetch(
        connection(),
        "SELECT id, revision, text, end_at, window_start, window_end,"
        " filter_operator_codes, filter_tags FROM mailing"
        " WHERE status = 'RUNNING' AND deleted_at IS NULL ORDER BY id",
    )


async def mailings_by_status(conn: BaseDBAsyncClient) -> list[dict[str, Any]]:
    """``status``, ``n``: mailings (deleted ones aside) by status."""
    return await fetch(
        conn,
        "SELECT status, COUNT(*) AS n FROM mailing WHERE deleted_at IS NULL GROUP BY status",
    )


async def live_mailing_exists(mailing_id: int) -> bool:
    found = await fetch(
        connection(), "SELECT id FROM mailing WHERE id = $1 AND deleted_at IS NULL", mailing_id
    )
    return bool(found)


_MAILING_BATCH = (
    "SELECT m.id, m.status, m.start_at, m.end_at, m.text, s.total, s.pending, s.sent,"
    " s.failed, s.expired, s.cancelled"
    " FROM mailing m JOIN mailing_stats s ON s.mailing_id = m.id"
    " WHERE m.deleted_at IS NULL AND m.id > $1 {status} ORDER BY m.id LIMIT $2"
)


async def mailing_batch(after: int, limit: int, status: str | None) -> Sequence[dict[str, Any]]:
    """Live mailings with their counters after id ``after``, in id order (a keyset batch)."""
    sql = _MAILING_BATCH.format(status="" if status is None else "AND m.status = $3")
    extra = () if status is None else (status,)
    return await fetch(connection(), sql, after, limit, *extra)
