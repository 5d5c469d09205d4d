"""What one worker process counts, and its heartbeat row.

The figures are Prometheus metrics in :data:`REGISTRY`, which the worker
serves itself (``tasks/worker_http.py``). ``mailings worker`` runs every one
of its processes in prometheus-client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, set up by ``tasks/consumer.py``), so one port
shows all of them, and the counts of a process that ended stay in the sums:
a counter goes down only when the whole worker restarts, which Prometheus
reads as the reset it is. The per-request figures are counted in plain
Python and handed over once a second (``tallies.py``): a scrape may be up
to a second behind the engine.

The heartbeat row in ``worker_heartbeat`` only says which workers are alive
(the API's ``mailings_workers_alive``). No counter is read from it: deleting
old rows must never make a figure go down.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from models import clock
from models.worker import LATENCY_BUCKETS, WorkerHeartbeat
from tallies import CounterTally, HistogramTally

if TYPE_CHECKING:
    from tasks.breaker import CircuitBreaker
    from tasks.engine import Engine
    from tasks.liveness import LoopProgress
    from tasks.pacing import SendPacer

__all__ = [
    "CLOCK_OFFSET",
    "HEARTBEAT",
    "LOOP_PROGRESS",
    "OUTCOMES",
    "REGISTRY",
    "WorkerMetrics",
    "forget_stopped_workers",
    "sample_forever",
]

log = structlog.get_logger(__name__)

OUTCOMES = ("sent", "rejected", "rate_limited", "unauthorized", "transient")
BREAKER_STATES = ("closed", "half_open", "open")
_KEEP_STOPPED = timedelta(days=1)
_SAMPLE_INTERVAL = 1.0  # seconds between two samples of the gauges

# Not the default registry: an API process that imports this module (tests do)
# must not serve the workers' figures as its own.
REGISTRY = CollectorRegistry()

SEND_REQUESTS = Counter(
    "mailings_send_requests",
    "Requests to the send API by outcome: sent, rejected (a permanent 4xx), rate_limited"
    " (429), unauthorized (401, 403), transient (retried).",
    ["outcome"],
    registry=REGISTRY,
)
SEND_LATENCY = Histogram(
    "mailings_send_latency_seconds",
    "Latency of requests to the send API.",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
BREAKER_OPENINGS = Counter(
    "mailings_breaker_openings",
    "Times a circuit breaker opened (the provider down, or our credentials refused).",
    registry=REGISTRY,
)
LEASES_REAPED = Counter(
    "mailings_leases_reaped",
    "Messages whose lease ended without an outcome (their worker died) and that wait again.",
    registry=REGISTRY,
)
BREAKER_STATE = Gauge(
    "mailings_breaker_state",
    "Worker processes whose circuit breaker is in this state.",
    ["state"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "mailings_send_in_flight",
    "Requests to the send API in flight.",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
PACER_LIMITED = Gauge(
    "mailings_pacer_limited",
    "Worker processes slowed down by a 429 (a rate limit of their own in force).",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
PACER_RATE_LIMIT = Gauge(
    "mailings_pacer_rate_limit",
    "Requests per second allowed by the limits in force after 429s, summed over the"
    " processes that have one (0: none has).",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
PACER_MAX_RPS = Gauge(
    "mailings_pacer_max_rps",
    "PROVIDER_MAX_RPS, the cap shared by all workers (0: no cap).",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
CLOCK_OFFSET = Gauge(
    "mailings_clock_offset_seconds",
    "The database's clock minus this worker process's, as last measured; every time"
    " decision uses the database's (0 on SQLite, whose clock is the process's own).",
    multiprocess_mode="liveall",
    registry=REGISTRY,
)
HEARTBEAT = Gauge(
    "mailings_worker_heartbeat_timestamp_seconds",
    "When the event loop of each worker process last answered (Unix time).",
    multiprocess_mode="liveall",
    registry=REGISTRY,
)
LOOP_FAILURES = Counter(
    "mailings_loop_failures",
    "Rounds of the engine's long-lived loops (dispatcher, recorder, sweeper, builder) that"
    " failed; each loop goes on.",
    ["loop"],
    registry=REGISTRY,
)
LOOP_PROGRESS = Gauge(
    "mailings_loop_progress_timestamp_seconds",
    "When each loop of each worker process last finished a round well (Unix time);"
    " /readyz fails past LOOP_STALL_UNREADY.",
    ["loop"],
    multiprocess_mode="liveall",
    registry=REGISTRY,
)


class WorkerMetrics:
    """The figures of this worker process, and the heartbeat row that says it lives."""

    def __init__(self, started_at: datetime) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{int(started_at.timestamp())}"
        self.started_at = started_at
        self.breaker_state = "closed"
        self.in_flight = 0
        self.loops: dict[str, dict[str, object]] = {}
        for outcome in OUTCOMES:  # every outcome shows from the start, at 0
            SEND_REQUESTS.labels(outcome)
        # observe_send runs for every request: it counts in plain Python, and
        # flush() hands the totals to prometheus-client (tallies.py).
        self._requests = CounterTally(SEND_REQUESTS)
        self._latency = HistogramTally(SEND_LATENCY)
        self._breaker_openings_seen = 0

    def observe_send(self, outcome: str, latency: float) -> None:
        self._requests.inc(outcome)
        self._latency.observe(latency)

    def flush(self) -> None:
        """Add what was counted since the last flush to the Prometheus figures.

        ``/metrics`` is read from another thread (tasks/worker_http.py), so it
        may come between the two: the latencies go first, and a scrape that
        counts a request has its latency already (the suite waits on the count).
        """
        self._latency.flush()
        self._requests.flush()

    def loop_failed(self, loop: str) -> None:
        LOOP_FAILURES.labels(loop).inc()

    def sample_progress(self, progress: LoopProgress) -> None:
        """Each loop's last good round, as Unix time, for the probes."""
        now = time.time()
        for loop, seconds in progress.ages().items():
            LOOP_PROGRESS.labels(loop).set(now - seconds)

    def leases_reaped(self, count: int) -> None:
        if count:
            LEASES_REAPED.inc(count)

    def sample(
        self, breaker: CircuitBreaker, in_flight: int, pacer: SendPacer | None = None
    ) -> None:
        """Set the gauges from the engine's state, flush the counts, stamp the heartbeat."""
        self.flush()
        self.breaker_state = breaker.state
        self.in_flight = in_flight
        for state in BREAKER_STATES:
            BREAKER_STATE.labels(state).set(1.0 if state == self.breaker_state else 0.0)
        if breaker.openings > self._breaker_openings_seen:
            BREAKER_OPENINGS.inc(breaker.openings - self._breaker_openings_seen)
            self._breaker_openings_seen = breaker.openings
        IN_FLIGHT.set(in_flight)
        if pacer is not None:
            limit = pacer.limit
            PACER_LIMITED.set(0.0 if limit is None else 1.0)
            PACER_RATE_LIMIT.set(0.0 if limit is None else limit)
            PACER_MAX_RPS.set(pacer.max_rps or 0.0)
        offset = clock.database_offset()
        if offset is not None:
            CLOCK_OFFSET.set(offset)
        HEARTBEAT.set(time.time())

    def snapshot(self) -> dict[str, object]:
        """What the heartbeat row shows a person reading the table; nothing adds it up."""
        return {
            "breaker_state": self.breaker_state,
            "in_flight": self.in_flight,
            "loops": self.loops,
        }

    async def beat(self, now: datetime, *, stopping: bool = False) -> None:
        """Write this worker's row; forget workers that stopped long ago.

        The counts are flushed first, so the last ones of a stopping process
        stay in the multiprocess sums.
        """
        self.flush()
        updated = await WorkerHeartbeat.filter(id=self.worker_id).update(
            seen_at=now, metrics=self.snapshot(), stopped_at=now if stopping else None
        )
        if not updated:
            await WorkerHeartbeat.create(
                id=self.worker_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                started_at=self.started_at,
                seen_at=now,
                metrics=self.snapshot(),
            )
        await forget_stopped_workers(now)


async def forget_stopped_workers(now: datetime) -> None:
    """Delete the rows of workers not seen for a day (the heartbeat clean-up)."""
    await WorkerHeartbeat.filter(seen_at__lt=now - _KEEP_STOPPED).delete()


async def sample_forever(engine: Engine, breaker: CircuitBreaker, pacer: SendPacer) -> None:
    """Every second, on the engine's loop: the gauges, and the proof that the loop answers."""
    while True:
        try:
            engine.metrics.sample(breaker, len(engine.in_flight), pacer)
            engine.metrics.sample_progress(engine.progress)
        except Exception:
            log.exception("worker figures not sampled")
        await asyncio.sleep(_SAMPLE_INTERVAL)
