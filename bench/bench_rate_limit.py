"""The engine against a provider that accepts 300 requests a second and answers 429 beyond.

1,500 messages, one worker process, PostgreSQL + Redis: the time from
``createMailing`` until every message is final, as a ratio to the floor the
provider's limit sets (1,500 / 300 = 5 s), against a provider counting in a
sliding second and one counting in fixed whole seconds, with and without 1 %
of requests hanging until the send timeout, and with and without
``PROVIDER_MAX_RPS`` telling the engine the limit up front (the limit
itself, and 3 % under it, as an operator who knows the provider counts
strictly would set it). ``--windows fixed``, ``--caps unset`` and
``--hangs 0`` run fewer cases. Beside the time to all final, the time from
the first request the provider saw to its last (ratio to the same floor)
shows the pacing alone, without the mailing's start and the last writes,
which a loaded machine stretches.
A rate limit must never open the
breaker, and nothing may be accepted twice.

Run: ``python -m bench.bench_rate_limit``. Prints a table and ``OK`` or the
broken guarantee (exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from bench.bench_engine import DB_URL, LOG_DIR, _reset_database, _spawn
from bench.bench_faults import _check, _clients, _create
from bench.ports import free_port, wait_for_port
from bench.stack import stop


async def _run(
    api_url: str,
    sim_ctl: httpx.AsyncClient,
    sim_port: int,
    conn: asyncpg.Connection,
    *,
    messages: int,
    limit: int,
    hang_rate: float,
    max_rps: int | None,
    window: str,
) -> dict[str, Any]:
    await sim_ctl.post("/_sim/reset")
    counter = "max_rps" if window == "sliding" else "max_rps_fixed"
    await sim_ctl.post("/_sim/faults", json={counter: limit, "hang_rate": hang_rate})
    await _clients(conn, messages, tokyo_share=0)
    env = {"PROVIDER_MAX_RPS": str(max_rps)} if max_rps else {}
    name = f"rate-worker-{window}-{hang_rate}-{max_rps}"
    (LOG_DIR / f"{name}.log").unlink(missing_ok=True)
    since = await conn.fetchval("SELECT now()")
    worker = _spawn(
        name,
        ["worker"],
        PROVIDER_URL=f"http://127.0.0.1:{sim_port}",
        SEND_TIMEOUT="2",
        SEND_LEASE="10",
        LOG_LEVEL="WARNING",
        WORKER_METRICS_PORT=str(free_port()),
        **env,
    )
    try:
        await _wait_for_worker(conn, worker, since)
        now = datetime.now(UTC)
        started = time.perf_counter()
        mailing = await _create(
            api_url,
            {
                "input": {
                    "text": "Limited",
                    "startAt": now.isoformat(),
                    "endAt": (now + timedelta(hours=1)).isoformat(),
                }
            },
        )
        while not await conn.fetchval(
            "SELECT pending = 0 AND total > 0 FROM mailing_stats WHERE mailing_id = $1", mailing
        ):
            if time.perf_counter() - started > 300:
                raise RuntimeError("not final after 300 s")
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
    finally:
        stop(worker)
    log = (LOG_DIR / f"{name}.log").read_text(errors="replace")
    stats = (await sim_ctl.get("/_sim/stats")).json()
    sent = await conn.fetchval("SELECT sent FROM mailing_stats WHERE mailing_id = $1", mailing)
    first, last = stats["first_request_at"], stats["last_request_at"]
    return {
        "seconds": seconds,
        "busy": (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds(),
        "sent": sent,
        "requests": stats["requests"],
        "rate_limited": stats["by_outcome"].get("throttled", 0),
        "duplicates": stats["duplicates"],
        "breaker_opened": log.count("provider circuit opened"),
    }


async def _wait_for_worker(
    conn: asyncpg.Connection, worker: subprocess.Popen[bytes], since: datetime
) -> None:
    """Until the worker's engine is up (its heartbeat row): a loaded machine takes
    seconds to start Python, and a fixed wait counted them into the first case."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode}; see {LOG_DIR}")
        if await conn.fetchval(
            "SELECT COUNT(*) FROM worker_heartbeat WHERE started_at >= $1 AND stopped_at IS NULL",
            since,
        ):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the worker is not up after 120 s; see {LOG_DIR}")


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--windows", nargs="+", choices=("sliding", "fixed"), default=None)
    parser.add_argument("--hangs", nargs="+", type=float, default=[0.0, 0.01])
    parser.add_argument("--caps", nargs="+", choices=("unset", "limit", "under"), default=None)
    args = parser.parse_args()
    windows = args.windows or ["sliding", "fixed"]
    caps = {"unset": None, "limit": args.limit, "under": int(args.limit * 0.97)}
    chosen_caps = [caps[name] for name in (args.caps or caps)]
    await _reset_database()
    sim_port, control, api_port = free_port(), free_port(), free_port()
    sim = _spawn(
        "rate-sim",
        ["provider-sim", "--port", str(sim_port), "--control-port", str(control), "--seed", "1"],
    )
    api = _spawn("rate-api", ["serve", "--port", str(api_port)])
    failures: list[str] = []
    floor = args.messages / args.limit
    try:
        wait_for_port(sim_port)
        wait_for_port(api_port)
        sim_ctl = httpx.AsyncClient(base_url=f"http://127.0.0.1:{control}", timeout=60)
        conn = await asyncpg.connect(DB_URL)
        print(
            f"{args.messages} messages, provider limit {args.limit}/s (429 beyond),"
            f" floor {floor:.1f} s\n"
        )
        print(
            "| provider's window | hangs | PROVIDER_MAX_RPS | time to all final"
            " | ratio to floor | first to last request | 429s | breaker opened |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        # The limit itself, and a little under it: slots 1/R apart let R + 1
        # starts into some sliding second, and the provider answers that
        # one with a 429 and Retry-After: 1 (which holds every send).
        cases = [(w, h, m) for w in windows for h in args.hangs for m in chosen_caps]
        for window, hang_rate, max_rps in cases:
            result = await _run(
                f"http://127.0.0.1:{api_port}",
                sim_ctl,
                sim_port,
                conn,
                messages=args.messages,
                limit=args.limit,
                hang_rate=hang_rate,
                max_rps=max_rps,
                window=window,
            )
            print(
                f"| {window} | {hang_rate:.0%} | {max_rps or 'unset'} | {result['seconds']:.2f} s"
                f" | {result['seconds'] / floor:.2f}"
                f" | {result['busy']:.2f} s ({result['busy'] / floor:.2f})"
                f" | {result['rate_limited']}"
                f" | {result['breaker_opened']} |",
                flush=True,
            )
            what = f"{window}, hangs {hang_rate:.0%}, PROVIDER_MAX_RPS {max_rps or 'unset'}"
            if result["sent"] != args.messages:
                failures.append(f"{what}: sent {result['sent']}")
            if result["duplicates"]:
                failures.append(f"{what}: {result['duplicates']} accepted twice")
            if result["breaker_opened"]:
                failures.append(f"{what}: a rate limit opened the breaker")
        print()
        _check(failures, not failures, "all sent, nothing twice, the breaker never opened")
        await sim_ctl.aclose()
        await conn.close()
    finally:
        for proc in (api, sim):
            stop(proc)
    print("\nOK" if not failures else f"\nBROKEN: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
