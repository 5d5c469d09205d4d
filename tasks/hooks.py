"""What the API tells the sending engine: the one interface between the two.

Each hook is called after the API's transaction committed, and only wakes
the engine up: the database is the source of truth, and the worker's sweep
finds anything a lost wake-up would have done (SPEC section 3). Enqueueing
talks to Redis or SQLite synchronously, so it runs in a thread.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog

from models import clock
from tasks import events, jobs

__all__ = ["mailing_retargeted", "mailing_scheduled", "mailing_stopped"]

log = structlog.get_logger(__name__)


async def mailing_scheduled(mailing_id: int, start_at: datetime) -> None:
    """A mailing was created, resumed or moved: start it at ``start_at`` (now if past)."""
    now = clock.now()
    if start_at <= now:
        await asyncio.to_thread(jobs.start_mailing, mailing_id)
    else:
        await asyncio.to_thread(jobs.start_mailing.schedule, (mailing_id,), eta=start_at)
    log.info("mailing start enqueued", mailing_id=mailing_id, start_at=start_at.isoformat())
    await events.publish_now(mailing_id)


async def mailing_stopped(mailing_id: int) -> None:
    """A mailing was paused, cancelled or deleted: settle what is pending."""
    await asyncio.to_thread(jobs.settle_mailing, mailing_id)
    log.info("mailing settle enqueued", mailing_id=mailing_id)
    await events.publish_now(mailing_id)


async def mailing_retargeted(mailing_id: int) -> None:
    """A started mailing's filter changed: add new matches, cancel lost ones."""
    await asyncio.to_thread(jobs.settle_mailing, mailing_id)
    log.info("mailing retarget enqueued", mailing_id=mailing_id)
    await events.publish_now(mailing_id)
