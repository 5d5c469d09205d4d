"""tallies.py: counts handed over in totals read back as the same figures."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from models.worker import LATENCY_BUCKETS
from tallies import CounterTally, HistogramTally


def _figures(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def _pair(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
    counter = Counter("requests", "Requests.", ["outcome"], registry=registry)
    histogram = Histogram("latency_seconds", "Latency.", buckets=LATENCY_BUCKETS, registry=registry)
    return counter, histogram


def test_a_tally_flushed_now_and_then_reads_as_every_value_observed() -> None:
    direct, tallied = CollectorRegistry(), CollectorRegistry()
    counter, histogram = _pair(direct)
    tallied_counter, tallied_histogram = _pair(tallied)
    counts, latencies = CounterTally(tallied_counter), HistogramTally(tallied_histogram)
    draw = random.Random(22)
    # Values on the buckets' bounds too: a bound belongs to its own bucket.
    values = [draw.choice([*LATENCY_BUCKETS, draw.uniform(0, 12)]) for _ in range(5_000)]
    for i, value in enumerate(values):
        outcome = draw.choice(["sent", "transient", "rejected"])
        counter.labels(outcome).inc()
        histogram.observe(value)
        counts.inc(outcome)
        latencies.observe(value)
        if i % 997 == 0:
            counts.flush()
            latencies.flush()
    assert _figures(tallied) != _figures(direct)  # the tail is not handed over yet
    counts.flush()
    latencies.flush()
    latencies.flush()  # nothing new: adds nothing
    # The sum, added up in another order, may differ in its last bits.
    assert _figures(tallied) == pytest.approx(_figures(direct), rel=1e-12)
