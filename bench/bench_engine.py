"""End-to-end sending throughput, against its raw limit, in one run.

On PostgreSQL + Redis + the simulator over loopback:

1. a mailing to N clients (default 50,000), from ``createMailing`` through
   the real API until every message is final, as messages/s, with one
   worker process and with two; and the raw limit: a minimal aiohttp client
   posting as many requests to the same simulator at the same concurrency;
2. the same with 50 ms of simulated latency, against concurrency / latency;
3. worker memory (peak RSS) while it sends a 1,000,000-message mailing
   (``--memory-clients``; the run is cut after ``--memory-seconds``).

Run: ``python -m bench.bench_engine [--clients N] [--concurrency C]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.raw_client import raw_limit

PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
DB_NAME = "mailings_bench_engine"
DB_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/0"
LOG_DIR = Path("data/bench")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": DB_URL,
        "REDIS_URL": REDIS_URL,
        "QUEUE_NAME": f"bench-{os.getpid()}",
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        "LOG_FORMAT": "json",
        **extra,
    }


def _spawn(name: str, args: list[str], **env: str) -> subprocess.Popen[bytes]:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = open(LOG_DIR / f"{name}.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *args], env=_env(**env), stdout=log, stderr=subprocess.STDOUT
    )


def _wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not listening")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _rss_mb(pid: int) -> float:
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


async def _reset_database() -> None:
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{DB_NAME}"')
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


async def _add_clients(conn: asyncpg.Connection, n: int) -> None:
    await conn.execute("TRUNCATE client, mailing, mailing_stats, message RESTART IDENTITY CASCADE")
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


async def _send_mailing(api: str, conn: asyncpg.Connection, n: int, timeout: float) -> float:
    """Seconds from createMailing until all ``n`` messages are final."""
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
        mailing_id = int(result["id"])
    while time.perf_counter() - started < timeout:
        row = await conn.fetchrow(
            "SELECT total, pending FROM mailing_stats WHERE mailing_id = $1", mailing_id
        )
        if row and row["total"] == n and row["pending"] == 0:
            return time.perf_counter() - started
        await asyncio.sleep(0.05)
    raise RuntimeError(f"mailing {mailing_id} not final after {timeout}s")


async def _throughput(args: argparse.Namespace, latency_ms: int) -> list[tuple[str, float]]:
    sim_port, api_port = _free_port(), _free_port()
    sim = _spawn("sim", ["provider-sim", "--port", str(sim_port), "--latency", str(latency_ms)])
    api = _spawn("api", ["serve", "--port", str(api_port)])
    procs = [sim, api]
    rows: list[tuple[str, float]] = []
    try:
        _wait_port(sim_port)
        _wait_port(api_port)
        sim_url = f"http://127.0.0.1:{sim_port}"
        await raw_limit(sim_url, min(5000, args.clients), args.concurrency)  # warm-up
        raw = await raw_limit(sim_url, args.clients, args.concurrency)
        rows.append(("raw aiohttp client", raw))
        conn = await asyncpg.connect(DB_URL)
        for workers in args.workers:
            await _add_clients(conn, args.clients)
            worker = _spawn(
                f"worker{workers}",
                ["worker", "--workers", str(workers)],
                PROVIDER_URL=sim_url,
                SEND_CONCURRENCY=str(args.concurrency),
            )
            procs.append(worker)
            await asyncio.sleep(2.0)
            seconds = await _send_mailing(f"http://127.0.0.1:{api_port}", conn, args.clients, 600)
            rows.append((f"engine, {workers} worker process(es)", args.clients / seconds))
            _stop(worker)
        await conn.close()
    finally:
        for proc in procs:
            _stop(proc)
    return rows


async def _memory(args: argparse.Namespace) -> tuple[float, int]:
    """Peak worker RSS (MB) and messages sent while sending a huge mailing for a while."""
    sim_port, api_port = _free_port(), _free_port()
    sim = _spawn("sim-mem", ["provider-sim", "--port", str(sim_port)])
    api = _spawn("api-mem", ["serve", "--port", str(api_port)])
    worker = None
    try:
        _wait_port(sim_port)
        _wait_port(api_port)
        conn = await asyncpg.connect(DB_URL)
        await _add_clients(conn, args.memory_clients)
        worker = _spawn(
            "worker-mem",
            ["worker"],
            PROVIDER_URL=f"http://127.0.0.1:{sim_port}",
            SEND_CONCURRENCY=str(args.concurrency),
        )
        await asyncio.sleep(2.0)
        task = asyncio.create_task(
            _send_mailing(f"http://127.0.0.1:{api_port}", conn, args.memory_clients, 1e9)
        )
        peak = 0.0
        deadline = time.monotonic() + args.memory_seconds
        while time.monotonic() < deadline and not task.done():
            peak = max(peak, _rss_mb(worker.pid))
            await asyncio.sleep(0.25)
        task.cancel()
        sent = await conn.fetchval("SELECT COALESCE(SUM(sent), 0) FROM mailing_stats")
        await conn.close()
        return peak, int(sent)
    finally:
        for proc in (worker, api, sim):
            if proc is not None:
                _stop(proc)


def _table(title: str, rows: list[tuple[str, float]], reference: float, ref_name: str) -> None:
    print(f"\n{title}")
    print(f"  {'':40} {'msg/s':>10} {'ratio to ' + ref_name:>22}")
    for name, rate in rows:
        print(f"  {name:40} {rate:10.0f} {rate / reference:22.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--memory-clients", type=int, default=1_000_000)
    parser.add_argument("--memory-seconds", type=float, default=60.0)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()

    await _reset_database()
    print(f"{args.clients} clients, concurrency {args.concurrency}, one run on this machine")
    rows = await _throughput(args, latency_ms=0)
    _table("no simulated latency", rows, rows[0][1], "raw")
    rows = await _throughput(args, latency_ms=50)
    ideal = args.concurrency / 0.050
    _table(
        f"50 ms simulated latency (concurrency/latency = {ideal:.0f}/s)", rows, ideal, "C/latency"
    )
    if not args.skip_memory:
        peak, sent = await _memory(args)
        print(
            f"\nworker peak RSS while sending a {args.memory_clients:,}-message mailing:"
            f" {peak:.0f} MB ({sent:,} sent in the first {args.memory_seconds:.0f} s)"
        )


if __name__ == "__main__":
    asyncio.run(main())
