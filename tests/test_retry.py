"""Backoff delays: equal jitter within bounds, capped, floored by Retry-After."""

from __future__ import annotations

import random

import pytest

from settings import Settings
from tasks.retry import MAX_RETRY_AFTER, retry_delay

SETTINGS = Settings(retry_base_delay=1.0, retry_max_delay=300.0)


class _Edge(random.Random):
    """A random source that always picks one end of the interval."""

    def __init__(self, upper: bool) -> None:
        super().__init__(0)
        self.upper = upper

    def uniform(self, a: float, b: float) -> float:
        return b if self.upper else a


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [
        (0, 0.5, 1.0),
        (1, 0.5, 1.0),
        (2, 1.0, 2.0),
        (5, 8.0, 16.0),
        (9, 128.0, 256.0),
        (10, 150.0, 300.0),
    ],
)
def test_delay_doubles_within_equal_jitter_bounds(attempts: int, low: float, high: float) -> None:
    assert retry_delay(attempts, None, SETTINGS, _Edge(upper=False)) == low
    assert retry_delay(attempts, None, SETTINGS, _Edge(upper=True)) == high
    rng = random.Random(7)
    assert all(low <= retry_delay(attempts, None, SETTINGS, rng) <= high for _ in range(200))


@pytest.mark.parametrize("attempts", [10, 60, 1_000, 10**9])
def test_delay_is_capped_at_max_delay(attempts: int) -> None:
    rng = random.Random(1)
    delays = [retry_delay(attempts, None, SETTINGS, rng) for _ in range(100)]
    assert min(delays) >= 150.0
    assert max(delays) <= 300.0


def test_delays_are_spread_not_synchronised() -> None:
    rng = random.Random(3)
    delays = {round(retry_delay(4, None, SETTINGS, rng), 3) for _ in range(50)}
    assert len(delays) > 40


def test_retry_after_is_a_floor() -> None:
    assert retry_delay(1, 42.0, SETTINGS, _Edge(upper=True)) == 42.0
    # Smaller than the backoff: the backoff wins.
    assert retry_delay(5, 1.0, SETTINGS, _Edge(upper=False)) == 8.0
    assert retry_delay(1, 0.0, SETTINGS, _Edge(upper=False)) == 0.5


def test_retry_after_is_capped() -> None:
    assert retry_delay(1, 10**9, SETTINGS, _Edge(upper=True)) == MAX_RETRY_AFTER


def test_default_random_source() -> None:
    assert 0.5 <= retry_delay(1, None, SETTINGS) <= 1.0
