"""One Redis subscription per API process, fanned out to its progress subscribers.

Every ``mailingProgress`` subscriber of this process registers an
:class:`asyncio.Event` for its mailing; one pattern subscription to
``mailings:progress:*`` sets them. The subscription exists only while
someone listens: within a second of the last subscriber leaving, the reader
unsubscribes, closes its connection and ends, so subscribers that go away
leave nothing behind in Redis or in the process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from redis.asyncio import Redis

from tasks import hooks

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

    async def _read(self) -> None:
        """Serve while anyone listens, then unsubscribe and close.

        The reader is never cancelled: a pub/sub connection cancelled in the
        middle of a read could not always be closed, and kept its pattern
        subscription on the server. It polls for a second at a time and
        stops by itself once the last listener has left; the check of
        ``_listeners`` and the return have no await between them, so a new
        listener either finds it running or starts a new one.
        """
        while self._listeners:
            redis = Redis.from_url(self._redis_url, client_name=self._client_name)
            pubsub = redis.pubsub()
            try:
                await pubsub.psubscribe(hooks.PROGRESS_CHANNELS)
                log.info("progress events subscribed", pattern=hooks.PROGRESS_CHANNELS)
                while self._listeners:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None or message.get("type") != "pmessage":
                        continue
                    mailing_id = hooks.progress_mailing_id(message["channel"])
                    for changed in self._listeners.get(mailing_id or 0, ()):
                        changed.set()
            except Exception:
                # Subscribers keep polling slowly meanwhile; try again shortly.
                log.warning("progress events lost; resubscribing", exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await self._close(redis, pubsub)

    @staticmethod
    async def _close(redis: Redis, pubsub: object) -> None:
        await pubsub.punsubscribe()  # type: ignore[attr-defined]
        await pubsub.aclose()  # type: ignore[attr-defined]
        await redis.aclose()
