"""The circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

import pytest

from settings import Settings
from tasks.breaker import CircuitBreaker
from tasks.send_results import SendResult

SENT = SendResult("sent", None, 200, None, 0.01)
REJECTED = SendResult("rejected", "HTTP 400: bad phone", 400, None, 0.01)
FAILED = SendResult("transient", "HTTP 503: down", 503, None, 0.01)
SLOW_DOWN = SendResult("rate_limited", "HTTP 429: slow down", 429, 1.0, 0.01)
REFUSED = SendResult("unauthorized", "HTTP 401: bad token", 401, None, 0.01)


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


def _send(breaker: CircuitBreaker, result: SendResult) -> None:
    """One request that the breaker let start, answered with ``result``."""
    ticket = breaker.allow()
    assert ticket is not None
    breaker.record(result, ticket)


def _open(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        _send(breaker, FAILED)
    assert breaker.state == "open"


def test_closed_lets_everything_through(breaker: CircuitBreaker) -> None:
    assert breaker.state == "closed"
    assert all(breaker.allow() is not None for _ in range(100))
    assert breaker.seconds_until_probe() == 0.0


def test_opens_after_threshold_consecutive_failures(breaker: CircuitBreaker) -> None:
    _send(breaker, FAILED)
    _send(breaker, FAILED)
    assert breaker.state == "closed"
    _send(breaker, FAILED)
    assert breaker.state == "open"
    assert breaker.allow() is None
    assert breaker.seconds_until_probe() == 5.0


@pytest.mark.parametrize("success", [SENT, REJECTED, SLOW_DOWN])
def test_an_answer_ends_a_run_of_failures(breaker: CircuitBreaker, success: SendResult) -> None:
    for _ in range(5):
        _send(breaker, FAILED)
        _send(breaker, FAILED)
        _send(breaker, success)
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 0


@pytest.mark.parametrize("answer", [REJECTED, SLOW_DOWN])
def test_rejections_and_rate_limits_never_open_it(
    breaker: CircuitBreaker, answer: SendResult
) -> None:
    for _ in range(100):
        _send(breaker, answer)
    assert breaker.state == "closed"


def test_refused_credentials_open_it_at_once_and_say_why(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    tickets = [breaker.allow() for _ in range(50)]
    for ticket in tickets:  # a whole batch comes back 401
        assert ticket is not None
        breaker.record(REFUSED, ticket)
    assert breaker.state == "open"
    assert breaker.reason == "unauthorized"
    # The other 49 were old news: one opening, not a doubling per answer.
    assert breaker.seconds_until_probe() == 5.0
    clock.advance(5.0)
    _send(breaker, REFUSED)  # still refused: probed gently, less and less often
    assert breaker.seconds_until_probe() == 10.0
    clock.advance(10.0)
    _send(breaker, SENT)
    assert breaker.state == "closed"
    assert breaker.reason == "down"


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
    assert breaker.allow() is not None
    assert breaker.allow() is None
    assert breaker.allow() is None
    assert breaker.seconds_until_probe() == 30.0


@pytest.mark.parametrize("answer", [SENT, REJECTED, SLOW_DOWN])
def test_probe_answered_closes(
    breaker: CircuitBreaker, clock: FakeClock, answer: SendResult
) -> None:
    _open(breaker)
    clock.advance(5.0)
    _send(breaker, answer)
    assert breaker.state == "closed"
    assert all(breaker.allow() is not None for _ in range(10))


def test_failed_probe_reopens_for_twice_as_long_up_to_60s(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _open(breaker)
    waits = []
    for _ in range(6):
        waits.append(breaker.seconds_until_probe())
        clock.advance(waits[-1])
        _send(breaker, FAILED)
        assert breaker.state == "open"
    assert waits == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]


def test_closing_resets_the_open_time(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _open(breaker)
    clock.advance(5.0)
    _send(breaker, FAILED)
    clock.advance(10.0)
    _send(breaker, SENT)
    _open(breaker)
    assert breaker.seconds_until_probe() == 5.0


def test_stragglers_change_nothing(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """Answers to requests started before it opened: neither while open, nor against the probe."""
    hung = [breaker.allow() for _ in range(5)]
    _open(breaker)
    for ticket in hung[:2]:
        assert ticket is not None
        breaker.record(SENT, ticket)
    assert breaker.state == "open"
    assert breaker.seconds_until_probe() == 5.0
    clock.advance(5.0)
    probe = breaker.allow()  # it does not wait for the hung requests
    assert probe is not None
    for ticket in hung[2:]:  # they time out now: not the probe's failure
        assert ticket is not None
        breaker.record(FAILED, ticket)
    assert breaker.state == "half_open"
    breaker.record(SENT, probe)
    assert breaker.state == "closed"
    for ticket in hung:  # later still: the new closed period does not count them
        assert ticket is not None
        breaker.record(FAILED, ticket)
    assert breaker.consecutive_failures == 0


def test_a_lost_probe_is_replaced_after_probe_timeout(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _open(breaker)
    clock.advance(5.0)
    lost = breaker.allow()
    assert lost is not None
    clock.advance(29.9)
    assert breaker.allow() is None
    clock.advance(0.1)
    assert breaker.allow() is not None
    assert breaker.allow() is None
    breaker.record(SENT, lost)  # the lost probe's late answer no longer decides
    assert breaker.state == "half_open"


def test_from_settings() -> None:
    settings = Settings(breaker_failure_threshold=7, breaker_reset_timeout=2.5, send_timeout=4.0)
    breaker = CircuitBreaker.from_settings(settings)
    assert breaker.failure_threshold == 7
    assert breaker.reset_timeout == 2.5
    assert breaker.probe_timeout > settings.send_timeout
