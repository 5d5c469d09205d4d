"""When each request to the send API may start: the shared cap and this worker's 429 limit.

A 429 means "slower", not "down" (docs/sending.md, "429: slower, not down"):
the engine lowers its rate (honouring Retry-After) and never exceeds
PROVIDER_MAX_RPS across all workers when that is set; a rate limit never
opens the breaker. The engine asks a
:class:`SendPacer` for start times before it starts requests, and tells it
which answers were 429s. Every slot it grants satisfies two limits:

- **The shared cap** (``PROVIDER_MAX_RPS``, ``tasks/send_schedule.py``): the
  workers reserve the start times of their requests in one schedule (GCRA),
  in Redis or in the database, in that store's clock. Reserving start times,
  not counting requests per second: a counter per second lets ``2R`` through
  across the edge of two seconds (``R`` at the end of one, ``R`` at the start
  of the next), and a sliding log of every request costs a write per request.
  Reserved slots are at least ``1/R`` apart whoever holds them, so any
  sliding second holds at most ``R + 1`` starts; only the network's jitter
  (a worker starting a slot a little late) can bunch them further. A worker
  reserves a batch at a time, at most ``horizon`` ahead, so the store sees a
  few calls per second per worker, not one per request.
- **This worker's adaptive limit** (``tasks/adaptive_rate.py``), which needs
  no setting: a 429 sets the worker's rate a little under what the provider
  let through in the last second, and nothing starts until its
  ``Retry-After`` has passed (for every message, not only the one that got
  it: the engine hands back the slots granted before it). Without 429s the
  limit holds just under that ceiling, then probes beyond it along CUBIC's
  curve (RFC 8312, as the AWS SDKs' adaptive retry mode does), less often
  after each probe that found nothing more; once it is twice what the
  worker achieves it no longer binds, and it is lifted. It is plain state
  with an injectable clock, like the breaker.

Cost: with no cap and no 429 lately, :meth:`SendPacer.reserve` reads the
clock, makes a few comparisons and returns one :class:`Grant` for the
whole batch: no I/O and nothing per message. :meth:`SendPacer.accepted`
adds one to a counter and its time to a queue of the last second's
answers (``bench/bench_pacing.py`` measures both).

Failures: if the store of the shared cap fails (Redis or the database down),
:meth:`SendPacer.reserve` grants nothing and says to ask again in a second,
with a warning (again every 30 s while it lasts). Sending holds rather than
risk exceeding the cap; it resumes by itself once the store answers again.

Clocks: grants are in this process's ``time.monotonic()`` seconds (the
pacer's clock), so ``await asyncio.sleep(grant.first_at - time.monotonic())``
waits for the first slot. A start time already past means "now".
One event loop and no threads, like the breaker; concurrent calls to
:meth:`SendPacer.reserve` with a cap are served one after the other.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from tasks.adaptive_rate import AdaptiveRateLimit, Grant
from tasks.send_schedule import DatabaseSchedule, RedisSchedule, Schedule, SharedCap

if TYPE_CHECKING:
    from settings import Settings

__all__ = ["Grant", "SendPacer"]

log = structlog.get_logger(__name__)

# Seconds between two warnings while the store of the shared cap fails.
_FAILURE_LOG_EVERY = 30.0


class SendPacer:
    """The engine's one question before starting requests: when may they start?"""

    def __init__(
        self,
        cap: SharedCap | None = None,
        *,
        limit: AdaptiveRateLimit | None = None,
        horizon: float = 0.5,
        failure_delay: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``cap``: the shared ``PROVIDER_MAX_RPS`` schedule, if any. ``horizon``:
        how far ahead slots are granted without a cap (the cap has its own).
        ``failure_delay``: seconds to wait when the cap's store fails."""
        self._cap = cap
        self._local = limit or AdaptiveRateLimit(clock=clock)
        self._horizon = cap.horizon if cap is not None else horizon
        self._failure_delay = failure_delay
        self._clock = clock
        self._lock = asyncio.Lock()
        self._failing_since: float | None = None
        self._failure_logged_at = -math.inf

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        horizon: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> SendPacer:
        """The pacer that settings ask for: the cap's schedule in Redis, else in the database."""
        cap = None
        if settings.provider_max_rps is not None:
            schedule: Schedule
            if settings.redis_url:
                key = f"mailings:send-schedule:{settings.queue_name}"
                schedule = RedisSchedule(settings.redis_url, key)
            else:
                schedule = DatabaseSchedule(settings.queue_name)
            cap = SharedCap(schedule, settings.provider_max_rps, horizon=horizon, clock=clock)
        return cls(cap, horizon=horizon, clock=clock)

    @property
    def max_rps(self) -> float | None:
        """``PROVIDER_MAX_RPS``, the shared cap; ``None`` when there is none."""
        return self._cap.max_rps if self._cap is not None else None

    @property
    def limit(self) -> float | None:
        """This worker's own limit after 429s, requests a second; ``None`` when there is none."""
        return self._local.limit

    @property
    def blocked_until(self) -> float:
        """Nothing is granted before this (a ``Retry-After``)."""
        return self._local.blocked_until

    async def reserve(self, n: int) -> Grant:
        """Start times for up to ``n`` requests, none more than the horizon ahead.

        A partial or empty grant's ``retry_at`` says when to ask again.
        """
        if n < 1:
            raise ValueError(f"reserve at least one slot, not {n}")
        if self._cap is None:
            return self._local.grant(n, self._horizon)
        async with self._lock:
            return await self._reserve_capped(self._cap, n)

    def rate_limited(
        self, retry_after: float | None = None, *, started_at: float | None = None
    ) -> None:
        """A request got a 429 (``retry_after``: its ``Retry-After`` in seconds, if any)."""
        self._local.rate_limited(retry_after, started_at=started_at)

    def accepted(self) -> None:
        """A request was answered with anything but a 429."""
        self._local.answered()

    async def aclose(self) -> None:
        if self._cap is not None:
            await self._cap.aclose()

    async def _reserve_capped(self, cap: SharedCap, n: int) -> Grant:
        asked, when = self._local.admit(n, cap.interval)
        if asked == 0:
            return Grant(0, when, 0.0, when)
        try:
            got = await cap.reserve(asked)
        except Exception as error:
            return self._failed(error)
        if self._failing_since is not None:
            log.info(
                "send schedule answers again",
                failed_for_s=round(self._clock() - self._failing_since, 1),
            )
            self._failing_since = None
        blocked_until = self._local.blocked_until
        if got.now < blocked_until:
            # A 429 came while we waited: its Retry-After holds these slots too.
            return Grant(0, blocked_until, 0.0, blocked_until)
        self._local.consume(got.count, got.first, cap.interval)
        retry_at = max(got.tat - cap.horizon, got.now)
        if got.count == 0:
            return Grant(0, retry_at, cap.interval, retry_at)
        return Grant(got.count, got.first, cap.interval, retry_at)

    def _failed(self, error: Exception) -> Grant:
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failure_logged_at >= _FAILURE_LOG_EVERY:
            self._failure_logged_at = now
            log.warning(
                "send schedule unavailable; sending holds",
                error=f"{type(error).__name__}: {error}",
                retry_in_s=self._failure_delay,
            )
        retry_at = now + self._failure_delay
        return Grant(0, retry_at, 0.0, retry_at)
