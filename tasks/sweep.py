"""Tending mailings: every step that moves a mailing along, derived from its rows.

``tend_mailing`` is idempotent and safe to run from several workers at once:
status changes are compare-and-set, the audience insert ignores clients that
already have a message, and finalising statements only touch waiting
messages (none a worker holds). ``EXPIRED`` comes at ``end_at``, never
before: until then a mailing with messages that cannot go out yet (their
window opens later, their retry is due later) stays ``RUNNING``. The sweep
runs it for every mailing that may need it, so a lost queue message or a dead
worker delays work, never loses it.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from tortoise import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models import ClientFilter, Mailing, MailingStatus, MessageStatus
from models.queries.counters import pending_messages
from models.queries.mailings import mark_audience_built
from models.queries.messages import (
    add_audience,
    cancel_unmatched,
    finalise_waiting,
    revive_rematched,
)
from models.services import compare_and_set

__all__ = ["tend_mailing"]

log = structlog.get_logger(__name__)

_OPEN = (MailingStatus.SCHEDULED, MailingStatus.RUNNING, MailingStatus.PAUSED)


async def _set_status(
    conn: BaseDBAsyncClient, mailing: Mailing, new: MailingStatus, now: datetime
) -> bool:
    """The same compare-and-set as the API's changes (``models.services``)."""
    old = mailing.status
    changed = await compare_and_set(conn, mailing, {"status": new, "updated_at": now})
    if changed:
        log.info("mailing status changed", mailing_id=mailing.id, old=old, new=new)
        mailing.status = new
    return changed


def _filter(mailing: Mailing) -> ClientFilter:
    return ClientFilter(tuple(mailing.filter_operator_codes), tuple(mailing.filter_tags))


async def _build_audience(conn: BaseDBAsyncClient, mailing: Mailing, now: datetime) -> None:
    """Messages for the clients matching the filter now; re-targeting also drops and revives."""
    client_filter = _filter(mailing)
    added = await add_audience(conn, mailing.id, client_filter, mailing.start_at, now)
    dropped = revived = 0
    if mailing.audience_version is not None:
        dropped = await cancel_unmatched(conn, mailing.id, client_filter)
        revived = await revive_rematched(conn, mailing.id, client_filter, now)
    await mark_audience_built(conn, mailing.id, mailing.filter_version)
    log.info(
        "mailing audience built",
        mailing_id=mailing.id,
        filter_version=mailing.filter_version,
        added=added,
        cancelled=dropped,
        revived=revived,
    )
    mailing.audience_version = mailing.filter_version


async def _finalise_waiting(
    conn: BaseDBAsyncClient, mailing_id: int, status: MessageStatus, reason: str
) -> None:
    changed = await finalise_waiting(conn, mailing_id, status, reason)
    if changed:
        log.info(
            "messages finalised", mailing_id=mailing_id, status=status, count=changed, reason=reason
        )


async def tend_mailing(mailing_id: int, now: datetime) -> MailingStatus | None:
    """Bring one mailing up to date with the clock; returns its status afterwards."""
    async with in_transaction() as conn:
        mailing = await Mailing.filter(id=mailing_id).using_db(conn).first()
        if mailing is None:
            return None
        status = mailing.status
        started = mailing.start_at <= now
        if status is MailingStatus.SCHEDULED and started:
            if mailing.audience_version is None:
                await _build_audience(conn, mailing, now)
            target = MailingStatus.RUNNING if now < mailing.end_at else MailingStatus.FINISHED
            await _set_status(conn, mailing, target, now)
        elif (
            status in (MailingStatus.RUNNING, MailingStatus.PAUSED)
            and mailing.audience_version is not None
            and mailing.audience_version < mailing.filter_version
        ):
            await _build_audience(conn, mailing, now)

    async with in_transaction() as conn:
        status = mailing.status
        if status is MailingStatus.CANCELLED or mailing.deleted_at is not None:
            await _finalise_waiting(conn, mailing.id, MessageStatus.CANCELLED, "mailing cancelled")
        elif now >= mailing.end_at and (started or status is not MailingStatus.SCHEDULED):
            await _finalise_waiting(
                conn, mailing.id, MessageStatus.EXPIRED, "mailing ended before it was sent"
            )
            if status in _OPEN:
                await _set_status(conn, mailing, MailingStatus.FINISHED, now)
        elif status is MailingStatus.RUNNING and await _nothing_pending(conn, mailing.id):
            await _set_status(conn, mailing, MailingStatus.FINISHED, now)
    final: MailingStatus = mailing.status
    return final


async def _nothing_pending(conn: BaseDBAsyncClient, mailing_id: int) -> bool:
    return await pending_messages(conn, mailing_id) == 0
