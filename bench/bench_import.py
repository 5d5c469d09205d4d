"""Clients per second through ``importClients`` on PostgreSQL (target: 20,000/s).

Each call sends 10,000 clients as GraphQL variables to a real ``mailings
serve``; the time of a call covers HTTP, JSON, GraphQL parsing and coercion,
validation, the phone check and the insert.

Run: ``python -m bench.bench_import [--calls 10] [--rows 10000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from bench.api_server import recreate_database, serve, use_database

DATABASE = "mailings_bench_import"
IMPORT = """mutation($rows: [ClientInput!]!) {
    importClients(input: $rows) {
        __typename ... on ImportSummary { created } ... on ValidationError { message }
    }
}"""
TAGS = ("", "vip", "new", "churned")
ZONES = ("UTC", "Europe/Moscow", "Asia/Vladivostok", "Europe/Kaliningrad")


def _rows(first: int, size: int) -> list[dict[str, str]]:
    return [
        {"phone": str(first + i), "tag": TAGS[i % 4], "timezone": ZONES[i % 4]} for i in range(size)
    ]


async def _import(http: httpx.AsyncClient, rows: list[dict[str, str]]) -> float:
    started = time.perf_counter()
    response = await http.post("/graphql", json={"query": IMPORT, "variables": {"rows": rows}})
    elapsed = time.perf_counter() - started
    result = response.json()["data"]["importClients"]
    if result.get("created") != len(rows):
        raise RuntimeError(f"import failed: {result}")
    return elapsed


async def _run(calls: int, size: int) -> None:
    await recreate_database(DATABASE)
    with serve() as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            await _import(http, _rows(78_000_000_000, 100))  # warm-up: connections, caches
            payloads = [_rows(79_000_000_000 + call * size, size) for call in range(calls)]
            times = [await _import(http, rows) for rows in payloads]
    total = sum(times)
    print(f"importClients, {calls} calls x {size:,} clients, PostgreSQL:")
    print(
        f"  per call: median {statistics.median(times) * 1000:.0f} ms,"
        f" min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
    )
    print(f"  {calls * size / total:,.0f} clients/s overall (target 20,000)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    use_database(DATABASE)
    asyncio.run(_run(args.calls, args.rows))


if __name__ == "__main__":
    main()
