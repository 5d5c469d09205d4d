"""Pause, resume, cancel and delete a mailing, without overwriting the engine.

The engine moves mailings to RUNNING and FINISHED on its own. Every status
change here is a compare-and-set (``UPDATE ... WHERE status = <what we read>``)
inside a transaction that also locks the row on PostgreSQL, so a change the
engine made meanwhile is seen and decided on again, never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import strawberry
import structlog
from tortoise import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.transactions import in_transaction

import models
from graphql_api import engine
from graphql_api.arguments import MailingId
from graphql_api.decorators import described_mutation
from graphql_api.results import (
    ConflictError,
    Deleted,
    DeleteResult,
    MailingResult,
    NotFoundError,
    ValidationError,
)
from graphql_api.scalars import find_id, parse_id
from graphql_api.types import Mailing
from models import MailingStatus, MessageStatus, clock
from models.queries.messages import finalise_waiting

__all__ = [
    "ATTEMPTS",
    "MailingLifecycleMutation",
    "cancel_mailing",
    "compare_and_set",
    "delete_mailing",
    "live_mailing",
    "pause_mailing",
    "resume_mailing",
]

# Each retry means the engine changed the status between our read and write;
# that happens at most once or twice in practice.
ATTEMPTS = 5

log = structlog.get_logger(__name__)

Decide = Callable[[models.Mailing, datetime], MailingStatus | None]


async def live_mailing(conn: BaseDBAsyncClient, mailing_id: int) -> models.Mailing:
    """The mailing, locked for this transaction; a deleted one does not exist."""
    row = (
        await models.Mailing.filter(id=mailing_id, deleted_at__isnull=True)
        .using_db(conn)
        .select_for_update()
        .first()
    )
    if row is None:
        raise models.NotFound("mailing", mailing_id)
    return row


async def compare_and_set(
    conn: BaseDBAsyncClient, row: models.Mailing, updates: dict[str, Any]
) -> bool:
    """Apply ``updates`` if the mailing still has the status ``row`` was read with."""
    target = updates.get("status", row.status)
    if target != row.status and not models.can_transition(row.status, target):
        raise AssertionError(f"no transition from {row.status} to {target}")
    changed = (
        await models.Mailing.filter(id=row.id, status=row.status, deleted_at__isnull=True)
        .using_db(conn)
        .update(**updates, revision=F("revision") + 1)
    )
    return bool(changed)


async def _transition(
    mailing_id: int, decide: Decide, *, delete: bool = False
) -> tuple[models.Mailing, bool]:
    """Move the mailing to the status ``decide`` picks (``None``: stay), and say if it changed."""
    for _ in range(ATTEMPTS):
        now = clock.now()
        async with in_transaction() as conn:
            row = await live_mailing(conn, mailing_id)
            target = decide(row, now)
            if target is None and not delete:
                return row, False
            updates: dict[str, Any] = {"updated_at": now}
            if target is not None:
                updates["status"] = target
            if delete:
                updates["deleted_at"] = now
            if await compare_and_set(conn, row, updates):
                row.update_from_dict(updates)
                cancelled = 0
                if target is MailingStatus.CANCELLED or delete:
                    # At once, in this transaction: the answer carries the
                    # counts; only requests in flight keep their outcome.
                    cancelled = await finalise_waiting(
                        conn, row.id, MessageStatus.CANCELLED, "mailing cancelled"
                    )
                log.info(
                    "mailing deleted" if delete else "mailing status changed",
                    mailing_id=mailing_id,
                    status=row.status.value,
                    cancelled_messages=cancelled,
                )
                return row, True
    raise models.Conflict(f"mailing {mailing_id} kept changing; try again")


def _pause(row: models.Mailing, now: datetime) -> MailingStatus | None:
    if row.status.is_terminal:
        raise models.Conflict(f"mailing {row.id} is {row.status.value} and cannot be paused")
    return None if row.status is MailingStatus.PAUSED else MailingStatus.PAUSED


def _resume(row: models.Mailing, now: datetime) -> MailingStatus | None:
    if row.status.is_terminal:
        raise models.Conflict(f"mailing {row.id} is {row.status.value} and cannot be resumed")
    if row.status is not MailingStatus.PAUSED:
        return None
    # Back to RUNNING only if it had started; otherwise it waits for its start.
    started = row.audience_version is not None and row.start_at <= now
    return MailingStatus.RUNNING if started else MailingStatus.SCHEDULED


def _cancel(row: models.Mailing, now: datetime) -> MailingStatus | None:
    if row.status is MailingStatus.FINISHED:
        raise models.Conflict(f"mailing {row.id} is FINISHED and cannot be cancelled")
    return None if row.status is MailingStatus.CANCELLED else MailingStatus.CANCELLED


def _delete(row: models.Mailing, now: datetime) -> MailingStatus | None:
    return None if row.status.is_terminal else MailingStatus.CANCELLED


async def pause_mailing(mailing_id: int) -> models.Mailing:
    row, changed = await _transition(mailing_id, _pause)
    if changed:
        await engine.mailing_stopped(row.id)
    return row


async def resume_mailing(mailing_id: int) -> models.Mailing:
    row, changed = await _transition(mailing_id, _resume)
    if changed:
        await engine.mailing_scheduled(row.id, row.start_at)
    return row


async def cancel_mailing(mailing_id: int) -> models.Mailing:
    row, changed = await _transition(mailing_id, _cancel)
    if changed:
        await engine.mailing_stopped(row.id)
    return row


async def delete_mailing(mailing_id: int) -> None:
    """Hide the mailing for good, cancelling it if it was not over; its rows stay."""
    row, _ = await _transition(mailing_id, _delete, delete=True)
    await engine.mailing_stopped(row.id)


async def _answer(id_: str, change: Callable[[int], Any]) -> MailingResult:
    try:
        return Mailing.from_row(await change(parse_id(id_)))
    except models.InvalidInput as error:
        return ValidationError.from_error(error)
    except models.NotFound:
        return NotFoundError(message=f"mailing {id_} not found", id=strawberry.ID(id_))
    except models.Conflict as error:
        return ConflictError.from_error(error)


@strawberry.type
class MailingLifecycleMutation:
    @described_mutation(
        "Delete a mailing: what is pending is cancelled (as by `cancelMailing`) and the "
        "mailing disappears from every query, list and statistic; its rows are kept. Answers "
        "`Deleted` or a `NotFoundError`."
    )
    async def delete_mailing(self, id: MailingId) -> DeleteResult:
        mailing_id = find_id(id)
        try:
            if mailing_id is None:
                raise models.NotFound("mailing", id)
            await delete_mailing(mailing_id)
        except models.NotFound:
            return NotFoundError(message=f"mailing {id} not found", id=id)
        return Deleted(id=strawberry.ID(str(mailing_id)))

    @described_mutation(
        "Hold a mailing: no new request to the provider starts after about a second; requests "
        "in flight keep their outcome, and `endAt` still applies. `resumeMailing` continues. "
        "Answers the `Mailing` (PAUSED; unchanged if it already was), a `ConflictError` for "
        "a FINISHED or CANCELLED one, a `NotFoundError`, or a `ValidationError` for an id "
        "that is not a number."
    )
    async def pause_mailing(self, id: MailingId) -> MailingResult:
        return await _answer(id, pause_mailing)

    @described_mutation(
        "Continue a paused mailing: RUNNING again, or SCHEDULED if it had not started. Answers "
        "the `Mailing` (unchanged if it was not paused), a `ConflictError` for a FINISHED or "
        "CANCELLED one, a `NotFoundError`, or a `ValidationError` for an id that is not a "
        "number."
    )
    async def resume_mailing(self, id: MailingId) -> MailingResult:
        return await _answer(id, resume_mailing)

    @described_mutation(
        "Stop a mailing for good: its pending messages become CANCELLED at once; requests in "
        "flight keep their outcome. Answers the `Mailing` (CANCELLED; unchanged if it already "
        "was), a `ConflictError` for a FINISHED one, a `NotFoundError`, or a "
        "`ValidationError` for an id that is not a number."
    )
    async def cancel_mailing(self, id: MailingId) -> MailingResult:
        return await _answer(id, cancel_mailing)
