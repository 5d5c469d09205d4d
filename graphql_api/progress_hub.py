"""One Redis subscription per API process, fanned out to its progress subscribers.

Every ``mailingProgress`` subscriber of this process registers an
:class:`asyncio.Event` for its mailing; one pattern subscription to
``mailings:progress:*`` sets them. The subscription exists only while
someone listens: the last subscriber to leave cancels the reader, which
unsubscribes and closes its connection, so subscribers that go away leave
nothing behind in Redis or in the process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from redis.asyncio import Redis

from tasks.events import CHANNEL_PATTERN, mailing_id_of

__all__ = ["ProgressHub"]

log = structlog.get_logger(__name__)


class ProgressHub:
    def __init__(self, redis_url: str, client_name: str = "mailings-progress") -> None:
        self._redis_url = redis_url
        # Named, so an operator (or a test) can tell this subscription apart in CLIENT LIST.
        self._client_name = client_name
        self._listeners: dict[int, set[asyncio.Event]] = {}
        self._reader: asyncio.Task[None] | None = None

    @property
    def listener_count(self) -> int:
        return sum(len(events) for events in self._listeners.values())

    @contextlib.asynccontextmanager
    async def listen(self, mailing_id: int) -> AsyncIterator[asyncio.Event]:
        """An event set whenever the mailing is announced as changed."""
        changed = asyncio.Event()
        self._listeners.setdefault(mailing_id, set()).add(changed)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="progress-hub")
        try:
            yield changed
        finally:
            events = self._listeners.get(mailing_id, set())
            events.discard(changed)
            if not events:
                self._listeners.pop(mailing_id, None)
            if not self._listeners and self._reader is not None:
                self._reader.cancel()
                self._reader = None

    async def _read(self) -> None:
        while True:
            redis = Redis.from_url(self._redis_url, client_name=self._client_name)
            pubsub = redis.pubsub()
            try:
                await pubsub.psubscribe(CHANNEL_PATTERN)
                log.info("progress events subscribed", pattern=CHANNEL_PATTERN)
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    mailing_id = mailing_id_of(message["channel"])
                    for changed in self._listeners.get(mailing_id or 0, ()):
                        changed.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Subscribers keep polling slowly meanwhile; try again shortly.
                log.warning("progress events lost; resubscribing", exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._close(redis, pubsub))

    @staticmethod
    async def _close(redis: Redis, pubsub: object) -> None:
        await pubsub.punsubscribe()  # type: ignore[attr-defined]
        await pubsub.aclose()  # type: ignore[attr-defined]
        await redis.aclose()
