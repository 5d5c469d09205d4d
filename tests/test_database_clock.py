"""Every time decision follows the database's clock (issue 25).

Real workers and a real API whose clocks are 300 s off, under Debian's
``faketime`` (its library, preloaded into the process as the ``faketime``
command does), alone and beside a correct worker. The oracles are outside
the skewed processes: the simulator stamps each request's arrival and the
test reads the rows on its own clock, which is the database's (one host).
A wrong clock misses by minutes, so the few tenths of a second allowed
below for a request on its way are no margin on the verdict.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from models import Mailing, MailingStatus, clock
from models.clock_sync import ClockFollower, measure_database_offset
from tests.conftest import BACKEND, serve_api, stop_process
from tests.support.api import MAILING_RESULT
from tests.support.engine import (
    Simulator,
    Worker,
    add_clients,
    in_seconds,
    start_mailing,
    stats_of,
    utcnow,
    wait_for_status,
    wait_until,
)

_LIBFAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))), None)
requires_faketime = pytest.mark.skipif(
    _LIBFAKETIME is None,
    reason="Debian's faketime is not installed (apt-get install faketime; .ci/run installs it)",
)
# On SQLite a statement's "now" is the clock of the process that runs it: a
# process whose clock is off has a database clock that is off (docs/sending.md).
postgres_only = pytest.mark.skipif(
    BACKEND == "sqlite", reason="SQLite has no clock of its own to follow"
)
SKEW = 300  # seconds

CREATE = (
    f"mutation($input: MailingInput!) {{ createMailing(input: $input) {{ {MAILING_RESULT} }} }}"
)


def skewed(seconds: int) -> dict[str, str]:
    """The environment of a process whose clock is ``seconds`` off (``faketime -f +300s``)."""
    return {
        "LD_PRELOAD": str(_LIBFAKETIME),
        "FAKETIME": f"{seconds:+d}s",
        # Only the wall clock is wrong on a misset host; durations stay right.
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


@pytest.fixture
async def sim(db: str) -> AsyncIterator[Simulator]:
    simulator = Simulator("--seed", "25")
    yield simulator
    await simulator.close()


@pytest.mark.skipif(BACKEND == "sqlite", reason="touches no database: runs once")
def test_the_clock_adds_the_database_offset() -> None:
    previous = clock.database_offset()
    try:
        clock.set_database_offset(-SKEW)
        behind = (datetime.now(UTC) - clock.now()).total_seconds()
        assert SKEW - 1 < behind < SKEW + 1
        assert clock.database_offset() == -SKEW
    finally:
        clock.set_database_offset(previous or 0.0)


async def test_the_database_on_this_host_is_near_zero(db: str) -> None:
    offset = await measure_database_offset()
    assert abs(offset) < 0.5
    if BACKEND == "sqlite":
        assert offset == 0.0
    follower = ClockFollower(bound=1.0, interval=1.0)
    assert await follower.sync() == clock.database_offset()


async def test_hueys_scheduler_reads_the_service_clock(db: str) -> None:
    """A worker minutes off ran scheduled starts minutes off, and its ticks expired at once."""
    from tasks.jobs import send_daily_report
    from tasks.queue import huey

    moved = datetime(2031, 1, 1, tzinfo=UTC)
    try:
        with clock.use_clock(lambda: moved):
            assert huey._get_timestamp() == moved.replace(tzinfo=None)
            task = send_daily_report.s()
            huey.enqueue(task)
        # Counted from the clock it is checked on, not the host's.
        assert task.expires == moved + timedelta(seconds=90)
    finally:
        huey.flush()


def _offsets(worker: Worker) -> list[float]:
    return [
        value
        for name, value in worker.metrics().items()
        if name.startswith("mailings_clock_offset_seconds")
    ]


@requires_faketime
@postgres_only
@pytest.mark.slow
@pytest.mark.parametrize("beside", [False, True], ids=["alone", "beside a correct worker"])
@pytest.mark.parametrize("skew", [SKEW, -SKEW], ids=["ahead", "behind"])
async def test_a_worker_whose_clock_is_off_keeps_the_database_time(
    sim: Simulator, skew: int, beside: bool
) -> None:
    """Ahead, a worker once expired everything before endAt; behind, it started 5 minutes late."""
    await add_clients(150)
    # About ten requests a second per worker: the end comes with messages unsent.
    await sim.faults(latency=200)
    workers = [Worker(sim, SEND_CONCURRENCY="2", **skewed(skew))]
    if beside:
        workers.append(Worker(sim, SEND_CONCURRENCY="2"))
    try:
        start = in_seconds(2)
        end = start + timedelta(seconds=5)
        mailing = await start_mailing(start_at=start, end_at=end)
        # Every read that ended before the start saw it waiting, and every
        # read that ended before the end saw nothing expired.
        while True:
            status = (await Mailing.get(id=mailing.id)).status
            expired = (await stats_of(mailing.id))["expired"]
            read_at = utcnow()
            if read_at >= end:
                break
            if read_at < start:
                assert status is MailingStatus.SCHEDULED
            assert status is not MailingStatus.FINISHED
            assert expired == 0
            await asyncio.sleep(0.2)
        await wait_for_status(mailing.id, MailingStatus.FINISHED, timeout=60)
        await wait_until(lambda: _nothing_pending(mailing.id), timeout=30)
        offsets = _offsets(workers[0])
        async with httpx.AsyncClient(timeout=10) as http:
            ready = (await http.get(f"{workers[0].metrics_url}/readyz")).json()
        log = workers[0].log()
    finally:
        for worker in workers:
            worker.stop()
    arrivals = sorted(datetime.fromisoformat(row[1]) for row in await sim.requests())
    stats = await stats_of(mailing.id)
    assert stats["sent"] > 0, stats
    assert stats["expired"] > 0, stats
    assert stats["sent"] + stats["expired"] == 150, stats
    assert start <= arrivals[0] < start + timedelta(seconds=3)  # started on time
    # Checked before each request starts; stamped as it arrives, a moment later.
    assert arrivals[-1] < end + timedelta(seconds=0.3)
    assert len(offsets) == 1, offsets
    assert abs(offsets[0] + skew) < 1, offsets
    assert abs(ready["clock_offset_seconds"] + skew) < 1, ready
    assert "this host's clock is off the database's" in log


async def _nothing_pending(mailing_id: int) -> bool:
    return (await stats_of(mailing_id))["pending"] == 0


@requires_faketime
@pytest.mark.slow
async def test_on_sqlite_the_database_clock_is_the_process_clock(sim: Simulator) -> None:
    """What holds on each backend: the offset a worker 300 s ahead reports."""
    worker = Worker(sim, **skewed(SKEW))
    try:
        await wait_until(lambda: _measured(worker), timeout=30)
        offsets = _offsets(worker)
    finally:
        worker.stop()
    if BACKEND == "sqlite":
        assert offsets == [0.0]
    else:
        assert len(offsets) == 1, offsets
        assert abs(offsets[0] + SKEW) < 1, offsets


async def _measured(worker: Worker) -> bool:
    return bool(await asyncio.to_thread(_offsets, worker))


@requires_faketime
@postgres_only
@pytest.mark.slow
@pytest.mark.parametrize("skew", [SKEW, -SKEW], ids=["ahead", "behind"])
async def test_the_api_checks_end_at_on_the_database_clock(db: str, skew: int) -> None:
    """An API 300 s ahead took an end a minute away for past; behind, a past end for future."""
    url, proc = serve_api(skewed(skew), log_name="api-skewed")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:

            async def create(start: datetime, end: datetime) -> str:
                fields = {"text": "hi", "startAt": start.isoformat(), "endAt": end.isoformat()}
                body = {"query": CREATE, "variables": {"input": fields}}
                response = await http.post("/graphql", json=body)
                response.raise_for_status()
                typename: str = response.json()["data"]["createMailing"]["__typename"]
                return typename

            assert await create(in_seconds(-120), in_seconds(60)) == "Mailing"
            assert await create(in_seconds(-120), in_seconds(-60)) == "ValidationError"
    finally:
        stop_process(proc)
