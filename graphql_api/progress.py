"""``mailingProgress``: a mailing's counts and status, pushed as they change.

For now the events come from polling the database once a second; a later
change will push them from Redis instead. :func:`progress_event` is the one
place that builds an event, whatever carries it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import astuple

import strawberry
import structlog
from graphql import GraphQLError

import models
from graphql_api.decorators import described_subscription
from graphql_api.scalars import find_id
from graphql_api.types import Mailing, MailingProgress, MessageStats

__all__ = ["POLL_INTERVAL", "ProgressSubscription", "progress_event", "watch_progress"]

POLL_INTERVAL = 1.0

log = structlog.get_logger(__name__)


async def progress_event(mailing_id: int) -> MailingProgress | None:
    """The mailing's state now, or ``None`` if it does not exist (or was deleted)."""
    row = await models.Mailing.filter(id=mailing_id, deleted_at__isnull=True).first()
    if row is None:
        return None
    stats = MessageStats.from_row(await models.MailingStats.get_or_none(mailing_id=mailing_id))
    return MailingProgress(mailing=Mailing.from_row(row, stats), stats=stats, status=row.status)


def _fingerprint(event: MailingProgress) -> tuple[object, ...]:
    return (event.status, *astuple(event.stats))


async def watch_progress(mailing_id: int) -> AsyncGenerator[MailingProgress, None]:
    """The current state at once, then each change; ends once the mailing is over."""
    last: tuple[object, ...] | None = None
    while True:
        event = await progress_event(mailing_id)
        if event is None:
            if last is None:
                raise GraphQLError(f"mailing {mailing_id} not found")
            return  # deleted while watched: it is over for its watchers too
        fingerprint = _fingerprint(event)
        if fingerprint != last:
            last = fingerprint
            yield event
        if event.status.is_terminal:
            return
        await asyncio.sleep(POLL_INTERVAL)


@strawberry.type
class ProgressSubscription:
    @described_subscription(
        "The mailing's counts and status now, then whenever they change; "
        "the stream ends when the mailing is FINISHED or CANCELLED."
    )
    async def mailing_progress(self, id: strawberry.ID) -> AsyncGenerator[MailingProgress, None]:
        mailing_id = find_id(id)
        if mailing_id is None:
            raise GraphQLError(f"mailing {id} not found")
        log.info("progress watched", mailing_id=mailing_id)
        async for event in watch_progress(mailing_id):
            yield event
