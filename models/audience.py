"""Who a mailing reaches: filter matching, in Python and as SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise import BaseDBAsyncClient

from models.counters import count_finalised, count_new_pending
from models.db import execute, insert_counting
from models.status import MessageStatus

__all__ = ["ClientFilter", "add_matching_clients", "cancel_unmatched_pending"]


@dataclass(frozen=True, slots=True)
class ClientFilter:
    """A client matches when (no codes or its code is listed) AND (no tags or its tag is listed)."""

    operator_codes: tuple[str, ...] = field(default=())
    tags: tuple[str, ...] = field(default=())

    def matches(self, operator_code: str, tag: str) -> bool:
        return (not self.operator_codes or operator_code in self.operator_codes) and (
            not self.tags or tag in self.tags
        )

    def where(self, first_param: int, alias: str = "c") -> tuple[str, list[Any]]:
        """A SQL condition on ``client AS alias`` with parameters from ``$first_param``."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, values in (
            ("operator_code", self.operator_codes),
            ("tag", self.tags),
        ):
            if values:
                start = first_param + len(params)
                marks = ", ".join(f"${start + i}" for i in range(len(values)))
                clauses.append(f"{alias}.{column} IN ({marks})")
                params.extend(values)
        return (" AND ".join(clauses) or "1 = 1"), params


async def add_matching_clients(
    conn: BaseDBAsyncClient,
    mailing_id: int,
    client_filter: ClientFilter,
    due_at: datetime,
) -> int:
    """Create a pending message for every matching client that has none yet.

    One ``INSERT ... SELECT`` run by the database: idempotent, thanks to the
    unique (mailing, client) pair, and no client row ever travels to Python.
    """
    where, params = client_filter.where(3)
    added = await insert_counting(
        conn,
        "INSERT INTO message (mailing_id, client_id, phone, timezone, status, attempts,"
        " next_attempt_at, created_at)"
        f" SELECT $1, c.id, c.phone, c.timezone, 'PENDING', 0, $2, $2 FROM client c WHERE {where}"
        " ON CONFLICT (mailing_id, client_id) DO NOTHING",
        mailing_id,
        due_at,
        *params,
    )
    await count_new_pending(conn, mailing_id, added)
    return added


async def cancel_unmatched_pending(
    conn: BaseDBAsyncClient, mailing_id: int, client_filter: ClientFilter, now: datetime
) -> int:
    """Cancel the pending messages of clients that no longer match (or are gone).

    Messages a worker holds right now (leased past ``now``) are left to it.
    """
    where, params = client_filter.where(3)
    changed = await execute(
        conn,
        "UPDATE message SET status = 'CANCELLED', last_error = 'client no longer matches'"
        " WHERE mailing_id = $1 AND status = 'PENDING' AND next_attempt_at <= $2 AND NOT EXISTS ("
        f" SELECT 1 FROM client c WHERE c.id = message.client_id AND {where})",
        mailing_id,
        now,
        *params,
    )
    await count_finalised(conn, mailing_id, MessageStatus.CANCELLED, changed)
    return changed
