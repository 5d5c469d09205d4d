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

__all__ = ["WorkerHeartbeat"]


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
