"""SQL on ``idempotency_key``: claim a key, record its response, let it go."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise import BaseDBAsyncClient

from models.db import execute, fetch

__all__ = ["StoredKey", "claim_key", "complete_key", "read_key", "release_key"]


@dataclass(frozen=True, slots=True)
class StoredKey:
    fingerprint: str
    status_code: int | None  # None while the first request runs
    response: str | None


async def claim_key(
    conn: BaseDBAsyncClient,
    *,
    principal: str,
    key: str,
    fingerprint: str,
    now: datetime,
    expires_at: datetime,
    abandoned_before: datetime,
) -> int | None:
    """Take the key for a request about to run: its row id, or ``None`` if another holds it.

    A key whose time is up, or whose first request was left running since
    before ``abandoned_before`` (its process died), is taken over. One
    statement, so of two requests at once exactly one gets the key.
    """
    await execute(conn, "DELETE FROM idempotency_key WHERE expires_at <= $1", now)
    rows = await fetch(
        conn,
        "INSERT INTO idempotency_key (principal, key, fingerprint, created_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (principal, key) DO UPDATE SET fingerprint = excluded.fingerprint,"
        " created_at = excluded.created_at, expires_at = excluded.expires_at,"
        " status_code = NULL, response = NULL"
        " WHERE idempotency_key.expires_at <= $4"
        " OR (idempotency_key.status_code IS NULL AND idempotency_key.created_at <= $6)"
        " RETURNING id",
        principal,
        key,
        fingerprint,
        now,
        expires_at,
        abandoned_before,
    )
    return int(rows[0]["id"]) if rows else None


async def read_key(conn: BaseDBAsyncClient, principal: str, key: str) -> StoredKey | None:
    rows = await fetch(
        conn,
        "SELECT fingerprint, status_code, response FROM idempotency_key"
        " WHERE principal = $1 AND key = $2",
        principal,
        key,
    )
    if not rows:
        return None
    row = rows[0]
    status = row["status_code"]
    return StoredKey(
        fingerprint=str(row["fingerprint"]),
        status_code=None if status is None else int(status),
        response=None if row["response"] is None else str(row["response"]),
    )


async def complete_key(conn: BaseDBAsyncClient, key_id: int, status_code: int, body: str) -> None:
    """The first request's answer, for every repeat."""
    await execute(
        conn,
        "UPDATE idempotency_key SET status_code = $2, response = $3 WHERE id = $1",
        key_id,
        status_code,
        body,
    )


async def release_key(conn: BaseDBAsyncClient, key_id: int) -> None:
    """The request did not run (refused, or failed unexpectedly): a repeat may run it."""
    await execute(conn, "DELETE FROM idempotency_key WHERE id = $1 AND status_code IS NULL", key_id)
