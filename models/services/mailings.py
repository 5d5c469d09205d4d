"""Creating and changing mailings, and what a change means for messages not sent yet."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from tortoise import BaseDBAsyncClient
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from models import clock
from models.audience import ClientFilter
from models.db import retried
from models.errors import Conflict, FieldProblem, InvalidInput
from models.mailing import Mailing, MailingStats
from models.queries.messages import cancel_unmatched, replan_window_waiters, revive_rematched
from models.send_window import SendWindow
from models.services.audit import mailing_fields, record
from models.services.mailing_status import ATTEMPTS, Wake, compare_and_set, live_mailing
from models.status import MailingStatus

__all__ = [
    "MailingChanges",
    "MailingFields",
    "check_period",
    "create_mailing",
    "end_passed",
    "live_mailings",
    "update_mailing",
]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class MailingFields:
    """A new mailing, checked field by field (``start_at < end_at`` included)."""

    text: str
    start_at: datetime
    end_at: datetime
    filter: ClientFilter
    window: SendWindow | None


@dataclass(frozen=True, slots=True)
class MailingChanges:
    """What a patch sets; ``None`` (or ``window_given=False``) keeps the current value."""

    text: str | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    filter: ClientFilter | None = None
    window_given: bool = False
    window: SendWindow | None = None


def live_mailings(status: MailingStatus | None = None) -> QuerySet[Mailing]:
    """Mailings that have not been deleted, optionally of one status."""
    query = Mailing.filter(deleted_at__isnull=True)
    return query if status is None else query.filter(status=status)


def end_passed(end_at: datetime, now: datetime) -> FieldProblem | None:
    """The problem of an ``endAt`` that is not in the future, when a mailing is made or moved."""
    return FieldProblem("input.endAt", "must be in the future") if end_at <= now else None


def _check_end_ahead(end_at: datetime, now: datetime) -> None:
    if (problem := end_passed(end_at, now)) is not None:
        raise InvalidInput([problem])


def check_period(start_at: datetime, end_at: datetime, changes: MailingChanges) -> None:
    """The patched period must not be empty; blame the end if the patch moved it."""
    if start_at < end_at:
        return
    problem = (
        FieldProblem("input.endAt", "must be later than startAt")
        if changes.end_at is not None
        else FieldProblem("input.startAt", "must be earlier than endAt")
    )
    raise InvalidInput([problem])


@retried("create mailing")
async def create_mailing(fields: MailingFields, wake: Wake) -> Mailing:
    _check_end_ahead(fields.end_at, clock.now())
    window = fields.window
    async with in_transaction() as conn:
        row = await Mailing.create(
            using_db=conn,
            text=fields.text,
            start_at=fields.start_at,
            end_at=fields.end_at,
            filter_operator_codes=list(fields.filter.operator_codes),
            filter_tags=list(fields.filter.tags),
            window_start=None if window is None else window.start_minutes,
            window_end=None if window is None else window.end_minutes,
            status=MailingStatus.SCHEDULED,
        )
        await MailingStats.create(using_db=conn, mailing=row)
        await record(conn, "createMailing", "mailing", row.id, None, mailing_fields(row))
    log.info("mailing created", mailing_id=row.id, start_at=row.start_at.isoformat())
    await wake(row.id, row.start_at)
    return row


@dataclass
class _Plan:
    """The columns an update writes, and whom to tell afterwards."""

    updates: dict[str, Any] = field(default_factory=dict)
    rescheduled: bool = False
    retargeted: bool = False
    window_changed: bool = False


def _plan(row: Mailing, changes: MailingChanges, now: datetime) -> _Plan:
    plan = _Plan()
    start_at = changes.start_at or row.start_at
    end_at = changes.end_at or row.end_at
    check_period(start_at, end_at, changes)
    if changes.text is not None and changes.text != row.text:
        plan.updates["text"] = changes.text
    if start_at != row.start_at:
        plan.updates["start_at"] = start_at
        if row.status is MailingStatus.RUNNING and start_at > now:
            plan.updates["status"] = MailingStatus.SCHEDULED
    if end_at != row.end_at:
        _check_end_ahead(end_at, now)
        plan.updates["end_at"] = end_at
    if changes.window_given:
        window = changes.window
        minutes = (None, None) if window is None else (window.start_minutes, window.end_minutes)
        if minutes != (row.window_start, row.window_end):
            plan.updates["window_start"], plan.updates["window_end"] = minutes
            plan.window_changed = True
    new_filter = changes.filter
    if new_filter is not None and (
        set(new_filter.operator_codes) != set(row.filter_operator_codes)
        or set(new_filter.tags) != set(row.filter_tags)
    ):
        plan.updates["filter_operator_codes"] = list(new_filter.operator_codes)
        plan.updates["filter_tags"] = list(new_filter.tags)
        plan.updates["filter_version"] = row.filter_version + 1
        # Before the audience is built, the engine reads the new filter anyway.
        plan.retargeted = row.audience_version is not None
    plan.rescheduled = bool(plan.updates.keys() & {"start_at", "end_at", "window_start"})
    return plan


async def _apply_to_waiting(
    conn: BaseDBAsyncClient, row: Mailing, plan: _Plan, now: datetime
) -> None:
    """What a change means for messages not sent yet, at once, in the update's transaction.

    Clients the new filter drops lose their waiting messages, clients it
    takes back get theirs again; the engine adds clients that never had one.
    Messages parked for the old window are planned again under the new one.
    Requests in flight keep the outcome the provider gives them.
    """
    if plan.retargeted:
        client_filter = ClientFilter(tuple(row.filter_operator_codes), tuple(row.filter_tags))
        dropped = await cancel_unmatched(conn, row.id, client_filter)
        revived = await revive_rematched(conn, row.id, client_filter, now)
        log.info("mailing re-targeted", mailing_id=row.id, cancelled=dropped, revived=revived)
    if plan.window_changed and row.audience_version is not None:
        await replan_window_waiters(conn, row.id, now)


@retried("update mailing")
async def update_mailing(mailing_id: int, changes: MailingChanges, wake: Wake) -> Mailing:
    """Apply a patch to a mailing that is not over yet."""
    for _ in range(ATTEMPTS):
        now = clock.now()
        async with in_transaction() as conn:
            row = await live_mailing(conn, mailing_id)
            if row.status.is_terminal:
                raise Conflict(
                    f"mailing {mailing_id} is {row.status.value} and can no longer be edited"
                )
            plan = _plan(row, changes, now)
            if not plan.updates:
                return row
            before = mailing_fields(row)
            if await compare_and_set(conn, row, {**plan.updates, "updated_at": now}):
                row.update_from_dict({**plan.updates, "updated_at": now})
                await _apply_to_waiting(conn, row, plan, now)
                await record(conn, "updateMailing", "mailing", row.id, before, mailing_fields(row))
                break
    else:
        raise Conflict(f"mailing {mailing_id} kept changing; try again")
    log.info("mailing updated", mailing_id=row.id, fields=sorted(plan.updates))
    if plan.retargeted:
        await wake(row.id)
    if plan.rescheduled:
        await wake(row.id, row.start_at)
    return row
