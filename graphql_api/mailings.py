"""Mailings: ``mailing``, ``mailings``, ``createMailing`` and ``updateMailing``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import strawberry
import structlog
from tortoise import BaseDBAsyncClient
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

import models
from graphql_api import engine
from graphql_api.arguments import MailingId, MailingStatusFilter
from graphql_api.cleaning import MailingChanges, check_period, clean_mailing, clean_mailing_patch
from graphql_api.decorators import described_field, described_mutation
from graphql_api.inputs import MailingInput, MailingPatch
from graphql_api.mailing_lifecycle import ATTEMPTS, compare_and_set, live_mailing
from graphql_api.pagination import After, Connection, First, build_connection, keyset_page, or_none
from graphql_api.results import (
    ConflictError,
    MailingResult,
    NotFoundError,
    ValidationError,
)
from graphql_api.scalars import find_id, parse_id
from graphql_api.types import Mailing
from models import MailingStatus as Status
from models import clock
from models.queries.messages import cancel_unmatched, replan_window_waiters, revive_rematched

__all__ = ["MailingMutation", "MailingQuery", "create_mailing", "live_mailings", "update_mailing"]

log = structlog.get_logger(__name__)


def live_mailings(status: Status | None = None) -> QuerySet[models.Mailing]:
    """Mailings that have not been deleted, optionally of one status."""
    query = models.Mailing.filter(deleted_at__isnull=True)
    return query if status is None else query.filter(status=status)


def _check_end_ahead(end_at: datetime, now: datetime) -> None:
    if end_at <= now:
        raise models.InvalidInput([models.FieldProblem("input.endAt", "must be in the future")])


async def create_mailing(value: MailingInput) -> models.Mailing:
    fields = clean_mailing(value)
    _check_end_ahead(fields.end_at, clock.now())
    window = fields.window
    async with in_transaction() as conn:
        row = await models.Mailing.create(
            using_db=conn,
            text=fields.text,
            start_at=fields.start_at,
            end_at=fields.end_at,
            filter_operator_codes=list(fields.filter.operator_codes),
            filter_tags=list(fields.filter.tags),
            window_start=None if window is None else window.start_minutes,
            window_end=None if window is None else window.end_minutes,
            status=Status.SCHEDULED,
        )
        await models.MailingStats.create(using_db=conn, mailing=row)
    log.info("mailing created", mailing_id=row.id, start_at=row.start_at.isoformat())
    await engine.mailing_scheduled(row.id, row.start_at)
    return row


@dataclass
class _Plan:
    """The columns an update writes, and whom to tell afterwards."""

    updates: dict[str, Any] = field(default_factory=dict)
    rescheduled: bool = False
    retargeted: bool = False
    window_changed: bool = False


def _plan(row: models.Mailing, changes: MailingChanges, now: datetime) -> _Plan:
    plan = _Plan()
    start_at = changes.start_at or row.start_at
    end_at = changes.end_at or row.end_at
    check_period(start_at, end_at, changes)
    if changes.text is not None and changes.text != row.text:
        plan.updates["text"] = changes.text
    if start_at != row.start_at:
        plan.updates["start_at"] = start_at
        if row.status is Status.RUNNING and start_at > now:
            plan.updates["status"] = Status.SCHEDULED
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
    conn: BaseDBAsyncClient, row: models.Mailing, plan: _Plan, now: datetime
) -> None:
    """What a change means for messages not sent yet, at once, in the update's transaction.

    Clients the new filter drops lose their waiting messages, clients it
    takes back get theirs again; the engine adds clients that never had one.
    Messages parked for the old window are planned again under the new one.
    Requests in flight keep the outcome the provider gives them.
    """
    if plan.retargeted:
        client_filter = models.ClientFilter(
            tuple(row.filter_operator_codes), tuple(row.filter_tags)
        )
        dropped = await cancel_unmatched(conn, row.id, client_filter)
        revived = await revive_rematched(conn, row.id, client_filter, now)
        log.info("mailing re-targeted", mailing_id=row.id, cancelled=dropped, revived=revived)
    if plan.window_changed and row.audience_version is not None:
        await replan_window_waiters(conn, row.id, now)


async def update_mailing(id_: str, patch: MailingPatch) -> models.Mailing:
    """Apply a patch to a mailing that is not over yet."""
    mailing_id = parse_id(id_)
    changes = clean_mailing_patch(patch)
    for _ in range(ATTEMPTS):
        now = clock.now()
        async with in_transaction() as conn:
            row = await live_mailing(conn, mailing_id)
            if row.status.is_terminal:
                raise models.Conflict(
                    f"mailing {mailing_id} is {row.status.value} and can no longer be edited"
                )
            plan = _plan(row, changes, now)
            if not plan.updates:
                return row
            if await compare_and_set(conn, row, {**plan.updates, "updated_at": now}):
                row.update_from_dict({**plan.updates, "updated_at": now})
                await _apply_to_waiting(conn, row, plan, now)
                break
    else:
        raise models.Conflict(f"mailing {mailing_id} kept changing; try again")
    log.info("mailing updated", mailing_id=row.id, fields=sorted(plan.updates))
    if plan.retargeted:
        await engine.mailing_retargeted(row.id)
    if plan.rescheduled:
        await engine.mailing_scheduled(row.id, row.start_at)
    return row


@strawberry.type
class MailingQuery:
    @described_field("A mailing by id; null if there is none or it was deleted.")
    async def mailing(self, id: MailingId) -> Mailing | None:
        key = find_id(id)
        row = None if key is None else await live_mailings().filter(id=key).first()
        return None if row is None else Mailing.from_row(row)

    @described_field("Mailings in id order, optionally of one status.")
    async def mailings(
        self,
        status: MailingStatusFilter = strawberry.UNSET,
        first: First = strawberry.UNSET,
        after: After = strawberry.UNSET,
    ) -> Connection[Mailing]:
        query = live_mailings(or_none(status))
        rows, has_next = await keyset_page(query, first, after)

        async def count() -> int:
            return await query.count()

        return build_connection(rows, has_next, Mailing.from_row, count, after)


@strawberry.type
class MailingMutation:
    @described_mutation(
        "Create a mailing; it starts by itself at `startAt` (within about a second if that "
        "has passed), even across restarts. Answers the `Mailing`, SCHEDULED, or a "
        "`ValidationError` naming every field that breaks the rules; nothing is written then. "
        "Never a `NotFoundError` or `ConflictError` (the result union is shared)."
    )
    async def create_mailing(
        self, input: Annotated[MailingInput, strawberry.argument(description="The new mailing.")]
    ) -> MailingResult:
        try:
            return Mailing.from_row(await create_mailing(input))
        except models.InvalidInput as error:
            return ValidationError.from_error(error)

    @described_mutation(
        "Change a mailing; what is not sent yet follows at once (see `MailingPatch`), what is "
        "sent stays. Answers the `Mailing`, a `ValidationError`, a `NotFoundError`, or a "
        "`ConflictError` for a FINISHED or CANCELLED mailing; nothing is written on an error."
    )
    async def update_mailing(
        self,
        id: MailingId,
        input: Annotated[MailingPatch, strawberry.argument(description="What to change.")],
    ) -> MailingResult:
        try:
            return Mailing.from_row(await update_mailing(id, input))
        except models.InvalidInput as error:
            return ValidationError.from_error(error)
        except models.NotFound:
            return NotFoundError(message=f"mailing {id} not found", id=id)
        except models.Conflict as error:
            return ConflictError.from_error(error)
