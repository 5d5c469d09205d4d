"""Requests/s of each send-API client stack against the simulator, next to raw aiohttp.

Beside the ``PROVIDER_HTTP`` stacks, the raw loops of candidate clients
(``bench/http_candidates.py``: aiosonic, pyreqwest, rnet, pycurl's multi
interface), each where it is installed: a candidate worth adopting must cost
less CPU a request than raw aiohttp before it has a stack of its own.

The simulator runs as a subprocess, pinned to its own core when there are
two, so client and server don't share one. For each simulated latency (0 and
50 ms by default) it measures the raw limit (:func:`bench.raw_client.raw_limit`)
and every ``PROVIDER_HTTP`` stack through :func:`tasks.provider.make_provider_client`
at the same concurrency, after a warm-up, round-robin so drift hits all
alike, and prints the median requests/s, the ratio to raw, and the client's
CPU time per request (what sending costs the worker's core).

Run: ``python -m bench.bench_http_clients [--n 20000] [--concurrency 256]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from bench.http_candidates import CANDIDATES, available
from bench.ports import free_port, wait_for_port
from bench.raw_client import raw_limit
from settings import Settings
from tasks.provider import ProviderClient, make_provider_client

__all__ = ["main"]

STACKS = ("pyreqwest", "aiohttp", "httpx")
LOG_DIR = Path("data/bench")


async def _sim_post(url: str, path: str, payload: dict[str, object] | None = None) -> None:
    async with aiohttp.ClientSession() as session, session.post(url + path, json=payload) as r:
        r.raise_for_status()


async def _drive(client: ProviderClient, n: int, concurrency: int) -> float:
    """Send ``n`` messages through ``client`` with ``concurrency`` in flight; requests/s."""
    ids = itertools.count(1)
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for message_id in ids:
            if message_id > n:
                return
            result = await client.send(message_id, "79000000000", "bench")
            if result.kind != "sent":
                failures += 1
                print(f"  {type(client).__name__}: {result.kind}: {result.error}", file=sys.stderr)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{failures} of {n} sends failed")
    return n / elapsed


async def _measure(run: Callable[[int], Awaitable[float]], n: int) -> tuple[float, float]:
    """(requests/s, client CPU µs a request) of one run."""
    cpu = time.process_time()
    rate = await run(n)
    return rate, (time.process_time() - cpu) / n * 1e6


async def _bench(args: argparse.Namespace, url: str) -> None:
    clients = {
        name: make_provider_client(
            Settings(
                provider_url=url,
                provider_http=name,
                provider_token=None,
                send_concurrency=args.concurrency,
                send_timeout=60.0,
            )
        )
        for name in args.stacks
    }
    runs: dict[str, Callable[[int], Awaitable[float]]] = {
        "raw aiohttp": lambda n: raw_limit(url, n, args.concurrency),
        **{
            name: _candidate(run, url, args.concurrency)
            for name, run in available(args.candidates).items()
        },
        **{name: _runner(client, args.concurrency) for name, client in clients.items()},
    }
    try:
        for latency in args.latencies:
            await _sim_post(url, "/_sim/faults", {"latency": latency})
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
            for run in runs.values():
                await run(args.warmup)
            for _ in range(args.repeat):
                for name, run in runs.items():
                    await _sim_post(url, "/_sim/reset")
                    results[name].append(await _measure(run, args.n))
            _print_table(args, latency, results)
    finally:
        for client in clients.values():
            await client.aclose()


def _runner(client: ProviderClient, concurrency: int) -> Callable[[int], Awaitable[float]]:
    return lambda n: _drive(client, n, concurrency)


def _candidate(
    run: Callable[[str, int, int], Awaitable[float]], url: str, concurrency: int
) -> Callable[[int], Awaitable[float]]:
    return lambda n: run(url, n, concurrency)


def _print_table(
    args: argparse.Namespace, latency: float, results: dict[str, list[tuple[float, float]]]
) -> None:
    ideal = f", concurrency/latency = {args.concurrency / latency * 1000:.0f}/s" if latency else ""
    print(
        f"\n{latency:g} ms simulated latency, concurrency {args.concurrency}, n {args.n}, "
        f"median of {args.repeat}{ideal}"
    )
    print(f"{'client':<15} {'req/s':>8} {'min-max':>13} {'vs raw':>7} {'CPU µs/req':>11}")
    raw = statistics.median(rate for rate, _ in results["raw aiohttp"])
    for name, runs in results.items():
        rates = [rate for rate, _ in runs]
        rate = statistics.median(rates)
        cpu = statistics.median(cpu for _, cpu in runs)
        spread = f"{min(rates):.0f}-{max(rates):.0f}"
        print(f"{name:<15} {rate:>8.0f} {spread:>13} {rate / raw:>7.2f} {cpu:>11.0f}")
    sys.stdout.flush()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="requests per run")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=3_000, help="requests before measuring")
    parser.add_argument("--repeat", type=int, default=3, help="runs per stack; the median counts")
    parser.add_argument(
        "--latencies", type=lambda s: [float(x) for x in s.split(",")], default=[0.0, 50.0]
    )
    parser.add_argument(
        "--stacks", type=lambda s: s.split(","), default=list(STACKS), help="e.g. httpx,aiohttp"
    )
    parser.add_argument(
        "--candidates",
        type=lambda s: [name for name in s.split(",") if name],
        default=list(CANDIDATES),
        help="raw loops of other clients, e.g. 'raw pycurl,raw rnet' ('' for none)",
    )
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--no-pin", action="store_true", help="don't pin client and server")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    port = free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (LOG_DIR / "provider-sim.log").open("wb") as log:
        sim = subprocess.Popen(
            [sys.executable, "-m", "cli", "provider-sim", "--port", str(port)],
            env={**os.environ, "LOG_LEVEL": "WARNING"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            pinned = not args.no_pin and hasattr(os, "sched_setaffinity")
            if pinned and len(os.sched_getaffinity(0)) >= 2:
                cpus = sorted(os.sched_getaffinity(0))
                os.sched_setaffinity(sim.pid, {cpus[1]})
                os.sched_setaffinity(0, {cpus[0]})
            wait_for_port(port, sim, see=str(LOG_DIR))
            loop_factory = None
            if args.loop == "uvloop":
                import uvloop

                loop_factory = uvloop.new_event_loop
            print(f"event loop: {args.loop}; simulator pid {sim.pid} on port {port}")
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(_bench(args, f"http://127.0.0.1:{port}"))
        finally:
            sim.terminate()
            sim.wait(10)


if __name__ == "__main__":
    main()
