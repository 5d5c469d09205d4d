"""A mailing's status: the one compare-and-set, and pause, resume, cancel, delete.

The engine moves mailings to RUNNING and FINISHED on its own (``tasks.tend``,
through :func:`compare_and_set` too). Every status change is a compare-and-set
(``UPDATE ... WHERE status = <what we read>``), checked against
``can_transition``; the API's changes also lock the row on PostgreSQL, so a
change the engine made meanwhile is seen and decided on again, never
overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import structlog
from tortoise import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models import clock
from models.db import retried
from models.errors import Conflict, NotFound
from models.mailing import Mailing
from models.queries.messages import finalise_waiting
from models.services.audit import mailing_fields, record
from models.status import MailingStatus, MessageStatus, can_transition

__all__ = [
    "ATTEMPTS",
    "Wake",
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

Decide = Callable[[Mailing, datetime], MailingStatus | None]


class Wake(Protocol):
    """Tell the engine to tend a mailing at ``at`` (now if ``None``); called after commit."""

    async def __call__(self, mailing_id: int, at: datetime | None = None) -> None: ...


async def live_mailing(conn: BaseDBAsyncClient, mailing_id: int) -> Mailing:
    """The mailing, locked for this transaction; a deleted one does not exist."""
    row = (
        await Mailing.filter(id=mailing_id, deleted_at__isnull=True)
        .using_db(conn)
        .select_for_update()
        .first()
    )
    if row is None:
        raise NotFound("mailing", mailing_id)
    return row


async def compare_and_set(conn: BaseDBAsyncClient, row: Mailing, updates: dict[str, Any]) -> bool:
    """Apply ``updates`` if the mailing still has the status ``row`` was read with."""
    target = updates.get("status", row.status)
    if target != row.status and not can_transition(row.status, target):
        raise AssertionError(f"no transition from {row.status} to {target}")
    changed = (
        await Mailing.filter(id=row.id, status=row.status, deleted_at__isnull=True)
        .using_db(conn)
        .update(**updates, revision=F("revision") + 1)
    )
    return bool(changed)


@retried("change mailing status")
async def _transition(
    mailing_id: int, decide: Decide, operation: str, *, delete: bool = False
) -> tuple[Mailing, bool]:
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
            before = mailing_fields(row)
            if await compare_and_set(conn, row, updates):
                row.update_from_dict(updates)
                await record(conn, operation, "mailing", row.id, before, mailing_fields(row))
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
    raise Conflict(f"mailing {mailing_id} kept changing; try again")


def _pause(row: Mailing, now: datetime) -> MailingStatus | None:
    if row.status.is_terminal:
        raise Conflict(f"mailing {row.id} is {row.status.value} and cannot be paused")
    return None if row.status is MailingStatus.PAUSED else MailingStatus.PAUSED


def _resume(row: Mailing, now: datetime) -> MailingStatus | None:
    if row.status.is_terminal:
        raise Conflict(f"mailing {row.id} is {row.status.value} and cannot be resumed")
    if row.status is not MailingStatus.PAUSED:
        return None
    # Back to RUNNING only if it had started; otherwise it waits for its start.
    started = row.audience_version is not None and row.start_at <= now
    return MailingStatus.RUNNING if started else MailingStatus.SCHEDULED


def _cancel(row: Mailing, now: datetime) -> MailingStatus | None:
    if row.status is MailingStatus.FINISHED:
        raise Conflict(f"mailing {row.id} is FINISHED and cannot be cancelled")
    return None if row.status is MailingStatus.CANCELLED else MailingStatus.CANCELLED


def _delete(row: Mailing, now: datetime) -> MailingStatus | None:
    return None if row.status.is_terminal else MailingStatus.CANCELLED


async def _change(mailing_id: int, decide: Decide, operation: str, wake: Wake) -> Mailing:
    """The status ``decide`` picks, and the engine woken if it changed."""
    row, changed = await _transition(mailing_id, decide, operation)
    if changed:
        await wake(row.id)
    return row


async def pause_mailing(mailing_id: int, wake: Wake) -> Mailing:
    return await _change(mailing_id, _pause, "pauseMailing", wake)


async def resume_mailing(mailing_id: int, wake: Wake) -> Mailing:
    row, changed = await _transition(mailing_id, _resume, "resumeMailing")
    if changed:
        # At its start: one that had not started waits for it.
        await wake(row.id, row.start_at)
    return row


async def cancel_mailing(mailing_id: int, wake: Wake) -> Mailing:
    return await _change(mailing_id, _cancel, "cancelMailing", wake)


async def delete_mailing(mailing_id: int, wake: Wake) -> None:
    """Hide the mailing for good, cancelling it if it was not over; its rows stay."""
    row, _ = await _transition(mailing_id, _delete, "deleteMailing", delete=True)
    await wake(row.id)
