"""With Redis, a process hears the progress events of its own deployment only.

Deployments (and test runs) that share one Redis keep apart by QUEUE_NAME;
progress channels are named after it, so another deployment's mailing with
the same id wakes nobody here.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from graphql_api.progress_hub import ProgressHub
from settings import get_settings
from tasks import events
from tests.conftest import REDIS_URL, TEST_ENV
from tests.support.engine import wait_until

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="progress events need Redis")


async def test_another_deployment_s_mailing_of_the_same_id_wakes_nobody_here() -> None:
    name = f"mailings-progress-isolation:{TEST_ENV['QUEUE_NAME']}"
    hub = ProgressHub(REDIS_URL or "", client_name=name)
    publisher = redis.asyncio.Redis.from_url(REDIS_URL or "")
    try:
        async with hub.listen(7) as seven, hub.listen(8) as eight:

            async def subscribed() -> bool:
                clients = await publisher.client_list()
                return any(c.get("name") == name and c["psub"] == "1" for c in clients)

            await wait_until(subscribed, timeout=30)
            # Another deployment's, and the default queue name's, mailing 7.
            await publisher.publish("another-queue:progress:7", b"")
            await publisher.publish("mailings:progress:7", b"")
            # Then ours, mailing 8: one subscriber gets messages in the order they were
            # published, so once 8 is heard the two before it were read and passed over.
            await publisher.publish(events.channel(8), b"")
            await asyncio.wait_for(eight.wait(), timeout=30)
            assert not seven.is_set()
            await publisher.publish(events.channel(7), b"")
            await asyncio.wait_for(seven.wait(), timeout=30)
    finally:
        await publisher.aclose()


def test_a_queue_name_is_matched_literally(monkeypatch: pytest.MonkeyPatch) -> None:
    assert events.channel_pattern() == f"{TEST_ENV['QUEUE_NAME']}:progress:*"
    assert events.mailing_id_of(events.channel(12)) == 12
    assert events.mailing_id_of(b"another-queue:progress:12") is None
    # Redis' glob characters in a queue name stand for themselves.
    monkeypatch.setenv("QUEUE_NAME", "q*[1]?\\")
    get_settings.cache_clear()
    try:
        assert events.channel_pattern() == "q\\*\\[1\\]\\?\\\\:progress:*"
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
