"""``mailingProgress``: a mailing's counts and status, pushed as they change.

With ``REDIS_URL`` set, workers and API processes announce changes over
Redis pub/sub (:mod:`tasks.events`) and a subscriber re-reads the counts when
told, at most every ``COALESCE`` seconds, with a slow poll as a safety net;
on the embedded defaults one poll per mailing and process reads it every
``POLL_INTERVAL`` seconds and tells its subscribers when it changed. :func:`progress_event` is the
one place that builds an event, whatever carries it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import astuple
from typing import Annotated

import strawberry
import structlog
from graphql import GraphQLError

import models
from graphql_api.decorators import described_subscription
from graphql_api.echo import echoed
from graphql_api.error_codes import ErrorCode
from graphql_api.ids import Kind, key_of
from graphql_api.progress_hub import PollingHub, ProgressHub
from graphql_api.subscription_caps import SubscriptionCaps, caller_key
from graphql_api.types import Mailing, MailingProgress, MessageStats
from settings import get_settings

__all__ = [
    "POLL_INTERVAL",
    "ProgressSubscription",
    "polling_hub",
    "progress_event",
    "watch_progress",
]

POLL_INTERVAL = 0.5  # without Redis
SAFETY_POLL = 5.0  # with Redis, in case an event was lost
COALESCE = 0.2  # a busy mailing yields at most about five events a second

_hub: ProgressHub | None = None
_polling: PollingHub | None = None

log = structlog.get_logger(__name__)


async def progress_event(mailing_id: int) -> MailingProgress | None:
    """The mailing's state now, or ``None`` if it does not exist (or was deleted)."""
    row = await models.Mailing.filter(id=mailing_id, deleted_at__isnull=True).first()
    if row is None:
        return None
    stats = MessageStats.from_row(await models.MailingStats.get_or_none(mailing_id=mailing_id))
    return MailingProgress(mailing=Mailing.from_row(row, stats), stats=stats, status=row.status)


def _not_found(given: object) -> GraphQLError:
    return GraphQLError(
        f"mailing {echoed(str(given))} not found", extensions={"code": str(ErrorCode.NOT_FOUND)}
    )


def _fingerprint(event: MailingProgress) -> tuple[object, ...]:
    return (event.status, *astuple(event.stats))


def _progress_hub() -> ProgressHub | None:
    global _hub
    settings = get_settings()
    if settings.redis_url and _hub is None:
        _hub = ProgressHub(settings.redis_url, f"mailings-progress:{settings.queue_name}")
    return _hub


def polling_hub() -> PollingHub:
    """This process's one poll per watched mailing, without Redis."""
    global _polling
    if _polling is None:
        _polling = PollingHub(_probe, POLL_INTERVAL)
    return _polling


async def _probe(mailing_id: int) -> tuple[object, ...] | None:
    event = await progress_event(mailing_id)
    return None if event is None else _fingerprint(event)


@contextlib.asynccontextmanager
async def _changes(mailing_id: int) -> AsyncIterator[tuple[asyncio.Event, float | None]]:
    """An event set on news of the mailing, and how long to wait for it before reading anyway."""
    hub = _progress_hub()
    if hub is None:
        async with polling_hub().listen(mailing_id) as polled:
            yield polled, None  # the poll is the safety net
        return
    async with hub.listen(mailing_id) as changed:
        yield changed, SAFETY_POLL


async def _next_change(changed: asyncio.Event, safety: float | None) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(changed.wait(), safety)
    changed.clear()
    await asyncio.sleep(COALESCE)


async def watch_progress(mailing_id: int) -> AsyncGenerator[MailingProgress, None]:
    """The current state at once, then each change; ends once the mailing is over.

    Over means a terminal status with nothing pending: requests in flight when
    a mailing is cancelled or ends still get their outcome, and the last
    event carries the final counts.
    """
    last: tuple[object, ...] | None = None
    async with _changes(mailing_id) as (changed, safety):
        while True:
            event = await progress_event(mailing_id)
            if event is None:
                if last is None:
                    raise _not_found(mailing_id)
                return  # deleted while watched: it is over for its watchers too
            fingerprint = _fingerprint(event)
            if fingerprint != last:
                last = fingerprint
                yield event
            if event.status.is_terminal and event.stats.pending == 0:
                return
            await _next_change(changed, safety)


@strawberry.type
class ProgressSubscription:
    @described_subscription(
        "The mailing's counts and status now, then whenever they change; "
        "the stream ends when the mailing is FINISHED or CANCELLED with nothing pending."
    )
    async def mailing_progress(
        self,
        id: Annotated[
            strawberry.ID,
            strawberry.argument(
                description="The mailing to watch; one that does not exist (or is deleted) "
                "ends the stream with an error."
            ),
        ],
        info: strawberry.Info,
    ) -> AsyncGenerator[MailingProgress, None]:
        mailing_id = key_of(id, Kind.MAILING)
        if mailing_id is None:
            raise _not_found(id)
        with _hold_place(info):
            log.info("progress watched", mailing_id=mailing_id)
            async for event in watch_progress(mailing_id):
                yield event


def _hold_place(info: strawberry.Info) -> contextlib.AbstractContextManager[None]:
    """This subscription's place under the caps of its connection and its caller."""
    request = getattr(info.context, "request", None)
    state = getattr(getattr(request, "app", None), "state", None)
    caps: SubscriptionCaps | None = getattr(state, "subscription_caps", None)
    if caps is None or request is None:  # a schema run outside the application
        return contextlib.nullcontext()
    caller = caller_key(getattr(info.context, "principal", None), request.scope)
    return caps.hold(request, caller)
