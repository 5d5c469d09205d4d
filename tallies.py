"""Counting in plain Python, handed to prometheus-client as totals.

Every ``inc`` or ``observe`` of prometheus-client takes a lock and, in
multiprocess mode (the worker's), checks the process id and writes a
memory-mapped file: about 10 µs, on every request the engine sends. A
tally counts in a dict and a list instead, and :meth:`flush` adds what it
counted since the last flush to the metric, one ``inc`` per series:
the process that owns it flushes about once a second and before it stops,
and a scrape of a single-process registry flushes first.

A tally belongs to one thread (the engine's loop, or the API's): counting
and flushing are not locked against each other.
"""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import Counter, Histogram

__all__ = ["CounterTally", "HistogramTally"]


class CounterTally:
    """Counts of a counter's label values, added to the counter at each flush."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._counts: dict[tuple[str, ...], int] = {}

    def inc(self, *labels: str) -> None:
        counts = self._counts
        counts[labels] = counts.get(labels, 0) + 1

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        for labels, count in counts.items():
            child = self._counter.labels(*labels) if labels else self._counter
            child.inc(count)


class HistogramTally:
    """A histogram's bucket counts and sum (one series), added to it at each flush."""

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        # Histogram.observe puts a value in the first bucket whose bound is >= it.
        self._bounds = list(histogram._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value

    def flush(self) -> None:
        counts, self._counts = self._counts, [0] * len(self._bounds)
        total, self._sum = self._sum, 0.0
        if not any(counts):
            return
        # prometheus-client has no call that observes many values at once; these
        # are the values observe() itself increments, one per bucket and the sum.
        histogram = self._histogram
        for bucket, count in zip(histogram._buckets, counts, strict=True):
            if count:
                bucket.inc(count)
        histogram._sum.inc(total)
