"""Without Redis, one database poll per watched mailing and process, however many watch it.

Issue 20, finding 6: each subscriber polled the database every 0.5 s, so
1,000 idle subscriptions took 65 % of the API's CPU.
"""

from __future__ import annotations

import asyncio
import contextlib

from graphql_api.resolvers.progress import polling_hub
from models import MailingStatus, MessageStatus
from tests.support.api import add_audience, finalise
from tests.support.factories import make_client, make_mailing

WATCHERS = 50


async def _until(condition: object, what: str) -> None:
    for _ in range(600):  # up to a minute, on a loaded machine
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


async def test_watchers_of_one_mailing_share_one_poll(db: str) -> None:
    for _ in range(2):
        await make_client()
    mailing = await make_mailing(status=MailingStatus.RUNNING)
    await add_audience(mailing)
    hub = polling_hub()
    async with contextlib.AsyncExitStack() as stack:
        events = [await stack.enter_async_context(hub.listen(mailing.id)) for _ in range(WATCHERS)]
        assert hub.pollers == 1
        # The first poll tells every watcher; then nothing changes, and nobody is told.
        await _until(lambda: all(event.is_set() for event in events), "every watcher told")
        for event in events:
            event.clear()
        polls = hub.polls
        await _until(lambda: hub.polls >= polls + 3, "three more polls")
        assert not any(event.is_set() for event in events)
        # One poll reads for all of them: 50 watchers, one poller, polls counted once each.
        assert hub.pollers == 1
        await finalise(mailing.id, MessageStatus.SENT, 1)
        await _until(lambda: all(event.is_set() for event in events), "the change told")
    # Once nobody listens, the poller ends by itself.
    await _until(lambda: hub.pollers == 0, "the poller ended")
