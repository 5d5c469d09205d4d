"""Tending mailings: every step that moves a mailing along, derived from its rows.

``tend_mailing`` is idempotent and safe to run from several workers at once:
status changes are compare-and-set, the audience is built in chunks that
ignore clients that already have a message (``tasks.audience``), and
finalising statements only touch waiting messages (none a worker holds). A
mailing is not FINISHED while its audience is still being built.
``EXPIRED`` comes at ``end_at``, never before: until then a mailing with
messages that cannot go out yet (their window opens later, their retry is
due later) stays ``RUNNING``. The sweep runs it for every mailing that may
need it, so a lost queue message or a dead worker delays work, never loses
it.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from tortoise import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models import Mailing, MailingStatus, MessageStatus
from models.queries.counters import pending_messages
from models.queries.messages import finalise_waiting
from models.services import compare_and_set
from settings import get_settings
from tasks.audience import begin_audience, build_audience_chunk

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


async def _finalise_waiting(
    conn: BaseDBAsyncClient, mailing_id: int, status: MessageStatus, reason: str
) -> None:
    changed = await finalise_waiting(conn, mailing_id, status, reason)
    if changed:
        log.info(
            "messages finalised", mailing_id=mailing_id, status=status, count=changed, reason=reason
        )


async def tend_mailing(
    mailing_id: int, now: datetime, *, chunk: int | None = None
) -> MailingStatus | None:
    """Bring one mailing up to date with the clock; returns its status afterwards.

    A mailing that starts or was re-targeted begins its audience build, and
    one chunk of a build in progress is added (``chunk`` client ids; by
    default ``AUDIENCE_CHUNK_SIZE``): the engine's builder adds the rest.
    """
    async with in_transaction() as conn:
        mailing = await Mailing.filter(id=mailing_id).using_db(conn).first()
        if mailing is None:
            return None
        status = mailing.status
        started = mailing.start_at <= now
        # Never built, or built for an older filter. A mailing moved later
        # goes back to SCHEDULED with its audience, and may be re-targeted
        # meanwhile: its new audience is begun when it starts again, in the
        # same transaction, or it could be FINISHED below with nothing
        # pending before its new clients were added.
        version = mailing.audience_version
        built = version is not None
        retargeted = version is not None and version < mailing.filter_version
        if status is MailingStatus.SCHEDULED and started:
            if not built or retargeted:
                await begin_audience(conn, mailing, now)
            # Even past its end: it finishes below once its audience is built.
            await _set_status(conn, mailing, MailingStatus.RUNNING, now)
        elif status in (MailingStatus.RUNNING, MailingStatus.PAUSED) and retargeted:
            # (A mailing paused before its start has no audience yet: it is
            # built when the mailing starts, not while it waits.)
            await begin_audience(conn, mailing, now)

    building = mailing.audience_cursor is not None
    if building and mailing.audience_version == mailing.filter_version:
        size = chunk if chunk is not None else get_settings().audience_chunk_size
        building, _ = await build_audience_chunk(mailing.id, now, size)

    async with in_transaction() as conn:
        status = mailing.status
        if status is MailingStatus.CANCELLED or mailing.deleted_at is not None:
            await _finalise_waiting(conn, mailing.id, MessageStatus.CANCELLED, "mailing cancelled")
        elif now >= mailing.end_at and (started or status is not MailingStatus.SCHEDULED):
            await _finalise_waiting(
                conn, mailing.id, MessageStatus.EXPIRED, "mailing ended before it was sent"
            )
            if status in _OPEN and not building:
                await _set_status(conn, mailing, MailingStatus.FINISHED, now)
        elif (
            status is MailingStatus.RUNNING
            and not building
            and await _nothing_pending(conn, mailing.id)
        ):
            await _set_status(conn, mailing, MailingStatus.FINISHED, now)
    final: MailingStatus = mailing.status
    return final


async def _nothing_pending(conn: BaseDBAsyncClient, mailing_id: int) -> bool:
    return await pending_messages(conn, mailing_id) == 0
