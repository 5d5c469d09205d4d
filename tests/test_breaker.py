"""The circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

import pytest

from settings import Settings
from tasks.breaker import CircuitBreaker
from tasks.provider import SendResult

SENT = SendResult("sent", None, 200, None, 0.01)
REJECTED = SendResult("rejected", "HTTP 400: bad phone", 400, None, 0.01)
FAILED = SendResult("transient", "HTTP 503: down", 503, None, 0.01)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(3, 5.0, probe_timeout=30.0, clock=clock)


def _open(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        assert breaker.allow()
        breaker.record(FAILED)
    assert breaker.state == "open"


def test_closed_lets_everything_through(breaker: CircuitBreaker) -> None:
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(100))
    assert breaker.seconds_until_probe() == 0.0


def test_opens_after_threshold_consecutive_failures(breaker: CircuitBreaker) -> None:
    breaker.record(FAILED)
    breaker.record(FAILED)
    assert breaker.state == "closed"
    breaker.record(FAILED)
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.seconds_until_probe() == 5.0


@pytest.mark.parametrize("success", [SENT, REJECTED])
def test_an_answer_ends_a_run_of_failures(breaker: CircuitBreaker, success: SendResult) -> None:
    for _ in range(5):
        breaker.record(FAILED)
        breaker.record(FAILED)
        breaker.record(success)
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 0


def test_rejections_never_open_it(breaker: CircuitBreaker) -> None:
    for _ in range(100):
        breaker.record(REJECTED)
    assert breaker.state == "closed"


def test_half_open_after_reset_timeout_lets_one_probe(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _open(breaker)
    clock.advance(4.9)
    assert not breaker.allow()
    assert breaker.seconds_until_probe() == pytest.approx(0.1)
    clock.advance(0.1)
    assert breaker.state == "half_open"
    assert breaker.seconds_until_probe() == 0.0
    assert breaker.allow()
    assert not breaker.allow()
    assert not breaker.allow()
    assert breaker.seconds_until_probe() == 30.0


@pytest.mark.parametrize("answer", [SENT, REJECTED])
def test_probe_answered_closes(
    breaker: CircuitBreaker, clock: FakeClock, answer: SendResult
) -> None:
    _open(breaker)
    clock.advance(5.0)
    assert breaker.allow()
    breaker.record(answer)
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(10))


def test_failed_probe_reopens_for_twice_as_long_up_to_60s(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _open(breaker)
    waits = []
    for _ in range(6):
        waits.append(breaker.seconds_until_probe())
        clock.advance(waits[-1])
        assert breaker.allow()
        breaker.record(FAILED)
        assert breaker.state == "open"
    assert waits == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]


def test_closing_resets_the_open_time(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _open(breaker)
    clock.advance(5.0)
    breaker.allow()
    breaker.record(FAILED)
    clock.advance(10.0)
    breaker.allow()
    breaker.record(SENT)
    _open(breaker)
    assert breaker.seconds_until_probe() == 5.0


def test_stragglers_while_open_change_nothing(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _open(breaker)
    breaker.record(SENT)
    breaker.record(FAILED)
    assert breaker.state == "open"
    assert breaker.seconds_until_probe() == 5.0


def test_a_lost_probe_is_replaced_after_probe_timeout(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _open(breaker)
    clock.advance(5.0)
    assert breaker.allow()
    clock.advance(29.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()
    assert not breaker.allow()


def test_from_settings() -> None:
    settings = Settings(breaker_failure_threshold=7, breaker_reset_timeout=2.5, send_timeout=4.0)
    breaker = CircuitBreaker.from_settings(settings)
    assert breaker.failure_threshold == 7
    assert breaker.reset_timeout == 2.5
    assert breaker.probe_timeout > settings.send_timeout
