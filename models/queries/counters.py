"""Keeping ``MailingStats`` in step with message status changes.

Every message status change is PENDING -> final (or, for a client that
matches a mailing again, CANCELLED -> PENDING), made by a statement that
knows how many rows it changed; the same transaction then calls one of these
functions, so the counters never drift and ``stats`` is one primary-key read.
"""

from __future__ import annotations

from tortoise import BaseDBAsyncClient

from models.db import execute, fetch
from models.mailing import COUNTERS, Counts
from models.status import MessageStatus

__all__ = [
    "count_finalised",
    "count_finalised_rows",
    "count_new_pending",
    "count_revived",
    "count_revived_rows",
    "new_pending_sql",
    "pending_messages",
    "summed_counters",
]

_COLUMN = {status: status.value.lower() for status in MessageStatus}


def new_pending_sql(mailing_id: str, n: str) -> str:
    """The statement that counts ``n`` new pending messages (SQL expressions, for one statement)."""
    return (
        f"UPDATE mailing_stats SET total = total + {n}, pending = pending + {n}"
        f" WHERE mailing_id = {mailing_id}"
    )


async def count_new_pending(conn: BaseDBAsyncClient, mailing_id: int, n: int) -> None:
    if n:
        await execute(conn, new_pending_sql("$1", "$2"), mailing_id, n)


async def count_revived(conn: BaseDBAsyncClient, mailing_id: int, n: int) -> None:
    """``n`` cancelled messages of the mailing are pending again (their client matches again)."""
    if n:
        await execute(
            conn,
            "UPDATE mailing_stats SET cancelled = cancelled - $2, pending = pending + $2"
            " WHERE mailing_id = $1",
            mailing_id,
            n,
        )


async def count_revived_rows(conn: BaseDBAsyncClient, rows: list[dict[str, object]]) -> None:
    """Count rows returned by a reviving ``UPDATE ... RETURNING mailing_id``."""
    for mailing_id, n in sorted(_per_mailing(rows).items()):
        await count_revived(conn, mailing_id, n)


def _per_mailing(rows: list[dict[str, object]]) -> dict[int, int]:
    per_mailing: dict[int, int] = {}
    for row in rows:
        mailing_id = int(str(row["mailing_id"]))
        per_mailing[mailing_id] = per_mailing.get(mailing_id, 0) + 1
    return per_mailing


async def count_finalised(
    conn: BaseDBAsyncClient, mailing_id: int, status: MessageStatus, n: int
) -> None:
    """``n`` pending messages of the mailing became ``status``."""
    if status is MessageStatus.PENDING:
        raise ValueError("a finalised message is not pending")
    if n:
        column = _COLUMN[status]
        await execute(
            conn,
            f"UPDATE mailing_stats SET pending = pending - $2, {column} = {column} + $2"
            " WHERE mailing_id = $1",
            mailing_id,
            n,
        )


async def count_finalised_rows(
    conn: BaseDBAsyncClient, rows: list[dict[str, object]], status: MessageStatus
) -> None:
    """Count rows returned by a finalising ``UPDATE ... RETURNING mailing_id``."""
    for mailing_id, n in sorted(_per_mailing(rows).items()):
        await count_finalised(conn, mailing_id, status, n)


async def summed_counters(conn: BaseDBAsyncClient, *, include_deleted: bool) -> Counts:
    """Message counts by counter (``total``, ``pending``, ...) over every mailing."""
    sums = ", ".join(f"COALESCE(SUM(s.{c}), 0) AS {c}" for c in COUNTERS)
    where = "" if include_deleted else " WHERE m.deleted_at IS NULL"
    (row,) = await fetch(
        conn, f"SELECT {sums} FROM mailing_stats s JOIN mailing m ON m.id = s.mailing_id{where}"
    )
    return Counts.from_row(row)


async def pending_messages(conn: BaseDBAsyncClient, mailing_id: int) -> int:
    """The mailing's pending counter (0 for a mailing without counters)."""
    rows = await fetch(conn, "SELECT pending FROM mailing_stats WHERE mailing_id = $1", mailing_id)
    return int(rows[0]["pending"]) if rows else 0
