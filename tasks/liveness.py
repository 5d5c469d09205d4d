"""Liveness is progress: what each of the engine's long-lived loops last did, and when.

A worker process can be alive, its event loop answering, and still do
nothing: a loop that fails every round (its database gone, a bug) is not
working. Each loop reports the end of every round here, done or failed; the
heartbeat row shows it, ``/readyz`` fails while a loop has not finished a
round for ``LOOP_STALL_UNREADY`` seconds, and past ``LOOP_STALL_EXIT`` the
worker exits so that its supervisor starts a healthy one
(:class:`StallWatch`, a thread: a frozen event loop cannot watch itself).
The :class:`Heartbeat` writes the worker's row every few seconds, with what
each loop last did.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Sized
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from tasks.breaker import CircuitBreaker
    from tasks.worker_metrics import WorkerMetrics

__all__ = ["LOOPS", "Heartbeat", "LoopProgress", "StallWatch"]

log = structlog.get_logger(__name__)

# The loops whose progress counts; the heartbeat's only says the loop answers.
LOOPS = ("dispatcher", "recorder", "sweeper", "builder")

_HEARTBEAT_INTERVAL = 5.0  # seconds between two writes of this worker's counters


@dataclass
class _Loop:
    done_at: float
    what: str = "started"
    failures: int = 0
    failing_since: float | None = None
    last_error: str | None = None


class LoopProgress:
    """The last round of each loop: when it ended well, what it did, what failed since."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        now = monotonic()
        self._loops = {name: _Loop(done_at=now) for name in LOOPS}
        self.on_failure: Callable[[str], None] = lambda _name: None

    def done(self, loop: str, what: str) -> None:
        """A round of ``loop`` ended well, having done ``what``."""
        state = self._loops[loop]
        state.done_at = self._monotonic()
        state.what = what
        state.failing_since = None

    def failed(self, loop: str, error: BaseException) -> None:
        """A round of ``loop`` raised ``error``; the loop goes on."""
        state = self._loops[loop]
        state.failures += 1
        state.last_error = type(error).__name__
        if state.failing_since is None:
            state.failing_since = self._monotonic()
        self.on_failure(loop)

    def stalled_for(self, loop: str) -> float:
        """Seconds since ``loop`` last ended a round well."""
        return self._monotonic() - self._loops[loop].done_at

    def ages(self) -> dict[str, float]:
        """Seconds since each loop last ended a round well."""
        return {name: self.stalled_for(name) for name in LOOPS}

    def worst(self) -> tuple[str, float]:
        """The loop that has gone longest without a good round, and for how long."""
        name = max(LOOPS, key=self.stalled_for)
        return name, self.stalled_for(name)

    def snapshot(self) -> dict[str, dict[str, object]]:
        """For the heartbeat row: each loop's last good round, its age, its failures."""
        return {
            name: {
                "last": state.what,
                "seconds_ago": round(self.stalled_for(name), 1),
                "failures": state.failures,
                "last_error": state.last_error,
            }
            for name, state in self._loops.items()
        }


class StallWatch:
    """A thread that stops the worker (SIGTERM, so gracefully) when a loop stalls too long."""

    def __init__(self, progress: LoopProgress, exit_after: float, *, interval: float = 1.0) -> None:
        self._progress = progress
        self._exit_after = exit_after
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stall-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        while not self._stopped.wait(self._interval):
            loop, seconds = self._progress.worst()
            if seconds > self._exit_after:
                log.error(
                    "a worker loop made no progress; stopping the worker for its supervisor",
                    loop=loop,
                    stalled_s=round(seconds, 1),
                )
                os.kill(os.getpid(), signal.SIGTERM)
                return


class Heartbeat:
    """Writes this worker's row: its breaker, its requests in flight, each loop's last round."""

    def __init__(
        self,
        metrics: WorkerMetrics,
        progress: LoopProgress,
        breaker: CircuitBreaker,
        in_flight: Sized,
        clock: Callable[[], datetime],
    ) -> None:
        self._metrics = metrics
        self._progress = progress
        self._breaker = breaker
        self._in_flight = in_flight
        self._clock = clock

    async def run(self, stopping: asyncio.Event) -> None:
        """Beat every few seconds until ``stopping`` is set."""
        while not stopping.is_set():
            await self.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), _HEARTBEAT_INTERVAL)

    async def beat(self, *, stopping: bool = False) -> None:
        """Write the row once; a failure is logged, and the next beat tries again."""
        self._metrics.breaker_state = self._breaker.state
        self._metrics.in_flight = len(self._in_flight)
        self._metrics.loops = self._progress.snapshot()
        try:
            await self._metrics.beat(self._clock(), stopping=stopping)
        except Exception:
            log.warning("heartbeat not written", exc_info=True)
