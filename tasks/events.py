"""Progress events: "mailing N changed", from whoever changed it to every API process.

With ``REDIS_URL`` set, an event is a Redis pub/sub message on
``<QUEUE_NAME>:progress:<id>`` with no payload: the database holds the counts,
and a subscriber re-reads them, so a lost or merged event costs nothing but
a moment. Without Redis (the embedded defaults) nothing is published and the
API polls the database instead.

The engine publishes through a :class:`ProgressNotifier`, which coalesces:
a mailing sending thousands of messages a second announces itself a few
times a second, not once per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

import structlog
from redis.asyncio import Redis

from settings import get_settings

__all__ = ["ProgressNotifier", "channel", "channel_pattern", "mailing_id_of", "publish_now"]

log = structlog.get_logger(__name__)


# Channels are named after the queue, as the queue's own keys and the rate
# limits' are: deployments (or test runs) that share one Redis under separate
# QUEUE_NAMEs must not wake each other's subscribers about a mailing of the
# same id. The default queue name keeps the channels that came before it.
def _prefix() -> str:
    return f"{get_settings().queue_name}:progress:"


def channel_pattern() -> str:
    """The pattern every progress channel of this deployment matches (glob-escaped name)."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", _prefix()) + "*"


def _bounded_redis(url: str) -> Redis:
    timeout = get_settings().redis_timeout
    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def channel(mailing_id: int) -> str:
    return f"{_prefix()}{mailing_id}"


def mailing_id_of(channel_name: str | bytes) -> int | None:
    name = channel_name.decode() if isinstance(channel_name, bytes) else channel_name
    suffix = name.removeprefix(_prefix())
    return int(suffix) if suffix.isdigit() else None


class ProgressNotifier:
    """Publishes "mailing changed" at most every ``interval`` seconds per mailing."""

    def __init__(self, redis_url: str | None, interval: float = 0.25) -> None:
        self._redis = _bounded_redis(redis_url) if redis_url else None
        self._interval = interval
        self._due: set[int] = set()
        self._flusher: asyncio.Task[None] | None = None

    def mailing_changed(self, mailing_id: int) -> None:
        if self._redis is None:
            return
        self._due.add(mailing_id)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._interval)
        due, self._due = self._due, set()
        assert self._redis is not None
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for mailing_id in sorted(due):
                    pipe.publish(channel(mailing_id), b"")
                await pipe.execute()
        except Exception:
            # Progress events are hints; the counts are safe in the database.
            log.warning("progress events not published", mailing_ids=sorted(due), exc_info=True)

    async def aclose(self) -> None:
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        if self._redis is not None:
            await self._redis.aclose()


async def publish_now(mailing_id: int) -> None:
    """Announce one change right away (the API after a lifecycle mutation)."""
    url = get_settings().redis_url
    if not url:
        return
    redis = _bounded_redis(url)
    try:
        await redis.publish(channel(mailing_id), b"")
    finally:
        await redis.aclose()
