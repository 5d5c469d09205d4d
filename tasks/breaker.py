"""A circuit breaker that holds sending back while the provider is down or refuses us.

Closed: requests flow; ``failure_threshold`` transient failures in a row
open it, and so does a single refusal of our credentials (401/403: it is
about every message, so there is nothing to gain from more). Open: nothing
starts for the open time, then it turns half-open. Half-open: exactly one
probe request may start, whatever is still in flight from before; if the
provider answers it as a working provider would (sent, a permanent
rejection of that message, or a 429: it is up, only busy), the breaker
closes; if the probe fails, it opens again for twice as long, at most
``max_reset_timeout``.

Every request that :meth:`allow` lets start gets a ticket, the breaker's
epoch at that moment; the epoch moves on each time the breaker opens, so a
late answer to a request started before (a straggler that hung) never counts
against the probe or a new closed period.

Plain state with an injectable clock: no tasks, no sleeping, one event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import structlog

if TYPE_CHECKING:
    from settings import Settings
    from tasks.send_results import SendResult

__all__ = ["BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half_open"]

log = structlog.get_logger(__name__)

# Answers a working provider gives: they end a run of failures.
_PROVIDER_UP = frozenset({"sent", "rejected", "rate_limited"})


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
        self._epoch = 0
        self._failures = 0
        self._open_for = reset_timeout
        self._opened_at = 0.0
        self._probe_started_at: float | None = None
        self._probe_ticket: int | None = None
        # Why it is open: "down" or "unauthorized" (credentials refused).
        self.reason = "down"
        # Times it opened, ever: the worker's metrics turn it into a counter.
        self.openings = 0

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

    def allow(self) -> int | None:
        """A ticket if a request may start now (in half-open, once, for the probe); else None."""
        state = self.state
        if state == "closed":
            return self._epoch
        if state == "open":
            return None
        now = self._clock()
        if self._probe_started_at is not None and now - self._probe_started_at < self.probe_timeout:
            return None
        # A probe that never reported (cancelled) gives way to a new one, in a new epoch.
        if self._probe_started_at is not None:
            self._epoch += 1
        self._probe_started_at = now
        self._probe_ticket = self._epoch
        log.info("provider probe started", reason=self.reason)
        return self._epoch

    def record(self, result: SendResult, ticket: int) -> None:
        """Take the outcome of a request that :meth:`allow` let start with ``ticket``."""
        if ticket != self._epoch:
            return  # started before the breaker last opened: old news
        state = self.state
        kind = result.kind
        if state == "closed":
            if kind in _PROVIDER_UP:
                self._failures = 0
            elif kind == "unauthorized":
                self._open(self.reset_timeout, result, "unauthorized")
            else:
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    self._open(self.reset_timeout, result, "down")
        elif state == "half_open" and ticket == self._probe_ticket:
            if kind in _PROVIDER_UP:
                self._close()
            else:
                reason = "unauthorized" if kind == "unauthorized" else "down"
                self._open(min(self._open_for * 2, self.max_reset_timeout), result, reason)

    def seconds_until_probe(self) -> float:
        """How long until :meth:`allow` may give a ticket: 0 when it may now.

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

    def _open(self, open_for: float, result: SendResult, reason: str) -> None:
        self._state = "open"
        self.openings += 1
        self._epoch += 1
        self._opened_at = self._clock()
        self._open_for = open_for
        self._probe_started_at = None
        self._probe_ticket = None
        self.reason = reason
        if reason == "unauthorized":
            log.error(
                "provider refused our credentials; sending holds until it accepts them"
                " (check PROVIDER_TOKEN)",
                status_code=result.status_code,
                open_for_s=round(open_for, 3),
                error=result.error,
            )
        else:
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
        self._probe_ticket = None
        log.info("provider circuit closed", after=self.reason)
        self.reason = "down"
