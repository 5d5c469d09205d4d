"""``/metrics``: Prometheus figures of the API process and of every worker.

The API's own figures (GraphQL operations and their latency) live in this
process. The workers' figures (send attempts by outcome, send latency,
breaker state, requests in flight) come from their heartbeat rows, added up
at scrape time, so they show wherever Prometheus scrapes the API. Messages
by status come from the counters table, mailings by status and the queue
depth from their sources, each read when scraped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from strawberry.extensions import SchemaExtension

from models import MessageStatus, WorkerHeartbeat
from models.db import connection
from models.queries.counters import summed_counters
from models.queries.mailings import mailings_by_status
from models.worker import LATENCY_BUCKETS
from tasks import hooks

__all__ = ["OperationMetrics", "metrics_endpoint"]

_ALIVE = timedelta(seconds=30)
_BREAKER_STATES = ("closed", "half_open", "open")

GRAPHQL_OPERATIONS = Counter(
    "mailings_graphql_operations_total",
    "GraphQL operations handled by this API process.",
    ["type", "outcome"],
)
GRAPHQL_LATENCY = Histogram(
    "mailings_graphql_operation_seconds",
    "Time to execute a GraphQL operation in this API process.",
    ["type"],
)


class OperationMetrics(SchemaExtension):
    """Counts and times every operation (subscriptions: until their first result)."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        kind = context.operation_type.value if context.operation_type else "invalid"
        errors = context.result.errors if context.result is not None else None
        outcome = "error" if errors or context.pre_execution_errors else "ok"
        GRAPHQL_OPERATIONS.labels(kind, outcome).inc()
        GRAPHQL_LATENCY.labels(kind).observe(time.perf_counter() - started)


class _Snapshot(Collector):
    """Figures read from the database and the queue for one scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


async def _message_and_mailing_families() -> list[Metric]:
    conn = connection()
    totals = await summed_counters(conn, include_deleted=True)
    messages = GaugeMetricFamily(
        "mailings_messages", "Messages by status, all mailings.", labels=["status"]
    )
    for status in MessageStatus:
        messages.add_metric([status.value], float(totals.as_dict()[status.value.lower()]))
    rows = await mailings_by_status(conn)
    mailings = GaugeMetricFamily("mailings_mailings", "Mailings by status.", labels=["status"])
    for row in rows:
        mailings.add_metric([str(row["status"])], float(row["n"]))
    return [messages, mailings]


async def _worker_families(now: datetime) -> list[Metric]:
    beats = await WorkerHeartbeat.all()
    outcomes: dict[str, float] = {}
    buckets = [0] * (len(LATENCY_BUCKETS) + 1)
    latency_sum = 0.0
    alive = GaugeMetricFamily("mailings_workers_alive", "Worker processes seen in the last 30 s.")
    breaker = GaugeMetricFamily(
        "mailings_breaker_state",
        "Circuit breaker of each live worker: 1 for its current state.",
        labels=["worker", "state"],
    )
    in_flight = GaugeMetricFamily(
        "mailings_send_in_flight", "Requests to the send API in flight, live workers."
    )
    live = flying = 0
    for beat in beats:
        figures: dict[str, Any] = beat.metrics or {}
        for outcome, n in figures.get("outcomes", {}).items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
        for i, n in enumerate(figures.get("latency_counts", [])[: len(buckets)]):
            buckets[i] += n
        latency_sum += figures.get("latency_sum", 0.0)
        if beat.stopped_at is None and now - beat.seen_at < _ALIVE:
            live += 1
            flying += figures.get("in_flight", 0)
            state = figures.get("breaker_state", "closed")
            for name in _BREAKER_STATES:
                breaker.add_metric([beat.id, name], 1.0 if name == state else 0.0)
    alive.add_metric([], live)
    in_flight.add_metric([], flying)
    requests = CounterMetricFamily(
        "mailings_send_requests",
        "Requests to the send API by outcome (sent, rejected, rate_limited, unauthorized,"
        " transient), all workers.",
        labels=["outcome"],
    )
    for outcome in ("sent", "rejected", "rate_limited", "unauthorized", "transient"):
        requests.add_metric([outcome], outcomes.get(outcome, 0))
    cumulative, running = [], 0
    for bound, n in zip((*LATENCY_BUCKETS, float("inf")), buckets, strict=True):
        running += n
        cumulative.append(("+Inf" if bound == float("inf") else str(bound), float(running)))
    latency = HistogramMetricFamily(
        "mailings_send_latency_seconds",
        "Latency of requests to the send API, all workers.",
        buckets=cumulative,
        sum_value=latency_sum,
    )
    return [requests, latency, alive, breaker, in_flight]


async def _queue_families() -> list[Metric]:
    pending, scheduled = await hooks.queue_depth()
    depth = GaugeMetricFamily("mailings_queue_depth", "Huey tasks waiting.", labels=["kind"])
    depth.add_metric(["pending"], float(pending))
    depth.add_metric(["scheduled"], float(scheduled))
    return [depth]


async def metrics_endpoint(_: Request) -> Response:
    now = datetime.now(UTC)
    families = [
        *await _message_and_mailing_families(),
        *await _worker_families(now),
        *await _queue_families(),
    ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    body = generate_latest(REGISTRY) + generate_latest(registry)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
