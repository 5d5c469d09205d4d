"""What one worker process counts, and its heartbeat row.

Counters live in the engine's process, and Prometheus scrapes the API, so
every few seconds the engine writes its cumulative counters to its row of
``worker_heartbeat``; the API's ``/metrics`` adds the rows up
(``graphql_api/http/metrics.py``). A worker that stops writes a last heartbeat.
"""

from __future__ import annotations

import os
import socket
from bisect import bisect_left
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from models.worker import LATENCY_BUCKETS, WorkerHeartbeat

__all__ = ["WorkerMetrics"]

_KEEP_STOPPED = timedelta(days=1)


class WorkerMetrics:
    """Cumulative counters of this worker, and the row that publishes them."""

    def __init__(self, started_at: datetime) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{int(started_at.timestamp())}"
        self.started_at = started_at
        self.outcomes: Counter[str] = Counter()
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.breaker_state = "closed"
        self.in_flight = 0

    def observe_send(self, outcome: str, latency: float) -> None:
        self.outcomes[outcome] += 1
        self.latency_counts[bisect_left(LATENCY_BUCKETS, latency)] += 1
        self.latency_sum += latency

    def snapshot(self) -> dict[str, Any]:
        return {
            "outcomes": dict(self.outcomes),
            "latency_counts": list(self.latency_counts),
            "latency_sum": self.latency_sum,
            "breaker_state": self.breaker_state,
            "in_flight": self.in_flight,
        }

    async def beat(self, now: datetime, *, stopping: bool = False) -> None:
        """Write this worker's row; forget workers that stopped long ago."""
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
        await WorkerHeartbeat.filter(seen_at__lt=now - _KEEP_STOPPED).delete()
