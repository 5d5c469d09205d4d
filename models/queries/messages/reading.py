"""Reads of messages that leave the process: export batches and the daily report's figures."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from models.db import connection, fetch

__all__ = ["message_batch", "reasons_by_mailing", "reasons_of_day", "sent_that_day"]

# Reasons listed per mailing, and for the whole day.
MAILING_REASONS = 3
DAY_REASONS = 5
# Ids per IN (...) list: well under every backend's parameter limit.
_CHUNK = 500


async def message_batch(mailing_id: int, after: int, limit: int) -> list[dict[str, Any]]:
    """The mailing's messages after id ``after``, in id order (a keyset batch for exports)."""
    return await fetch(
        connection(),
        "SELECT id, phone, status, attempts, last_error, created_at, sent_at FROM message"
        " WHERE mailing_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        mailing_id,
        after,
        limit,
    )


def _chunks(ids: Sequence[int], first: int) -> Iterator[tuple[str, list[int]]]:
    """``ids`` in parts, each with its placeholders numbered from ``$first``."""
    for at in range(0, len(ids), _CHUNK):
        part = list(ids[at : at + _CHUNK])
        yield ", ".join(f"${i}" for i in range(first, first + len(part))), part


async def sent_that_day(ids: Sequence[int], start: datetime, end: datetime) -> dict[int, int]:
    counts: dict[int, int] = {}
    for marks, part in _chunks(ids, 3):
        rows = await fetch(
            connection(),
            "SELECT mailing_id, COUNT(*) AS n FROM message WHERE status = 'SENT'"
            f" AND sent_at >= $1 AND sent_at < $2 AND mailing_id IN ({marks})"
            " GROUP BY mailing_id",
            start,
            end,
            *part,
        )
        counts.update({int(row["mailing_id"]): int(row["n"]) for row in rows})
    return counts


async def reasons_by_mailing(ids: Sequence[int]) -> dict[int, list[tuple[str, int]]]:
    reasons: dict[int, list[tuple[str, int]]] = {}
    for marks, part in _chunks(ids, 2):
        rows = await fetch(
            connection(),
            "SELECT mailing_id, reason, n FROM ("
            " SELECT mailing_id, COALESCE(last_error, '') AS reason, COUNT(*) AS n,"
            " ROW_NUMBER() OVER (PARTITION BY mailing_id"
            " ORDER BY COUNT(*) DESC, COALESCE(last_error, '')) AS place"
            " FROM message WHERE status = 'FAILED'"
            f" AND mailing_id IN ({marks}) GROUP BY mailing_id, COALESCE(last_error, '')"
            ") ranked WHERE place <= $1 ORDER BY mailing_id, place",
            MAILING_REASONS,
            *part,
        )
        for row in rows:
            reasons.setdefault(int(row["mailing_id"]), []).append(
                (str(row["reason"]), int(row["n"]))
            )
    return reasons


async def reasons_of_day(ids: Sequence[int]) -> list[tuple[str, int]]:
    totals: dict[str, int] = {}
    for marks, part in _chunks(ids, 1):
        rows = await fetch(
            connection(),
            "SELECT COALESCE(last_error, '') AS reason, COUNT(*) AS n FROM message"
            f" WHERE status = 'FAILED' AND mailing_id IN ({marks})"
            " GROUP BY COALESCE(last_error, '')",
            *part,
        )
        for row in rows:
            totals[str(row["reason"])] = totals.get(str(row["reason"]), 0) + int(row["n"])
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:DAY_REASONS]
