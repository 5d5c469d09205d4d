"""This worker's own request rate limit, learnt from 429s, and the grants the pacer hands out.

A 429 says the provider's window is full: what it let through in the last
second is its limit (exactly, for a sliding window; at least, for a fixed
one, which a burst across its edge fills twice). So a round of 429s sets
the limit a little under the answers of the last second (``margin``, and
never above the limit already in force), and holds every start until
``Retry-After``. The limit then stays there, just under the ceiling that
was measured, for as long as CUBIC (RFC 8312) would take to climb back to
it, and only then probes beyond it along CUBIC's convex curve; it is lifted
once it no longer binds.

Why it does not climb back to the ceiling first, as CUBIC does: a sliding
window refuses every request while the last second holds its limit, so a
rate that comes back to the ceiling is refused within a second of reaching
it, and each round costs a whole ``Retry-After`` of nothing sent (against
300/s, 1,500 messages took 1.4-2.6 times the floor). A probe is worth
making now and then (the provider may allow more than the first burst
showed, or more than before), not every few seconds. ``margin`` 0.95: a
sliding second holds ``rate * (1 + d)`` starts when some start ``d``
seconds late, and a worker on a loaded machine starts some 50 ms late.

One round of 429s cuts once: the requests of slots granted before the cut
answer the old rate, whenever they started (``started_at`` before the end
of the schedule granted so far). Cutting again on each of them took a
worker from 291/s to 138/s in a tenth of a second.

Plain state with an injectable clock; :class:`tasks.pacing.SendPacer`
combines it with the shared cap.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from tasks.retry import MAX_RETRY_AFTER
from tasks.send_schedule import reserve_slots

__all__ = ["AdaptiveRateLimit", "Grant"]

log = structlog.get_logger(__name__)

# CUBIC's constants (RFC 8312): the limit holds for as long as the curve of
# a cut to 0.7 takes to come back (K), then grows by C (requests a second per
# second cubed) times the cube of the time since.
_DECREASE = 0.7
_CUBIC_C = 0.4
_MAX_HOLDS = 8


# Not frozen: a frozen dataclass costs three times as much to make, and
# reserve makes one per call.
@dataclass(slots=True)
class Grant:
    """``count`` start times, ``first_at + i * interval``, in the pacer's monotonic clock.

    ``retry_at`` is when asking again may grant more; with ``count == 0``,
    nothing is granted before it (``first_at`` is ``retry_at`` then).
    ``interval == 0``: all may start at ``first_at``.
    """

    count: int
    first_at: float
    interval: float
    retry_at: float

    def start_at(self, i: int) -> float:
        """The start time of slot ``i`` (``0 <= i < count``)."""
        return self.first_at + i * self.interval


class AdaptiveRateLimit:
    """This worker's own request rate limit, learnt from 429s."""

    def __init__(
        self,
        *,
        min_rate: float = 0.5,
        window: float = 1.0,
        guard: float = 1.0,
        burst: float = 0.1,
        margin: float = 0.95,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``min_rate``: the lowest limit a cut may set (requests a second).
        ``window``: seconds over which the achieved rate is measured.
        ``guard``: after a cut, 429s of requests started before it (or, when
        the caller does not say, that come within ``guard`` seconds) do not
        cut again: they answer the old rate. ``burst``: with a shared cap,
        seconds of this limit that may be asked of the cap at once.
        ``margin``: a cut sets the limit to this share of the answers of the
        last ``window``."""
        if not (min_rate > 0 and window > 0 and guard >= 0 and burst >= 0 and 0 < margin <= 1):
            raise ValueError(
                "min_rate and window must be > 0, guard and burst >= 0, margin in (0, 1]"
            )
        self.min_rate = min_rate
        self.window = window
        self.guard = guard
        self.burst = burst
        self.margin = margin
        self._clock = clock
        now = clock()
        self._active = False
        self._target = 0.0  # margin * the ceiling measured at the cut: the limit holds here
        self._recent: deque[float] = deque()  # when the answers of the last window came
        self._k = 0.0  # seconds after the cut that the limit holds before probing
        self._cut_at = -math.inf
        self._round_ends = -math.inf  # requests started before this answer the old rate
        self._round_cap = math.inf  # the limit in force when this round's first 429 came
        self._holds = 1  # K's multiple: doubles after each probe that found no more
        self._blocked_until = -math.inf
        self._tat = -math.inf  # this worker's own schedule, used while the limit is on
        self._answers = 0
        self._window_start = now
        self._roll_at = now + window
        self._last_rate = 0.0
        self._last_window_start = -math.inf

    @property
    def limit(self) -> float | None:
        """The current limit in requests a second; ``None`` when there is none (for metrics)."""
        now = self._clock()
        if now >= self._roll_at:
            self._roll(now)
        return self._limit_at(now) if self._active else None

    @property
    def blocked_until(self) -> float:
        """Nothing starts before this (a ``Retry-After``); in the past when not blocked."""
        return self._blocked_until

    def achieved_rate(self) -> float:
        """Answers a second lately: the last full window's, or the current one's if higher."""
        now = self._clock()
        if now >= self._roll_at:
            self._roll(now)
        return self._achieved(now)

    def answered(self) -> None:
        """A request was answered (a 429 too: :meth:`rate_limited` counts those itself)."""
        self._answers += 1
        self._recent.append(self._clock())

    def _answered_lately(self, now: float) -> int:
        """Answers other than 429s in the last ``window`` seconds."""
        recent = self._recent
        since = now - self.window
        while recent and recent[0] <= since:
            recent.popleft()
        return len(recent)

    def rate_limited(
        self, retry_after: float | None = None, *, started_at: float | None = None
    ) -> None:
        """A 429: honour ``retry_after`` (seconds) and cut the limit, once per round of them.

        ``started_at``: when the request started (this clock), if known.
        """
        now = self._clock()
        if now >= self._roll_at:
            self._roll(now)
        self._answers += 1
        if retry_after is not None and retry_after > 0:
            until = now + min(retry_after, MAX_RETRY_AFTER)
            self._blocked_until = max(self._blocked_until, until)
        if self._active:
            # Without a Retry-After, a sliding window still full of the last
            # round refuses whatever starts within it, at any rate.
            answers_old_rate = now - self._cut_at < self.guard or (
                started_at is not None and started_at < self._round_ends
            )
            if answers_old_rate:
                if now - self._cut_at < self.window:
                    logged = self._target
                    self._measure(now)
                    if self._target > 1.05 * logged:
                        log.info(
                            "provider rate limit measured again", limit_rps=round(self._target, 2)
                        )
                return
        achieved = self._achieved(now)
        probed = self._active and now - self._cut_at > self._k
        previous = self._target
        self._round_cap = self._limit_at(now) if self._active else math.inf
        self._target = 0.0
        self._measure(now)
        if probed:
            # A probe that found no more than the last ceiling waits twice as
            # long before the next one: each costs a round of 429s and its
            # Retry-After. One that found more starts again from one hold.
            found_more = self._target > previous / self.margin
            self._holds = 1 if found_more else min(2 * self._holds, _MAX_HOLDS)
            self._k = self._hold(self._target)
        self._cut_at = now
        # Slots granted so far were granted at the old rate, up to _tat.
        self._round_ends = max(now, self._tat)
        self._active = True
        log.warning(
            "provider rate limit: sending slower",
            limit_rps=round(self._limit_at(now), 2),
            achieved_rps=round(achieved, 2),
            retry_after_s=retry_after,
        )

    def _measure(self, now: float) -> None:
        """Set the target under what the provider let through in the last window.

        What the provider let through in its window is its limit, whatever
        a Retry-After held still meanwhile (a rate achieved over such a
        window spiralled a worker down to min_rate against one that takes
        300/s). The first 429 of a round can come back before the answers of
        requests the provider let through just before it (one in six too
        few, in a burst at 256 in flight), so each 429 of the round within a
        window of the cut measures again, and the target only rises. A
        limit in force is never raised by a cut.
        """
        ceiling = min(float(self._answered_lately(now)) / self.window, self._round_cap)
        target = max(self.margin * ceiling, self.min_rate)
        if target > self._target:
            self._target = target
            self._k = self._hold(target)

    def _hold(self, target: float) -> float:
        """Seconds the limit holds at ``target``: CUBIC's K, times ``_holds``."""
        return self._holds * float((target * (1 - _DECREASE) / _CUBIC_C) ** (1 / 3))

    def grant(self, n: int, horizon: float) -> Grant:
        """Up to ``n`` start times within ``horizon`` seconds, when there is no shared cap."""
        now = self._clock()
        if now >= self._roll_at:
            self._roll(now)
        if now < self._blocked_until:
            return Grant(0, self._blocked_until, 0.0, self._blocked_until)
        if not self._active:
            return Grant(n, now, 0.0, now)
        interval = 1.0 / self._limit_at(now)
        got = reserve_slots(self._tat, now, interval, horizon, n)
        self._tat = got.tat
        retry_at = max(got.tat - horizon, now)
        if got.count == 0:
            return Grant(0, retry_at, interval, retry_at)
        return Grant(got.count, got.first, interval, retry_at)

    def admit(self, n: int, cap_interval: float) -> tuple[int, float]:
        """How many slots may be asked of a shared cap ``cap_interval`` apart now.

        Returns ``(count, when)``: with ``count == 0``, none before ``when``.
        While the limit binds (slower than the cap), ``burst`` seconds of it
        are asked for at once, so that the cap's store sees a call per batch
        rather than one per request; the slots come closer together then
        (the cap's interval), and the batches further apart.
        """
        now = self._clock()
        if now >= self._roll_at:
            self._roll(now)
        if now < self._blocked_until:
            return 0, self._blocked_until
        if not self._active:
            return n, now
        interval = 1.0 / self._limit_at(now)
        batch = max(1, math.floor(self.burst / interval))
        # GCRA with a tolerance of batch - 1 slots: that many may start early.
        tolerance = (batch - 1) * interval
        first = max(self._tat, now)
        if interval <= cap_interval:
            # The cap spaces slots further apart than this limit would.
            return (n, now) if first - tolerance <= now else (0, first - tolerance)
        wanted = min(n, batch)
        ready_at = first - tolerance + (wanted - 1) * interval
        if ready_at > now:
            return 0, ready_at
        # A millionth of a slot absorbs rounding, so that ready means ready.
        conforming = math.floor((now + tolerance - first) / interval + 1e-6) + 1
        return min(n, max(wanted, conforming)), now

    def consume(self, count: int, first_at: float, cap_interval: float) -> None:
        """Take from this limit the ``count`` slots the shared cap granted.

        As if each slot had been taken in turn: ``tat = max(tat, start) + interval``.
        """
        if not self._active or count <= 0:
            return
        interval = 1.0 / self._limit_at(self._clock())
        last = first_at + (count - 1) * cap_interval
        self._tat = max(self._tat + count * interval, first_at + count * interval, last + interval)

    def _limit_at(self, now: float) -> float:
        probing = now - self._cut_at - self._k
        return self._target + _CUBIC_C * probing**3 if probing > 0 else self._target

    def _achieved(self, now: float) -> float:
        # A window just begun says little: count it as at least a tenth of a second.
        current = self._answers / max(now - self._window_start, 0.1)
        return max(self._last_rate, current)

    def _roll(self, now: float) -> None:
        self._answered_lately(now)  # forget the answers of windows past
        self._last_rate = self._answers / (now - self._window_start)
        self._last_window_start = self._window_start
        self._answers = 0
        self._window_start = now
        self._roll_at = now + self.window
        if not self._active:
            return
        # Lift only on a full window after the last cut and Retry-After, so that
        # a pause does not pass for a lack of demand.
        quiet_since = max(self._cut_at, self._blocked_until)
        limit = self._limit_at(now)
        if self._last_window_start >= quiet_since and limit >= 2 * self._last_rate:
            self._active = False
            self._tat = -math.inf
            log.info(
                "provider rate limit lifted",
                limit_rps=round(limit, 2),
                achieved_rps=round(self._last_rate, 2),
            )
