"""A mailing's audience, built in committed chunks so that sending starts at once at any size.

A build begins (:func:`begin_audience`) when a mailing starts, and again when
a started mailing's filter changes: it records on the mailing row the filter
version it builds (``audience_version``), the last client id that exists now
(``audience_until``: clients created later are not in the audience, which is
the clients matching when the mailing starts) and a cursor before the first
client (``audience_cursor``). Each chunk (:func:`build_audience_chunk`) then
adds, in its own transaction, the messages of the clients after the cursor
up to a bound, and moves the cursor there; the last one sets it to null. On
PostgreSQL a chunk is one statement: a worker busy sending gets round to
its next statement late, and a chunk of several would hold its locks
(the mailing's row, its counters) all that while.

So a build interrupted anywhere resumes from the last committed chunk, in
any worker, and never adds a message twice (the unique (mailing, client)
pair makes a repeated chunk a no-op, and the counters count rows actually
added). A chunk holds its mailing's row, which serialises builders and
makes a pause, cancel or edit wait for the chunk in progress, then be seen
by the next one. Only a cancelled or deleted mailing stops its build; a
paused one goes on building (it is not sending), and one past its end too,
so that its whole audience is counted and expired. The sweep
(``tasks.sweep``) never finishes a mailing whose build is in progress.
"""

from __future__ import annotations

import time
from datetime import datetime

import structlog
from tortoise import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models import ClientFilter, Mailing
from models.db import connection, execute, fetch, is_postgres
from models.queries.messages import (
    add_audience,
    add_audience_chunk,
    cancel_unmatched,
    revive_rematched,
)
from models.reporting import parse_instant

__all__ = ["begin_audience", "build_audience_chunk", "building_mailing_ids"]

log = structlog.get_logger(__name__)


async def begin_audience(conn: BaseDBAsyncClient, mailing: Mailing, now: datetime) -> None:
    """Begin building the audience of the mailing's filter as it is now.

    For a mailing that had one (re-targeting), the waiting messages of clients
    that no longer match are cancelled and cancelled ones that match again are
    revived first; the build then adds the clients that never had one.
    """
    client_filter = ClientFilter(tuple(mailing.filter_operator_codes), tuple(mailing.filter_tags))
    dropped = revived = 0
    if mailing.audience_version is not None:
        dropped = await cancel_unmatched(conn, mailing.id, client_filter)
        revived = await revive_rematched(conn, mailing.id, client_filter, now)
    (bounds,) = await fetch(conn, "SELECT MIN(id) AS first, MAX(id) AS last FROM client")
    until = None if bounds["last"] is None else int(bounds["last"])
    cursor = None if until is None else int(bounds["first"]) - 1
    await execute(
        conn,
        "UPDATE mailing SET audience_version = $2, audience_cursor = $3, audience_until = $4"
        " WHERE id = $1 AND (audience_version IS NULL OR audience_version < $2)",
        mailing.id,
        mailing.filter_version,
        cursor,
        until,
    )
    mailing.audience_version = mailing.filter_version
    mailing.audience_cursor, mailing.audience_until = cursor, until
    log.info(
        "mailing audience build begun",
        mailing_id=mailing.id,
        filter_version=mailing.filter_version,
        up_to_client_id=until,
        cancelled=dropped,
        revived=revived,
    )


async def build_audience_chunk(mailing_id: int, now: datetime, size: int) -> tuple[bool, float]:
    """Add the audience of the next ``size`` client ids.

    Returns whether more of the build remains, and the seconds the chunk
    took the database (on SQLite, as seen from here).
    """
    if is_postgres(connection()):
        chunk = await add_audience_chunk(connection(), mailing_id, size, now)
        if chunk is None:
            await _stop_building(connection(), mailing_id)
            return False, 0.0
        added, more, seconds = chunk
    else:
        started = time.perf_counter()
        async with in_transaction() as conn:
            step = await _chunk_in_steps(conn, mailing_id, now, size)
        if step is None:
            return False, 0.0
        (added, more), seconds = step, time.perf_counter() - started
    log.debug("audience chunk added", mailing_id=mailing_id, added=added, seconds=seconds)
    if not more:
        log.info("mailing audience built", mailing_id=mailing_id)
    return more, seconds


async def _stop_building(conn: BaseDBAsyncClient, mailing_id: int) -> None:
    """A cancelled or deleted mailing builds no further."""
    await execute(
        conn,
        "UPDATE mailing SET audience_cursor = NULL WHERE id = $1 AND audience_cursor IS NOT NULL"
        " AND (deleted_at IS NOT NULL OR status IN ('CANCELLED', 'FINISHED'))",
        mailing_id,
    )


async def _chunk_in_steps(
    conn: BaseDBAsyncClient, mailing_id: int, now: datetime, size: int
) -> tuple[int, bool] | None:
    """SQLite (one writer at a time): :func:`add_audience_chunk` as several statements."""
    rows = await fetch(
        conn,
        "SELECT status, deleted_at, start_at, filter_operator_codes, filter_tags,"
        " filter_version, audience_version, audience_cursor, audience_until"
        " FROM mailing WHERE id = $1",
        mailing_id,
    )
    if not rows or rows[0]["audience_cursor"] is None:
        return None
    row = rows[0]
    if row["audience_version"] != row["filter_version"]:
        return None  # re-targeted: the next tend begins the build anew
    if row["deleted_at"] is not None or row["status"] in ("CANCELLED", "FINISHED"):
        await _stop_building(conn, mailing_id)
        return None
    after, until = int(row["audience_cursor"]), int(row["audience_until"])
    upto = min(until, after + size)
    added = await add_audience(
        conn,
        mailing_id,
        ClientFilter.from_json(row["filter_operator_codes"], row["filter_tags"]),
        parse_instant(row["start_at"]),
        now,
        clients=(after, upto),
    )
    done = upto >= until
    await execute(
        conn,
        "UPDATE mailing SET audience_cursor = $2 WHERE id = $1",
        mailing_id,
        None if done else upto,
    )
    return added, not done


async def building_mailing_ids() -> list[int]:
    """Mailings whose audience build is in progress and may go on."""
    rows = await fetch(
        connection(),
        "SELECT id FROM mailing WHERE audience_cursor IS NOT NULL"
        " AND audience_version = filter_version AND deleted_at IS NULL"
        " AND status IN ('SCHEDULED', 'RUNNING', 'PAUSED') ORDER BY id",
    )
    return [int(r["id"]) for r in rows]
