"""Cost of one ``SendPacer.reserve`` call: no cap, a cap in Redis, a cap in the database.

The engine asks the pacer before it starts each batch of requests. With no
``PROVIDER_MAX_RPS`` and no 429 lately that must cost next to nothing; with a
429 the worker's own limit is computed in process; with a cap each call is one
round trip to the schedule's store. One worker asks, call after call, under a
cap high enough (100,000/s) that every call is granted a slot; each figure is
the median of 5 runs of the mean time per call.

Run: ``python -m bench.bench_pacing [--calls 5000]`` (needs PostgreSQL and Redis).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.api_server import recreate_database, use_database

DATABASE = "mailings_bench_pacing"
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
RUNS = 5
CAP = 100_000.0


async def _time_calls(pacer: object, calls: int, n: int) -> float:
    """Mean seconds per ``reserve(n)`` over ``calls`` calls, after a warm-up."""
    from tasks.pacing import SendPacer

    assert isinstance(pacer, SendPacer)
    for _ in range(min(calls, 100)):
        await pacer.reserve(n)
    granted = 0
    started = time.perf_counter()
    for _ in range(calls):
        granted += (await pacer.reserve(n)).count
    elapsed = time.perf_counter() - started
    if granted == 0:
        raise RuntimeError("nothing was granted: the figure would not be a reservation's")
    return elapsed / calls


async def _median(make: Callable[[], Awaitable[object]], calls: int, n: int) -> float:
    from tasks.pacing import SendPacer

    figures = []
    for _ in range(RUNS):
        pacer = await make()
        assert isinstance(pacer, SendPacer)
        try:
            figures.append(await _time_calls(pacer, calls, n))
        finally:
            await pacer.aclose()
    return statistics.median(figures)


def _report(name: str, seconds: float) -> None:
    if seconds < 1e-4:
        print(f"  {name:44} {seconds * 1e9:9.0f} ns a call")
    else:
        print(f"  {name:44} {seconds * 1e6:9.1f} µs a call   ({1 / seconds:,.0f} calls/s)")


async def _uncapped(calls: int) -> None:
    from tasks.pacing import SendPacer

    async def plain() -> object:
        return SendPacer()

    async def after_429() -> object:
        pacer = SendPacer()
        for _ in range(1000):
            pacer.accepted()
        pacer.rate_limited(None)
        return pacer

    _report("no cap, no 429: reserve(256)", await _median(plain, calls * 40, 256))
    _report("no cap, after a 429: reserve(256)", await _median(after_429, calls * 40, 256))
    pacer = SendPacer()
    started = time.perf_counter()
    for _ in range(calls * 40):
        pacer.accepted()
    _report("accepted()", (time.perf_counter() - started) / (calls * 40))


async def _redis(calls: int) -> None:
    from redis.asyncio import Redis

    from tasks.pacing import SendPacer
    from tasks.send_schedule import RedisSchedule, SharedCap

    key = f"mailings-bench:send-schedule:{os.getpid()}"

    async def make() -> object:
        return SendPacer(SharedCap(RedisSchedule(REDIS_URL, key), CAP))

    try:
        _report("cap in Redis: reserve(1)", await _median(make, calls, 1))
    finally:
        redis = Redis.from_url(REDIS_URL)
        await redis.delete(key)
        await redis.aclose()


async def _database(name: str, calls: int) -> None:
    from models.db import close_db, init_db
    from settings import get_settings
    from tasks.pacing import SendPacer
    from tasks.send_schedule import DatabaseSchedule, SharedCap

    await init_db(get_settings())

    async def make() -> object:
        return SendPacer(SharedCap(DatabaseSchedule("bench"), CAP))

    try:
        _report(f"cap in {name}: reserve(1)", await _median(make, calls, 1))
    finally:
        await close_db()


async def _run(calls: int, database: str | None) -> None:
    if database == "postgres":
        await recreate_database(DATABASE)
        await _database("PostgreSQL", calls)
        return
    if database == "sqlite":
        from models.db import migrate

        await migrate()
        await _database("SQLite", calls)
        return
    print(f"mean time per call, median of {RUNS} runs; one worker, one call at a time:")
    await _uncapped(calls)
    await _redis(calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--database", choices=["postgres", "sqlite"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.database is None:
        asyncio.run(_run(args.calls, None))
        # aerich migrates once per process: each database gets a process of its own.
        for database in ("postgres", "sqlite"):
            command = [sys.executable, "-m", "bench.bench_pacing", "--calls", str(args.calls)]
            subprocess.run([*command, "--database", database], check=True)
        return
    if args.database == "postgres":
        use_database(DATABASE)
        asyncio.run(_run(args.calls, args.database))
        return
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DATABASE_URL"] = f"sqlite://{Path(tmp) / 'bench.sqlite3'}"
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        asyncio.run(_run(args.calls, args.database))


if __name__ == "__main__":
    main()
