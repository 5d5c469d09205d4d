"""A circuit breaker that holds sending back while the provider is down.

Closed: requests flow; ``failure_threshold`` transient failures in a row
open it. Open: nothing starts for ``reset_timeout`` seconds, then it turns
half-open. Half-open: exactly one probe request may start; if the provider
answers it (sent, or even a permanent rejection: the provider is up), the
breaker closes; if the probe fails, it opens again for twice as long as last
time, at most ``max_reset_timeout``.

A permanent rejection (4xx) is the provider working as intended, so it ends
a run of failures instead of adding to it. The breaker is plain state with an
injectable clock: no tasks, no sleeping, one event loop (not thread-safe).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import structlog

if TYPE_CHECKING:
    from settings import Settings
    from tasks.provider import SendResult

__all__ = ["BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half_open"]

log = structlog.get_logger(__name__)


class CircuitBreaker:
    """Decides whether a request to the provider may start now."""

    def __init__(
        self,
        failure_threshold: int,
        reset_timeout: float,
        *,
        max_reset_timeout: float = 60.0,
        probe_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``probe_timeout``: after this long without the probe's result (its
        task was cancelled, say), another probe may start; keep it above the
        send timeout."""
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.max_reset_timeout = max(max_reset_timeout, reset_timeout)
        self.probe_timeout = probe_timeout
        self._clock = clock
        self._state: BreakerState = "closed"
        self._failures = 0
        self._open_for = reset_timeout
        self._opened_at = 0.0
        self._probe_started_at: float | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, clock: Callable[[], float] = time.monotonic
    ) -> CircuitBreaker:
        """The breaker configured by ``BREAKER_*``, its probe timeout above ``SEND_TIMEOUT``."""
        return cls(
            settings.breaker_failure_threshold,
            settings.breaker_reset_timeout,
            probe_timeout=settings.send_timeout + 5.0,
            clock=clock,
        )

    @property
    def state(self) -> BreakerState:
        """``closed``, ``open`` or ``half_open``; open turns half-open when its time is up."""
        if self._state == "open" and self._clock() >= self._opened_at + self._open_for:
            self._state = "half_open"
            self._probe_started_at = None
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """True if a request may start now; in half-open, True once, for the probe."""
        state = self.state
        if state == "closed":
            return True
        if state == "open":
            return False
        now = self._clock()
        if self._probe_started_at is not None and now - self._probe_started_at < self.probe_timeout:
            return False
        self._probe_started_at = now
        log.info("provider probe started")
        return True

    def record(self, result: SendResult) -> None:
        """Take the outcome of a request that :meth:`allow` let start."""
        provider_up = result.kind != "transient"
        state = self.state
        if state == "closed":
            if provider_up:
                self._failures = 0
                return
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open(self.reset_timeout, result)
        elif state == "half_open":
            # Whatever lands now, the probe's or a straggler's from before the
            # breaker opened, is fresh news about the provider.
            if provider_up:
                self._close()
            else:
                self._open(min(self._open_for * 2, self.max_reset_timeout), result)
        # While open, stragglers started before it opened change nothing.

    def seconds_until_probe(self) -> float:
        """How long until :meth:`allow` may say True: 0 when it may now.

        While a probe is out, the time until it would count as lost: callers
        should poll more often than that, as its answer usually comes first.
        """
        state = self.state
        now = self._clock()
        if state == "open":
            return max(0.0, self._opened_at + self._open_for - now)
        if state == "half_open" and self._probe_started_at is not None:
            return max(0.0, self._probe_started_at + self.probe_timeout - now)
        return 0.0

    def _open(self, open_for: float, result: SendResult) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._open_for = open_for
        self._probe_started_at = None
        log.warning(
            "provider circuit opened",
            open_for_s=round(open_for, 3),
            consecutive_failures=self._failures,
            error=result.error,
        )

    def _close(self) -> None:
        self._state = "closed"
        self._failures = 0
        self._open_for = self.reset_timeout
        self._probe_started_at = None
        log.info("provider circuit closed")
