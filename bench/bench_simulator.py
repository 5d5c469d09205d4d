"""CPU time the send-API simulator spends on one request.

The simulator is the denominator of the throughput benchmarks: every
microsecond it spends is one the engine's figures do not show. Two figures:

- end to end: ``mailings provider-sim`` as a subprocess (pinned to its own
  core when there are two), driven by the raw aiohttp client
  (:func:`bench.raw_client.raw_limit`); its user + system CPU time is read
  from ``/proc`` before and after each run. Kernel and event loop included,
  and noisy on a shared machine.
- in process: the simulator's own Python work (parse, decide, record,
  answer) on requests shaped like aiohttp's, fed to one connection whose
  transport discards what it is given; the best of several runs of process
  CPU time. Steady where the first is not, so compare changes with it.

Run: ``python -m bench.bench_simulator [--n 50000] [--concurrency 256] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.ports import free_port, wait_for_port
from bench.raw_client import raw_limit
from provider_sim import SimulatorServer
from provider_sim.protocol import Connection

__all__ = ["main"]

LOG_DIR = Path("data/bench")
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid``, from ``/proc/PID/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / _TICK


async def _reset(url: str) -> None:
    async with aiohttp.ClientSession() as session, session.post(url + "/_sim/reset") as response:
        response.raise_for_status()


class _NullTransport(asyncio.Transport):
    def write(self, data: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _aiohttp_request(message_id: int) -> bytes:
    body = orjson.dumps({"id": message_id, "phone": 79000000000, "text": "bench"})
    head = (
        f"POST /send/{message_id} HTTP/1.1\r\nHost: 127.0.0.1:8001\r\nAccept: */*\r\n"
        "Accept-Encoding: gzip, deflate\r\nUser-Agent: Python/3.11 aiohttp/3.12\r\n"
        f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n\r\n"
    )
    return head.encode() + body


def _in_process(n: int, repeat: int) -> float:
    """The best process CPU µs a request over ``repeat`` runs of ``n``, no sockets."""

    async def run() -> float:
        server = SimulatorServer()
        connection = Connection(server)
        connection.connection_made(_NullTransport())
        requests = [_aiohttp_request(i) for i in range(1, n + 1)]
        best = float("inf")
        for _ in range(repeat):
            server.reset()
            cpu = time.process_time()
            for request in requests:
                connection.data_received(request)
            best = min(best, (time.process_time() - cpu) / n * 1e6)
        assert server.stats()["accepted"] == n
        return best

    return asyncio.run(run())


async def _bench(args: argparse.Namespace, url: str, pid: int) -> None:
    await raw_limit(url, args.warmup, args.concurrency)
    runs: list[tuple[float, float]] = []
    for _ in range(args.repeat):
        await _reset(url)
        before = _cpu_seconds(pid)
        rate = await raw_limit(url, args.n, args.concurrency)
        runs.append(((_cpu_seconds(pid) - before) / args.n * 1e6, rate))
    cpus = sorted(cpu for cpu, _ in runs)
    rates = [rate for _, rate in runs]
    print(f"end to end, n {args.n}, concurrency {args.concurrency}, {args.repeat} runs:")
    print(f"  simulator CPU µs/request: median {statistics.median(cpus):.1f}", end="")
    print(f" (min {cpus[0]:.1f}, max {cpus[-1]:.1f})")
    print(f"  requests/s: median {statistics.median(rates):.0f} (client-bound)")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="requests per run")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=5_000, help="requests before measuring")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measure")
    parser.add_argument("--in-process-only", action="store_true", help="skip the end-to-end runs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    cpu = _in_process(args.n, max(args.repeat, 5))
    print(f"in process (parse, decide, record, answer): {cpu:.2f} CPU µs/request", flush=True)
    if args.in_process_only:
        return
    port = free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (LOG_DIR / "provider-sim-cpu.log").open("wb") as log:
        sim = subprocess.Popen(
            [sys.executable, "-m", "cli", "provider-sim", "--port", str(port)],
            env={**os.environ, "LOG_LEVEL": "WARNING"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2:
                cpus = sorted(os.sched_getaffinity(0))
                os.sched_setaffinity(sim.pid, {cpus[1]})
                os.sched_setaffinity(0, {cpus[0]})
            wait_for_port(port, sim, see=str(LOG_DIR))
            import uvloop

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(_bench(args, f"http://127.0.0.1:{port}", sim.pid))
        finally:
            sim.terminate()
            sim.wait(10)


if __name__ == "__main__":
    main()
