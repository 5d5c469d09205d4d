"""Worker heartbeats: which workers are alive, and what they have done.

Each worker process writes its row every few seconds with its counters
(send attempts by outcome, a latency histogram, the breaker's state), so the
API's ``/metrics`` shows the workers' figures wherever Prometheus scrapes it,
however many worker processes run, on whichever machine.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

__all__ = ["LATENCY_BUCKETS", "WorkerHeartbeat"]

# The upper bounds (seconds) of the send latency histogram in ``metrics``.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerHeartbeat(Model):
    id = fields.CharField(max_length=128, primary_key=True)  # host:pid:start
    hostname = fields.CharField(max_length=255)
    pid = fields.IntField()
    started_at = fields.DatetimeField()
    seen_at = fields.DatetimeField()
    stopped_at = fields.DatetimeField(null=True)
    metrics: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "worker_heartbeat"
        indexes = (("seen_at",),)
