"""The send time limit counts the time the loop ran (``tasks/send_deadlines.py``); a moved clock."""

from __future__ import annotations

import asyncio

import pytest

from tasks.send_deadlines import STALL, SendDeadlines


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.read = asyncio.Event()

    def __call__(self) -> float:
        self.read.set()
        return self.now


async def _watchdog_looked(deadlines: SendDeadlines, clock: _Clock) -> None:
    """Until the watchdog has read the clock (nothing else reads it meanwhile)."""
    clock.read.clear()
    await clock.read.wait()
    assert deadlines._seen_at == clock.now


async def test_a_stall_is_given_back_to_the_requests_in_flight() -> None:
    clock = _Clock()
    deadlines = SendDeadlines(1.0, clock=clock)
    answered = asyncio.Event()

    async def request() -> str:
        async with deadlines.limit():
            await answered.wait()
        return "answered"

    sent = asyncio.create_task(request())
    await asyncio.sleep(0)
    clock.now += 30.0  # the process stood still, thirty times the limit
    await _watchdog_looked(deadlines, clock)
    assert not sent.done()
    assert deadlines.stalled == pytest.approx(30.0 - deadlines._tick)
    answered.set()
    assert await sent == "answered"
    await deadlines.aclose()


async def test_running_time_still_runs_out() -> None:
    clock = _Clock()
    deadlines = SendDeadlines(1.0, clock=clock)

    async def request() -> None:
        async with deadlines.limit():
            await asyncio.Event().wait()

    sent = asyncio.create_task(request())
    await asyncio.sleep(0)
    # Late wake-ups under STALL are running time: no stall, and the limit passes.
    looks = 0
    while not sent.done():
        clock.now += STALL * 0.9
        await _watchdog_looked(deadlines, clock)
        await asyncio.sleep(0)  # the cancel lands
        looks += 1
    assert looks == 3  # 1.35 s of running time: past the 1 s limit
    with pytest.raises(TimeoutError):
        await sent
    assert deadlines.stalled == 0.0
    await deadlines.aclose()


async def test_a_pause_with_nothing_in_flight_is_no_stall() -> None:
    clock = _Clock()
    deadlines = SendDeadlines(1.0, clock=clock)
    async with deadlines.limit():
        pass
    assert deadlines._watchdog is not None
    await deadlines._watchdog  # it ends once nothing is in flight
    clock.now += 60.0  # idle, then a request: it gets its whole limit, no less
    async with deadlines.limit():
        assert next(iter(deadlines._out.values()))[0] == pytest.approx(clock.now + 1.0)
    assert deadlines.stalled == 0.0
    await deadlines.aclose()
