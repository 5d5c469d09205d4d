"""End-to-end sending throughput, against its raw limit, in one run.

On PostgreSQL + Redis + the simulator over loopback:

1. a mailing to N clients (default 50,000), from ``createMailing`` through
   the real API until every message is final, as messages/s, with one
   worker process and with two; and the raw limit: a minimal aiohttp client
   posting as many requests to the same simulator at the same concurrency;
2. the same with 50 ms of simulated latency, against concurrency / latency;
3. worker memory (peak RSS) while it sends a 1,000,000-message mailing
   (``--memory-clients``; the run is cut after ``--memory-seconds``).

Run: ``python -m bench.bench_engine [--clients N] [--concurrency C] [--repeat R]``;
with ``--repeat 3`` (what issue 22 asks) each figure is the median of three
raw/engine pairs, with their range.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.cpu import BackendCpu, process_cpu, tree_cpu
from bench.ports import free_port, wait_for_port
from bench.raw_client import raw_limit
from bench.stack import rss_mb, stop
from graphql_api.ids import Kind, key_of

PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
# Benches running side by side (several checkouts) each need their own.
DB_NAME = os.environ.get("BENCH_DB_NAME", "mailings_bench_engine")
DB_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/0"
LOG_DIR = Path("data/bench")


def use_postgres(base_url: str) -> None:
    """Run against another PostgreSQL server (``postgres://user@host:port``, no database)."""
    global PG_ADMIN, DB_URL
    PG_ADMIN = f"{base_url}/postgres"
    DB_URL = f"{base_url}/{DB_NAME}"


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": DB_URL,
        "REDIS_URL": REDIS_URL,
        "QUEUE_NAME": f"bench-{os.getpid()}",
        "LOG_LEVEL": _log_level(),
        "LOG_FORMAT": "json",
        **extra,
    }


def _spawn(
    name: str, args: list[str], cwd: str | None = None, **env: str
) -> subprocess.Popen[bytes]:
    """``mailings ARGS`` from this checkout, or from the one at ``cwd`` (``--baseline``)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = open(LOG_DIR / f"{name}.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        env=_env(**env),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cwd,
    )


async def wait_workers(conn: asyncpg.Connection, processes: int, timeout: float = 60) -> None:
    """Until ``processes`` engines have written their first heartbeat (imports done, pools open)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = await conn.fetchval("SELECT count(*) FROM worker_heartbeat WHERE stopped_at IS NULL")
        if live >= processes:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{processes} worker process(es) not up after {timeout} s")


async def _reset_database() -> None:
    await _drop_database()
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{DB_NAME}"')
    finally:
        await admin.close()
    migrate = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cli", "migrate"],
        env=_env(),
        capture_output=True,
        check=False,
    )
    if migrate.returncode:
        raise RuntimeError(migrate.stderr.decode())


async def _drop_database() -> None:
    """The bench's database goes with the run (it once stayed behind)."""
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    finally:
        await admin.close()


async def _add_clients(conn: asyncpg.Connection, n: int) -> None:
    await conn.execute(
        "TRUNCATE client, mailing, mailing_stats, message, worker_heartbeat"
        " RESTART IDENTITY CASCADE"
    )
    await conn.execute(
        "INSERT INTO client (phone, operator_code, tag, timezone, created_at, updated_at)"
        " SELECT (79000000000 + g)::text, '900', '', 'UTC', now(), now()"
        " FROM generate_series(1, $1) g",
        n,
    )
    await conn.execute("VACUUM ANALYZE client")


_CREATE = """
mutation($input: MailingInput!) {
  createMailing(input: $input) {
    __typename ... on Mailing { id } ... on ValidationError { message }
  }
}"""


async def _send_mailing(
    api: str,
    conn: asyncpg.Connection,
    n: int,
    timeout: float,
    on_poll: Callable[[], Awaitable[object]] | None = None,
) -> float:
    """Seconds from createMailing until all ``n`` messages are final.

    ``on_poll`` runs about twice a second while waiting (CPU sampling).
    """
    now = datetime.now(UTC)
    variables: dict[str, Any] = {
        "input": {
            "text": "Benchmark message",
            "startAt": now.isoformat(),
            "endAt": (now + timedelta(hours=1)).isoformat(),
        }
    }
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        started = time.perf_counter()
        response = await http.post("/graphql", json={"query": _CREATE, "variables": variables})
        result = response.json()["data"]["createMailing"]
        if result["__typename"] != "Mailing":
            raise RuntimeError(result)
        mailing_id = key_of(result["id"], Kind.MAILING)
        assert mailing_id is not None, result
    polls = 0
    while time.perf_counter() - started < timeout:
        row = await conn.fetchrow(
            "SELECT total, pending FROM mailing_stats WHERE mailing_id = $1", mailing_id
        )
        if row and row["total"] == n and row["pending"] == 0:
            return time.perf_counter() - started
        polls += 1
        if on_poll is not None and polls % 10 == 0:
            await on_poll()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"mailing {mailing_id} not final after {timeout}s")


@dataclass(frozen=True, slots=True)
class _Measure:
    """One timed run: messages (or requests) per second and CPU seconds spent by each party."""

    n: int
    seconds: float
    client_cpu: float  # the raw client, or every worker process
    pg_cpu: float  # the bench database's backends (0 for the raw client)
    sim_cpu: float

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    def us(self, cpu: float) -> float:
        return cpu / self.n * 1e6


async def _raw(sim: subprocess.Popen[bytes], url: str, n: int, concurrency: int) -> _Measure:
    sim_before, cpu_before = process_cpu(sim.pid), time.process_time()
    rate = await raw_limit(url, n, concurrency)
    client_cpu = time.process_time() - cpu_before
    return _Measure(n, n / rate, client_cpu, 0.0, process_cpu(sim.pid) - sim_before)


async def _engine(
    args: argparse.Namespace,
    sim: subprocess.Popen[bytes],
    sim_url: str,
    api_url: str,
    conn: asyncpg.Connection,
    workers: int,
    cwd: str | None = None,
) -> _Measure:
    await _add_clients(conn, args.clients)
    # The same number of requests in flight as the raw client, whatever the processes.
    worker = _spawn(
        f"{'baseline-' if cwd else ''}worker{workers}",
        ["worker", "--workers", str(workers)],
        cwd,
        PROVIDER_URL=sim_url,
        SEND_CONCURRENCY=str(max(1, args.concurrency // workers)),
        # Its own probe port: the default (8002) may be another checkout's worker's.
        WORKER_METRICS_PORT=str(free_port()),
    )
    try:
        await wait_workers(conn, workers)
        backends = BackendCpu(conn, DB_NAME)
        await backends.start()
        worker_before, sim_before = tree_cpu(worker.pid), process_cpu(sim.pid)
        worker_cpu = 0.0

        async def poll() -> None:
            nonlocal worker_cpu
            # The tree's children exit with it: read it while they live.
            worker_cpu = max(worker_cpu, tree_cpu(worker.pid) - worker_before)
            await backends.sample()

        seconds = await _send_mailing(api_url, conn, args.clients, 600, poll)
        await poll()
        pg_cpu = await backends.sample()
        return _Measure(
            args.clients, seconds, worker_cpu, pg_cpu, process_cpu(sim.pid) - sim_before
        )
    finally:
        stop(worker)


@dataclass(frozen=True, slots=True)
class _Case:
    name: str
    latency_ms: int
    workers: int
    target: float


# Targets of issue 22: one worker past 0.9 of the raw aiohttp client, two past 1.2.
_CASES = {
    "1w": _Case("1 worker", 0, 1, 0.9),
    "2w": _Case("2 workers", 0, 2, 1.2),
    "1w-50ms": _Case("1 worker, 50 ms latency", 50, 1, 0.9),
}


def _pair_line(name: str, raw: _Measure, engine: _Measure) -> str:
    return (
        f"  {name}: raw {raw.rate:,.0f}/s, engine {engine.rate:,.0f}/s,"
        f" ratio {engine.rate / raw.rate:.2f}; µs/message: worker"
        f" {engine.us(engine.client_cpu):.0f}, PostgreSQL {engine.us(engine.pg_cpu):.0f},"
        f" simulator {engine.us(engine.sim_cpu):.0f}; raw client µs/request"
        f" {raw.us(raw.client_cpu):.0f}"
    )


_Pairs = list[tuple[_Measure, _Measure]]


async def _run_case(args: argparse.Namespace, case: _Case) -> tuple[_Pairs, _Pairs]:
    """(raw, engine) pairs, each pair taken back to back on one simulator; and the baseline's."""
    sim_port, api_port = free_port(), free_port()
    sim = _spawn(
        "sim", ["provider-sim", "--port", str(sim_port), "--latency", str(case.latency_ms)]
    )
    api = _spawn("api", ["serve", "--port", str(api_port)])
    pairs: _Pairs = []
    baseline: _Pairs = []
    conn: asyncpg.Connection | None = None
    try:
        wait_for_port(sim_port)
        wait_for_port(api_port)
        sim_url = f"http://127.0.0.1:{sim_port}"
        await raw_limit(sim_url, min(5000, args.clients), args.concurrency)  # warm-up
        conn = await asyncpg.connect(DB_URL)
        for _ in range(args.repeat):
            raw = await _raw(sim, sim_url, args.clients, args.concurrency)
            engine = await _engine(
                args, sim, sim_url, f"http://127.0.0.1:{api_port}", conn, case.workers
            )
            pairs.append((raw, engine))
            print(_pair_line(case.name, raw, engine), flush=True)
            if args.baseline:
                before = await _engine(
                    args,
                    sim,
                    sim_url,
                    f"http://127.0.0.1:{api_port}",
                    conn,
                    case.workers,
                    args.baseline,
                )
                baseline.append((raw, before))
                print(_pair_line(f"{case.name} (baseline)", raw, before), flush=True)
    finally:
        if conn is not None:
            await conn.close()
        for proc in (api, sim):
            stop(proc)
    return pairs, baseline


def _spread(values: list[float], fmt: str) -> str:
    if len(values) == 1:
        return format(values[0], fmt)
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{format(mid, fmt)} ({format(low, fmt)}-{format(high, fmt)})"


def _print_table(
    results: list[tuple[_Case, list[tuple[_Measure, _Measure]]]], args: argparse.Namespace
) -> None:
    """A Markdown table, ready to paste into the README: medians, with the range over repeats."""
    print(
        f"\n{args.clients:,} messages, concurrency {args.concurrency} in total,"
        f" worker LOG_LEVEL={_log_level()}, {args.repeat} run(s) of each pair;"
        " figures are medians (min-max); CPU is user+system from /proc,"
        " PostgreSQL = the bench database's backends\n"
    )
    print(
        "| case | raw client msg/s | engine msg/s | ratio | target |"
        " worker µs/msg | PostgreSQL µs/msg | simulator µs/msg |"
        " raw client µs/req | simulator µs/req (raw) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for case, pairs in results:
        raws = [r for r, _ in pairs]
        engines = [e for _, e in pairs]
        ratios = [e.rate / r.rate for r, e in pairs]
        met = "met" if statistics.median(ratios) >= case.target else "**not met**"
        print(
            f"| {case.name} | {_spread([r.rate for r in raws], ',.0f')}"
            f" | {_spread([e.rate for e in engines], ',.0f')}"
            f" | **{_spread(ratios, '.2f')}** | {case.target} ({met})"
            f" | {_spread([e.us(e.client_cpu) for e in engines], '.0f')}"
            f" | {_spread([e.us(e.pg_cpu) for e in engines], '.0f')}"
            f" | {_spread([e.us(e.sim_cpu) for e in engines], '.0f')}"
            f" | {_spread([r.us(r.client_cpu) for r in raws], '.0f')}"
            f" | {_spread([r.us(r.sim_cpu) for r in raws], '.0f')} |"
        )


def _log_level() -> str:
    return os.environ.get("BENCH_LOG_LEVEL", "INFO")


async def _memory(args: argparse.Namespace) -> tuple[float, int]:
    """Peak worker RSS (MB) and messages sent while sending a huge mailing for a while."""
    sim_port, api_port = free_port(), free_port()
    sim = _spawn("sim-mem", ["provider-sim", "--port", str(sim_port)])
    api = _spawn("api-mem", ["serve", "--port", str(api_port)])
    worker = None
    try:
        wait_for_port(sim_port)
        wait_for_port(api_port)
        conn = await asyncpg.connect(DB_URL)
        await _add_clients(conn, args.memory_clients)
        worker = _spawn(
            "worker-mem",
            ["worker"],
            PROVIDER_URL=f"http://127.0.0.1:{sim_port}",
            SEND_CONCURRENCY=str(args.concurrency),
            WORKER_METRICS_PORT=str(free_port()),
        )
        await asyncio.sleep(2.0)
        task = asyncio.create_task(
            _send_mailing(f"http://127.0.0.1:{api_port}", conn, args.memory_clients, 1e9)
        )
        peak = 0.0
        deadline = time.monotonic() + args.memory_seconds
        while time.monotonic() < deadline and not task.done():
            peak = max(peak, rss_mb(worker.pid))
            await asyncio.sleep(0.25)
        task.cancel()
        sent = await conn.fetchval("SELECT COALESCE(SUM(sent), 0) FROM mailing_stats")
        await conn.close()
        return peak, int(sent)
    finally:
        for proc in (worker, api, sim):
            if proc is not None:
                stop(proc)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument(
        "--cases", nargs="+", choices=sorted(_CASES), default=list(_CASES), help="what to run"
    )
    parser.add_argument("--repeat", type=int, default=1, help="raw/engine pairs per case")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run each case's engine from the checkout at DIR (a worktree): before/after",
    )
    parser.add_argument("--memory-clients", type=int, default=1_000_000)
    parser.add_argument("--memory-seconds", type=float, default=60.0)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()

    began = time.perf_counter()
    await _reset_database()
    try:
        await _run(args)
    finally:
        await _drop_database()
    print(f"\nbench engine took {time.perf_counter() - began:.0f} s")


async def _run(args: argparse.Namespace) -> None:
    results, baselines = [], []
    for key in args.cases:
        case = _CASES[key]
        pairs, baseline = await _run_case(args, case)
        results.append((case, pairs))
        baselines.append((case, baseline))
    _print_table(results, args)
    if args.baseline:
        print(f"\nthe same, from the checkout at {args.baseline} (each right after the run above)")
        _print_table(baselines, args)
    if not args.skip_memory:
        peak, sent = await _memory(args)
        print(
            f"\nworker peak RSS while sending a {args.memory_clients:,}-message mailing:"
            f" {peak:.0f} MB ({sent:,} sent in the first {args.memory_seconds:.0f} s)"
        )


if __name__ == "__main__":
    asyncio.run(main())
