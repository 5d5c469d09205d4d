"""The engine while its own infrastructure fails (issue 19): PostgreSQL reset, black-holed, and
workers stopped or frozen during an outage.

Two ``mailings worker`` processes reach PostgreSQL through the fault proxy
of the tests (``tests/support/fault_proxy.py``); the API and this script
reach it directly. Each scenario sends one mailing to 8,000 clients
(``--clients``) through a simulator answering in 400 ms, with
``SEND_LEASE=20 SEND_TIMEOUT=5 SEND_CONCURRENCY=60``, and breaks the
database while it goes out:

- ``storm``: a reset every 3 s for a minute;
- ``black-hole``: every byte held for 30 s (past the lease), then a reset;
- ``burst``: three resets, 3 s apart;
- ``sigterm``: a 40 s black-hole, one worker told to stop 5 s into it;
- ``sigstop``: a 30 s black-hole, one worker frozen 2 s into it and resumed
  5 s after it ends.

Figures per scenario: messages SENT, msgIds the provider accepted twice,
seconds from the fault's end until every message is final, and whether
the workers that should live still do. The contract: every message SENT,
0 accepted twice (for ``sigterm`` and ``sigstop``, at most the in-flight
window). Run: ``python -m bench.bench_faults_infra [--clients N] [--only NAME]``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bench.stack import Stack, bench_stack, stop
from tests.support.fault_proxy import FaultProxy, fault_proxy

_ENV = {
    "SEND_LEASE": "20",
    "SEND_TIMEOUT": "5",
    "SEND_CONCURRENCY": "60",
    # Two workers on one machine: no probe port to share.
    "WORKER_METRICS_PORT": "0",
}


async def _resets(proxy: FaultProxy, times: int) -> None:
    for _ in range(times):
        proxy.reset()
        await asyncio.sleep(3)


async def _storm(proxy: FaultProxy, _workers: list[Any]) -> None:
    await _resets(proxy, 20)


async def _black_hole(proxy: FaultProxy, _workers: list[Any]) -> None:
    proxy.black_hole()
    await asyncio.sleep(30)
    proxy.reset()
    proxy.restore()


async def _burst(proxy: FaultProxy, _workers: list[Any]) -> None:
    await _resets(proxy, 3)


async def _signal_in_outage(
    proxy: FaultProxy, worker: Any, signum: signal.Signals, before: float, after: float
) -> None:
    proxy.black_hole()
    await asyncio.sleep(before)
    worker.send_signal(signum)
    await asyncio.sleep(after)
    proxy.reset()
    proxy.restore()


async def _sigterm(proxy: FaultProxy, workers: list[Any]) -> None:
    await _signal_in_outage(proxy, workers[0], signal.SIGTERM, 5, 35)


async def _sigstop(proxy: FaultProxy, workers: list[Any]) -> None:
    await _signal_in_outage(proxy, workers[0], signal.SIGSTOP, 2, 28)
    await asyncio.sleep(5)
    workers[0].send_signal(signal.SIGCONT)


Fault = Callable[[FaultProxy, list[Any]], Awaitable[None]]
_IN_FLIGHT = int(_ENV["SEND_CONCURRENCY"])
SCENARIOS: dict[str, tuple[Fault, bool, int]] = {
    # name: (the fault, whether the first worker lives after it, repeats allowed)
    "storm": (_storm, True, 0),
    "black-hole": (_black_hole, True, 0),
    "burst": (_burst, True, 0),
    "sigterm": (_sigterm, False, _IN_FLIGHT),
    "sigstop": (_sigstop, True, _IN_FLIGHT),
}


async def _scenario(stack: Stack, name: str, clients: int) -> dict[str, Any]:
    fault, first_lives, repeats_allowed = SCENARIOS[name]
    await stack.reset_clients(clients)
    async with httpx.AsyncClient(base_url=stack.sim_url, timeout=30) as sim:
        await sim.post("/_sim/reset")
        with fault_proxy(stack.url) as proxy:
            env = {**_ENV, "DATABASE_URL": proxy.url(stack.url)}
            workers = [await stack.start_workers(1, **env) for _ in range(2)]
            mailing_id, _ = await stack.create_mailing()
            # Faults land while requests are in flight.
            for _ in range(6000):
                if (await stack.stats(mailing_id))["sent"] >= clients // 10:
                    break
                await asyncio.sleep(0.1)
            await fault(proxy, workers)
            fault_ended = time.perf_counter()
            try:
                final = await stack.wait_final(mailing_id, clients, timeout=600)
            finally:
                alive = [w.poll() is None for w in workers]
                stats = (await sim.get("/_sim/stats")).json()
                row = await stack.stats(mailing_id)
                for worker in workers:
                    stop(worker)
                    stack.procs.remove(worker)
    return {
        "scenario": name,
        "sent": int(row["sent"]),
        "twice": int(stats["duplicates"]),
        "final_after_s": round(final - fault_ended, 1),
        "workers_alive": f"{sum(alive)}/2",
        "ok": int(row["sent"]) == clients
        and int(stats["duplicates"]) <= repeats_allowed
        and alive == [first_lives, True],
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8_000)
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append")
    args = parser.parse_args()
    results = []
    async with bench_stack("bench_faults_infra") as stack:
        stack.start_simulator("--latency", "400")
        stack.start_api()
        for name in args.only or list(SCENARIOS):
            result = await _scenario(stack, name, args.clients)
            print(result, flush=True)
            results.append(result)
    print("| scenario | sent | accepted twice | final after the fault (s) | workers alive |")
    print("| --- | ---: | ---: | ---: | --- |")
    for r in results:
        print(
            f"| {r['scenario']} | {r['sent']:,} | {r['twice']} | {r['final_after_s']}"
            f" | {r['workers_alive']} |"
        )
    failed = [r["scenario"] for r in results if not r["ok"]]
    print("OK" if not failed else f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
