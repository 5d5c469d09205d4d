"""The time limit of each request to the send API, counted in time the event loop ran.

A worker frozen with requests in flight (SIGSTOP, a VM pause, a long GC
pause) finds on resuming that every request is past its limit by the wall
clock, although most answers arrived meanwhile and sit in the socket buffers.
A limit kept by the wall clock then wins the race against the answer (reqwest
polls its timer before the response; an asyncio cancel lands before the
read), and each of those answers becomes a timeout, a retry and a second
acceptance, while the worker's breaker hears of a failing provider.

So the limit of every HTTP stack in :mod:`tasks.provider` is kept here, by
one watchdog on the worker's loop that counts only the time the loop ran: it
wakes every tick, and a wake-up more than :data:`STALL` late means the loop
(or the whole process) was not running for that time, which is given back to
every request in flight. A resumed worker so reads what arrived while it was
frozen; a request that gets no answer still times out after ``SEND_TIMEOUT``
of running time. reqwest's and httpx's own timers stay as a backstop, far
beyond (``tasks.provider._backstop``).

One watchdog serves all requests, not a timer each: a timer per request cost
aiohttp about a tenth of a request's CPU.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import structlog

__all__ = ["STALL", "SendDeadlines"]

log = structlog.get_logger(__name__)

# Seconds a wake-up of the watchdog may be late before the loop counts as
# not running: more than scheduling jitter under load, less than any freeze
# that matters next to SEND_TIMEOUT.
STALL = 0.5


class SendDeadlines:
    """One time limit for every request of a client, on the loop's running time."""

    def __init__(self, timeout: float, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self.timeout = timeout
        self._tick = min(0.1, timeout / 10)
        self._clock = clock
        # Seconds the loop was seen not running: the running time is the
        # clock's minus these.
        self.stalled = 0.0
        self._seen_at = clock()
        # Requests out: token -> (deadline in running time, task).
        self._out: dict[int, tuple[float, asyncio.Task[Any]]] = {}
        self._expired: set[int] = set()
        self._tokens = itertools.count()
        self._watchdog: asyncio.Task[None] | None = None

    def limit(self) -> _Limit:
        """An ``async with`` that raises ``TimeoutError`` when its request runs out of time."""
        return _Limit(self)

    def _running_time(self) -> float:
        """The loop's running time now; a stall since the last look is given back first."""
        now = self._clock()
        late = now - self._seen_at - self._tick
        self._seen_at = now
        if late > STALL and self._out:
            self.stalled += late
            log.warning(
                "the event loop did not run; requests in flight get the time back",
                stalled_s=round(late, 3),
                in_flight=len(self._out),
            )
        return now - self.stalled

    def _add(self, task: asyncio.Task[Any]) -> int:
        if self._watchdog is None or self._watchdog.done():
            # Nothing was out: the time since the last look stalled no request.
            self._seen_at = self._clock()
            self._watchdog = asyncio.create_task(self._watch(), name="send deadlines")
        token = next(self._tokens)
        self._out[token] = (self._running_time() + self.timeout, task)
        return token

    async def _watch(self) -> None:
        while self._out:
            await asyncio.sleep(self._tick)
            now = self._running_time()
            # The running time never goes back, so requests were added in the
            # order of their deadlines: the late ones are the first few.
            while self._out:
                token = next(iter(self._out))
                deadline, task = self._out[token]
                if deadline > now:
                    break
                del self._out[token]
                self._expired.add(token)
                task.cancel()

    async def aclose(self) -> None:
        """Stop the watchdog (the client is closing)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)


class _Limit:
    """One request's place in :class:`SendDeadlines`; its expiry is a ``TimeoutError``."""

    __slots__ = ("_cancelling", "_deadlines", "_task", "_token")

    def __init__(self, deadlines: SendDeadlines) -> None:
        self._deadlines = deadlines

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a send runs in a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._token = self._deadlines._add(task)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        deadlines = self._deadlines
        deadlines._out.pop(self._token, None)
        if self._token not in deadlines._expired:
            return
        deadlines._expired.discard(self._token)
        # The cancel is ours only if nobody else cancelled the task too.
        if exc_type is asyncio.CancelledError and self._task.uncancel() <= self._cancelling:
            raise TimeoutError from None
