"""SQL on ``mailing`` (with its ``mailing_stats`` row) beyond what the ORM says plainly."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tortoise import BaseDBAsyncClient

from models.db import connection, execute, fetch

__all__ = [
    "audience_build",
    "begin_audience_build",
    "building_mailing_ids",
    "due_mailing_ids",
    "live_mailing_exists",
    "mailing_batch",
    "mailings_by_status",
    "mailings_to_watch",
    "move_audience_cursor",
    "running_mailings",
    "stop_audience_build",
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


async def begin_audience_build(
    conn: BaseDBAsyncClient, mailing_id: int, version: int
) -> tuple[int | None, int | None]:
    """Record a build of filter ``version``'s audience over the clients that exist now.

    Its cursor is before the first client and its end the last one; both
    ``None`` (built at once) when there is no client. Returns them.
    """
    (bounds,) = await fetch(conn, "SELECT MIN(id) AS first, MAX(id) AS last FROM client")
    until = None if bounds["last"] is None else int(bounds["last"])
    cursor = None if until is None else int(bounds["first"]) - 1
    await execute(
        conn,
        "UPDATE mailing SET audience_version = $2, audience_cursor = $3, audience_until = $4"
        " WHERE id = $1 AND (audience_version IS NULL OR audience_version < $2)",
        mailing_id,
        version,
        cursor,
        until,
    )
    return cursor, until


async def audience_build(conn: BaseDBAsyncClient, mailing_id: int) -> dict[str, Any] | None:
    """What a chunk of the mailing's audience build needs to know (SQLite's steps)."""
    rows = await fetch(
        conn,
        "SELECT status, deleted_at, start_at, filter_operator_codes, filter_tags,"
        " filter_version, audience_version, audience_cursor, audience_until"
        " FROM mailing WHERE id = $1",
        mailing_id,
    )
    return rows[0] if rows else None


async def move_audience_cursor(
    conn: BaseDBAsyncClient, mailing_id: int, cursor: int | None
) -> None:
    """The build covered the clients up to ``cursor`` (``None``: all of them)."""
    await execute(conn, "UPDATE mailing SET audience_cursor = $2 WHERE id = $1", mailing_id, cursor)


async def stop_audience_build(conn: BaseDBAsyncClient, mailing_id: int) -> None:
    """A cancelled or deleted mailing builds no further."""
    await execute(
        conn,
        "UPDATE mailing SET audience_cursor = NULL WHERE id = $1 AND audience_cursor IS NOT NULL"
        " AND (deleted_at IS NOT NULL OR status IN ('CANCELLED', 'FINISHED'))",
        mailing_id,
    )


async def building_mailing_ids() -> list[int]:
    """Mailings whose audience build is in progress and may go on."""
    rows = await fetch(
        connection(),
        "SELECT id FROM mailing WHERE audience_cursor IS NOT NULL"
        " AND audience_version = filter_version AND deleted_at IS NULL"
        " AND status IN ('SCHEDULED', 'RUNNING', 'PAUSED') ORDER BY id",
    )
    return [int(r["id"]) for r in rows]


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


async def mailings_to_watch(watched: Sequence[int], newer_than: int) -> list[dict[str, Any]]:
    """For ``mailings watch``: each mailing not over, those watched, and those above an id.

    With its counters, and whether its audience is still being built (in
    chunks: ``total`` grows meanwhile); deleted ones are left out (a watched
    one missing was deleted).
    """
    ids = ", ".join(str(int(i)) for i in watched) or "NULL"
    return await fetch(
        connection(),
        "SELECT m.id, m.status, m.audience_cursor IS NOT NULL AS building,"
        " s.total, s.pending, s.sent, s.failed, s.expired, s.cancelled"
        " FROM mailing m JOIN mailing_stats s ON s.mailing_id = m.id"
        " WHERE m.deleted_at IS NULL AND (m.status IN ('SCHEDULED', 'RUNNING', 'PAUSED')"
        f" OR m.id IN ({ids}) OR m.id > $1) ORDER BY m.id",
        newer_than,
    )
