"""Helpers for the API tests: result selections, messages made with SQL, the wake-up queue."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from graphql_api.ids import decode
from models import ClientFilter, Mailing, MessageStatus
from models.db import connection, execute, fetch
from models.queries import messages
from models.queries.counters import count_finalised

CLIENT = "id phone operatorCode tag timezone createdAt updatedAt"
ERRORS = """
    ... on ValidationError { message errors { field message } }
    ... on NotFoundError { message id }
"""
CLIENT_RESULT = f"__typename ... on Client {{ {CLIENT} }} {ERRORS}"
STATS = "total pending sent failed expired cancelled"
MAILING = f"""
    id text startAt endAt status filter {{ operatorCodes tags }} sendWindow {{ start end }}
    stats {{ {STATS} }} createdAt updatedAt
"""
MAILING_RESULT = f"""
    __typename ... on Mailing {{ {MAILING} }} {ERRORS}
    ... on ConflictError {{ message }}
"""


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def key(id_: str) -> int:
    """The integer key behind an id the API gave (``graphql_api.ids``: opaque, per type)."""
    found = decode(id_)
    assert found is not None, f"not an id of this API: {id_!r}"
    return found[1]


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def problems(result: dict[str, Any]) -> dict[str, str]:
    """The field errors of a ValidationError result, by field."""
    assert result["__typename"] == "ValidationError", result
    return {error["field"]: error["message"] for error in result["errors"]}


async def add_audience(mailing: Mailing, due_at: datetime | None = None) -> int:
    """Pending messages for every matching client, counters included (as the engine does)."""
    client_filter = ClientFilter(tuple(mailing.filter_operator_codes), tuple(mailing.filter_tags))
    return await messages.add_audience(
        connection(), mailing.id, client_filter, due_at or utcnow(), utcnow()
    )


async def finalise(
    mailing_id: int, status: MessageStatus, count: int, at: datetime | None = None
) -> list[int]:
    """Move ``count`` pending messages of the mailing to ``status`` at ``at``, counters included."""
    conn = connection()
    at = at or utcnow()
    rows = await fetch(
        conn,
        "SELECT id FROM message WHERE mailing_id = $1 AND status = 'PENDING' ORDER BY id LIMIT $2",
        mailing_id,
        count,
    )
    ids = [int(row["id"]) for row in rows]
    changed = 0
    for message_id in ids:
        changed += await execute(
            conn,
            "UPDATE message SET status = $2, sent_at = $3, finished_at = $4, attempts = 1"
            " WHERE id = $1 AND status = 'PENDING'",
            message_id,
            status.value,
            at if status is MessageStatus.SENT else None,
            at,
        )
    await count_finalised(conn, mailing_id, status, changed)
    return ids


def queued_wakeups() -> list[tuple[str, tuple[Any, ...]]]:
    """The engine wake-ups waiting in the queue (no worker runs in the API tests)."""
    import tasks.jobs  # registers the task classes, so the queue can read them
    from tasks.queue import huey

    tasks = [*huey.pending(), *huey.scheduled()]
    return sorted((task.name, tuple(task.args)) for task in tasks)


def flush_wakeups() -> None:
    from tasks.queue import huey

    huey.flush()


class Subscription:
    """A graphql-transport-ws client over a real WebSocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    async def connect(cls, http_url: str, params: dict[str, Any] | None = None) -> Subscription:
        from websockets.asyncio.client import connect

        ws = await connect(
            http_url.replace("http://", "ws://") + "/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        )
        await ws.send(json.dumps({"type": "connection_init", "payload": params or {}}))
        return cls(ws)

    async def receive(self) -> dict[str, Any]:
        async with asyncio.timeout(10):
            message: dict[str, Any] = json.loads(await self.ws.recv())
        return message

    async def subscribe(self, query: str, variables: dict[str, Any], id_: str = "1") -> None:
        payload = {"query": query, "variables": variables}
        await self.ws.send(json.dumps({"id": id_, "type": "subscribe", "payload": payload}))

    async def close(self) -> None:
        await self.ws.close()
