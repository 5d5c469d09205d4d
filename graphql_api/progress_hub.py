"""One source of progress news per API process, fanned out to its subscribers.

With Redis, :class:`ProgressHub`: one pattern subscription for every mailing.
Without it, :class:`PollingHub`: one database poll per watched mailing, every
``interval`` seconds, however many subscribers watch it (1,000 subscribers
that each polled took 65 % of the API's CPU); a subscriber re-reads only
when the poll saw its mailing change.

Every ``mailingProgress`` subscriber of this process registers an
:class:`asyncio.Event` for its mailing; one pattern subscription to
``<QUEUE_NAME>:progress:*`` sets them. The subscription exists only while
someone listens: within a second of the last subscriber leaving, the reader
unsubscribes, closes its connection and ends, so subscribers that go away
leave nothing behind in Redis or in the process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator

import structlog
from redis.asyncio import Redis

from tasks import hooks

__all__ = ["PollingHub", "ProgressHub"]

log = structlog.get_logger(__name__)


@contextlib.contextmanager
def _listening(
    listeners: dict[int, set[asyncio.Event]], mailing_id: int
) -> Iterator[asyncio.Event]:
    """A new event among the mailing's listeners, removed again (its set too, once empty)."""
    changed = asyncio.Event()
    listeners.setdefault(mailing_id, set()).add(changed)
    try:
        yield changed
    finally:
        events = listeners.get(mailing_id, set())
        events.discard(changed)
        if not events:
            listeners.pop(mailing_id, None)


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
        with _listening(self._listeners, mailing_id) as changed:
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="progress-hub")
            yield changed

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
                pattern = hooks.progress_channels()
                await pubsub.psubscribe(pattern)
                log.info("progress events subscribed", pattern=pattern)
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


class PollingHub:
    """One poll per mailing with listeners; each listener's event is set when the poll changes.

    ``probe`` reads what a change means (a mailing's status and counts, or
    ``None`` once it is gone). Like :class:`ProgressHub`'s reader, a poller
    is never cancelled: it ends by itself at its first poll with nobody left.
    """

    def __init__(self, probe: Callable[[int], Awaitable[Hashable]], interval: float = 0.5) -> None:
        self._probe = probe
        self._interval = interval
        self._listeners: dict[int, set[asyncio.Event]] = {}
        self._pollers: dict[int, asyncio.Task[None]] = {}
        self.polls = 0  # every probe made, for tests and the curious

    @property
    def pollers(self) -> int:
        return sum(1 for task in self._pollers.values() if not task.done())

    @contextlib.asynccontextmanager
    async def listen(self, mailing_id: int) -> AsyncIterator[asyncio.Event]:
        with _listening(self._listeners, mailing_id) as changed:
            poller = self._pollers.get(mailing_id)
            if poller is None or poller.done():
                self._pollers[mailing_id] = asyncio.create_task(
                    self._poll(mailing_id), name=f"progress-poll-{mailing_id}"
                )
            yield changed

    async def _poll(self, mailing_id: int) -> None:
        last: Hashable = None
        first = True
        while mailing_id in self._listeners:
            try:
                seen = await self._probe(mailing_id)
                self.polls += 1
            except Exception:
                log.warning("progress poll failed", mailing_id=mailing_id, exc_info=True)
            else:
                if first or seen != last:
                    for changed in self._listeners.get(mailing_id, ()):
                        changed.set()
                last, first = seen, False
            await asyncio.sleep(self._interval)
        self._pollers.pop(mailing_id, None)
