"""The 10-million scale, on a bench database of its own (dropped at the end). Not in ``make bench``.

It takes tens of minutes on a small machine, so it is its own entry:
``make bench-ten-million`` (or ``python -m bench.ten_million [--clients N]``).
In order, in one run:

1. 10,000,000 clients made by ``generate_series``;
2. their audience built the old way, one ``INSERT ... SELECT`` in one
   transaction, for a mailing of its own (timed, then removed);
3. a mailing to all of them through the API with one worker: the first
   accepted message, ``total`` reaching the audience (the chunked build),
   and the worker's peak RSS while it builds and sends;
4. statistics of that mailing: ``mailing { stats }`` and
   ``statistics { totals }`` over HTTP, and the first byte and first data
   row of its CSV export and of the statistics CSV;
5. 1,000,000 clients imported through ``importClients`` (100 calls of
   10,000) into the table that already holds the ten million.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from bench.bench_audience import one_statement
from bench.stack import Stack, bench_stack, rss_mb

DATABASE = "mailings_bench_ten_million"
STATS = "total pending sent failed expired cancelled"
IMPORT = """mutation($rows: [ClientInput!]!) {
    importClients(input: $rows) {
        __typename ... on ImportSummary { created } ... on ValidationError { message }
    }
}"""


def _say(text: str) -> None:
    print(text, flush=True)


async def _build_and_send(stack: Stack, clients: int, after_built: float) -> int:
    worker = await stack.start_workers(1)
    mailing_id, asked = await stack.create_mailing(hours=24)
    first = built = 0.0
    peak = 0.0
    sent = 0
    while True:
        row = await stack.stats(mailing_id)
        now = time.perf_counter() - asked
        peak = max(peak, rss_mb(worker.pid))
        if not first and row["sent"] > 0:
            first = now
            _say(f"  first accepted message after {first:.2f} s")
        if not built and row["total"] >= clients:
            built, sent = now, int(row["sent"])
            _say(f"  total reached {clients:,} after {built:.1f} s ({sent:,} sent by then)")
        if built and now > built + after_built:
            sent = int(row["sent"])
            break
        await asyncio.sleep(0.1)
    _say(
        f"  worker peak RSS {peak:.0f} MB while building and sending ({sent:,} sent in {now:.0f} s)"
    )
    stack.procs.remove(worker)
    worker.terminate()
    worker.wait(60)
    return mailing_id


async def _query_times(http: httpx.AsyncClient, query: str, repeat: int) -> tuple[float, float]:
    await http.post("/graphql", json={"query": query})
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = await http.post("/graphql", json={"query": query})
        times.append(time.perf_counter() - started)
        if "errors" in response.json():
            raise RuntimeError(response.text)
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.95) - 1] * 1000


async def _first_bytes(http: httpx.AsyncClient, path: str) -> tuple[float, float]:
    """Milliseconds to the first byte, and to the first line after the header."""
    started = time.perf_counter()
    first_byte = first_row = 0.0
    seen = b""
    async with http.stream("GET", path) as response:
        response.raise_for_status()
        async for chunk in response.aiter_bytes():
            if not first_byte:
                first_byte = time.perf_counter() - started
            seen += chunk
            if seen.count(b"\n") >= 2:
                first_row = time.perf_counter() - started
                break
    return first_byte * 1000, first_row * 1000


async def _statistics(stack: Stack, mailing_id: int) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=600) as http:
        queries = {
            "mailing(id) { stats }": f'{{ mailing(id: "{mailing_id}") {{ stats {{ {STATS} }} }} }}',
            "statistics { totals }": f"{{ statistics {{ totals {{ {STATS} }} }} }}",
        }
        for name, query in queries.items():
            median, p95 = await _query_times(http, query, 50)
            _say(f"  {name:40} median {median:6.1f} ms, p95 {p95:6.1f} ms")
        for path in (f"/exports/mailings/{mailing_id}/messages.csv", "/exports/statistics.csv"):
            first_byte, first_row = await _first_bytes(http, path)
            _say(f"  GET {path:40} first byte {first_byte:6.1f} ms, first row {first_row:6.1f} ms")


async def _import(stack: Stack, calls: int, size: int) -> None:
    tags, zones = ("", "vip", "new", "churned"), ("UTC", "Europe/Moscow", "Asia/Vladivostok")
    times = []
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=600) as http:
        for call in range(calls):
            first = 78_000_000_000 + call * size
            rows = [
                {"phone": str(first + i), "tag": tags[i % 4], "timezone": zones[i % 3]}
                for i in range(size)
            ]
            started = time.perf_counter()
            response = await http.post(
                "/graphql", json={"query": IMPORT, "variables": {"rows": rows}}
            )
            times.append(time.perf_counter() - started)
            result = response.json()["data"]["importClients"]
            if result.get("created") != size:
                raise RuntimeError(f"import failed: {result}")
    _say(
        f"  {calls * size:,} clients in {sum(times):.1f} s: {calls * size / sum(times):,.0f}/s,"
        f" per call median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=10_000_000)
    parser.add_argument("--send-seconds", type=float, default=60, help="sending after the build")
    parser.add_argument("--import-calls", type=int, default=100)
    args = parser.parse_args()
    n = args.clients
    _say(f"the {n:,}-client scale, one run on this machine ({time.strftime('%Y-%m-%d %H:%M')})")
    async with bench_stack(DATABASE) as stack:
        started = time.perf_counter()
        await stack.reset_clients(n)
        _say(f"  {n:,} clients made by generate_series in {time.perf_counter() - started:.0f} s")
        seconds = await one_statement(stack)
        _say(f"  audience in one INSERT ... SELECT (the old way): {seconds:.0f} s, nothing sent")
        await stack.conn.execute("TRUNCATE message, mailing, mailing_stats RESTART IDENTITY")
        await stack.conn.execute("VACUUM ANALYZE")
        stack.start_simulator()
        stack.start_api()
        _say("the chunked audience, through the API and one worker:")
        mailing_id = await _build_and_send(stack, n, args.send_seconds)
        await stack.conn.execute("VACUUM ANALYZE message")
        _say(f"statistics of that {n:,}-message mailing, over HTTP:")
        await _statistics(stack, mailing_id)
        _say("import through importClients, into the same client table:")
        await _import(stack, args.import_calls, 10_000)


if __name__ == "__main__":
    asyncio.run(main())
