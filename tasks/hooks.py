"""What the API tells the sending engine, and reads of it: the one interface between the two.

There is one thing to say, "tend mailing N" (at an instant, or now): the
engine derives every step from the rows. A hook is called after the API's
transaction committed and only wakes the engine up: the database is the
source of truth, and the worker's sweep finds anything a lost wake-up would
have done (docs/sending.md). Enqueueing talks to Redis or SQLite
synchronously, so it runs in a thread.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog

from models import clock
from tasks import events, jobs

__all__ = ["progress_channels", "progress_mailing_id", "queue_depth", "tend_mailing"]


log = structlog.get_logger(__name__)


async def tend_mailing(mailing_id: int, at: datetime | None = None) -> None:
    """Tend the mailing at ``at`` (its new start), or now when ``at`` is absent or past."""
    if at is None or at <= clock.now():
        await asyncio.to_thread(jobs.tend_mailing, mailing_id)
        log.info("mailing tend enqueued", mailing_id=mailing_id)
    else:
        await asyncio.to_thread(jobs.tend_mailing.schedule, (mailing_id,), eta=at)
        log.info("mailing tend enqueued", mailing_id=mailing_id, at=at.isoformat())
    await events.publish_now(mailing_id)


def progress_channels() -> str:
    """The Redis pub/sub pattern this deployment's progress events are published on."""
    return events.channel_pattern()


def progress_mailing_id(channel_name: str | bytes) -> int | None:
    """The mailing a progress event on ``channel_name`` is about (``None``: not one of ours)."""
    return events.mailing_id_of(channel_name)


async def queue_depth() -> tuple[int, int]:
    """Wake-ups waiting in the queue: (due now, scheduled for later)."""
    from tasks.queue import huey

    return await asyncio.to_thread(lambda: (huey.pending_count(), huey.scheduled_count()))
