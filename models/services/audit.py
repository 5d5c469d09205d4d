"""The audit trail: each change a mutation makes, recorded in the transaction that makes it.

The API says who is acting (:func:`acting_as`, around each mutation it
executes); a service that changes something calls :func:`record` inside its
transaction, with the object's fields before and after, so the change and its
record commit or roll back together: a refused or failed mutation leaves
none. Work nobody asked for through the API (the engine's sweep, the CLI)
acts as no one and records nothing. Rows are only ever inserted.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise import BaseDBAsyncClient

from models import clock
from models.audit import AuditEntry
from models.client import Client
from models.mailing import Mailing

__all__ = [
    "Actor",
    "Fields",
    "acting_as",
    "client_fields",
    "mailing_fields",
    "record",
]

Fields = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: ``id`` stable (``api_token``, ``oidc:<subject>``), ``name`` for people."""

    id: str
    name: str = ""


_actor: ContextVar[Actor | None] = ContextVar("audit_actor", default=None)


@contextlib.contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    """Changes made inside the block are recorded as ``actor``'s."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def client_fields(row: Client) -> dict[str, Any]:
    return {
        "phone": row.phone,
        "operatorCode": row.operator_code,
        "tag": row.tag,
        "timezone": row.timezone,
        "optedOutAt": row.opted_out_at,
    }


def mailing_fields(row: Mailing) -> dict[str, Any]:
    return {
        "text": row.text,
        "startAt": row.start_at,
        "endAt": row.end_at,
        "operatorCodes": list(row.filter_operator_codes),
        "tags": list(row.filter_tags),
        "windowStart": row.window_start,
        "windowEnd": row.window_end,
        "status": row.status,
        "deletedAt": row.deleted_at,
    }


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    return value


def _changes(before: Fields | None, after: Fields | None) -> dict[str, list[Any]]:
    names = list(dict.fromkeys([*(before or {}), *(after or {})]))
    changes: dict[str, list[Any]] = {}
    for name in names:
        old = None if before is None else _json(before.get(name))
        new = None if after is None else _json(after.get(name))
        if old != new:
            changes[name] = [old, new]
    return changes


async def record(
    conn: BaseDBAsyncClient,
    operation: str,
    object_type: str,
    object_id: int | str,
    before: Fields | None,
    after: Fields | None,
) -> None:
    """Record a change by whoever acts now; nothing when nobody does, or nothing changed.

    ``before`` is None for a creation, ``after`` for a deletion; the row keeps
    the fields that differ, as ``{field: [before, after]}``.
    """
    actor = _actor.get()
    if actor is None:
        return
    changes = _changes(before, after)
    if not changes:
        return
    await AuditEntry.create(
        using_db=conn,
        at=clock.now(),
        actor=actor.id,
        actor_name=actor.name,
        operation=operation,
        object_type=object_type,
        object_id=str(object_id),
        changes=changes,
    )
