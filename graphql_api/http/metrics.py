"""``/metrics``: Prometheus figures of the API process, and the database's gauges.

The API's own figures (GraphQL operations and their latency) live in this
process. Messages by status come from the counters table; mailings by
status, live workers (their heartbeat rows) and the queue depth from their
sources, each read when scraped. The workers' own figures (requests to the
send API, their latency, breakers, pacing) are on each worker's ``/metrics``
(``tasks/worker_http.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from strawberry.extensions import SchemaExtension

from models import MessageStatus, WorkerHeartbeat, clock
from models.db import connection
from models.queries.counters import summed_counters
from models.queries.mailings import mailings_by_status
from tallies import CounterTally, HistogramTally
from tasks import hooks

__all__ = ["OperationMetrics", "metrics_endpoint"]

# Heartbeats come every 5 s: a worker killed outright counts as gone within 15 s.
_ALIVE = timedelta(seconds=15)

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
# Counted in plain Python on every operation, handed over at each scrape (tallies.py).
_OPERATIONS = CounterTally(GRAPHQL_OPERATIONS)
_LATENCIES: dict[str, HistogramTally] = {}


def _flush_operations() -> None:
    _OPERATIONS.flush()
    for tally in _LATENCIES.values():
        tally.flush()


class OperationMetrics(SchemaExtension):
    """Counts and times every operation (subscriptions: until their first result)."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        kind = context.operation_type.value if context.operation_type else "invalid"
        errors = context.result.errors if context.result is not None else None
        outcome = "error" if errors or context.pre_execution_errors else "ok"
        _OPERATIONS.inc(kind, outcome)
        latency = _LATENCIES.get(kind)
        if latency is None:
            latency = _LATENCIES[kind] = HistogramTally(GRAPHQL_LATENCY.labels(kind))
        latency.observe(time.perf_counter() - started)


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
    # A gauge, read from rows that only say who is alive: the workers' counters
    # are served by the workers themselves, never summed from rows that a
    # clean-up deletes (which Prometheus would read as a counter reset).
    live = await WorkerHeartbeat.filter(stopped_at=None, seen_at__gt=now - _ALIVE).count()
    alive = GaugeMetricFamily(
        "mailings_workers_alive",
        f"Worker processes that wrote a heartbeat in the last {_ALIVE.seconds} s.",
    )
    alive.add_metric([], float(live))
    return [alive]


async def _queue_families() -> list[Metric]:
    pending, scheduled = await hooks.queue_depth()
    depth = GaugeMetricFamily("mailings_queue_depth", "Huey tasks waiting.", labels=["kind"])
    depth.add_metric(["pending"], float(pending))
    depth.add_metric(["scheduled"], float(scheduled))
    return [depth]


async def metrics_endpoint(_: Request) -> Response:
    now = clock.now()  # the heartbeats' clock: the database's
    families = [
        *await _message_and_mailing_families(),
        *await _worker_families(now),
        *await _queue_families(),
    ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    _flush_operations()
    body = generate_latest(REGISTRY) + generate_latest(registry)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
